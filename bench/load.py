"""Load generation: wrk for throughput and latency, bench.ttfb for time to first byte of streams."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.procs import ROOT, BenchError, Cores

LUA = Path(__file__).resolve().parent / "lua" / "chat.lua"


def wrk_path() -> str:
    """wrk's path; on a fresh Debian/Ubuntu machine where we are root, it is installed with apt-get first."""
    path = shutil.which("wrk")
    if not path and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: wrk is missing; installing it with apt-get (Debian package wrk)", file=sys.stderr, flush=True)
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, stdout=subprocess.DEVNULL)
        path = shutil.which("wrk")
    if not path:
        raise BenchError("wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu) or "
                         "`brew install wrk` (macOS), then run the benchmark again")
    return path


def run_wrk(*, cores: Cores, url: str, key: str, model: str, stream: bool, connections: int,
            duration: float) -> dict:
    """One wrk run against url; returns its summary with requests/s, latency percentiles and failures."""
    env = os.environ | {"WRK_MODEL": model, "WRK_KEY": key, "WRK_STREAM": "1" if stream else "0"}
    seconds = max(1, round(duration))
    command = cores.wrap([wrk_path(), "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
                          "-s", str(LUA), url], role="load")
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if completed.returncode != 0 or line is None:
        raise BenchError(f"wrk failed (exit {completed.returncode}) against {url}:\n{completed.stdout}\n"
                         f"{completed.stderr}")
    raw = json.loads(line[len("WRKJSON "):])
    elapsed = raw["duration_us"] / 1e6
    failed = raw["status_errors"] + raw["timeouts"]
    return {
        "requests": raw["requests"],
        "ok": raw["requests"] - raw["status_errors"],
        "non_2xx": raw["status_errors"],
        "socket_errors": raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["timeouts"],
        "failed": failed,
        "elapsed_s": round(elapsed, 3),
        "rps": round((raw["requests"] - raw["status_errors"]) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
    }


def run_ttfb(*, cores: Cores, url: str, key: str, model: str, connections: int, duration: float,
             requests: int | None = None, stream: bool = True) -> dict:
    """Time to first byte of streams, measured by bench.ttfb in its own process on the load cores.

    With `requests`, exactly that many are sent (duration is then only a time limit).
    """
    command = cores.wrap([sys.executable, "-m", "bench.ttfb", "--url", url, "--key", key, "--model", model,
                          "--connections", str(connections), "--duration", str(duration)]
                         + (["--requests", str(requests)] if requests is not None else [])
                         + ([] if stream else ["--no-stream"]), role="load")
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=duration + 90)
    if completed.returncode != 0:
        raise BenchError(f"the TTFB client failed (exit {completed.returncode}) against {url}:\n"
                         f"{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])
