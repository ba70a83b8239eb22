"""Sizes and bounds: how big a frame between NodeHosts may get, what is derived from
it, and the defaults of the bounds on what a replica may hold pending (config.py).

Rules:
- One number bounds every frame: `NodeHostConfig.max_message_size`. Both ends refuse
  a bigger one, so every NodeHost of a deployment must use the same value.
- A message is never made bigger than that: a single entry is at most `max_entry_size`,
  which must fit in one frame with the largest headers protobuf can give it (checked
  when the config is built); messages with several entries are cut by the Raft core at
  `replicate_bytes`, chosen so that any cut fits; the transport packs messages into a
  frame up to its batch budget, never past the limit.
- The encoded headers are measured here, from messages whose every integer is as
  large as it can be, not guessed; the test of this module builds the worst cases.
- Every queue bound that must hold a whole message (the send queue per peer, the
  receive queue) defaults to twice `max_message_size`, and may not be set below it.
"""

from __future__ import annotations

from nodehost.raft.messages import ENTRY_OVERHEAD
from protos import raft_pb2 as pb
from transport.frames import batch_header

MiB = 1024 * 1024
DEFAULT_MAX_MESSAGE_SIZE = 64 * MiB
# Twice the transport's snapshot chunk (2 MiB), which must fit in half a frame.
MIN_MAX_MESSAGE_SIZE = 4 * MiB
# gRPC counts message lengths in a signed 32-bit int; we ask it for 1 MiB above ours.
MAX_MAX_MESSAGE_SIZE = 1024 * MiB
# Per replica (Config): what may wait in memory before calls get SystemBusy. Sized for
# a busy shard's pipeline at the default entry size (nine 8 MiB proposals in flight
# fit); a replica then holds at most a few hundred MiB. Hosts of many busy shards lower
# them so that the sum fits (README, Limits and backpressure).
DEFAULT_MAX_IN_MEM_LOG_SIZE = 128 * MiB
DEFAULT_MAX_PENDING_PROPOSALS = 2048
DEFAULT_MAX_PENDING_PROPOSAL_BYTES = 128 * MiB
DEFAULT_MAX_PENDING_READS = 4096
# Below the few seconds callers usually wait (the examples use 3 s), above what a
# healthy shard takes even on a busy machine (tens of milliseconds).
DEFAULT_MAX_QUEUE_DELAY_MS = 1000
# Bytes of entries per REPLICATE or PROPOSE_FORWARD message when the limit allows it:
# big enough that a message costs little per entry, small enough to interleave shards.
DEFAULT_REPLICATE_BYTES = 4 * MiB

_MAX = 2**64 - 1
# A length below 2**35 takes at most five bytes as a varint; frames are below 2**30.
_LENGTH_BYTES = 5


def _message_header() -> int:
    """The largest encoding of a Message without entries or snapshot."""
    return pb.Message(
        type=pb.PROPOSE_FORWARD,  # any value below 128 takes one byte
        to=_MAX,
        from_id=_MAX,
        shard_id=_MAX,
        term=_MAX,
        log_term=_MAX,
        log_index=_MAX,
        commit=_MAX,
        reject=True,
        hint=_MAX,
        hint_high=_MAX,
    ).ByteSize()


def _entry_header() -> int:
    """What one entry adds to a message beyond its command, at most: its fields, the
    command's tag and length, and the entry's own tag and length in the message."""
    fields = pb.Entry(
        term=_MAX,
        index=_MAX,
        type=pb.METADATA,
        key=_MAX,
        client_id=_MAX,
        series_id=_MAX,
        responded_to=_MAX,
    ).ByteSize()
    return fields + 2 * (1 + _LENGTH_BYTES)


MESSAGE_HEADER = _message_header()
ENTRY_HEADER = _entry_header()
RECORD_PREFIX = 1 + _LENGTH_BYTES  # a message's tag and length in the MessageBatch
# The core sizes an entry as len(cmd) + ENTRY_OVERHEAD; encoded it takes at most
# len(cmd) + ENTRY_HEADER, and entries the core reads back from the log store are cut
# by their encoded size, whose framing adds at most half again. So a cut of B bytes
# encodes to less than CUT_FACTOR * B.
CUT_FACTOR = -(-ENTRY_HEADER // ENTRY_OVERHEAD) + 2


def frame_overhead(raft_address: str, deployment_id: int) -> int:
    """The most a frame adds to the command of the one entry it carries: the batch
    header this host sends, the message's record prefix and header, the entry's."""
    header = len(batch_header(deployment_id, raft_address))
    return header + RECORD_PREFIX + MESSAGE_HEADER + ENTRY_HEADER


def largest_entry(max_message_size: int, raft_address: str, deployment_id: int) -> int:
    """The biggest command that still fits, alone, in a frame of max_message_size."""
    return max_message_size - frame_overhead(raft_address, deployment_id)


def message_size_for(max_entry_size: int) -> int:
    """A max_message_size that carries a command of max_entry_size from any NodeHost
    (raft_address up to 1 KiB, any deployment id): whole MiB, never below the default.
    For programs that raise max_entry_size; each host computes the same value."""
    needed = max_entry_size + frame_overhead("h" * 1024 + ":65535", _MAX)
    return max(DEFAULT_MAX_MESSAGE_SIZE, -(-needed // MiB) * MiB)


def replicate_bytes(max_message_size: int, raft_address: str, deployment_id: int) -> int:
    """The core's byte budget for a message of several entries, so that it fits."""
    fixed = len(batch_header(deployment_id, raft_address)) + RECORD_PREFIX + MESSAGE_HEADER
    return max(1, min(DEFAULT_REPLICATE_BYTES, (max_message_size - fixed) // CUT_FACTOR))


def queue_bytes(configured: int, max_message_size: int) -> int:
    """A queue bound that must hold a whole message: 0 picks twice the message limit."""
    return configured or 2 * max_message_size
