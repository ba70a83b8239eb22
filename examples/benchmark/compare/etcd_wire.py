"""The etcd v3 API messages the comparison needs, in protobuf wire format by hand.

Why by hand: the load generator must spend as little Python per request as possible
(etcd's own Go client is not in Debian), and these four messages need a few bytes
each. Field numbers are those of etcd's public API (etcdserverpb/rpc.proto):
PutRequest{key=1, value=2}, RangeRequest{key=1, serializable=7} (absent, so the read
is linearizable), StatusResponse{header=1{member_id=2}, leader=4}. Decoding reads
only what it needs and rejects malformed bytes with ValueError.
"""

from __future__ import annotations

KV_PUT = "/etcdserverpb.KV/Put"
KV_RANGE = "/etcdserverpb.KV/Range"
MAINTENANCE_STATUS = "/etcdserverpb.Maintenance/Status"

_VARINT, _LENGTH = 0, 2


def varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varint: negative")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field_bytes(number: int, data: bytes) -> bytes:
    return varint(number << 3 | _LENGTH) + varint(len(data)) + data


def put_request(key: bytes, value: bytes) -> bytes:
    return _field_bytes(1, key) + _field_bytes(2, value)


def range_request(key: bytes) -> bytes:
    return _field_bytes(1, key)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> dict[int, int | bytes]:
    """Top-level fields (last one wins); only varint and length-delimited kinds."""
    out: dict[int, int | bytes] = {}
    at = 0
    while at < len(data):
        tag, at = _read_varint(data, at)
        number, kind = tag >> 3, tag & 7
        if kind == _VARINT:
            out[number], at = _read_varint(data, at)
        elif kind == _LENGTH:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise ValueError("truncated field")
            out[number], at = data[at : at + size], at + size
        else:
            raise ValueError(f"unexpected wire type {kind} in field {number}")
    return out


def status_leader(response: bytes) -> tuple[int, int]:
    """(this member's id, the leader's id) from a StatusResponse; 0 means none."""
    top = fields(response)
    header = top.get(1, b"")
    leader = top.get(4, 0)
    if not isinstance(header, bytes) or not isinstance(leader, int):
        raise ValueError("malformed StatusResponse")
    member = fields(header).get(2, 0)
    if not isinstance(member, int):
        raise ValueError("malformed ResponseHeader")
    return member, leader
