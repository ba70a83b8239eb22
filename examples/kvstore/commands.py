"""What the key-value store writes to the Raft log, and what applying it does.

Rules:
- A command is a compact binary record (op, key, values), not JSON: a replica stores a
  value's bytes as they arrive and never parses a large value again.
- Values are canonical JSON (sorted object keys, no spaces, UTF-8), made once at the
  HTTP edge, so compare-and-set compares bytes and `1`, `1.0` and `true` stay distinct.
- `execute` is the whole meaning of a command. It is pure and deterministic (no clock,
  no randomness, no IO), so every replica, of either store kind, reaches the same state.
- A command that does not decode is answered BAD_COMMAND on every replica alike; it
  never stops a replica, since all of them would stop at the same entry.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from statemachine import Result

MAX_KEY_BYTES = 1024
_HEAD = struct.Struct(">BI")  # op, key length
_LEN = struct.Struct(">I")
_DIGEST_MASK = 2**64 - 1


class Op(IntEnum):
    PUT = 1
    DELETE = 2
    CAS = 3


class Status(IntEnum):
    """`Result.value` of every command."""

    APPLIED = 1  # the key changed
    UNCHANGED = 2  # a compare-and-set that did not match, or a delete of a missing key
    BAD_COMMAND = 3  # the entry did not decode; `Result.data` says why


@dataclass(frozen=True, slots=True)
class Command:
    op: Op
    key: str
    value: bytes = b""  # PUT and CAS: the new canonical JSON value
    expected: bytes = b""  # CAS: the canonical JSON the current value must equal


class BadInput(ValueError):
    """A key or value a client sent that the store cannot take; the message says why."""


# ---------------------------------------------------------------- JSON at the edge


def _reject_constant(name: str) -> Any:
    raise BadInput(f"{name} is not valid JSON (only finite numbers are)")


def canonical_json(text: bytes | str) -> bytes:
    """Parse one JSON document and return its canonical bytes; BadInput if it is not JSON."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"the body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    if not text.strip():
        raise BadInput("expected a JSON value (string, number, list, object, true, false, null)")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadInput(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadInput("invalid JSON: nested too deeply") from None
    return dump_json(value)


def dump_json(value: Any) -> bytes:
    """Canonical JSON bytes of a parsed value."""
    try:
        text = json.dumps(
            value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("invalid JSON: a string holds a lone UTF-16 surrogate") from None
    except RecursionError:
        raise BadInput("invalid JSON: nested too deeply") from None


def check_key(key: str) -> bytes:
    """The key's UTF-8 bytes; BadInput for an empty, oversized or unencodable key."""
    if not key:
        raise BadInput("the key is empty")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput("the key is not valid UTF-8") from None
    if len(raw) > MAX_KEY_BYTES:
        raise BadInput(f"the key is {len(raw)} bytes; at most {MAX_KEY_BYTES} are allowed")
    return raw


# ---------------------------------------------------------------- the log record


def encode(cmd: Command) -> bytes:
    key = check_key(cmd.key)
    head = _HEAD.pack(cmd.op, len(key)) + key
    if cmd.op is Op.PUT:
        return head + cmd.value
    if cmd.op is Op.DELETE:
        return head
    return head + _LEN.pack(len(cmd.expected)) + cmd.expected + cmd.value


def decode(data: bytes) -> Command:
    """The command in `data`; ValueError when it is not one `encode` made."""
    if len(data) < _HEAD.size:
        raise ValueError(f"a command is at least {_HEAD.size} bytes, got {len(data)}")
    op_code, key_len = _HEAD.unpack_from(data)
    try:
        op = Op(op_code)
    except ValueError:
        raise ValueError(f"unknown op {op_code}") from None
    at = _HEAD.size + key_len
    if len(data) < at:
        raise ValueError("the key runs past the end of the command")
    key = data[_HEAD.size : at].decode("utf-8")
    if not key:
        raise ValueError("empty key")
    if op is Op.PUT:
        return Command(op, key, value=data[at:])
    if op is Op.DELETE:
        if len(data) != at:
            raise ValueError("a delete carries nothing after the key")
        return Command(op, key)
    if len(data) < at + _LEN.size:
        raise ValueError("a compare-and-set lacks its expected value")
    (expected_len,) = _LEN.unpack_from(data, at)
    start = at + _LEN.size
    if len(data) < start + expected_len:
        raise ValueError("the expected value runs past the end of the command")
    return Command(
        op, key, value=data[start + expected_len :], expected=data[start : start + expected_len]
    )


# ---------------------------------------------------------------- applying


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one command does: its Result, and the change to make (if `write`)."""

    result: Result
    key: str = ""
    write: bool = False
    value: bytes | None = None  # with `write`: the new value, or None to delete the key


NULL = b"null"


def execute(data: bytes, current: Callable[[str], bytes | None]) -> Outcome:
    """Decide what the command in `data` does, given `current(key)` (None: absent).

    A compare-and-set expecting `null` matches a missing key (a read of one gives null)
    as well as a stored null. A failed one returns the current value in `Result.data`
    (empty when the key is missing).
    """
    try:
        cmd = decode(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return Outcome(Result(Status.BAD_COMMAND, f"bad command: {exc}".encode()))
    if cmd.op is Op.PUT:
        return Outcome(Result(Status.APPLIED), cmd.key, True, cmd.value)
    now = current(cmd.key)
    if cmd.op is Op.DELETE:
        if now is None:
            return Outcome(Result(Status.UNCHANGED))
        return Outcome(Result(Status.APPLIED), cmd.key, True, None)
    if (now if now is not None else NULL) != cmd.expected:
        return Outcome(Result(Status.UNCHANGED, now or b""))
    return Outcome(Result(Status.APPLIED), cmd.key, True, cmd.value)


def item_digest(key: bytes, value: bytes) -> int:
    """One key-value pair's share of a state digest.

    A state's digest is the sum of its pairs' shares modulo 2**64: independent of order,
    so both store kinds keep it up to date in O(1) per write and agree on it.
    """
    h = hashlib.blake2b(_LEN.pack(len(key)), digest_size=8)
    h.update(key)
    h.update(value)
    return int.from_bytes(h.digest(), "big")


def add_digest(digest: int, key: bytes, value: bytes) -> int:
    return (digest + item_digest(key, value)) & _DIGEST_MASK


def remove_digest(digest: int, key: bytes, value: bytes) -> int:
    return (digest - item_digest(key, value)) & _DIGEST_MASK
