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
