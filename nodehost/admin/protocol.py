"""The admin service's wire format: length-prefixed JSON documents on a stream.

    frame    = u32 big-endian length | UTF-8 JSON document (at most MAX_FRAME bytes)
    request  = {"version": 1, "op": "<operation>", "args": {...}}
    answer   = {"ok": <value>}  or  {"error": {"kind": "<error class>", "message": "..."}}

Rules:
- One answer per request, in order; a connection may carry many requests.
- A frame over MAX_FRAME, or one that is not a JSON object, ends the connection
  after an answer saying so: nothing that size is ever buffered.
- `kind` is the name of the nodehost error class the operation raised (ShardNotFound,
  Timeout, ...), or one of the kinds below for what the service itself refused.
"""

from __future__ import annotations

import json
import struct
from typing import Any

VERSION = 1
MAX_FRAME = 1 << 20
_LENGTH = struct.Struct(">I")
LENGTH_SIZE = _LENGTH.size

# Error kinds of the service itself.
BAD_REQUEST = "BadRequest"
PERMISSION_DENIED = "PermissionDenied"
INTERNAL = "InternalError"

OPERATIONS = (
    "info",
    "members",
    "leader",
    "add",
    "remove",
    "transfer",
    "snapshot",
    "stop",
    "remove_data",
)


class FrameError(ValueError):
    """A frame that breaks the format: too big, not UTF-8 JSON, or not an object."""


def encode(document: dict[str, Any]) -> bytes:
    body = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    if len(body) > MAX_FRAME:
        raise FrameError(f"a {len(body)} byte document is over the {MAX_FRAME} byte limit")
    return _LENGTH.pack(len(body)) + body


def frame_length(prefix: bytes) -> int:
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_FRAME:
        raise FrameError(f"a {length} byte frame is over the {MAX_FRAME} byte limit")
    return int(length)


def decode(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"the frame is not UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise FrameError("the frame is not a JSON object")
    return document


def request(op: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"version": VERSION, "op": op, "args": args}


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"kind": kind, "message": message}}
