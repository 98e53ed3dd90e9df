"""The benchmark's own smoke run: a few seconds of tiny load through the real harness.

It starts the mock, llmur (fresh PostgreSQL database, the test Redis database, gunicorn with one
uvicorn worker, a Celery worker) and a handful of synthetic SpendLog rows, exactly as
`python -m bench` does, and checks what a person running it gets: the table, and a JSON file with
every field docs/performance.md documents. It asserts no timing: figures are measured in bench/, not here.
The fresh database is a copy of the migrated test database (--database-template), so the run's
migrate step has nothing to do: migrating an empty database is tested where it is the subject.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.serial

ROW_FIELDS = {"target", "mode", "connections", "requests", "ok", "non_2xx", "failed", "rps", "p50_ms", "p99_ms"}


@pytest.fixture
def bench_database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        pytest.skip("the benchmark runs llmur on PostgreSQL: needs DATABASE_URL=postgresql://...")
    # A database of its own beside the test database; the harness drops it when it is done.
    name = f"{parts.path.lstrip('/') or 'llmur'}_bench_smoke_{os.getpid()}"
    return urlunsplit(parts._replace(path=f"/{name}"))


def _run_bench(tmp_path, database_url: str, redis_url: str, template: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "results"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--connections", "2", "--scale-rows", "500",
         "--database-url", database_url, "--database-template", template, "--redis-url", redis_url,
         "--drain-timeout", "30", "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    files = sorted(out.glob("*.json"))
    assert len(files) == 1, f"expected one results file, got {files}\n{completed.stdout}\n{completed.stderr}"
    return completed, json.loads(files[0].read_text())


def test_quick_run_prints_the_table_and_writes_the_json(tmp_path, bench_database_url, redis_url, migrated_postgres):
    # No wrk on a fresh machine is the harness's business: it installs it (root + apt-get) or says how.
    completed, result = _run_bench(tmp_path, bench_database_url, redis_url, migrated_postgres.template_name)
    assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr}"

    table = completed.stdout
    assert "req/s" in table and "TTFB p50" in table and "RSS MB" in table and "CPU ms/req" in table
    assert "spend check: ok" in table
    assert "records: " in table and "SpendLog rows" in table and "/global/spend/report" in table
    assert "written: " in table

    assert {"started_at", "machine", "cores", "settings", "rows", "spend_check", "scale"} <= result.keys()
    cells = {(r["target"], r["mode"], r["connections"]) for r in result["rows"]}
    assert cells == {(t, m, c) for t in ("mock", "llmur") for m in ("json", "stream") for c in (2,)}
    for row in result["rows"]:
        assert ROW_FIELDS <= row.keys()
        assert row["ok"] > 0 and row["failed"] == 0, row
    for row in (r for r in result["rows"] if r["target"] == "llmur"):
        assert {"rps_vs_mock", "added_p50_ms", "rss_mb", "cpu_ms_per_req", "rps_per_core"} <= row.keys()
        assert row["rss_mb"] > 0
        if row["mode"] == "stream":
            assert row["ttfb_streams"] > 0 and row["added_ttfb_p50_ms"] is not None

    spend = result["spend_check"]
    assert spend["verdict"] == "ok"
    load, batch = spend["load"], spend["batch"]
    assert load["client_ok"] <= load["spend_rows"] <= load["client_ok"] + load["cut_off_at_most"]
    assert load["spend_success_rows"] <= load["upstream_requests"]
    assert batch["ok"] == batch["requests"] == batch["new_rows"] == batch["new_success_rows"] == 100

    scale = result["scale"]
    assert scale["generated_rows"] == 500
    assert scale["rows"] == 500 + spend["spend_rows"]  # the synthetic rows beside the run's own
    assert scale["daily_rows"] > 0
    names = {t["name"] for t in scale["timings"]}
    assert "admin dashboard /admin/" in names and any(n.startswith("/spend/logs") for n in names)
    # A surface that answers an error is timing the error page, not the report.
    assert {t["name"]: t["status"] for t in scale["timings"] if t["status"] != 200} == {}
    assert "admin_password" not in json.dumps(result) and "hot_key\"" not in json.dumps(result)
    assert "api_key=sk-REDACTED" in json.dumps(scale["timings"])  # the key itself never lands in the file


def test_refuses_a_database_whose_name_does_not_say_bench(tmp_path, redis_url):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--database-url", "postgresql://postgres@127.0.0.1:5432/llmur",
         "--redis-url", redis_url, "--modes", "json", "--connections", "1", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "refusing to drop database 'llmur'" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not list(tmp_path.glob("*.json"))


def test_refuses_to_flush_redis_database_zero(tmp_path, bench_database_url):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--database-url", bench_database_url,
         "--redis-url", "redis://127.0.0.1:6379/0", "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert "refusing to flush Redis database 0" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not list(tmp_path.glob("*.json"))
