"""Per-worker isolation when the suite runs on several pytest-xdist workers (scripts/test: -n 2 -p tests.workers).

Loaded as a plugin (-p), so it runs in each worker before pytest-django reads the settings. pytest-django
already gives each worker its own test database (test_llmur_gw0, test_llmur_gw1, ...); this gives each
worker its own Redis database (REDIS_URL's number plus the worker's: /9 becomes /9 and /10) and its own
LLMUR_VAR_DIR (a directory per worker inside the given one). Servers the tests start take free ports,
and session or module fixtures that start one start it once per worker.
"""
from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit, urlunsplit

REDIS_DATABASES = 16   # redis-server's default count: worker databases must stay below it


def worker_redis_url(url: str, worker: int) -> str:
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    if base + worker >= REDIS_DATABASES:
        raise RuntimeError(f"REDIS_URL {url}: worker {worker} would need Redis database {base + worker}, "
                           f"past the server's {REDIS_DATABASES}; use a lower database number")
    return urlunsplit(parts._replace(path=f"/{base + worker}"))


def _isolate() -> None:
    name = os.environ.get("PYTEST_XDIST_WORKER")
    if not name:
        return
    worker = int(name.removeprefix("gw"))
    if os.environ.get("REDIS_URL"):
        os.environ["REDIS_URL"] = worker_redis_url(os.environ["REDIS_URL"], worker)
    shared = os.environ.get("LLMUR_VAR_DIR")
    os.environ["LLMUR_VAR_DIR"] = (os.path.join(shared, name) if shared
                                   else tempfile.mkdtemp(prefix=f"llmur-test-{name}-"))


_isolate()
