"""What every transport does the same way: queue by target, batch, retry, report.

Rules:
- `send` runs on the engine's loop and never waits: each message is encoded, then
  queued for its target's address; a full queue drops it (counted), an unknown target
  or a target that is down drops it and tells the core the replica is unreachable.
- One writer task per remote address drains the whole queue into one frame per write,
  so one gRPC message carries every shard's messages of one pass (or of several, when
  the stream is busy): that is where the speed comes from. On a stream that can write
  without waiting (a TCP socket with room), the frame is written by one callback per
  loop turn for every address with news, with no task switch per frame; the writer
  task takes over whenever the socket must be waited for, or breaks.
- A connection that fails or breaks opens the address's circuit breaker: queued
  messages are dropped, every replica at that address is reported unreachable, and
  nothing is sent there until the jittered back-off ends; then the next message tries
  a new connection. A restarted remote is found again this way, with nothing restarted.
- Subclasses only move bytes: they connect, open snapshot streams and serve.
- Snapshots go on streams of their own (snapshot_send.py), beside this queue.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from protos import raft_pb2 as pb
from transport.breaker import Breaker
from transport.config import TransportConfig
from transport.errors import NotStarted, TransportConfigError, TransportError, describe
from transport.faults import FaultHook
from transport.frames import batch_header, message_records
from transport.hosts import HostRegistry
from transport.inbound import Inbound
from transport.interface import TransportHandler
from transport.registry import Registry
from transport.snapshot_recv import SnapshotInbox
from transport.snapshot_send import SnapshotSender, SnapshotStream
from transport.stats import TransportStats

log = logging.getLogger("transport")

_LOG_FAILURE_EVERY = 10  # after the first, log one connection failure in this many
# The receiver checks and delivers a frame in one go, on the engine's loop: this many
# small messages take it a few milliseconds, a frame of a million would stall it.
MAX_BATCH_MESSAGES = 4096


class Stream(Protocol):
    """An open batch stream to one remote address."""

    async def write(self, frame: bytes) -> None: ...

    async def close(self) -> None: ...


class ImmediateStream(Stream, Protocol):
    """A stream that can often take a frame without waiting (a socket whose buffer has
    room): `try_write` returns False, having written nothing, when it would wait.

    Nothing comes back on it, so it says itself when it breaks: `notify_lost(wake)`
    has `wake` called then, and `lost()` returns the reason from then on."""

    def try_write(self, frame: bytes) -> bool: ...

    def writable(self) -> bool:
        """Whether `try_write` would write now (connected, buffer below its mark)."""
        ...

    def notify_lost(self, wake: Callable[[], None]) -> None: ...

    def lost(self) -> BaseException | None: ...


class _Peer:
    """One remote address: its queue of encoded messages and the task that drains it."""

    __slots__ = (
        "accepting",
        "address",
        "breaker",
        "direct",
        "queued",
        "records",
        "stream",
        "task",
        "wake",
    )

    def __init__(self, address: str, breaker: Breaker) -> None:
        self.address = address
        self.records: deque[bytes] = deque()
        self.queued = 0  # bytes in records
        self.accepting = True  # False while the breaker is open
        self.wake = asyncio.Event()
        self.breaker = breaker
        self.stream: Stream | None = None
        # The stream, while the writer task waits idle on one that writes without
        # waiting: new records are then written by `_flush`, not by waking the task.
        self.direct: ImmediateStream | None = None
        self.task: asyncio.Task[None] | None = None


class BaseTransport(abc.ABC):
    def __init__(
        self,
        config: TransportConfig,
        handler: TransportHandler,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        # Hosts addressed by NodeHost id: where each id answers (hosts.py).
        self.hosts: HostRegistry | None = None
        if config.address_by_node_host_id:
            if type(self)._identify is BaseTransport._identify:
                raise TransportConfigError(
                    f"{type(self).__name__} cannot address hosts by NodeHost id"
                )
            self.hosts = HostRegistry(
                config.node_host_id,
                config.raft_address,
                config.deployment_id,
                config.seeds,
                self._identify,
                self._host_moved,
                lambda: self.registry.host_ids(),
            )
        self.registry = Registry(
            config.address_by_node_host_id,
            self.hosts.address_of if self.hosts is not None else None,
            self.hosts.wake if self.hosts is not None else None,
        )
        self.stats = TransportStats()
        self._hook: FaultHook | None = None
        self._inbound = Inbound(config, handler, self.stats, lambda: self._hook)
        self._snapshot_inbox = SnapshotInbox(config, handler, self.stats, lambda: self._hook)
        self._header = batch_header(config.deployment_id, config.raft_address)
        self._queue_limit = config.send_queue_bytes
        self._max_record = config.max_message_size - len(self._header)
        # A frame of several messages stays within the limit whatever batch_bytes says.
        self._batch_budget = min(config.batch_bytes, self._max_record)
        self._peers: dict[str, _Peer] = {}
        self._flushing: list[_Peer] = []  # addresses `_flush` writes to on this loop turn
        self._tasks: set[asyncio.Task[None]] = set()
        # Back-off jitter. A simulation hands in a seeded one: a run then replays.
        self._rng = rng or random.Random()
        self._snapshots_out = SnapshotSender(
            config, handler, self.stats, lambda: self._hook, self._open_snapshot
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._loop is not None:
            raise TransportError("transport already started")
        self._loop = asyncio.get_running_loop()
        await self._serve()
        if self.hosts is not None:
            task = self._loop.create_task(self.hosts.run(), name="transport-hosts")
            self._tasks.add(task)

    async def close(self) -> None:
        if self._closed or self._loop is None:
            self._closed = True
            return
        self._closed = True
        await self._stop_serving()  # first: the engine hears nothing more from peers
        await self._snapshots_out.close()
        tasks = [p.task for p in self._peers.values() if p.task is not None]
        tasks += self._tasks
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for peer in self._peers.values():
            if peer.stream is not None:
                await peer.stream.close()
                peer.stream = None

    def set_fault_hook(self, hook: FaultHook | None) -> None:
        self._hook = hook

    @property
    def fault_hook(self) -> FaultHook | None:
        return self._hook

    def queued_bytes(self, address: str) -> int:
        peer = self._peers.get(address)
        return 0 if peer is None else peer.queued

    # ------------------------------------------------------------------ sending

    def send(self, messages: Iterable[pb.Message]) -> None:
        if self._loop is None:
            raise NotStarted("send() before start()")
        if self._closed:
            return
        # Group by address first: the per-message work is then two field reads and
        # two dict lookups; encoding and queueing run per group, mostly in C.
        routes = self.registry._routes
        groups: dict[str, list[pb.Message]] = {}
        unknown: list[tuple[int, int]] | None = None
        for m in messages:
            key = (m.shard_id, m.to)
            address = routes.get(key)
            if address is None:
                unknown = unknown or []
                unknown.append(key)
                continue
            group = groups.get(address)
            if group is None:
                groups[address] = group = []
            group.append(m)
        for address, group in groups.items():
            self._queue(address, group)
        if unknown:
            self.stats.unroutable += len(unknown)
            self._report_unreachable(set(unknown))

    def _queue(self, address: str, group: list[pb.Message]) -> None:
        peer = self._peers.get(address)
        if peer is None:
            peer = self._add_peer(address)
        if not peer.accepting:
            self.stats.unreachable += len(group)
            self._report_unreachable({(m.shard_id, m.to) for m in group})
            return
        records = message_records(group)
        hook = self._hook
        if hook is not None:
            for record in records:
                self._send_with_faults(hook, peer, record)
            return
        sizes = list(map(len, records))
        size = sum(sizes)
        if peer.queued + size > self._queue_limit or max(sizes) > self._max_record:
            for record in records:
                self._enqueue(peer, record)  # one by one: keep what fits
            return
        if not peer.records:
            self._kick(peer)
        peer.records.extend(records)
        peer.queued += size

    def _enqueue(self, peer: _Peer, record: bytes) -> None:
        """Queue one record, or drop it if it does not fit: the slow path of `_queue`,
        and where messages held back by the fault hook come in."""
        if self._closed or not peer.accepting:
            return
        n = len(record)
        if peer.queued + n > self._queue_limit or n > self._max_record:
            self._drop(peer, n)
            return
        if not peer.records:
            self._kick(peer)
        peer.records.append(record)
        peer.queued += n

    def _send_with_faults(self, hook: FaultHook, peer: _Peer, record: bytes) -> None:
        assert self._loop is not None
        delays = hook.plan(self.config.raft_address, peer.address)
        if not delays:
            self.stats.fault_dropped += 1
        for delay in delays:
            if delay > 0:
                self._loop.call_later(delay, self._enqueue, peer, record)
            else:
                self._enqueue(peer, record)

    def _kick(self, peer: _Peer) -> None:
        """Records wait for `peer` where there were none: have them written."""
        if peer.direct is None:
            peer.wake.set()
            return
        if not self._flushing:
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        self._flushing.append(peer)

    def _flush(self) -> None:
        """Write what waits for each kicked address, on the loop, after what queued it
        (one pass's sends go out as one frame per address)."""
        peers, self._flushing = self._flushing, []
        stats = self.stats
        for peer in peers:
            stream = peer.direct
            while peer.records:  # a long queue goes in several bounded frames
                if stream is None or stream.lost() is not None or not stream.writable():
                    peer.wake.set()  # the writer task waits, reconnects or reports
                    break
                frame, count = self._take(peer)
                stream.try_write(frame)
                stats.batches_sent += 1
                stats.messages_sent += count
                if peer.breaker.failures:
                    log.info("reconnected to %s", peer.address)
                    peer.breaker.success()

    def _drop(self, peer: _Peer, size: int) -> None:
        self.stats.dropped += 1
        if size > self._max_record:
            log.error(
                "dropped a %d byte message to %s: above max_message_size %d",
                size,
                peer.address,
                self.config.max_message_size,
            )

    def _add_peer(self, address: str) -> _Peer:
        assert self._loop is not None
        peer = _Peer(address, Breaker(self.config.backoff_min, self.config.backoff_max, self._rng))
        peer.task = self._loop.create_task(self._drive(peer), name=f"transport->{address}")
        self._peers[address] = peer
        return peer

    def _take(self, peer: _Peer) -> tuple[bytes, int]:
        """One frame of queued messages: at most batch_bytes of them (at least one, and
        never past max_message_size) and at most MAX_BATCH_MESSAGES."""
        records = peer.records
        budget = self._batch_budget
        if peer.queued <= budget and len(records) <= MAX_BATCH_MESSAGES:
            count, peer.records, peer.queued = len(records), deque(), 0
            return self._header + b"".join(records), count
        taken: list[bytes] = []
        size = 0
        while (
            records
            and len(taken) < MAX_BATCH_MESSAGES
            and (not taken or size + len(records[0]) <= budget)
        ):
            record = records.popleft()
            taken.append(record)
            size += len(record)
        peer.queued -= size
        return self._header + b"".join(taken), len(taken)

    async def _drive(self, peer: _Peer) -> None:
        """The writer of one address: connect when there is work, then write frames."""
        config = self.config
        in_flight = 0  # messages of a frame being written
        while True:
            if not peer.records:
                peer.wake.clear()
                await peer.wake.wait()
            try:
                async with asyncio.timeout(config.connect_timeout):
                    stream = peer.stream = await self._connect(peer.address)
                self.stats.connects += 1
                self._connection_event(peer.address, established=True)
                # A frame a socket takes at once needs no timer: the timeout (a timer
                # armed and cancelled per frame) is paid only when the write waits.
                try_write = getattr(stream, "try_write", None)
                lost = getattr(stream, "lost", None)
                immediate = cast(ImmediateStream, stream) if try_write is not None else None
                if immediate is not None:
                    immediate.notify_lost(peer.wake.set)
                while True:
                    if not peer.records:
                        peer.wake.clear()
                        peer.direct = immediate
                        try:
                            await peer.wake.wait()
                        finally:
                            peer.direct = None
                    if lost is not None and (reason := lost()) is not None:
                        raise ConnectionError(f"connection lost: {describe(reason)}")
                    if not peer.records:
                        continue  # `_flush` wrote them meanwhile
                    frame, in_flight = self._take(peer)
                    if try_write is None or not try_write(frame):
                        async with asyncio.timeout(config.write_timeout):
                            await stream.write(frame)
                    self.stats.batches_sent += 1
                    self.stats.messages_sent += in_flight
                    in_flight = 0
                    if peer.breaker.failures:
                        # Only a frame that went out closes the breaker: a peer that
                        # accepts connections but fails every stream keeps backing off.
                        log.info("reconnected to %s", peer.address)
                        peer.breaker.success()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.stats.unreachable += in_flight
                in_flight = 0
                broken, peer.stream = peer.stream, None
                if broken is not None:
                    await broken.close()
                self._peer_down(peer, e)

    def _peer_down(self, peer: _Peer, error: BaseException) -> None:
        assert self._loop is not None
        delay = peer.breaker.failure()
        self.stats.connect_failures += 1
        self.stats.unreachable += len(peer.records)
        peer.records.clear()
        peer.queued = 0
        peer.accepting = False
        self._loop.call_later(delay, _reopen, peer)
        if peer.breaker.failures % _LOG_FAILURE_EVERY == 1:
            # A first failure is most often a peer that closed or restarts normally: a
            # note, not an operator's concern. Still failing ten tries later, it is.
            log.log(
                logging.INFO if peer.breaker.failures == 1 else logging.WARNING,
                "%s is unreachable (%s failure(s) in a row: %s); next try in %.2f s",
                peer.address,
                peer.breaker.failures,
                describe(error),
                delay,
            )
        self._report_unreachable(self.registry.replicas_at(peer.address))
        if self.hosts is not None:
            self.hosts.address_down(peer.address)
        self._connection_event(peer.address, established=False)

    def _connection_event(self, address: str, established: bool) -> None:
        try:
            self.handler.on_connection(address, established)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("the engine failed on a connection event for %s", address)

    def _report_unreachable(self, replicas: Iterable[tuple[int, int]]) -> None:
        for shard_id, replica_id in replicas:
            try:
                self.handler.on_unreachable(shard_id, replica_id)
            except Exception:
                self.stats.handler_errors += 1
                log.exception("the engine failed on unreachable (%d, %d)", shard_id, replica_id)

    # ------------------------------------------------------------------ hosts by id

    def _host_moved(self, node_host_id: str, address: str) -> None:
        self.registry.host_moved(node_host_id, address)

    async def _identify(self, address: str, hello: pb.HostHello, timeout: float) -> pb.HostHello:
        """Ask the host at `address` who it is (hosts addressed by NodeHost id)."""
        raise TransportError(f"{type(self).__name__} cannot address hosts by NodeHost id")

    # ------------------------------------------------------------------ snapshots

    def send_snapshot(self, message: pb.Message) -> None:
        if self._loop is None:
            raise NotStarted("send_snapshot() before start()")
        if self._closed:
            return
        address = self.registry.resolve(message.shard_id, message.to)
        peer = None if address is None else self._peers.get(address)
        if address is None:
            self._snapshots_out.fail(message, "no address known")
        elif peer is not None and not peer.accepting:
            self._snapshots_out.fail(message, f"{address} is down")
        else:
            self._snapshots_out.send(message, address)

    # ------------------------------------------------------------------ subclasses

    @abc.abstractmethod
    async def _serve(self) -> None:
        """Start accepting peers; raise BindError if the address is taken."""

    @abc.abstractmethod
    async def _stop_serving(self) -> None: ...

    @abc.abstractmethod
    async def _connect(self, address: str) -> Stream:
        """A ready batch stream to `address`; raise if it cannot be had."""

    @abc.abstractmethod
    async def _open_snapshot(self, address: str) -> SnapshotStream: ...


def _reopen(peer: _Peer) -> None:
    peer.accepting = True
