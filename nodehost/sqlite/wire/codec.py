"""dqlite's client wire protocol: messages to bytes and back, for both ends of a connection.

The layout follows dqlite's published wire protocol (protocol version 1), as the C server
and go-dqlite speak it:

- a connection starts with one word (8 bytes, little endian) naming the protocol version;
- every message is a one-word header (body size in words: u32, type: u8, schema: u8,
  extra: u16) followed by a body of whole words;
- fields are u64/i64/f64 words, u32 pairs, text (UTF-8, NUL-terminated, zero-padded to a
  word) and blobs (u64 length, bytes, zero-padded to a word);
- statement parameters are a tuple: a count (u8 in schema 0, u32 in schema 1), one type
  byte per value, zero padding to a word, then the values;
- a result row is one 4-bit type slot per column, padded to a word, then the values; a
  ROWS message ends with a marker word, DONE (all ones) or PART (0xee bytes: more ROWS
  messages follow for the same query).

Rules:
- Sans-IO: nothing here touches a socket, a clock or an event loop. `FrameReader` splits
  a byte stream into frames; `Header.decode` suits code that reads exact byte counts.
- A peer is hostile. Every size and count read from the wire is checked against the bytes
  that are actually present before anything is allocated, and a message body is never
  read past its end; a header announcing a body larger than the reader's limit is refused
  before the body is buffered. Malformed bytes raise `DecodeError`, nothing else.
- Encoding refuses what the wire cannot carry (`EncodeError`): integers outside their
  field, text containing NUL or not encodable as UTF-8, too many parameters.
- Messages are immutable values and `decode(encode(message)) == message`. Where the wire
  has two forms (the one- and four-byte parameter count, PROMOTE and ASSIGN, the cluster
  formats, STMT with or without a tail offset), the message's fields choose the form.
- Fixed-layout bodies may carry trailing bytes: the protocol lets a newer schema revision
  append fields, and older readers ignore them. ROWS and FILES, whose ends are implied by
  their contents, must end exactly.
- nodehost's extensions (read consistency and exactly-once writes) live in the header's
  `extra` field, which dqlite's own clients send as zero; see `RequestTag` and
  `SERVER_FEATURE_SESSIONS`, and this package's README for what each end must do.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Final

WORD: Final = 8
HEADER_SIZE: Final = 8

PROTOCOL_VERSION: Final = 1
PROTOCOL_VERSION_LEGACY: Final = 0x86104DD760433FE5
SUPPORTED_VERSIONS: Final = frozenset({PROTOCOL_VERSION, PROTOCOL_VERSION_LEGACY})

ROWS_PART: Final = 0xEEEEEEEEEEEEEEEE
ROWS_DONE: Final = 0xFFFFFFFFFFFFFFFF

#: The default bound on one message body. SQLite's own limit on one value is 1e9 bytes;
#: a reader that must accept bigger rows raises its `max_body`.
DEFAULT_MAX_BODY: Final = 64 * 1024 * 1024

MAX_U8: Final = 0xFF
MAX_U16: Final = 0xFFFF
MAX_U32: Final = 0xFFFFFFFF
MAX_U64: Final = 0xFFFFFFFFFFFFFFFF
MIN_I64: Final = -(1 << 63)
MAX_I64: Final = (1 << 63) - 1

#: Bit 0 of a WELCOME header's `extra`: the server deduplicates retried writes by the
#: client id of the CLIENT request and the sequence of a `RequestTag` (nodehost extension).
SERVER_FEATURE_SESSIONS: Final = 0x0001


class RequestType(IntEnum):
    LEADER = 0
    CLIENT = 1
    HEARTBEAT = 2
    OPEN = 3
    PREPARE = 4
    EXEC = 5
    QUERY = 6
    FINALIZE = 7
    EXEC_SQL = 8
    QUERY_SQL = 9
    INTERRUPT = 10
    CONNECT = 11  # between dqlite nodes, never from a client: decoding it is refused
    ADD = 12
    ASSIGN = 13  # PROMOTE in older servers: the same type without the role field
    REMOVE = 14
    DUMP = 15
    CLUSTER = 16
    TRANSFER = 17
    DESCRIBE = 18
    WEIGHT = 19


class ResponseType(IntEnum):
    FAILURE = 0
    SERVER = 1  # SERVER_LEGACY (address only) under the legacy protocol version
    WELCOME = 2
    SERVERS = 3
    DB = 4
    STMT = 5
    RESULT = 6
    ROWS = 7
    EMPTY = 8
    FILES = 9
    METADATA = 10


class ValueType(IntEnum):
    """Type codes of parameters and row values: SQLite's five, and dqlite's three."""

    INTEGER = 1
    FLOAT = 2
    TEXT = 3
    BLOB = 4
    NULL = 5
    UNIXTIME = 9  # rows only: an INTEGER in a DATETIME, DATE or TIMESTAMP column
    ISO8601 = 10  # text in a DATETIME, DATE or TIMESTAMP column ("" stands for NULL)
    BOOLEAN = 11  # an INTEGER in a BOOLEAN column, or a bool parameter


class Role(IntEnum):
    VOTER = 0
    STANDBY = 1
    SPARE = 2


class ClusterFormat(IntEnum):
    V0 = 0  # id and address
    V1 = 1  # id, address and role


class Consistency(IntEnum):
    """Read consistency carried in a `RequestTag` (nodehost extension)."""

    STRONG = 0  # linearizable; what dqlite's own clients get, since they send 0
    WEAK = 1  # served by the leader from its local copy, without a quorum round
    NONE = 2  # served by any member from its local copy


class ErrorClass(IntEnum):
    """The PEP 249 class of a FAILURE, in its header's `extra` (nodehost extension): the
    SQLite code alone does not always tell it, and the embedded and remote connections
    must raise the same class. 0 leaves the choice to the client, as from dqlite."""

    UNSPECIFIED = 0
    INTERFACE = 1
    DATABASE = 2
    DATA = 3
    OPERATIONAL = 4
    INTEGRITY = 5
    INTERNAL = 6
    PROGRAMMING = 7
    NOT_SUPPORTED = 8


class WireError(Exception):
    """Base of the codec's errors."""


