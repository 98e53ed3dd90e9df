"""The admin sign-in throttle: attempts counted per account and per client address, before the password is checked.

Each attempt first increments its counters (one atomic INCR each, in the shared cache: Redis in
production), and is refused at once when one is past its limit: no password hash, no database
query. An attempt that signs in gives its counts back, so the counters hold failures, plus the
attempts still in flight; parallel guesses can therefore never get more checks than the limit
(checking first and counting after let 20 of 30 parallel guesses through).

The account limit stops guessing one account's password from many addresses; the address limit,
higher, stops one address trying many accounts without letting one person behind a shared
address (an office NAT, a proxy not listed in trusted_proxies) lock out everyone else there.

While the cache is unreachable, cache_failure_policy decides: fail_open counts in this process
(each worker on its own, as the gateway's limits do), fail_closed refuses sign-in with a 503.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger("llmur.admin")

ACCOUNT_MAX_FAILURES = 5
ADDRESS_MAX_FAILURES = 30
WINDOW_SECONDS = 300


class SignInUnavailable(Exception):
    """The shared counters cannot be reached and cache_failure_policy is fail_closed."""


@dataclass
class Attempt:
    """One sign-in attempt's counters: refused when any is past its limit."""

    keys: list[str]
    refused: bool
    local: bool = field(default=False)


class _LocalCounters:
    """Counters of this process, for while the cache is unreachable (fail_open)."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, float]] = {}

    def incr(self, key: str, delta: int = 1) -> int:
        with self._lock:
            now = self.clock()
            count, expires = self._counts.get(key, (0, now + WINDOW_SECONDS))
            if expires <= now:
                count, expires = 0, now + WINDOW_SECONDS
            count = max(0, count + delta)
            self._counts[key] = (count, expires)
            if len(self._counts) > 10_000:   # forget expired entries now and then, so memory stays bounded
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            return count


local_counters = _LocalCounters()


def address_key(address: str) -> str:
    """The cache key counting one client address's attempts."""
    return f"llmur:admin-login:addr:{address}"


def account_key(username: str) -> str:
    """The cache key counting one account's attempts (user names compared case-insensitively)."""
    return f"llmur:admin-login:user:{username.strip().lower()[:150]}"


def _limits(username: str, address: str) -> list[tuple[str, int]]:
    limits = [(address_key(address), ADDRESS_MAX_FAILURES)]
    if username.strip():
        limits.append((account_key(username), ACCOUNT_MAX_FAILURES))
    return limits


def _shared_incr(key: str) -> int:
    cache.add(key, 0, WINDOW_SECONDS)   # starts the window; a no-op while it runs
    try:
        return cache.incr(key)
    except ValueError:                  # expired between add and incr
        cache.set(key, 1, WINDOW_SECONDS)
        return 1


def attempt_begin(*, username: str, address: str) -> Attempt:
    """Count one attempt for the account and the address; raises SignInUnavailable (fail_closed, cache down)."""
    limits = _limits(username, address)
    try:
        counts = [_shared_incr(key) for key, _ in limits]
        local = False
    except Exception as exc:  # noqa: BLE001 - any cache failure: an unreachable Redis
        if settings.LLMUR.config.cache_failure_policy == "fail_closed":
            logger.warning("admin sign-in refused: cache unreachable (%s), cache_failure_policy fail_closed",
                           exc.__class__.__name__)
            raise SignInUnavailable from None
        logger.warning("admin sign-in throttle counted in this process: cache unreachable (%s)",
                       exc.__class__.__name__)
        counts = [local_counters.incr(key) for key, _ in limits]
        local = True
    refused = any(count > limit for count, (_, limit) in zip(counts, limits))
    return Attempt(keys=[key for key, _ in limits], refused=refused, local=local)


def attempt_succeeded(attempt: Attempt) -> None:
    """The attempt signed in: it was no failure, so its counts are given back."""
    for key in attempt.keys:
        if attempt.local:
            local_counters.incr(key, -1)
            continue
        try:
            cache.decr(key)
        except Exception:  # noqa: BLE001 - expired meanwhile, or the cache went away: nothing to give back
            pass
