"""The open scan: read the whole store once, check it, and rebuild every replica's view.

Why read everything: RocksDB checks a data block's checksum only when the block is
read, and opening a store reads almost none of them. One full scan at open (checksums
verified, block cache bypassed) finds a flipped bit anywhere in the tables before any
of it is used. A Raft log is compacted after each snapshot, so the scan stays short.
It also checks what checksums cannot: well-formed keys, no hole in any replica's
entries, a snapshot and hard state consistent with the entries (view.recover_view).

How, fast: metadata records (few) are read one by one. Entries are counted one
replica at a time by draining rocksdict's key iterator into a one-slot deque, which
runs in C: about a third of the cost of a Python loop per key.

Rules:
- rocksdict's `keys()`/`items()` iterators stop silently on a read error, as if the
  range ended there. So after draining one, the last key it gave must be the last key
  of the range as an `RdictIter` (which reports errors through `status()`) finds it;
  anything else is damage.
- A read error names the replica whose range it hit; when the damage lies before any
  key that could name it, each replica known so far is probed alone.
"""

from __future__ import annotations

from collections import deque
from itertools import count

from rocksdict import Rdict, RdictIter, ReadOptions

from logdb import keys
from logdb.errors import CorruptionError
from logdb.view import ReplicaKey, ReplicaView, StoredReplica, recover_view

_FIRST_ENTRY = bytes([keys.KIND_ENTRY])


def _read_options(upper_bound: bytes | None = None) -> ReadOptions:
    options = ReadOptions()
    options.fill_cache(False)  # type: ignore[call-arg]  # the stub omits the flag
    options.set_verify_checksums(True)
    if upper_bound is not None:
        options.set_iterate_upper_bound(upper_bound)
    return options


class _Damage(Exception):
    def __init__(self, text: str, replica: ReplicaKey | None = None) -> None:
        super().__init__(text)
        self.replica = replica


def scan_store(db: Rdict, path: str) -> dict[ReplicaKey, ReplicaView]:
    found: dict[ReplicaKey, StoredReplica] = {}
    try:
        _read_metadata(db, found)
        _count_entries(db, found)
    except _Damage as damage:
        named = [damage.replica] if damage.replica else _probe(db, found)
        raise CorruptionError(f"store at {path} is damaged: {damage}", named) from None
    views: dict[ReplicaKey, ReplicaView] = {}
    for (shard_id, replica_id), stored in found.items():
        if stored.entry_count:
            prefix = keys.prefix(keys.KIND_ENTRY, shard_id, replica_id)
            try:
                stored.last_entry = db.get(keys.entry_key(prefix, stored.last_index))
            except Exception as e:
                raise CorruptionError(
                    f"store at {path}: cannot read a last entry: {e}", [(shard_id, replica_id)]
                ) from None
        views[(shard_id, replica_id)] = recover_view(shard_id, replica_id, stored)
    return views


def _status(it: RdictIter, where: str, replica: ReplicaKey | None = None) -> None:
    try:
        it.status()
    except Exception as e:
        raise _Damage(f"{where}: {e}", replica) from None


def _read_metadata(db: Rdict, found: dict[ReplicaKey, StoredReplica]) -> None:
    """Header, bootstrap, state and snapshot records: every key before the entries."""
    it = db.iter(_read_options(_FIRST_ENTRY))
    it.seek_to_first()
    last_key = b""
    while it.valid():
        key: bytes = it.key()
        kind = key[0]
        if keys.KIND_BOOTSTRAP <= kind <= keys.KIND_SNAPSHOT and len(key) == keys.PREFIX_LEN:
            _, shard_id, replica_id = keys.parse_prefix(key)
            stored = found.setdefault((shard_id, replica_id), StoredReplica())
            value: bytes = it.value()
            if kind == keys.KIND_BOOTSTRAP:
                stored.bootstrap = value
            elif kind == keys.KIND_STATE:
                stored.state = value
            else:
                stored.snapshot = value
        elif key != keys.META_KEY:
            raise _Damage(f"unexpected key {key.hex()}")
        last_key = key
        it.next()
    _status(it, f"reading the records after {_describe(last_key)}")


def _count_entries(db: Rdict, found: dict[ReplicaKey, StoredReplica]) -> None:
    """Each replica's first and last entry and how many lie between, one range at a time."""
    position = _FIRST_ENTRY
    previous = "the replicas' records"
    while True:
        it = db.iter(_read_options())
        it.seek(position)
        if not it.valid():
            _status(it, f"reading the entries after {previous}")
            return
        first: bytes = it.key()
        if first[0] != keys.KIND_ENTRY or len(first) != keys.ENTRY_KEY_LEN:
            raise _Damage(f"unexpected key {first.hex()}")
        _, shard_id, replica_id = keys.parse_prefix(first)
        replica = (shard_id, replica_id)
        end = keys.entry_range_end(first[: keys.PREFIX_LEN])
        drained = deque(zip(db.keys(from_key=first, read_opt=_read_options(end)), count()), 1)
        last, before_last = drained[0]
        assert isinstance(last, bytes)  # raw mode: keys are bytes (the stub says any key)
        it.seek_for_prev(end)
        if not it.valid() or it.key() != last:
            where = f"reading the entries of {_name(replica)}"
            _status(it, where, replica)
            it.seek(last)  # step past the last key read, to hear RocksDB say why it stopped
            it.next()
            _status(it, f"{where} after entry {keys.entry_index(last)}", replica)
            raise _Damage(f"{where}: they end early, at entry {keys.entry_index(last)}", replica)
        if len(last) != keys.ENTRY_KEY_LEN:
            raise _Damage(f"unexpected key {last.hex()}", replica)
        stored = found.setdefault(replica, StoredReplica())
        stored.first_index = keys.entry_index(first)
        stored.last_index = keys.entry_index(last)
        stored.entry_count = before_last + 1
        position = end
        previous = _name(replica)


def _probe(db: Rdict, found: dict[ReplicaKey, StoredReplica]) -> list[ReplicaKey]:
    """The replicas, among those seen, whose own records cannot be read back whole."""
    damaged = []
    for shard_id, replica_id in sorted(found):
        try:
            for kind in (keys.KIND_BOOTSTRAP, keys.KIND_STATE, keys.KIND_SNAPSHOT):
                db.get(keys.prefix(kind, shard_id, replica_id), read_opt=_read_options())
            prefix = keys.prefix(keys.KIND_ENTRY, shard_id, replica_id)
            it = db.iter(_read_options(keys.entry_range_end(prefix)))
            it.seek(prefix)
            while it.valid():
                it.next()
            it.status()
        except Exception:
            damaged.append((shard_id, replica_id))
    return damaged


def _name(replica: ReplicaKey) -> str:
    return f"shard {replica[0]} replica {replica[1]}"


def _describe(key: bytes) -> str:
    if len(key) != keys.PREFIX_LEN:
        return "the start" if not key else f"key {key.hex()}"
    kind, shard_id, replica_id = keys.parse_prefix(key)
    what = {
        keys.KIND_META: "the header",
        keys.KIND_BOOTSTRAP: "the bootstrap",
        keys.KIND_STATE: "the hard state",
        keys.KIND_SNAPSHOT: "the snapshot",
    }[kind]
    return what if kind == keys.KIND_META else f"{what} of {_name((shard_id, replica_id))}"
