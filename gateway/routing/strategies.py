"""The routing strategies of `router_settings.routing_strategy`, as pure choices over shared counters.

Each takes the healthy candidates of one model group and the Counters read for them (see state.py)
and returns one deployment. Semantics follow LiteLLM's router:

  simple-shuffle          random, weighted by `weight`; else by `rpm`; else by `tpm`; else uniform.
                          As in LiteLLM, once any deployment of the group sets the weight, one without
                          it gets weight 0.
  least-busy              fewest requests in flight across all workers.
  usage-based-routing     most headroom this minute against each deployment's rpm/tpm: deployments
                          at their limit are skipped, the lowest utilisation wins; without limits the
                          lowest token use wins.
  latency-based-routing   lowest mean of recent latencies (time to first token for streams); a
                          deployment with no recent samples is tried first so every one gets measured.
  cost-based-routing      cheapest by model_info input/output_cost_per_token; unpriced: shuffle.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Sequence

from gateway.routing.counters import Counters

STRATEGIES = ("simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
              "latency-based-routing", "cost-based-routing")


def deployment_id(deployment: Any) -> str:
    return deployment.id


def deployment_param(deployment: Any, name: str) -> Any:
    """A routing parameter (rpm, tpm, weight, ...) of a gateway.registry.Deployment."""
    return getattr(deployment, name, None)


def _number(deployment: Any, name: str) -> float | None:
    value = deployment_param(deployment, name)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def simple_shuffle(candidates: Sequence[Any], counters: Counters, *, stream: bool = False,
                   rng: random.Random | Any = random) -> Any:
    for name in ("weight", "rpm", "tpm"):
        values = [_number(d, name) for d in candidates]
        if any(v is not None for v in values):
            weights = [max(v or 0.0, 0.0) for v in values]
            if sum(weights) > 0:
                return rng.choices(candidates, weights=weights, k=1)[0]
            break
    return rng.choice(candidates)


def least_busy(candidates: Sequence[Any], counters: Counters, *, stream: bool = False,
               rng: random.Random | Any = random) -> Any:
    return _lowest(candidates, lambda d: counters.in_flight.get(deployment_id(d), 0), rng)


def usage_based(candidates: Sequence[Any], counters: Counters, *, stream: bool = False,
                rng: random.Random | Any = random) -> Any | None:
    """None when every candidate is at its rpm or tpm limit for this minute."""
    scored = []
    for d in candidates:
        rpm_used = counters.rpm.get(deployment_id(d), 0)
        tpm_used = counters.tpm.get(deployment_id(d), 0)
        rpm, tpm = _number(d, "rpm"), _number(d, "tpm")
        if (rpm is not None and rpm_used + 1 > rpm) or (tpm is not None and tpm_used >= tpm):
            continue
        shares = [used / limit for used, limit in ((rpm_used, rpm), (tpm_used, tpm)) if limit]
        scored.append((d, (max(shares) if shares else 0.0, tpm_used, rpm_used)))
    if not scored:
        return None
    best = min(score for _, score in scored)
    return rng.choice([d for d, score in scored if score == best])


def latency_based(candidates: Sequence[Any], counters: Counters, *, stream: bool = False,
                  rng: random.Random | Any = random) -> Any:
    def mean_latency(d: Any) -> float:
        samples = (counters.ttft.get(deployment_id(d)) if stream else None) or counters.latency.get(deployment_id(d))
        return sum(samples) / len(samples) if samples else -1.0   # unmeasured first

    return _lowest(candidates, mean_latency, rng)


def _lowest(candidates: Sequence[Any], key: Callable[[Any], float], rng: random.Random | Any) -> Any:
    scores = [key(d) for d in candidates]
    best = min(scores)
    return rng.choice([d for d, score in zip(candidates, scores) if score == best])


def cost_based(candidates: Sequence[Any], counters: Counters, *, stream: bool = False,
               rng: random.Random | Any = random) -> Any:
    """Cheapest per token by model_info's input/output_cost_per_token; unpriced ones shuffle."""
    def price(d: Any) -> float:
        info = getattr(d, "model_info", None) or {}
        try:
            return float(info.get("input_cost_per_token") or 0) + float(info.get("output_cost_per_token") or 0)
        except (TypeError, ValueError):
            return 0.0

    priced = [d for d in candidates if price(d) > 0]
    if not priced:
        return simple_shuffle(candidates, counters, stream=stream, rng=rng)
    return _lowest(priced, price, rng)


CHOOSERS: dict[str, Callable[..., Any]] = {
    "simple-shuffle": simple_shuffle,
    "least-busy": least_busy,
    "usage-based-routing": usage_based,
    "usage-based-routing-v2": usage_based,
    "latency-based-routing": latency_based,
    "cost-based-routing": cost_based,
}
