"""ASGI lifespan for graceful shutdown.

On SIGTERM uvicorn stops accepting connections, waits for in-flight requests (at most
``--timeout-graceful-shutdown`` seconds), then sends ``lifespan.shutdown``. Streams are
settled by pump tasks that may outlive their HTTP response (``inference.relay._background``):
the shutdown handler waits for them — at most ``SHUTDOWN_DRAIN_SECONDS`` — so every hold the
process placed is settled before it exits, not left to the hold-expiry task.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("modelgate.lifespan")


class LifespanApp:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await shutdown_drain()
                except Exception as exc:  # never hang or crash the exit
                    logger.exception("shutdown drain failed")
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


async def shutdown_drain() -> int:
    """Await the relay's background stream pumps; returns how many were still running."""
    from django.conf import settings

    from inference.relay import _background, background_drain

    pending = len(_background)
    if pending:
        logger.info("shutdown: waiting for %d stream(s) to settle", pending)
        await background_drain(timeout=settings.SHUTDOWN_DRAIN_SECONDS)
        if _background:
            logger.warning("shutdown: %d stream(s) did not settle in time", len(_background))
    return pending
