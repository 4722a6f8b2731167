"""Serving a request from per-process copies only, without any I/O.

The relay's first step (authenticate the key, resolve the model, its channels and price
plan) reads data that every process keeps a copy of (``accounts.services.LOCAL_KEYS``,
``models_catalog.selectors``' snapshot). When those copies are fresh the step needs no
I/O at all and runs on the event loop; when one of them would have to be fetched, the
function raises ``NeedsIO`` at the fetch site and the caller runs the same step again on a
database thread (``config.asyncdb.db_call``)::

    try:
        with local_only():
            result = step()
    except NeedsIO:
        result = await db_call(step)

``io_point()`` marks each such fetch site; outside ``local_only()`` it does nothing.
"""

from __future__ import annotations

import contextlib
import contextvars

_local_only: contextvars.ContextVar[bool] = contextvars.ContextVar("modelgate_local_only", default=False)


class NeedsIO(Exception):
    """Raised inside ``local_only()`` where a function would read the cache or the database."""


@contextlib.contextmanager
def local_only():
    token = _local_only.set(True)
    try:
        yield
    finally:
        _local_only.reset(token)


def io_point() -> None:
    if _local_only.get():
        raise NeedsIO