class DecodeError(WireError):
    """The bytes are not a well-formed message: the peer is broken or hostile."""


class EncodeError(WireError, ValueError):
    """The value cannot be carried by the wire protocol."""


# -- values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Iso8601:
    """A date and time as text (dqlite's ISO8601 type); the empty text stands for NULL."""

    text: str


@dataclass(frozen=True, slots=True)
class UnixTime:
    """Seconds since the epoch (dqlite's UNIXTIME type)."""

    seconds: int


#: A parameter or a row value. `bool` is sent as BOOLEAN, so it is tested before `int`.
Value = int | float | str | bytes | bool | None | Iso8601 | UnixTime


def value_type(value: object) -> ValueType:
    """The wire type of a Python value; `EncodeError` for a type the wire cannot carry."""
    if value is None:
        return ValueType.NULL
    if isinstance(value, bool):
        return ValueType.BOOLEAN
    if isinstance(value, int):
        return ValueType.INTEGER
    if isinstance(value, float):
        return ValueType.FLOAT
    if isinstance(value, str):
        return ValueType.TEXT
    if isinstance(value, bytes | bytearray | memoryview):
        return ValueType.BLOB
    if isinstance(value, Iso8601):
        return ValueType.ISO8601
    if isinstance(value, UnixTime):
        return ValueType.UNIXTIME
    raise EncodeError(f"a value of type {type(value).__name__} cannot be sent")


# -- low level: one body being written or read -----------------------------------------

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_HEADER = struct.Struct("<IBBH")
_ZEROS = bytes(WORD)


def _padding(size: int) -> int:
    return -size % WORD


def _text_bytes(text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise EncodeError(f"text is not encodable as UTF-8: {error.reason}") from None
    if b"\0" in data:
        raise EncodeError("text cannot contain a NUL character (send it as a blob)")
    return data


class _Writer:
    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def u32(self, value: int) -> None:
        if not 0 <= value <= MAX_U32:
            raise EncodeError(f"{value} does not fit an unsigned 32-bit field")
        self.buffer += _U32.pack(value)

    def u64(self, value: int) -> None:
        if not 0 <= value <= MAX_U64:
            raise EncodeError(f"{value} does not fit an unsigned 64-bit field")
        self.buffer += _U64.pack(value)

    def i64(self, value: int) -> None:
        if not MIN_I64 <= value <= MAX_I64:
            raise EncodeError(f"{value} does not fit a signed 64-bit integer")
        self.buffer += _I64.pack(value)

    def f64(self, value: float) -> None:
        self.buffer += _F64.pack(value)

    def text(self, value: str) -> None:
        data = _text_bytes(value)
        self.buffer += data
        self.buffer += _ZEROS[: WORD - len(data) % WORD]  # the NUL, then the padding

    def blob(self, value: bytes | bytearray | memoryview) -> None:
        data = bytes(value)
        self.buffer += _U64.pack(len(data))
        self.buffer += data
        self.buffer += _ZEROS[: _padding(len(data))]

    def pad(self) -> None:
        self.buffer += _ZEROS[: _padding(len(self.buffer))]

    def value(self, kind: ValueType, value: Value) -> None:
        if kind is ValueType.INTEGER:
            assert isinstance(value, int)
            self.i64(value)
        elif kind is ValueType.FLOAT:
            assert isinstance(value, float)
            self.f64(value)
        elif kind is ValueType.TEXT:
            assert isinstance(value, str)
            self.text(value)
        elif kind is ValueType.BLOB:
            assert isinstance(value, bytes | bytearray | memoryview)
            self.blob(value)
        elif kind is ValueType.NULL:
            self.buffer += _ZEROS
        elif kind is ValueType.BOOLEAN:
            self.buffer += _U64.pack(1 if value else 0)
        elif kind is ValueType.ISO8601:
            assert isinstance(value, Iso8601)
            self.text(value.text)
        else:
            assert isinstance(value, UnixTime)
            self.i64(value.seconds)


class _Reader:
    """Reads fields off one body; every read is bounded by the body's end."""

    __slots__ = ("body", "offset", "what")

    def __init__(self, body: bytes, what: str) -> None:
        self.body = body
        self.offset = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.body) - self.offset

    def fail(self, reason: str) -> DecodeError:
        return DecodeError(f"malformed {self.what} message at byte {self.offset}: {reason}")

    def need(self, size: int, field: str) -> None:
        if size > self.remaining:
            raise self.fail(f"{field} needs {size} bytes, {self.remaining} left")

    def u32(self, field: str) -> int:
        self.need(4, field)
        (value,) = _U32.unpack_from(self.body, self.offset)
        self.offset += 4
        return int(value)

    def u64(self, field: str) -> int:
        self.need(8, field)
        (value,) = _U64.unpack_from(self.body, self.offset)
        self.offset += 8
        return int(value)

    def i64(self, field: str) -> int:
        self.need(8, field)
        (value,) = _I64.unpack_from(self.body, self.offset)
        self.offset += 8
        return int(value)

    def f64(self, field: str) -> float:
        self.need(8, field)
        (value,) = _F64.unpack_from(self.body, self.offset)
        self.offset += 8
        return float(value)

    def text(self, field: str) -> str:
        end = self.body.find(b"\0", self.offset)
        if end < 0:
            raise self.fail(f"{field} has no terminating NUL")
        size = end - self.offset + 1
        padded = size + _padding(size)
        self.need(padded, field)
        try:
            value = self.body[self.offset : end].decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{field} is not valid UTF-8") from None
        self.offset += padded
        return value

    def blob(self, field: str) -> bytes:
        size = self.u64(f"{field} length")
        padded = size + _padding(size)
        self.need(padded, field)
        value = self.body[self.offset : self.offset + size]
        self.offset += padded
        return value

    def take(self, size: int, field: str) -> bytes:
        self.need(size, field)
        value = self.body[self.offset : self.offset + size]
        self.offset += size
        return value

    def count(self, field: str, each: int) -> int:
        """A u64 count of items that take at least `each` bytes apiece, checked against
        the bytes left so that a hostile count cannot make us allocate."""
        value = self.u64(field)
        if value * each > self.remaining:
            raise self.fail(f"{field} {value} does not fit in {self.remaining} bytes")
        return value

    def value(self, kind: int, field: str) -> Value:
        if kind == ValueType.INTEGER:
            return self.i64(field)
        if kind == ValueType.FLOAT:
            return self.f64(field)
        if kind == ValueType.TEXT:
            return self.text(field)
        if kind == ValueType.BLOB:
            return self.blob(field)
        if kind == ValueType.NULL:
            self.u64(field)
            return None
        if kind == ValueType.BOOLEAN:
            return self.u64(field) != 0
        if kind == ValueType.ISO8601:
            return Iso8601(self.text(field))
        if kind == ValueType.UNIXTIME:
            return UnixTime(self.i64(field))
        raise self.fail(f"{field} has unknown value type {kind}")

    def end(self) -> None:
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected bytes after the last field")


