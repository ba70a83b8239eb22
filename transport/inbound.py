"""Every batch from the wire is checked here before anything reaches the engine.

Rules:
- A frame is refused whole when it is too big, does not decode, or belongs to another
  deployment or wire version. Then each message is checked on its own (type, sender,
  term, hosted replica, snapshot without a file) and only the ones that pass are
  delivered; the rest are counted and logged.
- Nothing here raises: a bad input costs a counter, and the stream it came on, like
  every other peer, keeps going.
- Addresses are never learned from what arrives here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from google.protobuf.message import DecodeError

from protos import raft_pb2 as pb
from transport.config import TransportConfig
from transport.faults import FaultHook
from transport.frames import BIN_VERSION, MAX_UINT64, REMOTE_TYPES, metadata_only
from transport.interface import TransportHandler
from transport.stats import Reject, TransportStats

log = logging.getLogger("transport")

_INSTALL_SNAPSHOT = pb.INSTALL_SNAPSHOT


class Inbound:
    def __init__(
        self,
        config: TransportConfig,
        handler: TransportHandler,
        stats: TransportStats,
        hook: Callable[[], FaultHook | None],
    ) -> None:
        self._max_size = config.max_message_size
        self._deployment_id = config.deployment_id
        self._local = config.raft_address
        self._handler = handler
        self._stats = stats
        self._hook = hook

    def on_frame(self, frame: bytes) -> None:
        """Check one MessageBatch frame and deliver what passes."""
        stats = self._stats
        if len(frame) > self._max_size:
            stats.reject(Reject.OVERSIZED, f"{len(frame)} byte frame > {self._max_size}")
            return
        try:
            batch = pb.MessageBatch.FromString(frame)
        except DecodeError as e:
            stats.reject(Reject.MALFORMED, f"undecodable batch of {len(frame)} bytes: {e}")
            return
        source = batch.source_address
        if batch.deployment_id != self._deployment_id:
            stats.reject(
                Reject.WRONG_DEPLOYMENT,
                f"batch from {source!r} of deployment {batch.deployment_id}",
            )
            return
        if batch.bin_ver != BIN_VERSION:
            stats.reject(Reject.WRONG_VERSION, f"batch from {source!r} of version {batch.bin_ver}")
            return
        messages: Sequence[pb.Message] = batch.requests
        hook = self._hook()
        if hook is not None and hook.blocks(source, self._local):
            stats.fault_dropped += len(messages)
            return
        hosted = self._handler.is_hosted
        # The fast path: one pass, delivering the decoded container as is when all pass.
        for m in messages:
            t = m.type
            if (
                t not in REMOTE_TYPES
                or not m.from_id
                or m.term == MAX_UINT64
                or not hosted(m.shard_id, m.to)
                or (t == _INSTALL_SNAPSHOT and not metadata_only(m))
            ):
                messages = self._sift(source, messages)
                break
        stats.batches_received += 1
        if not messages:
            return
        stats.messages_received += len(messages)
        try:
            self._handler.on_messages(source, messages)
        except Exception:
            stats.handler_errors += 1
            log.exception("the engine failed on a batch from %s", source)

    def _sift(self, source: str, messages: Sequence[pb.Message]) -> list[pb.Message]:
        """The slow path, once a batch holds a bad message: keep the good ones."""
        hosted = self._handler.is_hosted
        good = []
        # Counted per reason, described by the first: while a host starts thousands of
        # shards, its peers' heartbeats for those not started yet all land here.
        refused: dict[Reject, tuple[pb.Message, int]] = {}
        for m in messages:
            reason = _reason(m, hosted)
            if reason is None:
                good.append(m)
            else:
                first, count = refused.get(reason, (m, 0))
                refused[reason] = (first, count + 1)
        for reason, (m, count) in refused.items():
            self._stats.reject(
                reason,
                f"{pb.MessageType.Name(m.type) if m.type in REMOTE_TYPES else m.type} "
                f"from {source!r} (shard {m.shard_id}, {m.from_id} -> {m.to})",
                count,
            )
        return good


def _reason(m: pb.Message, hosted: Callable[[int, int], bool]) -> Reject | None:
    t = m.type
    if t not in REMOTE_TYPES:
        return Reject.LOCAL_TYPE
    if not m.from_id or m.term == MAX_UINT64:
        return Reject.BAD_FIELD
    if not hosted(m.shard_id, m.to):
        return Reject.NOT_HOSTED
    if t == _INSTALL_SNAPSHOT and not metadata_only(m):
        return Reject.SNAPSHOT_IN_BATCH
    return None
