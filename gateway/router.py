"""Choose a deployment of a model group. The router issue replaces the strategy; the contract stays:
choose(group, ctx, exclude) returns a deployment not yet tried, or None when none is left.
"""
from __future__ import annotations

import random
from typing import Iterable

from gateway.context import RequestContext
from gateway.registry import Deployment


def choose(group: tuple[Deployment, ...], ctx: RequestContext, exclude: Iterable[str] = ()) -> Deployment | None:
    """simple-shuffle: a random healthy-looking deployment, weighted by weight (else rpm) when given."""
    candidates = [d for d in group if d.id not in exclude] if exclude else list(group)
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    weights = [float(d.weight if d.weight is not None else (d.rpm or 1)) for d in candidates]
    if not any(weights):
        return random.choice(candidates)
    return random.choices(candidates, weights=weights, k=1)[0]
