"""Errors of nodehost.cluster: one base class, each with the HTTP status it travels as.

Rules: a handler raises one of these with a message a user can act on; the server sends
its status and message; the client raises the same class again from the status, so a
caller catches `Conflict` whether the daemon is local or remote. Any other exception in
a handler is an internal error (500) and is logged with its traceback.
"""

from __future__ import annotations


class ClusterError(Exception):
    """Base of every error nodehost.cluster raises."""

    status = 500


class BadRequest(ClusterError):
    """The request is malformed or its values are invalid."""

    status = 400


class Forbidden(ClusterError):
    """The caller may not do this: an untrusted certificate, an invalid or used token."""

    status = 403


class NotFound(ClusterError):
    """No such member, token or endpoint."""

    status = 404


class Conflict(ClusterError):
    """The request contradicts the cluster's state: already initialized, a name in use,
    removing the last voter."""

    status = 409


class Unreachable(ClusterError):
    """A member (or the daemon itself) could not be reached."""

    status = 502


class Unavailable(ClusterError):
    """Not now: the database is uninitialized, starting, or waiting for an upgrade."""

    status = 503


_BY_STATUS: dict[int, type[ClusterError]] = {
    cls.status: cls for cls in (BadRequest, Forbidden, NotFound, Conflict, Unreachable, Unavailable)
}


def error_for_status(status: int, message: str) -> ClusterError:
    """The error class a status stands for (ClusterError for the others)."""
    cls = _BY_STATUS.get(status, ClusterError)
    error = cls(message)
    if cls is ClusterError:
        error.status = status
    return error
