"""py-spy sampling of the llmur worker under load: collapsed stacks on disk, a top list in the table."""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.procs import BenchError, Cores


def py_spy_path() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise BenchError("--profile needs py-spy: `.venv/bin/pip install -r requirements-test.txt`")
    return found


def record_start(*, pid: int, seconds: int, output: Path, cores: Cores) -> subprocess.Popen:
    """Sample pid for `seconds` at 250 Hz without pausing it; raw (collapsed) stacks go to output."""
    command = cores.wrap([py_spy_path(), "record", "--pid", str(pid), "--duration", str(seconds),
                          "--rate", "250", "--nonblocking", "--format", "raw", "--output", str(output)],
                         role="load")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def record_finish(process: subprocess.Popen, output: Path) -> str | None:
    """Wait for py-spy; returns its complaint when it produced nothing."""
    out, _ = process.communicate(timeout=120)
    if process.returncode != 0 or not output.exists():
        return f"py-spy exited with {process.returncode}: {out.strip()[-500:]}"
    return None


def _frame(frame: str) -> str:
    # py-spy raw frames read "function (path/to/module.py:line)"; the line number splits one
    # function into many entries, so it is dropped and the path shortened to the package part.
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
            break
    else:
        where = where.split("/main/", 1)[-1]
    return f"{name} ({where})" if where else name


def summarize(output: Path, top: int = 25) -> dict:
    """Self and inclusive shares of the samples per function, largest first."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in output.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";") if f]
        # The first frame is the process/thread label; idle samples (--nonblocking keeps them out
        # unless the thread is busy) still carry it, so only real frames are counted.
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl_counts[frame] += n
    pct = lambda c: round(100 * c / total, 1) if total else 0.0  # noqa: E731
    return {
        "samples": total,
        "top_self": [(f, pct(c)) for f, c in self_counts.most_common(top)],
        "top_inclusive": [(f, pct(c)) for f, c in incl_counts.most_common(top * 4)],
    }
