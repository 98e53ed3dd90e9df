"""Limits of the device flow: wrong user codes per person and per address, codes requested per address.

Each attempt is counted before it is checked (one atomic INCR per counter in the shared cache:
Redis in production), so parallel guesses never get more checks than the limit; a right code
gives its count back, so the counters hold mistakes. When the cache cannot be reached the attempt
is refused (ThrottleUnavailable): without counters a code could be guessed at full speed.
"""
from __future__ import annotations

import hashlib

from django.core.cache import cache

USER_CODE_WINDOW_SECONDS = 900
# One address may hold several people (an office behind NAT): it gets this many times a person's allowance.
ADDRESS_FACTOR = 3
CODE_REQUEST_WINDOW_SECONDS = 3600


class ThrottleUnavailable(Exception):
    """The shared counters cannot be reached: refuse rather than count nothing."""


def _key(kind: str, who: str) -> str:
    return f"llmur:device:{kind}:{hashlib.sha256(who.encode()).hexdigest()[:32]}"


def _incr(key: str, window: int, delta: int = 1) -> int:
    try:
        cache.add(key, 0, window)
        return cache.incr(key, delta)
    except ValueError:          # expired between add and incr
        cache.set(key, max(delta, 0), window)
        return max(delta, 0)
    except Exception as exc:  # noqa: BLE001 - any cache failure refuses the attempt
        raise ThrottleUnavailable(str(exc)) from None


def user_code_attempt_begin(*, user_id: int, address: str, limit: int) -> list[str] | None:
    """Counts one user-code entry; the counters to give back on success, or None when it is refused."""
    keys = [_key("user", str(user_id)), _key("address", address)]
    person = _incr(keys[0], USER_CODE_WINDOW_SECONDS)
    place = _incr(keys[1], USER_CODE_WINDOW_SECONDS)
    if person > limit or place > limit * ADDRESS_FACTOR:
        return None
    return keys


def user_code_attempt_succeeded(keys: list[str]) -> None:
    for key in keys:
        try:
            cache.decr(key)
        except Exception:  # noqa: BLE001, S110 - expired or unreachable: nothing to give back
            pass


def code_request_allowed(*, address: str, limit: int) -> bool:
    """Counts one POST /sso/device/code from the address; False past the hourly limit."""
    return _incr(_key("codes", address), CODE_REQUEST_WINDOW_SECONDS) <= limit
