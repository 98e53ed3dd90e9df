"""`python -m bench.scaling`: its counters against a Redis whose traffic the test knows exactly, then a
small run whose counts must agree with what llmur is documented to do (docs/scaling.md).

No timing is asserted: figures are measured in bench/, not here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from bench.counters import MonitorTap, RedisObserver, redis_diff
from bench.procs import Cores, start_redis
from tests.conftest import ROOT

pytestmark = pytest.mark.serial


@pytest.fixture
def private_redis(tmp_path):
    proc = start_redis(Cores(server=[], load=[]), tmp_path)
    yield proc.extra["port"]
    proc.stop()


def test_counters_see_exactly_the_traffic_sent_and_not_their_own(private_redis):
    observer = RedisObserver(private_redis, 1)
    client = redis.Redis(port=private_redis, db=1, protocol=2)
    client.ping()                       # the connection's own set-up calls happen before counting
    script = "redis.call('INCR', KEYS[1]); return redis.call('INCR', KEYS[1])"
    sent = [["SET", f"k{i}", "v" * 10] for i in range(3)] + [["EVAL", script, "1", "n"]]
    before = observer.snapshot()
    for command in sent:
        client.execute_command(*command)
    observer.xlen("nothing")            # the observer's own commands are taken out
    diff = redis_diff(before, observer.snapshot())

    assert {name: c["calls"] for name, c in diff["commands"].items()} == {"set": 3, "eval": 1, "incr": 2}
    packer = redis.Connection(port=private_redis)
    assert diff["bytes_in"] == sum(len(b"".join(packer.pack_command(*command))) for command in sent)
    assert diff["bytes_out"] == len(b"+OK\r\n") * 3 + len(b":2\r\n")
    assert diff["socket_reads"] == 4

    # MONITOR tells a client's round trips from the calls its script made.
    connection = client.connection_pool.get_connection()
    port = str(connection._sock.getsockname()[1])
    client.connection_pool.release(connection)
    tap = MonitorTap(private_redis)
    for command in sent:
        client.execute_command(*command)
    observer.xlen("nothing")
    seen = tap.stop()
    assert seen[(port, "set")] == 3 and seen[(port, "eval")] == 1 and seen[("lua", "incr")] == 2
    assert seen[(port, "incr")] == 0
    observer.close()
    client.close()


@pytest.fixture
def scaling_database_url() -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL", ""))
    if parts.scheme not in ("postgres", "postgresql"):
        pytest.skip("bench.scaling runs llmur on PostgreSQL: needs DATABASE_URL=postgresql://...")
    return urlunsplit(parts._replace(path=f"/{parts.path.lstrip('/') or 'llmur'}_bench_scaling_{os.getpid()}"))


def test_a_small_run_counts_what_each_kind_of_request_costs(tmp_path, scaling_database_url, migrated_postgres):
    # Three kinds, one of each shape (answered, answered and stored in the cache, refused): each kind
    # ends with PostgreSQL's 11 s of stillness twice, so every kind more costs the suite half a minute.
    n = 10
    completed = subprocess.run(
        [sys.executable, "-m", "bench.scaling", "--requests", str(n), "--connections", "2", "--idle-seconds", "1",
         "--kinds", "json,cache_miss,over_rpm", "--database-url", scaling_database_url,
         "--database-template", migrated_postgres.template_name, "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr[-4000:]}"
    assert "round trips" in completed.stdout and "PG commits" in completed.stdout
    [path] = tmp_path.glob("scaling-*.json")
    result = json.loads(path.read_text())
    rows = {row["kind"]: row for row in result["rows"]}
    assert set(rows) == {"json", "cache_miss", "over_rpm"}
    assert result["problems"] == []

    def spend_inserts(row: dict, part: str) -> int:
        return row[part]["pg"]["tables"].get("billing_spendlog", {}).get("ins", 0)

    for kind in ("json", "cache_miss"):
        row = rows[kind]
        assert row["sent"]["statuses"] == {"200": n}
        # Admission is a script: at least one EVALSHA round trip per request, nothing written on the way.
        assert row["classified"]["gateway"].get("evalsha", 0) >= 1
        assert row["gateway"]["redis"]["bytes_in"] > 0 and spend_inserts(row, "gateway") == 0
        # The worker writes exactly one SpendLog row per request (raw counts: no background taken out).
        assert spend_inserts(row, "worker") == n
        assert row["worker"]["pg"]["database"]["xact_commit"] >= 1
    # A miss is answered upstream and its answer stored: one SET per request.
    assert rows["cache_miss"]["sent"]["cache_hits"] == 0
    assert rows["cache_miss"]["gateway"]["redis"]["commands"]["set"]["calls"] == n
    row = rows["over_rpm"]
    assert row["sent"]["statuses"] == {"429": n}
    assert spend_inserts(row, "gateway") == spend_inserts(row, "worker") == 0
    assert row["summary"]["spendlog_inserts"] == 0
    # A refusal costs Redis less than an answered request.
    assert rows["over_rpm"]["summary"]["redis_script_calls"] < rows["json"]["summary"]["redis_script_calls"]
