"""Replicated SQL commands and their results, as bytes.

Rules:
- A command is decided by its bytes alone: the database, the SQL and its parameters, the
  proposer's clock reading and random seed, and what the proposer already told its client
  (expectations). Every replica applies the same bytes to the same state and gets the same
  result, so nothing here may depend on the machine that decodes.
- Decoding treats the bytes as hostile (they arrive from peers): every length is checked
  against what remains, and a malformed command raises CommandError, which the state
  machine answers as an error without changing anything.
- Values are SQLite's five storage classes; integers are 64-bit signed, as in SQLite.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from nodehost.sqlite.errors import DataError

VERSION = 1

Value = None | int | float | str | bytes
# One execution's parameters: positional values, or (name, value) pairs for named ones.
Parameters = tuple[Value, ...] | tuple[tuple[str, Value], ...]

_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")
_U32 = struct.Struct(">I")
_HEADER = struct.Struct(">BBqQQQ")  # version, kind, timestamp (ms), seed, client, sequence

_NULL, _INT, _FLOAT, _TEXT, _BLOB = range(5)
_MAX_INT = 2**63 - 1
_MIN_INT = -(2**63)


class CommandError(ValueError):
    """Bytes that are not a well-formed command or result."""


class CommandKind(IntEnum):
    EXECUTE = 1  # SQL against one database
    MEMBERS = 2  # a change to the member table (roles), see nodehost.sqlite.members
    BATCH = 3  # several clients' EXECUTE commands in one Raft entry, applied in order


class Observed:
    """Bits of a statement's outcome that its client has seen (see Statement.expect)."""

    ROWCOUNT = 1
    LASTROWID = 2
    ROWS = 4  # rows and column names
    ERROR = 8  # whether it failed, and how


@dataclass(slots=True)
class Statement:
    """One statement and the parameter sets it runs with (more than one: executemany).

    `observed`/`expect`: inside an interactive transaction the client may already have
    seen part of this statement's outcome (computed ahead on a local replica). At commit
    every replica checks that the outcome is still the same (`outcome_digest`); when not,
    the whole transaction is refused, so what the client saw is what was committed.
    """

    sql: str
    parameters: list[Parameters] = field(default_factory=lambda: [()])
    observed: int = 0
    expect: bytes = b""


@dataclass(slots=True)
class Command:
    kind: CommandKind
    timestamp_ms: int
    seed: int
    database: str = ""
    statements: list[Statement] = field(default_factory=list)
    payload: bytes = b""  # MEMBERS: the change, encoded by nodehost.sqlite.members
    # Exactly-once: a client session's id and the request's sequence (0: no session).
    # A command without statements but with a session asks for the stored outcome of
    # `sequence` (a COMMIT retried after its leader failed).
    client_id: int = 0
    sequence: int = 0
    batch: list[Command] = field(default_factory=list)  # BATCH: the commands, in order


