"""A circuit breaker for a shared dependency (Redis): after a failure it is bypassed for a while,
then probed again by the next caller.

Admission (gateway/admission/breaker.py) and routing state (gateway/routing/redis_state.py) each
hold one; what they do while it is open (per-process counters, local routing state) is theirs.
"""
from __future__ import annotations

import time


class CircuitBreaker:
    """Open (bypass the dependency) from a failure until retry_seconds later; closed by a success."""

    def __init__(self, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self.down_since: float | None = None   # wall-clock time the current outage began
        self.retry_at = 0.0                    # monotonic time the next probe may go out

    def usable(self) -> bool:
        """Whether to try the dependency now: it is up, or its retry time has come."""
        return self.down_since is None or time.monotonic() >= self.retry_at

    def failed(self) -> bool:
        """Record a failure (bypass it for retry_seconds); True when it begins an outage."""
        began = self.down_since is None
        if began:
            self.down_since = time.time()
        self.retry_at = time.monotonic() + self.retry_seconds
        return began

    def succeeded(self) -> bool:
        """Record a success; True when it ends an outage."""
        if self.down_since is None:
            return False
        self.down_since = None
        return True
