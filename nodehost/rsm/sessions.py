"""The replicated side of client sessions (Raft thesis 6.3): results kept for retries.

Rules:
- Every replica holds the same table after the same entries: the table changes only
  through applied entries, and its eviction order (least recently used first) depends
  only on the order entries touch sessions, never on time, batching or the host.
- A session remembers the result of each series id it applied until the client says,
  through `responded_to`, that it has seen it. A retry of a remembered series gets the
  remembered result and is not applied again; a retry of a forgotten one is ignored.
- The table is written into every snapshot with `encode` (a canonical encoding, so
  equal tables have equal bytes and equal hashes) and read back with `decode`.
"""

from __future__ import annotations

import hashlib
import struct
from collections import OrderedDict

from statemachine import Result

# Sessions kept per shard (Dragonboat's LRUMaxSessionCount). Part of the replicated
# state: every replica must use the same value, so it is not a setting.
MAX_SESSIONS = 4096

_TABLE = struct.Struct(">II")  # capacity, session count
_SESSION = struct.Struct(">QQI")  # client id, responded-to, result count
_RESULT = struct.Struct(">QB")  # series id, length of the value's bytes
_DATA_LEN = struct.Struct(">I")


class SessionTableCorrupt(ValueError):
    """The encoded table does not parse: the snapshot holding it is damaged."""


class ClientSession:
    """One client's remembered results, by series id."""

    __slots__ = ("client_id", "history", "responded_to")

    def __init__(self, client_id: int, responded_to: int = 0) -> None:
        self.client_id = client_id
        self.responded_to = responded_to
        self.history: dict[int, Result] = {}

    def clear_to(self, responded_to: int) -> None:
        """The client has seen every result up to `responded_to`: forget them."""
        if responded_to <= self.responded_to:
            return
        # The history holds only series above responded_to (see `add`), so the usual
        # step of one forgets at most one result.
        step = responded_to - self.responded_to
        self.responded_to = responded_to
        if step == 1:
            self.history.pop(responded_to, None)
        else:
            for series_id in [s for s in self.history if s <= responded_to]:
                del self.history[series_id]

    def has_responded(self, series_id: int) -> bool:
        return series_id <= self.responded_to

    def cached(self, series_id: int) -> Result | None:
        return self.history.get(series_id)

    def add(self, series_id: int, result: Result) -> None:
        """Remember a result, unless the client already said it has seen it.

        The guard makes the table independent of how entries were batched: a result
        learned after a later entry advanced `responded_to` past it is dropped, exactly
        as if it had been stored first and then cleared.
        """
        if series_id <= self.responded_to:
            return
        if series_id in self.history:
            raise AssertionError(f"client {self.client_id} series {series_id} applied twice")
        self.history[series_id] = result


class SessionTable:
    """All sessions of one shard, evicted least recently used first past `capacity`."""

    def __init__(self, capacity: int = MAX_SESSIONS) -> None:
        if capacity <= 0:
            raise ValueError("a session table needs room for at least one session")
        self.capacity = capacity
        self._sessions: OrderedDict[int, ClientSession] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._sessions

    def get(self, client_id: int) -> ClientSession | None:
        """The client's session, now the most recently used; None if unknown or evicted."""
        session = self._sessions.get(client_id)
        if session is not None:
            self._sessions.move_to_end(client_id)
        return session

    def register(self, client_id: int) -> bool:
        """Create the session; False if it exists already (it is touched, not reset)."""
        if self.get(client_id) is not None:
            return False
        self._sessions[client_id] = ClientSession(client_id)
        while len(self._sessions) > self.capacity:
            self._sessions.popitem(last=False)
        return True

    def unregister(self, client_id: int) -> bool:
        """Remove the session; False if it is unknown."""
        return self._sessions.pop(client_id, None) is not None

    def encode(self) -> bytes:
        """Canonical bytes: sessions in eviction order, results by series id."""
        out = [_TABLE.pack(self.capacity, len(self._sessions))]
        for s in self._sessions.values():
            out.append(_SESSION.pack(s.client_id, s.responded_to, len(s.history)))
            for series_id in sorted(s.history):
                result = s.history[series_id]
                value = _int_bytes(result.value)
                out.append(_RESULT.pack(series_id, len(value)))
                out.append(value)
                out.append(_DATA_LEN.pack(len(result.data)))
                out.append(result.data)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> SessionTable:
        try:
            return cls._decode(memoryview(data))
        except (struct.error, ValueError) as e:
            raise SessionTableCorrupt(f"malformed session table: {e}") from e

    @classmethod
    def _decode(cls, view: memoryview) -> SessionTable:
        capacity, count = _TABLE.unpack_from(view, 0)
        pos = _TABLE.size
        table = cls(capacity)
        for _ in range(count):
            client_id, responded_to, n = _SESSION.unpack_from(view, pos)
            pos += _SESSION.size
            session = ClientSession(client_id, responded_to)
            for _ in range(n):
                series_id, value_len = _RESULT.unpack_from(view, pos)
                pos += _RESULT.size
                value = int.from_bytes(_take(view, pos, value_len), "big", signed=True)
                pos += value_len
                (data_len,) = _DATA_LEN.unpack_from(view, pos)
                pos += _DATA_LEN.size
                data = bytes(_take(view, pos, data_len))
                pos += data_len
                session.history[series_id] = Result(value, data)
            if client_id in table._sessions:
                raise ValueError(f"client {client_id} appears twice")
            table._sessions[client_id] = session
        if pos != len(view):
            raise ValueError(f"{len(view) - pos} bytes after the last session")
        return table

    def digest(self) -> bytes:
        return hashlib.blake2b(self.encode(), digest_size=8).digest()


def check_result_value(value: int) -> None:
    """Raise unless `value` fits the table's encoding (a signed integer of 255 bytes)."""
    if value.bit_length() >= 255 * 8:
        raise ValueError("Result.value is too large to keep in a session")


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)


def _take(view: memoryview, pos: int, n: int) -> memoryview:
    if pos + n > len(view):
        raise ValueError("truncated")
    return view[pos : pos + n]
