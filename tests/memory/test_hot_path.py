"""Memory off costs the request path nothing: no database query and no Redis round trip more than a
request that never heard of memory, counted (a session id and "memory": false included)."""
from __future__ import annotations

import pytest

from gateway.memory.inject import HEADER
from tests.memory.conftest import chat, new_session

pytestmark = pytest.mark.db_matrix


# What a new connection says before its first command (each request runs on its own event loop here).
HANDSHAKE = (b"HELLO", b"PING", b"CLIENT", b"SELECT", b"AUTH")


def _name(command) -> bytes:
    packed = bytes(command) if isinstance(command, (bytes, bytearray)) else b"".join(command)
    lines = packed.split(b"\r\n")
    return lines[2].upper() if len(lines) > 2 else b""


@pytest.fixture
def redis_round_trips(monkeypatch) -> list[bytes]:
    """Every command or pipeline sent to Redis by any client in this process (connection set-up aside)."""
    from redis.asyncio.connection import AbstractConnection

    from gateway import auth
    from gateway.routing import redis_state

    sent: list[bytes] = []
    original = AbstractConnection.send_packed_command

    async def counting(self, command, check_health=True):
        name = _name(command)
        if name not in HANDSHAKE:
            sent.append(name)
        return await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    # Reads of shared state that run at most every so often (the key and deployment versions, routing's
    # cooldowns and counters) run once, on the warming request, so that the counts don't depend on time.
    for module, name in ((auth, "VERSION_CHECK_INTERVAL"), (redis_state, "COOLDOWN_REFRESH_S"),
                         (redis_state, "COUNTERS_REFRESH_S")):
        monkeypatch.setattr(module, name, 1e9)
    return sent


def _cost(sent: list[bytes], django_assert_num_queries, queries: int, *args, **kwargs):
    before = len(sent)
    with django_assert_num_queries(queries):
        response = chat(*args, **kwargs)
    assert response.status_code == 200, response.content
    return len(sent) - before, response


def test_memory_off_adds_no_query_and_no_redis_call(memory_world, redis_round_trips, django_assert_num_queries):
    off = memory_world["plain_key"]
    chat(off, "hi", session=None, user="alice")   # warm: the key, the end user, prices and deployments loaded
    baseline, _ = _cost(redis_round_trips, django_assert_num_queries, 0, off, "hi", session=None, user="alice")
    with_session, response = _cost(redis_round_trips, django_assert_num_queries, 0, off, "hi",
                                   session=new_session(), user="alice", memory=False)
    assert with_session == baseline
    assert HEADER not in response


def test_the_counts_see_what_memory_costs_when_on(memory_world, redis_round_trips, django_assert_num_queries):
    """The same measure on a key with memory on: a session's first request reads the summaries once
    (one query) and checks the session in Redis (one round trip), later requests only the latter."""
    from billing.connections import redis_configured

    on = memory_world["key"]
    chat(on, "hi", session=None, user="alice")
    baseline, _ = _cost(redis_round_trips, django_assert_num_queries, 0, on, "hi", session=None, user="alice")
    session = new_session()
    first, _ = _cost(redis_round_trips, django_assert_num_queries, 1, on, "hi", session=session, user="alice")
    later, _ = _cost(redis_round_trips, django_assert_num_queries, 0, on, "hi", session=session, user="alice")
    extra = 1 if redis_configured() else 0
    assert (first, later) == (baseline + extra, baseline + extra)
