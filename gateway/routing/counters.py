"""What a routing strategy chooses on, and the windows both routing states count in."""
from __future__ import annotations

from dataclasses import dataclass, field

FAIL_WINDOW_S = 60                          # allowed_fails counts failures within this window
LATENCY_SAMPLES = 10                        # recent latencies kept per deployment
LATENCY_TTL_S = 60                          # samples of a deployment nobody picked expire, so it is probed again

# What each strategy reads before choosing; None means the cooldown set alone.
NEEDS = {
    "least-busy": "in_flight",
    "usage-based-routing": "usage",
    "usage-based-routing-v2": "usage",
    "latency-based-routing": "latency",
}


@dataclass(slots=True)
class Counters:
    """Shared numbers a strategy chooses on; a missing deployment counts as zero / no samples."""

    in_flight: dict[str, int] = field(default_factory=dict)
    rpm: dict[str, int] = field(default_factory=dict)
    tpm: dict[str, int] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)   # seconds, whole answer
    ttft: dict[str, list[float]] = field(default_factory=dict)      # seconds to first streamed chunk


def minute_of(now: float) -> int:
    return int(now // 60)
