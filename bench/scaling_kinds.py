"""The kinds of request `python -m bench.scaling` counts, and the client that sends them."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from bench.servers import BENCH_MODEL


@dataclass(frozen=True)
class Kind:
    """One kind of request: which key, which body, what answer it must get, whether it is billed."""

    name: str
    key: str                 # "bench" (generous limits), "budget", "rpm", or "bad" (a new random key each time)
    stream: bool = False
    unique: bool = False     # a different prompt each time (response-cache misses)
    status: int = 200
    billed: bool = True      # leaves one SpendLog row
    cache: bool = False      # needs the session with the response cache on


KINDS = [
    Kind("json", "bench"),
    Kind("stream", "bench", stream=True),
    Kind("over_budget", "budget", status=429, billed=False),
    Kind("over_rpm", "rpm", status=429, billed=False),
    Kind("bad_key", "bad", status=401, billed=False),
    Kind("cache_miss", "bench", unique=True, cache=True),
    Kind("cache_hit", "bench", cache=True),
]


def body(*, stream: bool, prompt: str) -> bytes:
    payload = {"model": BENCH_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": prompt}]}
    if stream:
        payload |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(payload).encode()


async def drive(url: str, n: int, connections: int, request: Callable[[int], tuple[str, bytes]]) -> dict:
    """Send exactly n requests over `connections` connections, each read to its end."""
    statuses: Counter[int] = Counter()
    hits = 0
    order = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def worker() -> None:
            nonlocal hits
            for i in order:
                key, body = request(i)
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1
                    hits += response.headers.get("x-llmur-cache-hit") == "true"
        await asyncio.gather(*(worker() for _ in range(connections)))
    return {"statuses": {str(k): v for k, v in sorted(statuses.items())}, "cache_hits": hits}
