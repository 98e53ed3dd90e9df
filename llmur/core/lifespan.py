"""ASGI lifespan: open per-process resources at start, close them at shutdown."""
from __future__ import annotations

import logging

logger = logging.getLogger("llmur.lifespan")

_startup_hooks: list = []
_shutdown_hooks: list = []


def on_startup(func):
    _startup_hooks.append(func)
    return func


def on_shutdown(func):
    _shutdown_hooks.append(func)
    return func


async def lifespan(scope, receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                for hook in _startup_hooks:
                    await hook()
            except Exception as exc:  # noqa: BLE001 - reported to the server, which refuses to start
                logger.exception("start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for hook in reversed(_shutdown_hooks):
                try:
                    await hook()
                except Exception:  # noqa: BLE001 - shutdown goes on
                    logger.exception("shutdown hook failed")
            await send({"type": "lifespan.shutdown.complete"})
            return
