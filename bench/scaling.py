"""`python -m bench.scaling`: what one request of each kind costs Redis and PostgreSQL, counted.

For each kind (json chat completion, streamed chat completion, response-cache miss and hit, and
refusals: over budget, over the rate limit, a bad key) it sends N requests to llmur started as
`python -m bench` starts it, but on a private redis-server, and reports per request: Redis commands
by name, their time inside Redis (INFO commandstats, EVALSHA included) and the server's CPU, bytes
in and out, then PostgreSQL commits and rows written per table (pg_stat_database,
pg_stat_user_tables) once the Celery worker has drained. The gateway's and the worker's Redis
traffic are counted apart (the worker is paused while the gateway serves). Counts do not depend on
the machine's load, which is why docs/scaling.md is built on them; times (usec) do, a little.

Optionally: redis-benchmark against the same Redis (what one Redis core sustains on this machine),
and a load check with 2 and 4 gateway workers that compares the Redis CPU the model predicts with
what Redis spent. Prints a table and writes bench/results/scaling-<date>.json.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import load, scaling_report
from bench.cli import DEFAULT_DATABASE_URL, RESULTS, _interrupt, _machine
from bench.counters import redis_diff
from bench.procs import BenchError, Cores, mock_reset, mock_stats
from bench.scaling_kinds import KINDS
from bench.scaling_session import Session
from bench.servers import BENCH_MODEL, LLMUR_UPSTREAM, database_check_url, database_drop


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per kind (default 200)")
    parser.add_argument("--connections", default="1,32",
                        help="comma-separated concurrencies each kind is sent at (default 1,32)")
    parser.add_argument("--kinds", default=",".join(k.name for k in KINDS),
                        help=f"which kinds (default all: {','.join(k.name for k in KINDS)})")
    parser.add_argument("--idle-seconds", type=float, default=6,
                        help="length of the idle windows that measure the background (default 6)")
    parser.add_argument("--rollup", action="store_true", help="also wait (up to 90 s) for the per-minute "
                        "DailySpend rollup and count its writes per SpendLog row")
    parser.add_argument("--redis-benchmark", action="store_true",
                        help="also run redis-benchmark (EVALSHA of a one-key script) against the private Redis")
    parser.add_argument("--workers", default="", metavar="N,N",
                        help="load check: for each gateway worker count, wrk json c=32 and the Redis CPU it cost "
                             "against the model's prediction (e.g. 2,4)")
    parser.add_argument("--load-duration", type=float, default=10, help="seconds of wrk per load check (default 10)")
    parser.add_argument("--database-url", default=os.environ.get("LLMUR_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL database, DROPPED AND RECREATED for each llmur started; its name must "
                             "contain 'bench'")
    parser.add_argument("--database-template", default=None, metavar="NAME",
                        help="create the database as a copy of this migrated one (as python -m bench does)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    return parser


def log(message: str) -> None:
    print(f"[scaling {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _kinds_run(args, cores: Cores, workdir: Path, kinds: list, connections: list[int], result: dict) -> None:
    """One session without the response cache, one with it: each kind at each concurrency."""
    for cache in (False, True):
        chosen = [k for k in kinds if k.cache == cache]
        if not chosen:
            continue
        log(f"starting llmur ({'response cache on' if cache else 'no response cache'})")
        session = Session(cores=cores, workdir=workdir, database_url=args.database_url, workers=1, cache=cache,
                          database_template=args.database_template, log=log)
        try:
            session.send(KINDS[0], 20, 4)          # connection pools, caches and the consumer group settle
            session.drained()
            idle = session.idle(args.idle_seconds)
            result["idle"].append({"cache": cache, **idle})
            for kind in chosen:
                for c in connections:
                    log(f"{kind.name} ×{args.requests} at c={c}")
                    row = session.measure(kind, args.requests, c)
                    row["classified"] = session.classify(kind, min(args.requests, 100), c)
                    row["per_request"] = scaling_report.per_request(row, idle)
                    row["summary"] = scaling_report.summary(row)
                    _check(row, kind, result["problems"])
                    result["rows"].append(row)
            if args.redis_benchmark and not cache:
                result["redis_benchmark"] = redis_benchmark(session.redis.extra["port"], session)
            if args.rollup and not cache:
                log("waiting for the per-minute DailySpend rollup")
                rollup = session.rollup()
                rollup["per_row"] = scaling_report._scale(scaling_report.net(rollup, idle["all"]),
                                                          1 / max(1, rollup["rows"]))
                result["rollup"] = rollup
        finally:
            session.close()
            database_drop(args.database_url)


def _check(row: dict, kind, problems: list[str]) -> None:
    """The answers must be what the kind measures, or its counts mean something else."""
    statuses = row["sent"]["statuses"]
    if statuses != {str(kind.status): row["n"]}:
        problems.append(f"{kind.name} c={row['connections']}: expected {row['n']} × {kind.status}, got {statuses}")
    hits = row["sent"]["cache_hits"]
    if kind.name == "cache_hit" and hits != row["n"]:
        problems.append(f"cache_hit: only {hits} of {row['n']} answers came from the cache")
    if kind.name == "cache_miss" and hits:
        problems.append(f"cache_miss c={row['connections']}: {hits} answers came from the cache")


def redis_benchmark(port: int, session: Session, calls: int = 100_000, clients: int = 16) -> dict:
    """EVALSHA of a one-key INCR script, no pipelining: the calls per second one Redis core sustains,
    and the Redis CPU per call (the machine's load moves the first, much less the second)."""
    binary = shutil.which("redis-benchmark")
    if not binary:
        return {"skipped": "redis-benchmark is not installed (Debian: redis-tools)"}
    script = "return redis.call('INCR', KEYS[1])"
    sha = subprocess.run(["redis-cli", "-p", str(port), "SCRIPT", "LOAD", script], capture_output=True,
                         text=True, check=True).stdout.strip()
    session.worker_signal(signal.SIGSTOP)
    try:
        a = session.robs.snapshot()
        out = subprocess.run([binary, "-p", str(port), "-n", str(calls), "-c", str(clients), "-q",
                              "EVALSHA", sha, "1", "bench:counter"], capture_output=True, text=True, timeout=300)
        b = session.robs.snapshot()
    finally:
        session.worker_signal(signal.SIGCONT)
    diff = redis_diff(a, b)
    found = re.findall(r"([\d.]+) requests per second", out.stdout.replace(",", ""))
    evalsha = diff["commands"].get("evalsha", {"calls": 0, "usec": 0})
    return {"command": f"EVALSHA <{script}> 1 key", "calls": evalsha["calls"], "clients": clients,
            "rps": float(found[-1]) if found else 0.0,
            "cpu_usec_per_call": diff["cpu_usec"] / max(1, evalsha["calls"]),
            "command_usec_per_call": evalsha["usec"] / max(1, evalsha["calls"]),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def load_check(args, cores: Cores, workdir: Path, workers: int, model: dict) -> dict:
    """wrk json c=32 on llmur with `workers` gateway workers, beat on as in production: what Redis and
    PostgreSQL spent per admitted request (the idle background taken out), against the model's figures
    from the per-request run."""
    log(f"load check: {workers} gateway workers")
    session = Session(cores=cores, workdir=workdir, database_url=args.database_url, workers=workers, cache=False,
                      database_template=args.database_template, log=log, beat=True)
    try:
        session.send(KINDS[0], 40, 8)
        session.drained()
        idle = session.idle(args.idle_seconds, quiet_s=3)["all"]
        mock_reset(session.mock.extra["url"])
        before_load = [round(x, 2) for x in os.getloadavg()]
        a = session.snapshot()
        wrk = load.run_wrk(cores=cores, url=f"{session.server.url}/v1/chat/completions", key=session.server.key,
                           model=BENCH_MODEL, stream=False, connections=32, duration=args.load_duration)
        after_load = [round(x, 2) for x in os.getloadavg()]
        session.drained()
        admitted = sum(n for m, n in mock_stats(session.mock.extra["url"]).get("by_model", {}).items()
                       if LLMUR_UPSTREAM in m)
        # Beat's budget resets commit every 10 s: a shorter quiet spell than the kinds' 11 s.
        session.pg.settle(writes_at_least=2 * admitted, base=a["pg"]["database"], timeout=60, quiet_s=3)
        raw = session.diff(a, session.snapshot())
    finally:
        session.close()
        database_drop(args.database_url)
    diff = scaling_report.net(raw, idle)
    n = max(1, admitted)
    measured = {"redis_cpu_usec": diff["redis"]["cpu_usec"] / n, "redis_calls": diff["redis"]["calls"] / n,
                "redis_bytes": (diff["redis"]["bytes_in"] + diff["redis"]["bytes_out"]) / n,
                "pg_commits": diff["pg"]["database"]["xact_commit"] / n,
                "pg_tuple_writes": scaling_report.tuple_writes(diff["pg"]) / n,
                "pg_backend_cpu_ms": diff["pg"]["backends_cpu_ms"] / n,
                "gateway_cpu_ms": diff["gateway_cpu_ms"] / n}
    return {"workers": workers, "connections": 32, "duration_s": wrk["elapsed_s"], "rps": wrk["rps"],
            "admitted": admitted, "wrk": wrk, "loadavg_before": before_load, "loadavg_after": after_load,
            "measured": measured, "model": model,
            # Redis's share of one core while wrk ran, from the per-request cost, and as the model has it.
            "redis_utilisation": wrk["rps"] * measured["redis_cpu_usec"] / 1e6,
            "redis_utilisation_predicted": wrk["rps"] * model["redis_cpu_usec"] / 1e6,
            "raw": raw, "idle": idle}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="llmur-scaling-"))
    started = datetime.now(timezone.utc)
    result = {"started_at": started.isoformat(timespec="seconds"), "machine": _machine(), "rows": [], "idle": [],
              "problems": [], "requests": args.requests}
    try:
        database_check_url(args.database_url)
        connections = [int(c) for c in args.connections.split(",") if c.strip()]
        names = [k.strip() for k in args.kinds.split(",") if k.strip()]
        unknown = set(names) - {k.name for k in KINDS}
        if unknown or not names or not connections or args.requests < 1:
            raise BenchError(f"bad --kinds, --connections or --requests (unknown kinds: {sorted(unknown)})")
        cores = Cores.plan()
        result["cores"] = cores.describe()
        _kinds_run(args, cores, workdir, [k for k in KINDS if k.name in names], connections, result)
        json_rows = [r for r in result["rows"] if r["kind"] == "json"]
        if args.workers and json_rows:
            s = max(json_rows, key=lambda r: r["connections"])["summary"]
            model = {"redis_cpu_usec": s["redis_cpu_usec"],
                     "redis_calls": s["redis_round_trips_gateway"] + s["redis_script_calls"] + s["redis_calls_worker"],
                     "redis_bytes": s["bytes_in"] + s["bytes_out"], "pg_commits": s["pg_commits"],
                     "pg_tuple_writes": s["pg_tuple_writes"], "pg_backend_cpu_ms": s["pg_backend_cpu_ms"],
                     "gateway_cpu_ms": s["gateway_cpu_ms"]}
            result["load_check"] = [load_check(args, cores, workdir, int(w), model)
                                    for w in args.workers.split(",") if w.strip()]
    except BenchError as exc:
        print(f"bench.scaling: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench.scaling: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = scaling_report.write(result, args.output_dir, started)
    print(scaling_report.render(result))
    print(f"\nwritten: {path}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
