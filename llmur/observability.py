"""Process set-up for llmur's operational signals, run from settings.py before any metric exists.

Prometheus counters must add up across every worker process of a server (gunicorn forks N
uvicorn workers, Celery forks its pool). prometheus_client does that in its multiprocess mode:
each process writes its values to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and a scrape
reads them all. The directory has to be chosen before prometheus_client is first imported, and
has to be fresh for each server (stale files from an earlier run would be added in), so every
llmur process that starts from scratch takes var/prometheus/<its pid>; the processes it forks
inherit it. https://prometheus.github.io/client_python/multiprocess/
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

# Set alongside PROMETHEUS_MULTIPROC_DIR when llmur chose it, so a process started by an llmur
# process (tests, `manage.py` from a shell in a pod) takes its own directory instead of sharing
# its parent's, while a directory the operator set explicitly is respected.
OWNER_VARIABLE = "LLMUR_PROMETHEUS_OWNER"

multiprocess = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prometheus_prepare(var_dir: Path) -> None:
    """Choose this process's Prometheus multiprocess directory and remove those of dead processes."""
    global multiprocess
    if "prometheus_client" in sys.modules:
        # Imported already (an embedding program or a test runner): it keeps its in-process registry.
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR")) and _directory_usable()
        return
    explicit = os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.environ.get(OWNER_VARIABLE)
    if explicit:
        multiprocess = _directory_usable()
        return
    root = Path(var_dir) / "prometheus"
    directory = root / str(os.getpid())
    try:
        if root.is_dir():
            for old in root.iterdir():
                if old.name.isdigit() and int(old.name) != os.getpid() and not _alive(int(old.name)):
                    shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    except OSError:
        # A read-only var/ leaves metrics per process rather than stopping the server.
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        multiprocess = False
        return
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    os.environ[OWNER_VARIABLE] = str(os.getpid())
    multiprocess = True


def _directory_usable() -> bool:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return bool(directory) and os.path.isdir(directory) and os.access(directory, os.W_OK)
