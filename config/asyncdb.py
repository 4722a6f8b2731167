"""Database work from async code: a bounded pool of threads that keep their connections.

Django's own ``sync_to_async`` (thread-sensitive) runs each async request's ORM calls on a
thread created for that request, and each such thread opens its own database connection.
Under load that is one connection per in-flight request — PostgreSQL runs out of
connections long before the gateway runs out of CPU — and a stream that settles a minute
later pays for a new thread and a new connection again.

``db_call`` runs the function on one of ``DB_THREADS`` long-lived threads instead. Each keeps
one connection, reused across calls for ``CONN_MAX_AGE`` seconds (Django's usual
``close_old_connections`` after every call drops one that is too old or broke), so a process
never holds more than ``DB_THREADS`` connections, whatever the number of requests or streams in
flight. A call is one short unit of work (a transaction at most); nothing waits for the
network while it holds a thread.

Each call runs in its thread's own context, not in a copy of the caller's: Django keeps its
cache clients in context-local storage, so a fresh copy per call would build a new Redis
client — and a new Redis connection — for every call. Only the request's log context
(``config.logs``) is carried over into the thread.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import close_old_connections

from config.logs import _context as _log_context

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def db_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=max(1, settings.DB_THREADS), thread_name_prefix="modelgate-db"
                )
    return _executor


def _run(log_context, fn, args, kwargs):
    token = _log_context.set(log_context)
    try:
        return fn(*args, **kwargs)
    finally:
        _log_context.reset(token)
        close_old_connections()


async def db_call(fn, /, *args, **kwargs):
    """``await db_call(fn, *args, **kwargs)``: run a synchronous (ORM) function off the event loop."""
    call = functools.partial(_run, _log_context.get(), fn, args, kwargs)
    return await asyncio.get_running_loop().run_in_executor(db_executor(), call)
