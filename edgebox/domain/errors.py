"""Errors that say whose fault a failure is, raised below the API and mapped to HTTP there."""

from __future__ import annotations


class EdgeboxError(Exception):
    """Base of the errors a caller can act on; the message is written for a person."""


class NotFound(EdgeboxError):
    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"no {what} {key!r}")
        self.what = what
        self.key = key


class Forbidden(EdgeboxError):
    """The caller may not do this to this object (a machine allocated to someone else, a
    script someone else uploaded); the message says who may."""


class Conflict(EdgeboxError):
    """The request is valid but clashes with what exists (a MAC already taken, ...)."""


class InvalidInput(EdgeboxError):
    """A field of the request is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class StorageUnavailable(EdgeboxError):
    """The database cannot take writes now (its disk is full, an I/O error, a lock held by
    another program): nothing of the request was stored. Not the caller's fault; the same
    request may succeed after `retry_after` seconds, and does once the cause is gone."""

    def __init__(self, message: str, cause: str = "unavailable", retry_after: int = 5) -> None:
        super().__init__(message)
        self.cause = cause  # one word for what is wrong: disk_full, io_error, locked, ...
        self.retry_after = retry_after
