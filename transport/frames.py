"""The wire format: one MessageBatch per gRPC frame, built from pre-encoded messages.

Rules:
- A message is encoded once, when it is queued, as the bytes of one `requests` entry
  of a MessageBatch (tag, length, message). A frame is the batch header followed by
  those records: protobuf reads concatenated fields as one message, so the frame
  decodes as a MessageBatch without a second encode on the send path.
- Encoding at queue time also snapshots the message: the engine may reuse or change
  its objects after `send` returns.
- Which message types may cross the wire is decided here, once for both directions.
"""

from __future__ import annotations

from protos import raft_pb2 as pb

# Bumped when the wire format changes incompatibly; a batch or chunk of another
# version is rejected (the Ack and chunk formats are part of it).
BIN_VERSION = 1

SERVICE = "nodehost.raft.Raft"
BATCH_METHOD = f"/{SERVICE}/SendBatches"
SNAPSHOT_METHOD = f"/{SERVICE}/SendSnapshot"
IDENTIFY_METHOD = f"/{SERVICE}/Identify"

MAX_UINT64 = 2**64 - 1

# Only these travel between NodeHosts; the local inputs (LOCAL_TICK ... SNAPSHOT_RECEIVED)
# are made by a NodeHost for its own core, and INVALID (0) is what a zeroed or
# truncated message reads as.
REMOTE_TYPES = frozenset(
    {
        pb.REPLICATE,
        pb.REPLICATE_RESP,
        pb.REQUEST_VOTE,
        pb.REQUEST_VOTE_RESP,
        pb.REQUEST_PRE_VOTE,
        pb.REQUEST_PRE_VOTE_RESP,
        pb.INSTALL_SNAPSHOT,
        pb.HEARTBEAT,
        pb.HEARTBEAT_RESP,
        pb.READ_INDEX,
        pb.READ_INDEX_RESP,
        pb.TIMEOUT_NOW,
        pb.QUIESCE,
        pb.RATE_LIMIT,
        pb.PROPOSE_FORWARD,
        pb.LEADER_TRANSFER,  # a follower forwards a transfer request to its leader
    }
)

_REQUESTS_TAG = 4 << 3 | 2  # MessageBatch.requests: field 4, length-delimited
_SHORT_PREFIX = [bytes((_REQUESTS_TAG, n)) for n in range(128)]


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_serialize = pb.Message.SerializeToString


def message_records(messages: list[pb.Message]) -> list[bytes]:
    """Each message encoded as one `requests` entry of a MessageBatch."""
    short = _SHORT_PREFIX
    return [
        (short[len(data)] if len(data) < 128 else _long_prefix(len(data))) + data
        for data in map(_serialize, messages)
    ]


def _long_prefix(n: int) -> bytes:
    return bytes((_REQUESTS_TAG,)) + varint(n)


def batch_header(deployment_id: int, source_address: str) -> bytes:
    return pb.MessageBatch(
        deployment_id=deployment_id, source_address=source_address, bin_ver=BIN_VERSION
    ).SerializeToString()


def metadata_only(message: pb.Message) -> bool:
    """True for an INSTALL_SNAPSHOT that may travel in a batch: a witness's or an
    on-disk state machine's snapshot, with no file. Any other goes as a chunk stream."""
    s = message.snapshot
    return (s.dummy or s.witness) and not s.filepath and len(s.files) == 0


def ack(received: int) -> bytes:
    return pb.Ack(received=received).SerializeToString()
