"""Job errors (one ``ApplicationError`` hierarchy, stable codes)."""

from __future__ import annotations

from config.errors import ApplicationError


class JobNotFound(ApplicationError):
    code = "not_found"
    status = 404


class JobConflict(ApplicationError):
    code = "invalid_state"
    status = 409


class LineAlreadyDone(Exception):
    """Raised inside a settlement transaction when the line already has its result: rolls it back."""
