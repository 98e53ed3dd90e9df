"""Time to first byte of streamed chat completions: a small aiohttp client wrk cannot replace.

wrk times whole responses; for a stream what a user feels is the wait for the first event. This
client keeps N streams open back to back for a fixed time and records, per request, the time from
sending to the first body bytes (the first SSE event) and to the end of the stream.

Run: python -m bench.ttfb --url URL --key KEY --model M --connections N --duration S
Prints one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import aiohttp


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no samples."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _one_stream(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict,
                      ttfbs: list[float], totals: list[float], failures: dict) -> None:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        if response.status != 200:
            await response.read()
            failures[str(response.status)] = failures.get(str(response.status), 0) + 1
            return
        first = await response.content.readany()
        if not first:
            failures["empty"] = failures.get("empty", 0) + 1
            return
        first_at = time.perf_counter()
        async for _ in response.content.iter_any():
            pass
    ttfbs.append(first_at - started)
    totals.append(time.perf_counter() - started)


async def _worker(session, url, body, headers, deadline, ttfbs, totals, failures, budget) -> None:
    while time.perf_counter() < deadline:
        if budget is not None:
            if budget[0] <= 0:
                return
            budget[0] -= 1
        try:
            await _one_stream(session, url, body, headers, ttfbs, totals, failures)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            name = exc.__class__.__name__
            failures[name] = failures.get(name, 0) + 1


async def measure(*, url: str, key: str, model: str, connections: int, duration: float,
                  requests: int | None = None, stream: bool = True) -> dict:
    """Drive `connections` concurrent requests for `duration` seconds (or exactly `requests` of them).

    Every request started is finished before the client stops, so the counts are exact: the spend
    check relies on that.
    """
    payload = {"model": model, "max_tokens": 16,
               "messages": [{"role": "user", "content": "Say hello to the benchmark."}]}
    if stream:
        payload |= {"stream": True, "stream_options": {"include_usage": True}}
    body = json.dumps(payload).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ttfbs: list[float] = []
    totals: list[float] = []
    failures: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        deadline = started + duration
        budget = [requests] if requests is not None else None
        await asyncio.gather(*(_worker(session, url, body, headers, deadline, ttfbs, totals, failures, budget)
                               for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ms = lambda value: None if value is None else round(value * 1000, 3)  # noqa: E731
    return {
        "streams": len(ttfbs),
        "failures": failures,
        "elapsed_s": round(elapsed, 3),
        "streams_per_s": round(len(ttfbs) / elapsed, 1) if elapsed else 0.0,
        "ttfb_p50_ms": ms(percentile(ttfbs, 50)),
        "ttfb_p99_ms": ms(percentile(ttfbs, 99)),
        "ttfb_mean_ms": ms(statistics.fmean(ttfbs)) if ttfbs else None,
        "total_p50_ms": ms(percentile(totals, 50)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ttfb", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="full URL of /v1/chat/completions")
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("--model", default="mock-gpt")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=None,
                        help="send exactly this many requests (then --duration is only a time limit)")
    parser.add_argument("--no-stream", action="store_true", help="plain JSON requests instead of streams")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(measure(url=args.url, key=args.key, model=args.model, connections=args.connections,
                                duration=args.duration, requests=args.requests, stream=not args.no_stream))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
