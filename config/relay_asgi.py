"""The ASGI entry of the relay's POST endpoints: Django's handler without the middleware stack.

Every Django middleware here is synchronous. In an async request Django runs each one's
``process_request`` / ``process_response`` through ``sync_to_async`` — about fifteen thread
hand-offs per request, on a thread Django creates for the request — before and after the
view runs, plus two for the request signals. None of them does anything for a request
authenticated by an API key and answered with JSON or SSE (sessions, CSRF, messages,
locale, allauth, axes, clickjacking); on the relay they cost more than the gateway's own
work. ``RelayASGIHandler`` serves only the paths in ``RELAY_PATHS`` (see ``config.asgi``)
with no middleware, no request signals and no per-request thread: the relay's database
work runs on ``config.asyncdb``'s threads, and the relay sets the security headers an API
response needs itself (``X-Content-Type-Options: nosniff``).

Everything else — URL resolution, ``ASGIRequest``, body limits, disconnect handling,
exception-to-500 conversion, streaming — is Django's own code path.
"""

from __future__ import annotations

import asyncio
import contextlib

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.urls import set_script_prefix

SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"))


class RelayASGIHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def __call__(self, scope, receive, send):
        await self.handle(scope, receive, send)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            return

        async def process_request():
            response = await self.run_get_response(request)
            for header, value in SECURITY_HEADERS:
                response.headers.setdefault(header, value)
            with contextlib.suppress(asyncio.CancelledError):  # the client went away while sending
                await self.send_response(response, send)
            return response

        # As Django does: a disconnect while the view runs cancels it (a stream's pump task,
        # which settles the request, is not part of it and keeps going).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request()),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            pass
        else:
            # HttpResponse.close(): resource closers + request_finished, whose receivers
            # (close_old_connections, close_caches) find nothing open on this thread.
            response.close()
        body_file.close()


def relay_paths() -> frozenset[str]:
    """The paths of the relay's endpoints (``inference.urls.relay_urlpatterns``)."""
    from inference.urls import relay_urlpatterns

    return frozenset("/" + str(pattern.pattern) for pattern in relay_urlpatterns)


class Router:
    """Send the relay's paths to ``relay``, everything else to ``app`` (the full Django stack)."""

    def __init__(self, app, relay, paths: frozenset[str]) -> None:
        self.app, self.relay, self.paths = app, relay, paths

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path in self.paths:
                return await self.relay(scope, receive, send)
        return await self.app(scope, receive, send)
