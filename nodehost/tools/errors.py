"""Errors of the operator tools: each message is one line that says what is wrong and
what to do about it, so the `nodehost` command prints it as is."""

from __future__ import annotations


class ToolError(Exception):
    """An operation could not be done; nothing was changed unless the message says so."""


class HostInUse(ToolError):
    """An offline operation was pointed at the directory of a running NodeHost."""


class UnsafeOperation(ToolError):
    """Refused because it could lose acknowledged writes or split the shard in two;
    `force=True` (`--force`) does it anyway."""


class AdminError(ToolError):
    """The NodeHost answered an admin request with an error. `kind` is the name of the
    nodehost error it raised (ShardNotFound, Timeout, ...) or of the service's refusal
    (BadRequest, PermissionDenied)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ConnectionFailed(ToolError):
    """The admin service could not be reached, or broke off the exchange."""