class _Writer:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u32(self, n: int) -> None:
        self.parts.append(_U32.pack(n))

    def blob(self, data: bytes) -> None:
        self.parts.append(_U32.pack(len(data)))
        self.parts.append(data)

    def text(self, s: str) -> None:
        self.blob(s.encode("utf-8", "surrogatepass"))

    def value(self, v: Value) -> None:
        parts = self.parts
        if v is None:
            parts.append(b"\x00")
        elif isinstance(v, bool | int):
            if not _MIN_INT <= v <= _MAX_INT:
                raise DataError(f"Python int too large to convert to SQLite INTEGER: {v}")
            parts.append(b"\x01")
            parts.append(_I64.pack(v))
        elif isinstance(v, float):
            parts.append(b"\x02")
            parts.append(_F64.pack(v))
        elif isinstance(v, str):
            parts.append(b"\x03")
            self.text(v)
        elif isinstance(v, bytes | bytearray | memoryview):
            parts.append(b"\x04")
            self.blob(bytes(v))
        else:
            raise DataError(f"parameters of type {type(v).__name__} are not supported")

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.end = len(self.data)
        self.pos = 0

    def _need(self, n: int) -> int:
        position = self.pos
        if n < 0 or position + n > self.end:
            raise CommandError(f"truncated: {n} bytes wanted at offset {position}")
        self.pos = position + n
        return position

    def take(self, n: int) -> bytes:
        position = self._need(n)
        return self.data[position : position + n]

    def u8(self) -> int:
        return self.data[self._need(1)]

    def u32(self) -> int:
        result: int = _U32.unpack_from(self.data, self._need(4))[0]
        return result

    def i64(self) -> int:
        result: int = _I64.unpack_from(self.data, self._need(8))[0]
        return result

    def count(self, minimum_each: int) -> int:
        """A number of items that must fit in what remains (so a forged count cannot
        make the decoder allocate without bound)."""
        n = self.u32()
        if n * minimum_each > self.end - self.pos:
            raise CommandError(f"count {n} exceeds the remaining bytes")
        return n

    def blob(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        n = self.u32()
        position = self._need(n)
        try:
            return self.data[position : position + n].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise CommandError(f"text is not UTF-8: {exc}") from None

    def value(self) -> Value:
        tag = self.u8()
        if tag == _TEXT:
            return self.text()
        if tag == _INT:
            return self.i64()
        if tag == _NULL:
            return None
        if tag == _FLOAT:
            number: float = _F64.unpack_from(self.data, self._need(8))[0]
            return number
        if tag == _BLOB:
            return self.blob()
        raise CommandError(f"unknown value tag {tag}")

    def done(self) -> None:
        if self.pos != self.end:
            raise CommandError(f"{self.end - self.pos} trailing bytes")


def _write_parameters(w: _Writer, parameters: Parameters) -> None:
    named = bool(parameters) and isinstance(parameters[0], tuple)
    w.parts.append(b"\x01" if named else b"\x00")
    w.u32(len(parameters))
    if named:
        for pair in parameters:
            assert isinstance(pair, tuple)
            w.text(pair[0])
            w.value(pair[1])
    else:
        for v in parameters:
            w.value(v)  # type: ignore[arg-type]


def encode_command(command: Command) -> bytes:
    w = _Writer()
    w.parts.append(
        _HEADER.pack(
            VERSION,
            command.kind,
            command.timestamp_ms,
            command.seed & 0xFFFF_FFFF_FFFF_FFFF,
            command.client_id,
            command.sequence,
        )
    )
    if command.kind is CommandKind.MEMBERS:
        w.blob(command.payload)
        return w.getvalue()
    if command.kind is CommandKind.BATCH:
        w.u32(len(command.batch))
        for part in command.batch:
            w.blob(part.payload or encode_command(part))
        return w.getvalue()
    w.text(command.database)
    w.u32(len(command.statements))
    for s in command.statements:
        w.text(s.sql)
        w.parts.append(bytes((s.observed,)))
        w.blob(s.expect)
        w.u32(len(s.parameters))
        for p in s.parameters:
            _write_parameters(w, p)
    return w.getvalue()


def decode_command(data: bytes) -> Command:
    """Bytes from a peer to a Command; CommandError for anything malformed.

    Written flat (offsets in locals, no reader object): every replica decodes every
    entry, so this is on the apply path."""
    data = bytes(data)
    end = len(data)
    if end < _HEADER.size:
        raise CommandError(f"truncated: {end} bytes is shorter than a command header")
    version, kind_number, timestamp_ms, seed, client_id, sequence = _HEADER.unpack_from(data, 0)
    if version != VERSION:
        raise CommandError(f"command version {version} is not {VERSION}")
    try:
        kind = CommandKind(kind_number)
    except ValueError:
        raise CommandError(f"unknown command kind {kind_number}") from None
    command = Command(kind, timestamp_ms, seed, client_id=client_id, sequence=sequence)
    position = _HEADER.size
    unpack_u32 = _U32.unpack_from
    try:
        if kind is CommandKind.MEMBERS:
            (size,) = unpack_u32(data, position)
            position += 4
            if position + size != end:
                raise CommandError("malformed member change")
            command.payload = data[position:end]
            return command
        if kind is CommandKind.BATCH:
            (count,) = unpack_u32(data, position)
            position += 4
            if count * (4 + _HEADER.size) > end - position:
                raise CommandError(f"count {count} exceeds the remaining bytes")
            for _ in range(count):
                (size,) = unpack_u32(data, position)
                position += 4
                if position + size > end:
                    raise CommandError("truncated batched command")
                part = decode_command(data[position : position + size])
                if part.kind is not CommandKind.EXECUTE:
                    raise CommandError("a batch holds EXECUTE commands only")
                command.batch.append(part)
                position += size
            if position != end:
                raise CommandError(f"{end - position} trailing bytes")
            return command
        (size,) = unpack_u32(data, position)
        position += 4
        if position + size > end:
            raise CommandError("truncated database name")
        command.database = data[position : position + size].decode("utf-8", "surrogatepass")
        position += size
        (count,) = unpack_u32(data, position)
        position += 4
        if count * 10 > end - position:
            raise CommandError(f"count {count} exceeds the remaining bytes")
        statements = command.statements
        for _ in range(count):
            (size,) = unpack_u32(data, position)
            position += 4
            if position + size > end:
                raise CommandError("truncated statement")
            sql = data[position : position + size].decode("utf-8", "surrogatepass")
            position += size
            observed = data[position]
            (size,) = unpack_u32(data, position + 1)
            position += 5
            if position + size > end:
                raise CommandError("truncated expectation")
            expect = data[position : position + size]
            position += size
            (sets,) = unpack_u32(data, position)
            position += 4
            if sets * 5 > end - position:
                raise CommandError(f"count {sets} exceeds the remaining bytes")
            parameters: list[Parameters] = []
            for _ in range(sets):
                values, position = _parse_parameters(data, position, end)
                parameters.append(values)
            statements.append(Statement(sql, parameters, observed, expect))
    except (struct.error, IndexError):
        raise CommandError("truncated command") from None
    except UnicodeDecodeError as exc:
        raise CommandError(f"text is not UTF-8: {exc}") from None
    if position != end:
        raise CommandError(f"{end - position} trailing bytes")
    return command


def _parse_parameters(data: bytes, position: int, end: int) -> tuple[Parameters, int]:
    named = data[position]
    (count,) = _U32.unpack_from(data, position + 1)
    position += 5
    if count > end - position:
        raise CommandError(f"count {count} exceeds the remaining bytes")
    if named > 1:
        raise CommandError(f"bad parameter style {named}")
    values: list[Any] = []
    for _ in range(count):
        if named:
            (size,) = _U32.unpack_from(data, position)
            position += 4
            if position + size > end:
                raise CommandError("truncated parameter name")
            name = data[position : position + size].decode("utf-8", "surrogatepass")
            position += size
        tag = data[position]
        position += 1
        value: Value
        if tag == _INT:
            (value,) = _I64.unpack_from(data, position)
            position += 8
        elif tag in (_TEXT, _BLOB):
            (size,) = _U32.unpack_from(data, position)
            position += 4
            if position + size > end:
                raise CommandError("truncated value")
            raw = data[position : position + size]
            value = raw.decode("utf-8", "surrogatepass") if tag == _TEXT else raw
            position += size
        elif tag == _NULL:
            value = None
        elif tag == _FLOAT:
            (value,) = _F64.unpack_from(data, position)
            position += 8
        else:
            raise CommandError(f"unknown value tag {tag}")
        values.append((name, value) if named else value)
    return tuple(values), position


# ---------------------------------------------------------------------- results


@dataclass(slots=True)
class StatementResult:
    """What one statement did: rows it returned (RETURNING, or a read inside a
    transaction), the rows it changed, the last inserted rowid, or the error it raised."""

    rowcount: int = -1
    lastrowid: int = 0
    columns: list[str] = field(default_factory=list)
    declared_types: list[str] = field(default_factory=list)
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    error_code: int = 0  # SQLite's extended result code; 0 = success
    error_message: str = ""

    @property
    def failed(self) -> bool:
        return self.error_code != 0


class Outcome(IntEnum):
    """How a command ended on the replicas (the same everywhere)."""

    COMMITTED = 0
    FAILED = 1  # a statement failed: nothing of the command took effect
    CONFLICT = 2  # a transaction saw results that changed before its commit
    REJECTED = 3  # the command itself is invalid (malformed, unsupported)


@dataclass(slots=True)
class CommandResult:
    outcome: Outcome
    results: list[StatementResult] = field(default_factory=list)
    failed_statement: int = -1  # index of the statement behind FAILED / CONFLICT
    message: str = ""
    error_code: int = 0
    # The bytes of this result once encoded (the state machine stores and returns them).
    encoded: bytes = field(default=b"", compare=False, repr=False)


_PLAIN_RESULT = struct.Struct(">BqqI")  # outcome, failed statement, code, message length


def encode_result(result: CommandResult) -> bytes:
    if result.encoded:
        return result.encoded
    results = result.results
    if (
        len(results) == 1
        and not result.message
        and not results[0].columns
        and not results[0].error_message
    ):
        # The common answer (one statement, no rows, no error), without the generic writer.
        only = results[0]
        result.encoded = _PLAIN_RESULT.pack(
            result.outcome, result.failed_statement, result.error_code, 0
        ) + struct.pack(">Iqqq I I I", 1, only.rowcount, only.lastrowid, only.error_code, 0, 0, 0)
        return result.encoded
    w = _Writer()
    w.parts.append(bytes((result.outcome,)))
    w.parts.append(_I64.pack(result.failed_statement))
    w.parts.append(_I64.pack(result.error_code))
    w.text(result.message)
    w.u32(len(result.results))
    for s in result.results:
        w.parts.append(_I64.pack(s.rowcount))
        w.parts.append(_I64.pack(s.lastrowid))
        w.parts.append(_I64.pack(s.error_code))
        w.text(s.error_message)
        w.u32(len(s.columns))
        for name in s.columns:
            w.text(name)
        for i in range(len(s.columns)):
            w.text(s.declared_types[i] if i < len(s.declared_types) else "")
        w.u32(len(s.rows))
        for row in s.rows:
            for v in row:
                w.value(v)
    result.encoded = w.getvalue()
    return result.encoded


def encode_batch_results(encoded: list[bytes]) -> bytes:
    return b"".join([_U32.pack(len(encoded))] + [_U32.pack(len(e)) + e for e in encoded])


def decode_batch_results(data: bytes) -> list[CommandResult]:
    r = _Reader(data)
    results = [decode_result(r.blob()) for _ in range(r.count(4))]
    r.done()
    return results


def decode_result(data: bytes) -> CommandResult:
    r = _Reader(data)
    try:
        outcome = Outcome(r.u8())
    except ValueError:
        raise CommandError("unknown outcome") from None
    failed = r.i64()
    code = r.i64()
    result = CommandResult(outcome, [], failed, r.text(), code)
    for _ in range(r.count(28)):
        rowcount, lastrowid, error_code = r.i64(), r.i64(), r.i64()
        s = StatementResult(rowcount, lastrowid, error_code=error_code, error_message=r.text())
        width = r.count(4)
        s.columns = [r.text() for _ in range(width)]
        s.declared_types = [r.text() for _ in range(width)]
        n = r.count(width)
        s.rows = [tuple(r.value() for _ in range(width)) for _ in range(n)]
        result.results.append(s)
    r.done()
    return result
