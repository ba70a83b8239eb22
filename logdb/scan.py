"""The open scan: read the whole store once, check it, and rebuild every replica's view.

Why read everything: RocksDB checks a data block's checksum only when the block is
read, and opening a store reads none of them. One full scan at open (with checksum
verification, bypassing the block cache) finds a flipped bit anywhere in the tables
before any of it is used; a Raft log is compacted after each snapshot, so the scan
stays short. The scan also checks what checksums cannot: well-formed keys, no hole
in any replica's entries, a snapshot and hard state consistent with the entries.

Rules:
- rocksdict's `keys()`/`items()` iterators stop silently on a read error, as if the
  store ended there; only `RdictIter` with a `status()` check after the loop is used.
- On a read error, each replica known so far is probed alone, so the error names the
  replicas whose data is damaged rather than only the position where the scan stopped.
"""

from __future__ import annotations

from rocksdict import Rdict, ReadOptions

from logdb import keys
from logdb.errors import CorruptionError
from logdb.view import ReplicaKey, ReplicaView, StoredReplica, recover_view


def _bulk_read_options() -> ReadOptions:
    options = ReadOptions()
    options.fill_cache(False)  # type: ignore[call-arg]  # the stub omits the flag
    options.set_verify_checksums(True)
    return options


def scan_store(db: Rdict, path: str) -> dict[ReplicaKey, ReplicaView]:
    found: dict[ReplicaKey, StoredReplica] = {}
    error, last_key = _walk(db, found)
    if error is not None:
        damaged = _probe(db, found)
        where = "at the start" if last_key is None else f"after {_describe(last_key)}"
        raise CorruptionError(f"store at {path} is damaged {where}: {error}", damaged)
    views: dict[ReplicaKey, ReplicaView] = {}
    for (shard_id, replica_id), stored in found.items():
        if stored.entry_count:
            last = keys.entry_key(
                keys.prefix(keys.KIND_ENTRY, shard_id, replica_id), stored.last_index
            )
            try:
                stored.last_entry = db.get(last)
            except Exception as e:
                raise CorruptionError(
                    f"store at {path}: cannot read a last entry: {e}", [(shard_id, replica_id)]
                ) from None
        views[(shard_id, replica_id)] = recover_view(shard_id, replica_id, stored)
    return views


def _walk(db: Rdict, found: dict[ReplicaKey, StoredReplica]) -> tuple[str | None, bytes | None]:
    """Read every key in order into `found`; (error text or None, last key read)."""
    it = db.iter(_bulk_read_options())
    it.seek_to_first()
    last_key: bytes | None = None
    current_prefix = b""
    current = StoredReplica()
    while it.valid():
        key: bytes = it.key()
        kind = key[0]
        if kind == keys.KIND_ENTRY and len(key) == keys.ENTRY_KEY_LEN:
            if key[: keys.PREFIX_LEN] != current_prefix:
                current_prefix = key[: keys.PREFIX_LEN]
                _, shard_id, replica_id = keys.parse_prefix(key)
                current = found.setdefault((shard_id, replica_id), StoredReplica())
                current.first_index = keys.entry_index(key)
            current.entry_count += 1
            current.last_index = keys.entry_index(key)
        elif keys.KIND_BOOTSTRAP <= kind <= keys.KIND_SNAPSHOT and len(key) == keys.PREFIX_LEN:
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
            return f"unexpected key {key.hex()}", last_key
        last_key = key
        it.next()
    try:
        it.status()
    except Exception as e:
        return str(e), last_key
    return None, last_key


def _probe(db: Rdict, found: dict[ReplicaKey, StoredReplica]) -> list[ReplicaKey]:
    """The replicas, among those seen, whose own records cannot be read back whole."""
    damaged = []
    for shard_id, replica_id in sorted(found):
        try:
            for kind in (keys.KIND_BOOTSTRAP, keys.KIND_STATE, keys.KIND_SNAPSHOT):
                db.get(keys.prefix(kind, shard_id, replica_id), read_opt=_bulk_read_options())
            prefix = keys.prefix(keys.KIND_ENTRY, shard_id, replica_id)
            options = _bulk_read_options()
            options.set_iterate_upper_bound(keys.entry_range_end(prefix))
            it = db.iter(options)
            it.seek(prefix)
            while it.valid():
                it.next()
            it.status()
        except Exception:
            damaged.append((shard_id, replica_id))
    return damaged


def _describe(key: bytes) -> str:
    if len(key) < keys.PREFIX_LEN:
        return f"key {key.hex()}"
    kind, shard_id, replica_id = keys.parse_prefix(key)
    name = {
        keys.KIND_META: "the header",
        keys.KIND_BOOTSTRAP: f"the bootstrap of shard {shard_id} replica {replica_id}",
        keys.KIND_STATE: f"the hard state of shard {shard_id} replica {replica_id}",
        keys.KIND_SNAPSHOT: f"the snapshot of shard {shard_id} replica {replica_id}",
    }.get(kind)
    if name is not None:
        return name
    if kind == keys.KIND_ENTRY and len(key) == keys.ENTRY_KEY_LEN:
        return f"entry {keys.entry_index(key)} of shard {shard_id} replica {replica_id}"
    return f"key {key.hex()}"