# -- the header and the handshake -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """The first word of every message."""

    words: int
    type: int
    schema: int = 0
    extra: int = 0

    @property
    def body_size(self) -> int:
        return self.words * WORD

    def encode(self) -> bytes:
        if not 0 <= self.words <= MAX_U32:
            raise EncodeError(f"a body of {self.words} words does not fit the header")
        if not (0 <= self.type <= MAX_U8 and 0 <= self.schema <= MAX_U8):
            raise EncodeError("type and schema are single bytes")
        if not 0 <= self.extra <= MAX_U16:
            raise EncodeError(f"extra {self.extra} does not fit 16 bits")
        return _HEADER.pack(self.words, self.type, self.schema, self.extra)

    @classmethod
    def decode(cls, data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Header:
        """The header in `data` (exactly 8 bytes); `DecodeError` if its body would exceed
        `max_body` bytes, so that the caller never waits for or buffers such a body."""
        if len(data) != HEADER_SIZE:
            raise DecodeError(f"a header is {HEADER_SIZE} bytes, got {len(data)}")
        words, kind, schema, extra = _HEADER.unpack(data)
        header = cls(words, kind, schema, extra)
        if header.body_size > max_body:
            raise DecodeError(
                f"message type {kind} announces a body of {header.body_size} bytes, "
                f"more than the limit of {max_body}"
            )
        return header


def encode_handshake(version: int = PROTOCOL_VERSION) -> bytes:
    if not 0 <= version <= MAX_U64:
        raise EncodeError(f"protocol version {version} does not fit a word")
    return _U64.pack(version)


def decode_handshake(data: bytes) -> int:
    """The protocol version a client asked for; `DecodeError` if this codec cannot speak it."""
    if len(data) != WORD:
        raise DecodeError(f"the handshake is one word, got {len(data)} bytes")
    (version,) = _U64.unpack(data)
    if version not in SUPPORTED_VERSIONS:
        raise DecodeError(f"unsupported protocol version {version:#x}")
    return int(version)


@dataclass(frozen=True, slots=True)
class Frame:
    header: Header
    body: bytes


class FrameReader:
    """Splits a byte stream into frames (and first, for a server, the handshake).

    `feed` bytes as they arrive, then call `next_frame` until it returns None. A header
    announcing a body over `max_body` raises `DecodeError` as soon as the header is
    complete, so at most one header plus `max_body` bytes are ever buffered per frame.
    """

    def __init__(self, *, max_body: int = DEFAULT_MAX_BODY, handshake: bool = False) -> None:
        self._buffer = bytearray()
        self._max_body = max_body
        self._awaiting_handshake = handshake
        self._header: Header | None = None
        self.protocol_version: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> Frame | None:
        if self._awaiting_handshake:
            if len(self._buffer) < WORD:
                return None
            self.protocol_version = decode_handshake(bytes(self._buffer[:WORD]))
            del self._buffer[:WORD]
            self._awaiting_handshake = False
        if self._header is None:
            if len(self._buffer) < HEADER_SIZE:
                return None
            self._header = Header.decode(bytes(self._buffer[:HEADER_SIZE]), self._max_body)
            del self._buffer[:HEADER_SIZE]
        size = self._header.body_size
        if len(self._buffer) < size:
            return None
        frame = Frame(self._header, bytes(self._buffer[:size]))
        del self._buffer[:size]
        self._header = None
        return frame


# -- nodehost's extension: the request tag ---------------------------------------------

_TAG_CONSISTENCY_MASK = 0x0003
_TAG_SEQUENCED = 0x0004
_TAG_KNOWN = _TAG_CONSISTENCY_MASK | _TAG_SEQUENCED


@dataclass(frozen=True, slots=True)
class RequestTag:
    """What nodehost's client adds to EXEC, QUERY, EXEC_SQL and QUERY_SQL, in the header's
    `extra` (zero from dqlite's own clients, which so get strong reads and no sessions):

    - bits 0-1: the read consistency (`Consistency`);
    - bit 2: the body ends with one more word after the parameters, the request's
      sequence number in the client's session (its CLIENT id). The parameter tuple is
      then always present, with a zero count when there are no parameters, so that the
      sequence word is never mistaken for a parameter count.
    """

    consistency: Consistency = Consistency.STRONG
    sequence: int | None = None

    @property
    def extra(self) -> int:
        return int(self.consistency) | (_TAG_SEQUENCED if self.sequence is not None else 0)

    @classmethod
    def from_extra(cls, extra: int, sequence: int | None) -> RequestTag:
        if extra & ~_TAG_KNOWN:
            raise DecodeError(f"unknown request tag bits {extra:#06x}")
        bits = extra & _TAG_CONSISTENCY_MASK
        if bits > Consistency.NONE:
            raise DecodeError(f"unknown read consistency {bits}")
        return cls(Consistency(bits), sequence)


# -- requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaderRequest:
    TYPE: ClassVar[RequestType] = RequestType.LEADER


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """Registers the client; a nonzero id names its session (nodehost extension)."""

    TYPE: ClassVar[RequestType] = RequestType.CLIENT
    client_id: int


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    TYPE: ClassVar[RequestType] = RequestType.HEARTBEAT
    timestamp: int


@dataclass(frozen=True, slots=True)
class OpenRequest:
    TYPE: ClassVar[RequestType] = RequestType.OPEN
    name: str
    flags: int = 0
    vfs: str = "volatile"


@dataclass(frozen=True, slots=True)
class PrepareRequest:
    """Schema 0 prepares exactly one statement; schema 1 prepares the first of several
    and the STMT answer carries the offset of the rest."""

    TYPE: ClassVar[RequestType] = RequestType.PREPARE
    db_id: int
    sql: str
    schema: int = 0


@dataclass(frozen=True, slots=True)
class ExecRequest:
    TYPE: ClassVar[RequestType] = RequestType.EXEC
    db_id: int
    stmt_id: int
    params: tuple[Value, ...] = ()
    tag: RequestTag = RequestTag()


@dataclass(frozen=True, slots=True)
class QueryRequest:
    TYPE: ClassVar[RequestType] = RequestType.QUERY
    db_id: int
    stmt_id: int
    params: tuple[Value, ...] = ()
    tag: RequestTag = RequestTag()


@dataclass(frozen=True, slots=True)
class FinalizeRequest:
    TYPE: ClassVar[RequestType] = RequestType.FINALIZE
    db_id: int
    stmt_id: int


@dataclass(frozen=True, slots=True)
class ExecSqlRequest:
    TYPE: ClassVar[RequestType] = RequestType.EXEC_SQL
    db_id: int
    sql: str
    params: tuple[Value, ...] = ()
    tag: RequestTag = RequestTag()


@dataclass(frozen=True, slots=True)
class QuerySqlRequest:
    TYPE: ClassVar[RequestType] = RequestType.QUERY_SQL
    db_id: int
    sql: str
    params: tuple[Value, ...] = ()
    tag: RequestTag = RequestTag()


@dataclass(frozen=True, slots=True)
class InterruptRequest:
    TYPE: ClassVar[RequestType] = RequestType.INTERRUPT
    db_id: int


@dataclass(frozen=True, slots=True)
class AddRequest:
    TYPE: ClassVar[RequestType] = RequestType.ADD
    node_id: int
    address: str


@dataclass(frozen=True, slots=True)
class AssignRequest:
    """`role` None is the older PROMOTE form (to voter), which has no role field."""

    TYPE: ClassVar[RequestType] = RequestType.ASSIGN
    node_id: int
    role: int | None = Role.VOTER


@dataclass(frozen=True, slots=True)
class RemoveRequest:
    TYPE: ClassVar[RequestType] = RequestType.REMOVE
    node_id: int


@dataclass(frozen=True, slots=True)
class DumpRequest:
    TYPE: ClassVar[RequestType] = RequestType.DUMP
    name: str


@dataclass(frozen=True, slots=True)
class ClusterRequest:
    TYPE: ClassVar[RequestType] = RequestType.CLUSTER
    format: int = ClusterFormat.V1


@dataclass(frozen=True, slots=True)
class TransferRequest:
    TYPE: ClassVar[RequestType] = RequestType.TRANSFER
    node_id: int


@dataclass(frozen=True, slots=True)
class DescribeRequest:
    TYPE: ClassVar[RequestType] = RequestType.DESCRIBE
    format: int = 0


@dataclass(frozen=True, slots=True)
class WeightRequest:
    TYPE: ClassVar[RequestType] = RequestType.WEIGHT
    weight: int


Request = (
    LeaderRequest
    | ClientRequest
    | HeartbeatRequest
    | OpenRequest
    | PrepareRequest
    | ExecRequest
    | QueryRequest
    | FinalizeRequest
    | ExecSqlRequest
    | QuerySqlRequest
    | InterruptRequest
    | AddRequest
    | AssignRequest
    | RemoveRequest
    | DumpRequest
    | ClusterRequest
    | TransferRequest
    | DescribeRequest
    | WeightRequest
)

StatementRequest = ExecRequest | QueryRequest | ExecSqlRequest | QuerySqlRequest


# -- responses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailureResponse:
    """`code` is SQLite's extended result code, or one of dqlite's (1001 and up);
    `error_class` (`ErrorClass`, in the header's extra) is nodehost's extension."""

    TYPE: ClassVar[ResponseType] = ResponseType.FAILURE
    code: int
    message: str
    error_class: int = ErrorClass.UNSPECIFIED


@dataclass(frozen=True, slots=True)
class ServerResponse:
    """The leader as this server knows it; id 0 and address "" when it knows none."""

    TYPE: ClassVar[ResponseType] = ResponseType.SERVER
    node_id: int
    address: str


@dataclass(frozen=True, slots=True)
class ServerLegacyResponse:
    """The leader's address, as servers of the legacy protocol version answer LEADER."""

    TYPE: ClassVar[ResponseType] = ResponseType.SERVER
    address: str


@dataclass(frozen=True, slots=True)
class WelcomeResponse:
    """`features` travels in the header's extra (nodehost extension: `SERVER_FEATURE_*`)."""

    TYPE: ClassVar[ResponseType] = ResponseType.WELCOME
    heartbeat_timeout: int
    features: int = 0


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A cluster member; `role` is None in the V0 cluster format, which omits it."""

    node_id: int
    address: str
    role: int | None = Role.VOTER


@dataclass(frozen=True, slots=True)
class ServersResponse:
    """All members (CLUSTER). Every `role` is None in format V0 and set in format V1."""

    TYPE: ClassVar[ResponseType] = ResponseType.SERVERS
    servers: tuple[NodeInfo, ...]
    format: int = ClusterFormat.V1


@dataclass(frozen=True, slots=True)
class DbResponse:
    TYPE: ClassVar[ResponseType] = ResponseType.DB
    db_id: int


@dataclass(frozen=True, slots=True)
class StmtResponse:
    """`offset` (schema 1 only) is where the SQL after the prepared statement begins."""

    TYPE: ClassVar[ResponseType] = ResponseType.STMT
    db_id: int
    stmt_id: int
    params: int
    offset: int | None = None


@dataclass(frozen=True, slots=True)
class ResultResponse:
    """`last_insert_id` is SQLite's signed rowid (the wire word is its two's complement)."""

    TYPE: ClassVar[ResponseType] = ResponseType.RESULT
    last_insert_id: int
    rows_affected: int


Row = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class RowsResponse:
    """One batch of a result set; `done` False means more ROWS messages follow."""

    TYPE: ClassVar[ResponseType] = ResponseType.ROWS
    columns: tuple[str, ...]
    rows: tuple[Row, ...] = ()
    done: bool = True


@dataclass(frozen=True, slots=True)
class EmptyResponse:
    TYPE: ClassVar[ResponseType] = ResponseType.EMPTY


@dataclass(frozen=True, slots=True)
class File:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FilesResponse:
    """A database dump: the main file, then the WAL (named after it with "-wal")."""

    TYPE: ClassVar[ResponseType] = ResponseType.FILES
    files: tuple[File, ...]


@dataclass(frozen=True, slots=True)
class MetadataResponse:
    TYPE: ClassVar[ResponseType] = ResponseType.METADATA
    failure_domain: int
    weight: int


Response = (
    FailureResponse
    | ServerResponse
    | ServerLegacyResponse
    | WelcomeResponse
    | ServersResponse
    | DbResponse
    | StmtResponse
    | ResultResponse
    | RowsResponse
    | EmptyResponse
    | FilesResponse
    | MetadataResponse
)


# -- parameter tuples and rows -------------------------------------------------------


def _write_params(writer: _Writer, params: Sequence[Value], schema: int, explicit: bool) -> None:
    """The parameter tuple; nothing at all for no parameters unless `explicit` (a tagged
    request, whose sequence word must not be read as a count)."""
    if not params and not explicit:
        return
    kinds = [value_type(value) for value in params]
    if schema == 0:
        writer.buffer.append(len(params))
    else:
        writer.buffer += _U32.pack(len(params))
    writer.buffer += bytes(kinds)
    writer.pad()
    for kind, value in zip(kinds, params, strict=True):
        writer.value(kind, value)


def _read_params(reader: _Reader, schema: int, explicit: bool) -> tuple[Value, ...]:
    if not explicit and reader.remaining == 0:
        return ()
    if schema == 0:
        count = reader.take(1, "parameter count")[0]
        width = 1
    else:
        count = reader.u32("parameter count")
        width = 4
    # Each value takes at least one word after its type byte, so a count the body
    # cannot hold is refused before the type bytes are even read.
    if count * (1 + WORD) > reader.remaining:
        raise reader.fail(f"{count} parameters do not fit in {reader.remaining} bytes")
    kinds = reader.take(count, "parameter types")
    header = width + count
    reader.take(_padding(header), "parameter padding")
    return tuple(reader.value(kind, f"parameter {index + 1}") for index, kind in enumerate(kinds))


def _params_schema(params: Sequence[Value]) -> int:
    if len(params) > MAX_U32:
        raise EncodeError(f"{len(params)} parameters are more than the wire can carry")
    return 0 if len(params) <= MAX_U8 else 1


def _row_header_size(columns: int) -> int:
    half = (columns + 1) // 2
    return half + _padding(half)


def _write_row(writer: _Writer, row: Sequence[Value], columns: int) -> None:
    if len(row) != columns:
        raise EncodeError(f"a row of {len(row)} values in a result of {columns} columns")
    kinds = [value_type(value) for value in row]
    header = bytearray(_row_header_size(columns))
    for index, kind in enumerate(kinds):
        header[index // 2] |= kind << 4 if index % 2 else kind
    writer.buffer += header
    for kind, value in zip(kinds, row, strict=True):
        writer.value(kind, value)


def _read_rows(reader: _Reader, columns: int) -> tuple[tuple[Row, ...], bool]:
    rows: list[Row] = []
    header_size = _row_header_size(columns)
    while True:
        reader.need(WORD, "end of rows marker")
        first = reader.body[reader.offset]
        if first in (0xEE, 0xFF):  # a row's first slot is a type (1-11), never 14 or 15
            marker = reader.u64("end of rows marker")
            if marker not in (ROWS_DONE, ROWS_PART):
                raise reader.fail(f"bad end of rows marker {marker:#x}")
            reader.end()
            return tuple(rows), marker == ROWS_DONE
        if columns == 0:
            raise reader.fail("a row in a result without columns")
        header = reader.take(header_size, "row header")
        values: list[Value] = []
        for index in range(columns):
            slot = header[index // 2]
            kind = slot >> 4 if index % 2 else slot & 0x0F
            values.append(reader.value(kind, f"column {index + 1}"))
        rows.append(tuple(values))


def encoded_row_size(row: Sequence[Value]) -> int:
    """Bytes one row takes in a ROWS body: for a server sizing its batches."""
    writer = _Writer()
    _write_row(writer, row, len(row))
    return len(writer.buffer)


def batch_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Value]], batch_bytes: int = 4096
) -> Iterator[RowsResponse]:
    """A result set as ROWS batches of about `batch_bytes` each (a batch closes once it
    reaches the size, as dqlite's server does), the last one marked done."""
    names = tuple(columns)
    batch: list[Row] = []
    size = 0
    for row in rows:
        batch.append(tuple(row))
        size += encoded_row_size(row)
        if size >= batch_bytes:
            yield RowsResponse(names, tuple(batch), done=False)
            batch, size = [], 0
    yield RowsResponse(names, tuple(batch), done=True)


# -- encoding -------------------------------------------------------------------------


def _frame(kind: int, writer: _Writer, schema: int = 0, extra: int = 0) -> bytes:
    body = bytes(writer.buffer)
    assert len(body) % WORD == 0, "every field keeps the body word-aligned"
    return Header(len(body) // WORD, kind, schema, extra).encode() + body


def _write_statement_tail(writer: _Writer, params: Sequence[Value], tag: RequestTag) -> int:
    schema = _params_schema(params)
    _write_params(writer, params, schema, explicit=tag.sequence is not None)
    if tag.sequence is not None:
        writer.u64(tag.sequence)
    return schema


def encode_request(request: Request) -> bytes:
    """Header and body of one request."""
    writer = _Writer()
    schema = 0
    extra = 0
    match request:
        case LeaderRequest():
            writer.u64(0)
        case ClientRequest(client_id=client_id):
            writer.u64(client_id)
        case HeartbeatRequest(timestamp=timestamp):
            writer.u64(timestamp)
        case OpenRequest(name=name, flags=flags, vfs=vfs):
            writer.text(name)
            writer.u64(flags)
            writer.text(vfs)
        case PrepareRequest(db_id=db_id, sql=sql, schema=schema):
            if schema not in (0, 1):
                raise EncodeError(f"PREPARE has schemas 0 and 1, not {schema}")
            writer.u64(db_id)
            writer.text(sql)
        case ExecRequest() | QueryRequest():
            writer.u32(request.db_id)
            writer.u32(request.stmt_id)
            schema = _write_statement_tail(writer, request.params, request.tag)
            extra = request.tag.extra
        case ExecSqlRequest() | QuerySqlRequest():
            writer.u64(request.db_id)
            writer.text(request.sql)
            schema = _write_statement_tail(writer, request.params, request.tag)
            extra = request.tag.extra
        case FinalizeRequest(db_id=db_id, stmt_id=stmt_id):
            writer.u32(db_id)
            writer.u32(stmt_id)
        case InterruptRequest(db_id=db_id):
            writer.u64(db_id)
        case AddRequest(node_id=node_id, address=address):
            writer.u64(node_id)
            writer.text(address)
        case AssignRequest(node_id=node_id, role=role):
            writer.u64(node_id)
            if role is not None:
                writer.u64(role)
        case RemoveRequest(node_id=node_id) | TransferRequest(node_id=node_id):
            writer.u64(node_id)
        case DumpRequest(name=name):
            writer.text(name)
        case ClusterRequest(format=value) | DescribeRequest(format=value):
            writer.u64(value)
        case WeightRequest(weight=weight):
            writer.u64(weight)
    return _frame(request.TYPE, writer, schema, extra)


def encode_response(response: Response) -> bytes:
    """Header and body of one response."""
    writer = _Writer()
    schema = 0
    extra = 0
    match response:
        case FailureResponse(code=code, message=message, error_class=error_class):
            writer.u64(code)
            writer.text(message)
            extra = error_class
        case ServerResponse(node_id=node_id, address=address):
            writer.u64(node_id)
            writer.text(address)
        case ServerLegacyResponse(address=address):
            writer.text(address)
        case WelcomeResponse(heartbeat_timeout=timeout, features=features):
            writer.u64(timeout)
            extra = features
        case ServersResponse(servers=servers, format=cluster_format):
            if cluster_format not in (ClusterFormat.V0, ClusterFormat.V1):
                raise EncodeError(f"unknown cluster format {cluster_format}")
            writer.u64(len(servers))
            for server in servers:
                writer.u64(server.node_id)
                writer.text(server.address)
                if cluster_format == ClusterFormat.V1:
                    if server.role is None:
                        raise EncodeError("the V1 cluster format needs every member's role")
                    writer.u64(server.role)
        case DbResponse(db_id=db_id):
            writer.u32(db_id)
            writer.u32(0)
        case StmtResponse(db_id=db_id, stmt_id=stmt_id, params=params, offset=offset):
            writer.u32(db_id)
            writer.u32(stmt_id)
            writer.u64(params)
            if offset is not None:
                writer.u64(offset)
                schema = 1
        case ResultResponse(last_insert_id=last_insert_id, rows_affected=rows_affected):
            writer.i64(last_insert_id)
            writer.u64(rows_affected)
        case RowsResponse(columns=columns, rows=rows, done=done):
            writer.u64(len(columns))
            for name in columns:
                writer.text(name)
            if rows and not columns:
                raise EncodeError("rows cannot be sent in a result without columns")
            for row in rows:
                _write_row(writer, row, len(columns))
            writer.u64(ROWS_DONE if done else ROWS_PART)
        case EmptyResponse():
            writer.u64(0)
        case FilesResponse(files=files):
            writer.u64(len(files))
            for file in files:
                writer.text(file.name)
                writer.blob(file.data)
        case MetadataResponse(failure_domain=failure_domain, weight=weight):
            writer.u64(failure_domain)
            writer.u64(weight)
    return _frame(response.TYPE, writer, schema, extra)


# -- decoding -------------------------------------------------------------------------


def _statement_tail(reader: _Reader, header: Header) -> tuple[tuple[Value, ...], RequestTag]:
    if header.schema not in (0, 1):
        raise reader.fail(f"unknown parameter schema {header.schema}")
    sequenced = bool(header.extra & _TAG_SEQUENCED)
    params = _read_params(reader, header.schema, explicit=sequenced)
    sequence = reader.u64("request sequence") if sequenced else None
    tag = RequestTag.from_extra(header.extra, sequence)
    if not sequenced:
        # The C server ignores bytes after the parameters; so do we, for the same peers.
        reader.offset = len(reader.body)
    return params, tag


def decode_request(header: Header, body: bytes) -> Request:
    """The request in one frame; `DecodeError` if it is malformed or of an unknown type."""
    try:
        kind = RequestType(header.type)
    except ValueError:
        raise DecodeError(f"unknown request type {header.type}") from None
    if len(body) != header.body_size:
        raise DecodeError(f"{kind.name} body is {len(body)} bytes, header says {header.body_size}")
    reader = _Reader(body, kind.name)
    if kind not in (
        RequestType.PREPARE,
        RequestType.EXEC,
        RequestType.QUERY,
        RequestType.EXEC_SQL,
        RequestType.QUERY_SQL,
    ) and (header.schema != 0):
        raise reader.fail(f"unknown schema {header.schema}")
    request: Request
    if kind is RequestType.LEADER:
        reader.u64("unused")
        request = LeaderRequest()
    elif kind is RequestType.CLIENT:
        request = ClientRequest(reader.u64("client id"))
    elif kind is RequestType.HEARTBEAT:
        request = HeartbeatRequest(reader.u64("timestamp"))
    elif kind is RequestType.OPEN:
        request = OpenRequest(reader.text("name"), reader.u64("flags"), reader.text("vfs"))
    elif kind is RequestType.PREPARE:
        if header.schema not in (0, 1):
            raise reader.fail(f"unknown schema {header.schema}")
        request = PrepareRequest(reader.u64("db id"), reader.text("sql"), header.schema)
    elif kind in (RequestType.EXEC, RequestType.QUERY):
        db_id, stmt_id = reader.u32("db id"), reader.u32("statement id")
        params, tag = _statement_tail(reader, header)
        cls = ExecRequest if kind is RequestType.EXEC else QueryRequest
        request = cls(db_id, stmt_id, params, tag)
    elif kind in (RequestType.EXEC_SQL, RequestType.QUERY_SQL):
        db_id, sql = reader.u64("db id"), reader.text("sql")
        params, tag = _statement_tail(reader, header)
        sql_cls = ExecSqlRequest if kind is RequestType.EXEC_SQL else QuerySqlRequest
        request = sql_cls(db_id, sql, params, tag)
    elif kind is RequestType.FINALIZE:
        request = FinalizeRequest(reader.u32("db id"), reader.u32("statement id"))
    elif kind is RequestType.INTERRUPT:
        request = InterruptRequest(reader.u64("db id"))
    elif kind is RequestType.ADD:
        request = AddRequest(reader.u64("node id"), reader.text("address"))
    elif kind is RequestType.ASSIGN:
        node_id = reader.u64("node id")
        role = reader.u64("role") if reader.remaining else None
        request = AssignRequest(node_id, role)
    elif kind is RequestType.REMOVE:
        request = RemoveRequest(reader.u64("node id"))
    elif kind is RequestType.DUMP:
        request = DumpRequest(reader.text("name"))
    elif kind is RequestType.CLUSTER:
        request = ClusterRequest(reader.u64("format"))
    elif kind is RequestType.TRANSFER:
        request = TransferRequest(reader.u64("node id"))
    elif kind is RequestType.DESCRIBE:
        request = DescribeRequest(reader.u64("format"))
    elif kind is RequestType.WEIGHT:
        request = WeightRequest(reader.u64("weight"))
    else:
        raise DecodeError(f"{kind.name} is a request between dqlite nodes, not from a client")
    return request


def decode_response(
    header: Header,
    body: bytes,
    *,
    cluster_format: int = ClusterFormat.V1,
    legacy: bool = False,
) -> Response:
    """The response in one frame. A SERVERS body does not say its format, so the caller
    passes the one it asked for; `legacy` selects the legacy protocol's SERVER layout."""
    try:
        kind = ResponseType(header.type)
    except ValueError:
        raise DecodeError(f"unknown response type {header.type}") from None
    if len(body) != header.body_size:
        raise DecodeError(f"{kind.name} body is {len(body)} bytes, header says {header.body_size}")
    reader = _Reader(body, kind.name)
    response: Response
    if kind is ResponseType.FAILURE:
        response = FailureResponse(reader.u64("code"), reader.text("message"), header.extra)
    elif kind is ResponseType.SERVER:
        if legacy:
            response = ServerLegacyResponse(reader.text("address"))
        else:
            response = ServerResponse(reader.u64("node id"), reader.text("address"))
    elif kind is ResponseType.WELCOME:
        response = WelcomeResponse(reader.u64("heartbeat timeout"), header.extra)
    elif kind is ResponseType.SERVERS:
        if cluster_format not in (ClusterFormat.V0, ClusterFormat.V1):
            raise DecodeError(f"unknown cluster format {cluster_format}")
        with_role = cluster_format == ClusterFormat.V1
        count = reader.count("member count", 3 * WORD if with_role else 2 * WORD)
        servers = []
        for index in range(count):
            node_id = reader.u64(f"member {index + 1} id")
            address = reader.text(f"member {index + 1} address")
            role = reader.u64(f"member {index + 1} role") if with_role else None
            servers.append(NodeInfo(node_id, address, role))
        response = ServersResponse(tuple(servers), cluster_format)
    elif kind is ResponseType.DB:
        db_id = reader.u32("db id")
        reader.u32("padding")
        response = DbResponse(db_id)
    elif kind is ResponseType.STMT:
        if header.schema not in (0, 1):
            raise reader.fail(f"unknown schema {header.schema}")
        db_id, stmt_id = reader.u32("db id"), reader.u32("statement id")
        params = reader.u64("parameter count")
        offset = reader.u64("tail offset") if header.schema == 1 else None
        response = StmtResponse(db_id, stmt_id, params, offset)
    elif kind is ResponseType.RESULT:
        response = ResultResponse(reader.i64("last insert id"), reader.u64("rows affected"))
    elif kind is ResponseType.ROWS:
        columns = reader.count("column count", WORD)
        names = tuple(reader.text(f"column {index + 1} name") for index in range(columns))
        rows, done = _read_rows(reader, columns)
        response = RowsResponse(names, rows, done)
    elif kind is ResponseType.EMPTY:
        reader.u64("unused")
        response = EmptyResponse()
    elif kind is ResponseType.FILES:
        count = reader.count("file count", 2 * WORD)
        files = tuple(
            File(reader.text(f"file {index + 1} name"), reader.blob(f"file {index + 1} data"))
            for index in range(count)
        )
        reader.end()
        response = FilesResponse(files)
    else:
        response = MetadataResponse(reader.u64("failure domain"), reader.u64("weight"))
    return response
