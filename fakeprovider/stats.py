"""The counters a test reads from GET /stats (and zeroes with POST /stats/reset)."""
from __future__ import annotations

from collections import deque
from typing import Any

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
MAX_CREDENTIALS = 50
RECENT = 20


class Stats:
    """requests, by_path, by_model, open_connections, streams_completed, streams_aborted (the client
    went away mid-stream), streams_cut (cut by a -cut model), streams_by_model (the same three
    outcomes per model name), credentials_seen (distinct credential header values, first 50) and
    recent (the last 20 requests: path, model, body).

    The totals are shared by everything that uses one fake provider; a test that needs counts no
    other test can move (a stream of an earlier test may still be ending after a reset) reads
    streams_by_model under a model name only it sends."""

    def __init__(self) -> None:
        self.open_connections = 0
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.by_model: dict[str, int] = {}
        self.streams_by_model: dict[str, dict[str, int]] = {}
        self.credentials_seen: list[str] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)

    def count(self, request: Any) -> None:
        self.requests += 1
        self.by_path[request.path] = self.by_path.get(request.path, 0) + 1
        body = request.body or {}
        model = body.get("model")
        if model is not None:
            self.by_model[str(model)] = self.by_model.get(str(model), 0) + 1
        if len(self.credentials_seen) < MAX_CREDENTIALS:
            for header in CREDENTIAL_HEADERS:
                value = request.headers.get(header)
                if value and value not in self.credentials_seen:
                    self.credentials_seen.append(value)
        self.recent.append({"path": request.path, "model": model, "body": body})

    def stream_ended(self, model: str, outcome: str) -> None:
        """Count one stream's end: outcome is "completed", "aborted" or "cut"."""
        per_model = self.streams_by_model.setdefault(model, {"completed": 0, "aborted": 0, "cut": 0})
        per_model[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        # The totals are the per-model outcomes summed: one count per stream, kept once.
        totals = {f"streams_{outcome}": sum(ended[outcome] for ended in self.streams_by_model.values())
                  for outcome in ("completed", "aborted", "cut")}
        return {"requests": self.requests, "by_path": self.by_path, "by_model": self.by_model,
                "open_connections": self.open_connections, **totals,
                "streams_by_model": self.streams_by_model,
                "credentials_seen": self.credentials_seen, "recent": list(self.recent)}
