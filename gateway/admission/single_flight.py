"""One database query for a burst of requests that all need the same answer at once."""
from __future__ import annotations

import asyncio
from typing import Any

_in_flight: dict[Any, asyncio.Future] = {}


async def single_flight(key: Any, factory):
    """Run factory() once for everyone awaiting the same key at the same time.

    A burst of requests that all find a counter missing (first use, after a reset) or all need
    the same name waits for one database query instead of sending one each.
    """
    running = _in_flight.get(key)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future = asyncio.get_running_loop().create_future()
    _in_flight[key] = future
    try:
        result = await factory()
        future.set_result(result)
        return result
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()   # retrieved here, so a future nobody else awaited does not warn
        raise
    finally:
        _in_flight.pop(key, None)
