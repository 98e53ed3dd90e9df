"""Redis Sentinel: the gateway follows a failover of the Redis master in the middle of traffic."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml

from tests.conftest import ROOT, chat_status, mock_model_list, start_gateway
from tests.factories import make_key
from tests.ha.conftest import SERVICE, _redis, _wait

pytestmark = pytest.mark.serial

STREAM = "llmur:spend:events"


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.django_db(transaction=True)
def test_requests_keep_succeeding_when_the_redis_master_is_killed_and_sentinel_fails_over(
        django_db_setup, fake_provider, sentinel_cluster):
    # Rate limits live in Redis, so every request runs its Lua admission against the master.
    key = make_key(rpm_limit=100000, tpm_limit=10**9).plaintext
    # REDIS_URL would replace cache_configuration: this server knows only the sentinels.
    server = start_gateway({"model_list": mock_model_list(fake_provider.url),
                            "cache_configuration": sentinel_cluster.config()}, workers=2, env={"REDIS_URL": ""})
    results: list[tuple[float, float, int]] = []     # (sent, answered, status)
    stop = threading.Event()

    def client(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            sent = time.monotonic()
            status = chat_status(server.url, key, content=f"failover {worker * 100000 + n}", timeout=30)
            results.append((sent, time.monotonic(), status))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    try:
        for thread in threads:
            thread.start()
        while len(results) < 40:
            stop.wait(0.05)
        replica = _redis(sentinel_cluster.replica_port)
        # The gateway wrote spend events to the master, and the replica copied them.
        _wait(lambda: replica.xlen(STREAM) > 0, 10, "spend events on the replica")
        events_at_kill = replica.xlen(STREAM)

        killed = time.monotonic()
        sentinel_cluster.kill_master()
        sentinel_cluster.wait_for_failover()
        promoted = time.monotonic()
        # Traffic goes on until the gateway writes to the promoted replica (a worker that saw Redis fail
        # bypasses it for a second before trying again, its spend meanwhile taking the fallback writer).
        _wait(lambda: sum(1 for sent, _, _ in results if sent > promoted) >= 80
              and replica.xlen(STREAM) > events_at_kill, 20, "spend events on the promoted replica")
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

        assert sorted({status for _, _, status in results}) == [200], server.output()[-3000:]
        in_failover = [r for r in results if r[0] < promoted and r[1] > killed]
        assert in_failover, "no request was in flight while the master was down"
        # Rate-limit counters are there too (written by the master before, or by the gateway after).
        assert any(replica.scan_iter(match="llmur:rl:*", count=1000)), sorted(replica.scan_iter(count=1000))
        # django-redis (the readiness check's cache ping) found the new master too.
        assert _status(f"{server.url}/health/readiness") == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()


def test_celery_broker_reaches_the_master_through_sentinel(sentinel_cluster, tmp_path):
    """Celery's broker (kombu over sentinel://) publishes to and consumes from the master of service_name."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cache_configuration": sentinel_cluster.config(),
                                      "application_secret": "x" * 32}))
    script = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'llmur.settings'); django.setup()\n"
        "from django.conf import settings\n"
        "from llmur.celery import app\n"
        "print(settings.CELERY_BROKER_URL.split(';')[0], settings.CELERY_BROKER_TRANSPORT_OPTIONS['master_name'])\n"
        "with app.connection_for_write() as conn:\n"
        "    queue = conn.SimpleQueue('llmur-ha-probe')\n"
        "    queue.put({'hello': 'sentinel'})\n"
        "    message = queue.get(timeout=10)\n"
        "    message.ack()\n"
        "    print(message.payload)\n"
        "    queue.put({'left': 'for the test'})\n"
        "    queue.close()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"LLMUR_CONFIGURATION": str(config), "LLMUR_VAR_DIR": str(tmp_path / "var"),
                "DATABASE_URL": f"sqlite:///{tmp_path}/ha.sqlite3"})
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == f"sentinel://127.0.0.1:{sentinel_cluster.sentinel_port}/0 {SERVICE}"
    assert lines[1] == "{'hello': 'sentinel'}"
    assert _redis(sentinel_cluster.master_port).llen("llmur-ha-probe") == 1


def test_sentinels_without_a_service_name_are_a_config_error(tmp_path):
    from llmur.config import ConfigError, load_config

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cache_configuration": {"sentinels": [{"host": "10.0.0.5", "port": 26379}]}}))
    with pytest.raises(ConfigError) as raised:
        load_config(config, env={"LLMUR_VAR_DIR": str(tmp_path)})
    assert "service_name" in str(raised.value) and "cache_configuration" in str(raised.value)


def test_sentinel_settings_resolve_for_cache_clients_and_celery(tmp_path):
    from llmur import redis_clients
    from llmur.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"cache_configuration": {
        "sentinels": [{"host": "10.0.0.5"}, {"host": "10.0.0.6", "port": 26380}], "service_name": "main",
        "password": "master-secret", "db": 3, "sentinel_password": "sentinel-secret"}}))
    cache = load_config(config, env={"LLMUR_VAR_DIR": str(tmp_path)}).cache
    assert cache.engine == "redis" and cache.sentinels == [("10.0.0.5", 26379), ("10.0.0.6", 26380)]
    assert "secret" not in cache.address and "secret" not in repr(cache)
    url, transport = redis_clients.celery_broker(cache)
    assert url == "sentinel://:master-secret@10.0.0.5:26379/3;sentinel://:master-secret@10.0.0.6:26380/3"
    assert transport == {"master_name": "main", "sentinel_kwargs": {"password": "sentinel-secret"}}
    entry = redis_clients.django_cache(cache, {})
    assert entry["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert entry["OPTIONS"]["SENTINELS"] == [("10.0.0.5", 26379), ("10.0.0.6", 26380)]
    assert entry["LOCATION"] == "redis://:master-secret@main/3"
