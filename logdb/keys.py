"""Key layout of the store: fixed width, big-endian, so byte order is numeric order.

    meta       00 | 0 (8) | 0 (8)                 -> MAGIC, format version, deployment ID
    bootstrap  01 | shard_id (8) | replica_id (8) -> pb.Bootstrap
    state      02 | shard_id (8) | replica_id (8) -> pb.State
    snapshot   03 | shard_id (8) | replica_id (8) -> pb.Snapshot (metadata only)
    entry      04 | shard_id (8) | replica_id (8) | index (8) -> pb.Entry

Rules:
- One replica's entries are one contiguous key range, so compaction, suffix overwrite
  and node removal are each one range delete, and a read is one forward scan.
- Metadata kinds sort before every entry: the open scan learns which replicas exist
  before it walks their entries.
- The layout is format version 1. Changing anything here means a new version, and a
  store of another version refuses to open (errors.FormatError).
"""

from __future__ import annotations

import struct

from logdb.errors import InvalidRequestError

FORMAT_VERSION = 1
MAGIC = b"NHLOGDB\x00"

KIND_META = 0
KIND_BOOTSTRAP = 1
KIND_STATE = 2
KIND_SNAPSHOT = 3
KIND_ENTRY = 4

MAX_UINT64 = (1 << 64) - 1
PREFIX_LEN = 17  # kind + shard_id + replica_id
ENTRY_KEY_LEN = PREFIX_LEN + 8

_PREFIX = struct.Struct(">BQQ")
_META_VALUE = struct.Struct(">8sIQ")

META_KEY = _PREFIX.pack(KIND_META, 0, 0)


def prefix(kind: int, shard_id: int, replica_id: int) -> bytes:
    """The 17-byte key of a replica's metadata record of `kind`, or its entries' prefix."""
    return _PREFIX.pack(kind, shard_id, replica_id)


def entry_key(entry_prefix: bytes, index: int) -> bytes:
    return entry_prefix + index.to_bytes(8, "big")


def entry_range_end(entry_prefix: bytes) -> bytes:
    """A key above every entry key of the replica and below the next replica's."""
    return entry_prefix + b"\xff" * 8 + b"\x00"


def parse_prefix(key: bytes) -> tuple[int, int, int]:
    """(kind, shard_id, replica_id) of any key of the layout."""
    kind, shard_id, replica_id = _PREFIX.unpack_from(key)
    return kind, shard_id, replica_id


def entry_index(key: bytes) -> int:
    return int.from_bytes(key[PREFIX_LEN:], "big")


def encode_meta(deployment_id: int) -> bytes:
    return _META_VALUE.pack(MAGIC, FORMAT_VERSION, deployment_id)


def decode_meta(value: bytes) -> tuple[bytes, int, int] | None:
    """(magic, version, deployment_id), or None when the value has the wrong size."""
    if len(value) != _META_VALUE.size:
        return None
    magic, version, deployment_id = _META_VALUE.unpack(value)
    return magic, version, deployment_id


def check_id(name: str, value: int) -> None:
    """Shard and replica IDs and indexes are uint64 on disk and on the wire."""
    if not 0 <= value <= MAX_UINT64:
        raise InvalidRequestError(f"{name} {value} is outside 0..2**64-1")
