"""Errors the transport raises to its caller (never to a peer: peers get counted rejections)."""

from __future__ import annotations


class TransportError(Exception):
    """Base of every error the transport raises."""


class TransportConfigError(TransportError, ValueError):
    """A TransportConfig field is out of range; the message names the field."""


class BindError(TransportError):
    """The listen address cannot be bound (in use, or not an address of this host)."""


class NotStarted(TransportError):
    """send or send_snapshot before start(), or after close()."""


def describe(error: BaseException) -> str:
    """One line for a log: a gRPC error's code and details say more than its repr."""
    details = getattr(error, "details", None)
    code = getattr(error, "code", None)
    if callable(details) and callable(code):
        try:
            return f"{code()}: {details()}"
        except Exception:
            pass
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
