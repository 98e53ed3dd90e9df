"""The Redis client registry's clients (llmur/core/redis.py)."""
from __future__ import annotations

import asyncio


def test_a_bounded_pool_builds_its_connections_without_resolving_the_driver_each_time(redis_url, monkeypatch):
    """redis-py looks its own version up (importlib.metadata) for every connection it builds unless it
    is given the driver info: admission's connections (gateway/admission/protocol.py) are built
    from the bounded pool's arguments, so those arguments carry it, resolved once."""
    import redis.utils

    from gateway.admission.protocol import ScriptConnections
    from llmur.core.redis import PURPOSES, async_client

    async def scenario() -> tuple[int, bool]:
        client = async_client(**PURPOSES["limits"])
        lookups = []
        real = redis.utils.get_lib_version
        monkeypatch.setattr(redis.utils, "get_lib_version", lambda: lookups.append(1) or real())
        try:
            connections = ScriptConnections(client)
            built = [connections.new() for _ in range(5)]
            assert await client.ping()
            return len(lookups), all(conn.driver_info is built[0].driver_info for conn in built)
        finally:
            await client.aclose()

    lookups, shared = asyncio.run(scenario())
    assert lookups == 0 and shared
