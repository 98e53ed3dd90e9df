"""EVALSHA in RESP on connections of admission's own: the packer and a small bounded pool."""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import redis

# Pools of the shared client this pool may copy connections from; Sentinel goes through redis-py.
PLAIN_POOLS = ("ConnectionPool", "BlockingConnectionPool")


def pack_evalsha(sha: str, args: list[Any]) -> bytes:
    """EVALSHA sha 0 *args in RESP, for the ints, strings and bytes the scripts take.

    redis-py's pack_command runs every argument through its generic Encoder; two calls per request
    made that a few per cent of a request's CPU.
    """
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(args) + 3, len(sha), sha.encode())]
    for arg in args:
        if isinstance(arg, bytes):
            value = arg
        elif isinstance(arg, str):
            value = arg.encode()
        elif isinstance(arg, int):
            value = b"%d" % arg
        else:   # as redis-py would (a float by its repr)
            value = (repr(arg) if isinstance(arg, float) else str(arg)).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class ScriptConnections:
    """EVALSHA of the admit and settle scripts on connections of their own, without redis-py's command layer.

    Each request runs both scripts, and redis-py 8's generic path (Script.__call__, execute_command,
    its retry wrapper, argument filtering, the blocking pool's condition and observability hooks)
    cost more CPU than the scripts themselves. Here a call is: take an idle connection, send the
    packed command, read the reply, give the connection back. As with the shared pool, a burst
    queues for one of MAX_CONNECTIONS connections (up to WAIT_SECONDS) instead of opening hundreds.
    A connection that failed or was cancelled mid-reply is disconnected by redis-py and reconnects
    on its next use; a connection found dead on reuse is retried once on a fresh one.
    """

    MAX_CONNECTIONS = 64
    WAIT_SECONDS = 30.0

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        self.client = client
        self.new = lambda: pool.connection_class(**pool.connection_kwargs)
        self.idle: list[Any] = []
        self.total = 0
        self.waiters: deque[asyncio.Future] = deque()

    async def _take(self) -> Any:
        if self.idle:
            return self.idle.pop()
        if self.total < self.MAX_CONNECTIONS:
            self.total += 1
            return self.new()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.WAIT_SECONDS):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give(waiter.result())   # handed over just as this wait ended: pass it on
            else:
                waiter.cancel()
            raise

    def _give(self, conn: Any) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    async def evalsha(self, sha: str, script: str, args: list[Any]) -> Any:
        conn = await self._take()
        try:
            for attempt in (1, 2, 3):
                reused = conn.is_connected
                try:
                    await conn.send_packed_command(pack_evalsha(sha, args), check_health=False)
                    return await conn.read_response()
                except redis.exceptions.NoScriptError:
                    # Redis restarted or SCRIPT FLUSH: load it once, then run it.
                    await conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", script), check_health=False)
                    await conn.read_response()
                except (redis.ConnectionError, OSError):
                    await conn.disconnect(nowait=True)
                    if not reused or attempt == 3:
                        raise
            raise redis.ConnectionError("EVALSHA was not answered")
        finally:
            self._give(conn)

    async def evalsha_many(self, sha: str, script: str, batch: list[list[Any]]) -> list[Any]:
        """EVALSHA once per args in batch, pipelined on one connection; each reply or its ResponseError."""
        conn = await self._take()
        try:
            for attempt in (1, 2, 3):
                reused, answered = conn.is_connected, False
                try:
                    results = await self._pipelined(conn, sha, batch)
                    answered = True
                    missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
                    if missing:
                        # Redis restarted or SCRIPT FLUSH: those were not run; load the script, run them.
                        await conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", script), check_health=False)
                        await conn.read_response()
                        for i, result in zip(missing, await self._pipelined(conn, sha, [batch[i] for i in missing])):
                            results[i] = result
                    return results
                except (redis.ConnectionError, OSError):
                    await conn.disconnect(nowait=True)
                    # Only a dead connection found on reuse, before any reply, is worth a second try.
                    if not reused or answered or attempt == 3:
                        raise
            raise redis.ConnectionError("EVALSHA was not answered")
        finally:
            self._give(conn)

    @staticmethod
    async def _pipelined(conn: Any, sha: str, batch: list[list[Any]]) -> list[Any]:
        await conn.send_packed_command(b"".join(pack_evalsha(sha, args) for args in batch), check_health=False)
        results: list[Any] = []
        for _ in batch:
            try:
                results.append(await conn.read_response())
            except redis.ResponseError as exc:
                results.append(exc)
        return results

    async def aclose(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            try:
                await conn.disconnect(nowait=True)
            except Exception:  # noqa: BLE001 - closing at shutdown
                pass
