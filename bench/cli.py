"""`python -m bench`: measure llmur against the fake provider (and LiteLLM's proxy) in one run.

The run, in order: start the mock; drive it alone; start llmur in its production shape and drive
it with the same load through a virtual key; wait for the Celery worker to drain every spend
event and check SpendLog against the requests that reached the mock; optionally do the same for
LiteLLM's proxy; optionally generate N synthetic SpendLog rows and time the reporting surfaces on
them; then print one table and write bench/results/<date>.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from bench import load, profile, report, scale, spend_check
from bench.procs import (
    ROOT,
    BenchError,
    Cores,
    Managed,
    cpu_seconds,
    mock_reset,
    rss_mb,
    serving_process,
    start_mock,
)
from bench.servers import (
    BENCH_MODEL,
    LlmurServer,
    bare_start,
    database_check_url,
    database_drop,
    litellm_find,
    litellm_start,
    llmur_start,
    redis_check_url,
)

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/llmur_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of wrk load per cell (default 10)")
    parser.add_argument("--ttfb-duration", type=float, default=None,
                        help="seconds of the streaming TTFB client per cell (default: half of --duration)")
    parser.add_argument("--connections", default="1,8,32,128",
                        help="comma-separated connection counts (default 1,8,32,128)")
    parser.add_argument("--modes", default="json,stream", help="json, stream, or both (default)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 s cells at 1 and 8 connections, 0.5 s of TTFB, 2,000 synthetic rows")
    parser.add_argument("--compare-litellm", nargs="?", const="auto", default=None, metavar="LITELLM_BIN",
                        help="also run LiteLLM's proxy (no database) when it is installed; "
                             "optionally the path of its `litellm` command")
    parser.add_argument("--compare-bare", action="store_true",
                        help="also run a bare Django + ninja pass-through (bench/bare_app.py), the baseline llmur "
                             "is held to")
    parser.add_argument("--scale-rows", type=int, default=None,
                        help="synthetic SpendLog rows for the records test (default 10,000,000; 0 skips it)")
    parser.add_argument("--profile", nargs="?", const="json:32", default=None, metavar="MODE:CONNECTIONS",
                        help="sample the llmur worker with py-spy during one cell (default json:32)")
    parser.add_argument("--no-llmur", action="store_true", help="measure the mock alone (checks the harness)")
    parser.add_argument("--records-only", action="store_true",
                        help="skip the load cells: start llmur and run only the records test")
    parser.add_argument("--database-url", default=os.environ.get("LLMUR_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
                        help="PostgreSQL database for llmur; DROPPED AND RECREATED each run, its name must "
                             f"contain 'bench' (default $LLMUR_BENCH_DATABASE_URL or {DEFAULT_DATABASE_URL})")
    parser.add_argument("--redis-url", default=os.environ.get("LLMUR_BENCH_REDIS_URL", DEFAULT_REDIS_URL),
                        help="Redis database for llmur; FLUSHED each run, never db 0 "
                             f"(default $LLMUR_BENCH_REDIS_URL or {DEFAULT_REDIS_URL})")
    parser.add_argument("--keep-database", action="store_true", help="leave the bench database in place")
    parser.add_argument("--database-template", default=None, metavar="NAME",
                        help="create the bench database as a copy of this PostgreSQL database (already migrated, "
                             "nobody connected) instead of empty, so the run does not migrate from scratch")
    parser.add_argument("--drain-timeout", type=float, default=120,
                        help="seconds to wait for spend events to reach SpendLog (default 120)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS, help=f"where the JSON goes (default {RESULTS})")
    return parser


def _settings(args: argparse.Namespace) -> dict:
    if args.quick:
        args.duration = 1 if args.duration == 10 else args.duration
        if args.connections == "1,8,32,128":
            args.connections = "1,8"
        if args.scale_rows is None:
            args.scale_rows = 2000
    if args.scale_rows is None:
        args.scale_rows = 10_000_000
    try:
        connections = [int(c) for c in args.connections.split(",") if c.strip()]
    except ValueError:
        raise BenchError(f"--connections: expected comma-separated integers, got {args.connections!r}") from None
    if not connections or min(connections) < 1:
        raise BenchError("--connections: give at least one count of 1 or more")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"json", "stream"}:
        raise BenchError(f"--modes: expected json, stream or json,stream, got {args.modes!r}")
    if args.duration <= 0:
        raise BenchError("--duration must be positive")
    if not args.no_llmur:
        database_check_url(args.database_url)
        redis_check_url(args.redis_url)
    profile_cell = None
    if args.profile:
        mode, _, conns = args.profile.partition(":")
        if mode not in modes or not conns.isdigit():
            raise BenchError(f"--profile: expected MODE:CONNECTIONS with a mode of --modes, got {args.profile!r}")
        # The cell must exist: a count that is not measured falls back to the largest that is.
        profile_cell = (mode, int(conns) if int(conns) in connections else max(connections))
    ttfb = args.ttfb_duration if args.ttfb_duration is not None else (
        0.5 if args.quick else max(1.0, args.duration / 2))
    return {"duration_s": args.duration, "ttfb_duration_s": ttfb, "connections": connections, "modes": modes,
            "scale_rows": args.scale_rows, "quick": args.quick, "profile": profile_cell}


def _machine() -> dict:
    model = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu_model": model, "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


class Run:
    """One benchmark run; owns every process it starts and stops them all in `close`."""

    def __init__(self, args: argparse.Namespace, settings: dict):
        self.args, self.settings = args, settings
        self.cores = Cores.plan()
        self.workdir = Path(tempfile.mkdtemp(prefix="llmur-bench-"))
        self.procs: list[Managed] = []
        self.rows: list[dict] = []
        self.skipped: dict[str, str] = {}
        self.warmups: dict[str, dict] = {}
        self.database_used = False
        self.result: dict = {}
        self.llmur: LlmurServer | None = None

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ load cells

    def drive(self, *, target: str, base_url: str, key: str, model: str, server_pid: int | None,
              profile_cell: tuple[str, int] | None = None, rss: bool = True) -> list[dict]:
        url = f"{base_url}/v1/chat/completions"
        s = self.settings
        # Warm-up, not recorded: connection pools, import-on-first-use and caches settle first.
        warm = load.run_wrk(cores=self.cores, url=url, key=key, model=model, stream=False,
                            connections=min(8, max(s["connections"])), duration=1 if s["quick"] else 2)
        self.warmups[target] = {"ok": warm["ok"], "connections": min(8, max(s["connections"]))}
        rows = []
        for mode in s["modes"]:
            for connections in s["connections"]:
                spy = None
                if profile_cell == (mode, connections) and server_pid:
                    spy_out = self.workdir / "profile.raw"
                    spy = profile.record_start(pid=serving_process(server_pid).pid, output=spy_out,
                                               seconds=max(1, int(s["duration_s"]) - 1), cores=self.cores)
                self.log(f"{target} {mode} c={connections}")
                row = {"target": target, "mode": mode, "connections": connections}
                serving = serving_process(server_pid) if server_pid else None
                cpu_before = cpu_seconds(serving)
                row |= load.run_wrk(cores=self.cores, url=url, key=key, model=model, stream=mode == "stream",
                                    connections=connections, duration=s["duration_s"])
                # CPU time per request is the figure the shared machine's noise disturbs least: other
                # processes on the server core stretch latency, not the CPU the worker spends.
                cpu_used = cpu_seconds(serving) - cpu_before if serving else None
                if cpu_used is not None and row["requests"]:
                    row["cpu_ms_per_req"] = round(cpu_used * 1000 / row["requests"], 3)
                    row["rps_per_core"] = round(row["requests"] / cpu_used, 1) if cpu_used > 0 else None
                if spy:
                    self._profile_done(spy, spy_out, mode, connections)
                if mode == "stream":
                    ttfb = load.run_ttfb(cores=self.cores, url=url, key=key, model=model,
                                         connections=connections, duration=s["ttfb_duration_s"])
                    row |= {"ttfb_p50_ms": ttfb["ttfb_p50_ms"], "ttfb_p99_ms": ttfb["ttfb_p99_ms"],
                            "ttfb_streams": ttfb["streams"], "ttfb_streams_per_s": ttfb["streams_per_s"],
                            "ttfb_failed": sum(ttfb["failures"].values()), "ttfb_failures": ttfb["failures"]}
                if server_pid and rss:
                    row["rss_mb"] = rss_mb(serving_process(server_pid).pid)
                rows.append(row)
        return rows

    def _profile_done(self, spy, spy_out: Path, mode: str, connections: int) -> None:
        problem = profile.record_finish(spy, spy_out)
        if problem:
            self.skipped["profile"] = problem
            return
        stamp = self.result["started_at"][:19].replace(":", "")
        kept = self.args.output_dir / f"profile-{stamp}.txt"
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(spy_out.read_text())
        try:
            shown = str(kept.resolve().relative_to(ROOT))
        except ValueError:
            shown = str(kept)
        self.result["profile"] = {"mode": mode, "connections": connections, "file": shown} | \
            profile.summarize(spy_out)

    # ------------------------------------------------------------------ phases

    def run(self) -> dict:
        started = datetime.now(timezone.utc)
        self.result = {"started_at": started.isoformat(timespec="seconds"), "machine": _machine(),
                       "cores": self.cores.describe(), "settings": self.settings}
        load.wrk_path()
        self.log(f"work directory {self.workdir}")
        mock = start_mock(self.cores, self.workdir)
        self.procs.append(mock)
        mock_url = mock.extra["url"]
        if self.args.records_only:
            self.skipped["load"] = "--records-only"
            self.llmur = self.start_llmur(mock_url)
        else:
            self.rows += self.drive(target="mock", base_url=mock_url, key="sk-mock", model="mock-gpt",
                                    server_pid=mock.process.pid, rss=False)
            if self.args.compare_bare:
                self.phase_bare(mock_url)
            if self.args.no_llmur:
                self.skipped["llmur"] = "--no-llmur"
            else:
                self.phase_llmur(mock_url)
            self.phase_litellm(mock_url)
        if self.llmur and self.settings["scale_rows"] > 0:
            self.phase_scale()
        elif self.settings["scale_rows"] > 0:
            self.skipped["records"] = "needs llmur running"

        report.add_ratios(self.rows)
        self.result["rows"] = self.rows
        self.result["skipped"] = self.skipped
        self.result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return self.result

    def start_llmur(self, mock_url: str) -> LlmurServer:
        self.log("starting llmur: fresh database, migrations, virtual key, gunicorn + Celery")
        self.database_used = True
        server = llmur_start(cores=self.cores, workdir=self.workdir, mock_url=mock_url,
                             database_url=self.args.database_url, redis_url=self.args.redis_url,
                             database_template=self.args.database_template,
                             spend_worker=not self.args.records_only)
        self.procs += [p for p in (server.web, server.worker) if p]
        self.result["llmur"] = {"rss_mb_idle": rss_mb(serving_process(server.pid).pid)}
        return server

    def phase_llmur(self, mock_url: str) -> None:
        self.llmur = self.start_llmur(mock_url)
        mock_reset(mock_url)
        profile_cell = self.settings["profile"]
        rows = self.drive(target="llmur", base_url=self.llmur.url, key=self.llmur.key, model=BENCH_MODEL,
                          server_pid=self.llmur.pid, profile_cell=profile_cell)
        self.rows += rows
        self.result["spend_check"] = spend_check.check(
            server=self.llmur, mock_url=mock_url, rows=rows, warmup=self.warmups.get("llmur"), cores=self.cores,
            quick=self.settings["quick"], connections=self.settings["connections"],
            drain_timeout=self.args.drain_timeout, log=self.log)
        if self.llmur.worker:
            # The records test writes DailySpend itself; beat's rollups must not race it.
            self.llmur.worker.stop()

    def phase_bare(self, mock_url: str) -> None:
        self.log("starting the bare Django + ninja pass-through (bench/bare_app.py)")
        web = bare_start(cores=self.cores, workdir=self.workdir, mock_url=mock_url)
        self.procs.append(web)
        try:
            self.rows += self.drive(target="bare", base_url=web.extra["url"], key="sk-bare", model="mock-gpt",
                                    server_pid=web.process.pid)
        finally:
            web.stop()

    def phase_litellm(self, mock_url: str) -> None:
        if self.args.compare_litellm is None:
            return
        binary = litellm_find(self.args.compare_litellm)
        if not binary:
            self.skipped["litellm"] = ("not installed (pip install 'litellm[proxy]' puts `litellm` on PATH; "
                                       "or pass its path to --compare-litellm)")
            return
        self.log(f"starting LiteLLM's proxy ({binary}), one worker, no database")
        server = litellm_start(binary=binary, cores=self.cores, workdir=self.workdir, mock_url=mock_url)
        self.procs.append(server.web)
        self.result["litellm"] = {"version": server.version, "binary": binary}
        try:
            self.rows += self.drive(target="litellm", base_url=server.url, key=server.key, model=BENCH_MODEL,
                                    server_pid=server.pid)
        finally:
            server.web.stop()

    def phase_scale(self) -> None:
        rows = self.settings["scale_rows"]
        self.log(f"records: generating {rows:,} SpendLog rows and their DailySpend rollup")
        self.result["scale"] = scale.run(server=self.llmur, rows=rows, log=self.log,
                                         repeat=2 if self.settings["quick"] else 5)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.database_used and not self.args.keep_database:
            try:
                database_drop(self.args.database_url)
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the run's result
                self.log(f"could not drop the bench database: {exc}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A terminated run stops what it started, as Ctrl-C does, rather than leaving servers behind.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = _settings(args)
        bench = Run(args, settings)
        try:
            result = bench.run()
        finally:
            bench.close()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    path = report.write(result, args.output_dir, datetime.fromisoformat(result["started_at"]))
    print(report.render(result))
    print(f"\nwritten: {path}")
    spend = result.get("spend_check")
    if spend and spend["verdict"] != "ok":
        print(f"\n!!! spend check failed: {spend['verdict']}", file=sys.stderr)
        return 1
    return 0
