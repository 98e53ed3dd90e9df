"""The bench's spend check: every request through llmur ends as exactly one SpendLog row.

Two parts. The load cells: wrk stops mid-request at the end of each cell, so up to one request
per connection per cell is answered (or cancelled, and billed as such) after the client stopped
counting; there the rows must lie between what the clients saw succeed and that plus the
requests cut off, and the success rows may not exceed what reached the mock. Then an exact
batch: a fixed number of requests, each one finished by the client, must add exactly that
many success rows.
"""
from __future__ import annotations

import time
from typing import Callable

from bench import load
from bench.procs import Cores, mock_stats
from bench.servers import BENCH_MODEL, LLMUR_UPSTREAM, LlmurServer, spend_rows


def check(*, server: LlmurServer, mock_url: str, rows: list[dict], warmup: dict | None, cores: Cores,
          quick: bool, connections: list[int], drain_timeout: float, log: Callable[[str], None]) -> dict:
    """Wait for the Celery worker to drain the load cells' spend events, send the exact batch, and
    compare SpendLog with what the clients and the mock saw; the verdict is "ok" or "MISMATCH: …"."""
    by_model = mock_stats(mock_url).get("by_model", {})
    upstream = sum(n for model, n in by_model.items() if LLMUR_UPSTREAM in model)
    warm = warmup or {"ok": 0, "connections": 0}
    client_ok = sum(r["ok"] + r.get("ttfb_streams", 0) for r in rows) + warm["ok"]
    cut_off = sum(r["connections"] for r in rows) + warm["connections"]
    # Rows for the requests the clients saw succeed must all come; only the cut-off ones may
    # trail, so past that floor a short quiet spell means the drain is done.
    counts, drain_s = _wait_rows(server, drain_timeout, None, floor=client_ok, settle_s=1.5 if quick else 3.0)
    load_part = {"upstream_requests": upstream, "client_ok": client_ok, "cut_off_at_most": cut_off,
                 "spend_rows": counts["rows"], "spend_success_rows": counts["success_rows"], "drain_s": drain_s}
    problems = []
    if upstream == 0:
        problems.append("llmur forwarded no request to the upstream (is /v1/chat/completions served?)")
    if not client_ok <= counts["rows"] <= client_ok + cut_off:
        problems.append(f"{counts['rows']} SpendLog rows for {client_ok} successes seen by the clients "
                        f"(+ at most {cut_off} cut off at the cells' ends)")
    if counts["success_rows"] > upstream:
        problems.append(f"{counts['success_rows']} success rows but only {upstream} requests reached the mock")

    batch_n = 100 if quick else 2000
    conns = min(32, max(connections))
    sent_ok, failures = 0, {}
    for stream in (False, True):
        got = load.run_ttfb(cores=cores, url=f"{server.url}/v1/chat/completions", key=server.key,
                            model=BENCH_MODEL, connections=conns, duration=600, requests=batch_n // 2,
                            stream=stream)
        sent_ok += got["streams"]
        for name, n in got["failures"].items():
            failures[name] = failures.get(name, 0) + n
    want = {"rows": counts["rows"] + sent_ok, "success_rows": counts["success_rows"] + sent_ok}
    after, batch_drain_s = _wait_rows(server, drain_timeout, lambda c: c["rows"] >= want["rows"])
    batch = {"requests": batch_n, "ok": sent_ok, "failures": failures, "connections": conns,
             "new_rows": after["rows"] - counts["rows"],
             "new_success_rows": after["success_rows"] - counts["success_rows"], "drain_s": batch_drain_s}
    if failures:
        problems.append(f"the exact batch saw failures: {failures}")
    if after != want:
        problems.append(f"the exact batch of {sent_ok} successful requests added {batch['new_rows']} SpendLog "
                        f"rows ({batch['new_success_rows']} success) after waiting {batch_drain_s} s")
    verdict = "ok" if not problems else "MISMATCH: " + "; ".join(problems)
    result = {"load": load_part, "batch": batch, "verdict": verdict,
              # Flat copies for the table line.
              "spend_rows": after["rows"], "upstream_requests": upstream, "client_ok": client_ok + sent_ok,
              "drain_s": batch_drain_s}
    level = "" if not problems else "!!! "
    log(f"{level}spend check: {result['verdict']}")
    return result


def _wait_rows(server: LlmurServer, timeout: float, done: Callable[[dict], bool] | None, *,
               settle_s: float = 3.0, floor: int = 0) -> tuple[dict, float]:
    """Poll SpendLog until done(counts) holds, or, without `done`, until the counts (at `floor`
    rows or more) stop moving for settle_s; at most `timeout` seconds."""
    started = time.monotonic()
    counts = spend_rows(server.database_url)
    last_change, last = started, counts["rows"]
    while not (done is not None and done(counts)) and time.monotonic() - started < timeout:
        time.sleep(0.5)
        counts = spend_rows(server.database_url)
        if counts["rows"] != last:
            last_change, last = time.monotonic(), counts["rows"]
        elif done is None and time.monotonic() - last_change > settle_s and counts["rows"] >= floor:
            break
    return counts, round(time.monotonic() - started, 1)
