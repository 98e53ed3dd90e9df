"""The admit and settle Lua scripts (gateway/lua/), loaded per Redis client and run by EVALSHA."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from billing.connections import async_redis
from gateway.admission.protocol import PLAIN_POOLS, ScriptConnections

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"


class ScriptRunner:
    """The scripts and the connections they run on, for the current client and event loop."""

    def __init__(self) -> None:
        self.scripts: dict[int, tuple[Any, Any]] = {}
        self.connections: ScriptConnections | None = None

    def script(self, name: str):
        client = async_redis()
        pair = self.scripts.get(id(client))
        if pair is None:
            pair = (client.register_script((LUA_DIR / "admit.lua").read_text()),
                    client.register_script((LUA_DIR / "settle.lua").read_text()))
            self.scripts = {id(client): pair}
        return pair[0] if name == "admit" else pair[1]

    async def run(self, name: str, args: list[Any]) -> Any:
        """One EVALSHA of the admit or settle script, on the script connections of the running loop."""
        script = self.script(name)
        client = async_redis()
        if type(client.connection_pool).__name__ not in PLAIN_POOLS:
            # Sentinel: redis-py's path finds the master and retries through a failover.
            return await script(keys=[], args=args)
        return await self.connections_for(client).evalsha(script.sha, script.script, args)

    def connections_for(self, client: Any) -> ScriptConnections:
        connections = self.connections
        if connections is None or connections.client is not client:
            # A new loop or client (tests, reloads): the old loop's connections are unusable.
            connections = self.connections = ScriptConnections(client)
        return connections


runner = ScriptRunner()
