"""The engine: one asyncio loop per NodeHost that drives every replica in batched passes.

One pass (Raft thesis 10.2.1):
  1. step every replica with queued input (messages, proposals, reads, ticks),
  2. send the leaders' REPLICATE messages at once, so followers save in parallel,
  3. save the updates of all replicas in ONE LogDB write with ONE fsync, off the loop,
  4. send the remaining messages (votes and acknowledgements only leave after 3),
  5. commit_update, then hand committed entries to the apply workers.

Rules:
- The loop thread is the only one that touches a Peer; nothing on it blocks (LogDB runs on
  one IO thread, state machines on apply threads, snapshots on apply threads).
- Every thread hop goes through the runtime (runtime.py): the engine runs the same on
  the threaded runtime of a server and on a simulation's single-threaded one.
- A replica reaches the engine only through its `ReplicaLink` (nodehost.replica.link):
  wake, schedule apply, deliver, report. Reports are typed events, handled on the loop
  in the order they were made.
- Passes never overlap, so no replica is stepped while its previous update is unsaved.
- Other threads wake the loop at most once per pass.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

from logdb import ILogDB, StoreClosedError, WriteError
from nodehost.errors import Closed
from nodehost.limits import DEFAULT_MAX_MESSAGE_SIZE
from nodehost.metrics import Metrics
from nodehost.parts import WALL_CLOCK, Clock
from nodehost.raft import Peer, Update
from nodehost.receive import ReceiveQueue
from nodehost.replica import (
    Replica,
    ReplicaEvent,
    ReplicaFailed,
    SnapshotCreated,
    SnapshotReady,
)
from nodehost.request import ResultCode, batched_wakeups
from nodehost.runtime import Runtime
from protos import raft_pb2 as pb
from transport import ITransport

log = logging.getLogger("nodehost.engine")
T = TypeVar("T")


class EngineListener(Protocol):
    """What the engine reports to its NodeHost (reports.py), on the loop unless said."""

    def replica_event(self, replica: Replica, event: ReplicaEvent) -> None: ...
    def snapshot_send_started(self, message: pb.Message) -> None: ...
    def log_db_compacted(self, replica: Replica, index: int) -> None:
        """On the IO thread: the store dropped the replica's entries up to `index`."""


class ReplicaLink:
    """The engine as one replica sees it (nodehost.replica.link.EngineLink).

    `wake` is bound once, not a method: it is on the path of every proposal and read."""

    __slots__ = ("_engine", "_replica", "wake")

    def __init__(self, engine: Engine, replica: Replica) -> None:
        self._engine = engine
        self._replica = replica
        self.wake: Callable[[], None] = partial(engine.wake_from_thread, replica)

    def schedule_apply(self) -> None:
        replica = self._replica
        self._engine.runtime.apply(replica.apply_worker, replica.apply.run)

    def deliver(self, message: pb.Message) -> None:
        self._replica.inputs.inbox.append(message)
        self._engine.wake_from_thread(self._replica)

    def report(self, event: ReplicaEvent) -> None:
        self._engine.report(self._replica, event)


class Engine:
    def __init__(
        self,
        logdb: ILogDB,
        runtime: Runtime,
        rtt_millisecond: int,
        notify_commit: bool,
        metrics: Metrics,
        receive_queue: ReceiveQueue | None = None,
        clock: Clock = WALL_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self.logdb = logdb
        self.runtime = runtime
        self.loop = runtime.loop
        self.clock = clock
        self.rtt = rtt_millisecond / 1000.0
        self.notify_commit = notify_commit
        self.metrics = metrics
        self.transport: ITransport | None = None
        # Messages from peers waiting for a pass, bounded in bytes (receive.py).
        self.receive_queue = receive_queue or ReceiveQueue(2 * DEFAULT_MAX_MESSAGE_SIZE)
        self.nodes: dict[int, Replica] = {}
        self.listener: EngineListener | None = None
        self._rng = rng or random.Random()
        # Sets of replicas are dicts (insertion-ordered): a pass steps replicas in the
        # order they became ready, the same in every run of a simulation.
        self._ready: dict[Replica, None] = {}
        # Ticks reach only replicas that are not quiesced, and deadlines are checked only
        # for replicas that may hold requests: a tick costs nothing per idle replica.
        self._awake: dict[Replica, None] = {}
        self._expiring: dict[Replica, None] = {}
        # What other threads hand the loop: replicas with input, and reports.
        self._from_threads: list[Replica] = []
        self._reports: list[tuple[Replica, ReplicaEvent]] = []
        self._from_threads_lock = threading.Lock()
        self._wake_scheduled = False
        self._tick = 0
        self._fatal: str | None = None
        self._closing = False
        self._wake = asyncio.Event()
        runtime.start(self._main_loop())

    # ---------------------------------------------------------------- threads

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine loop from another thread and wait for it;
        Timeout (a RaftError, never the bare TimeoutError) when it did not finish."""
        return self.runtime.run(coro, timeout)

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Run `fn` on the engine loop and wait for its result.

        Either `fn` runs and its result is returned, or it never runs and Timeout is
        raised (a loop that did not start it within `timeout`): a caller that gave up
        never has its change made behind its back."""
        return self.runtime.call(fn, timeout)

    def apply_worker_for(self, shard_id: int) -> int:
        return shard_id % self.runtime.apply_workers

    def link_for(self, replica: Replica) -> ReplicaLink:
        return ReplicaLink(self, replica)

    def new_read_rng(self) -> random.Random:
        """A generator for one replica's ReadIndex contexts, drawn from the engine's."""
        return random.Random(self._rng.getrandbits(64))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        runtime = self.runtime

        async def stop() -> None:
            self._wake.set()  # the main loop sees _closing and ends after its pass

        try:
            runtime.run(stop(), timeout=5)
        except Exception:  # pragma: no cover - loop already gone
            pass
        if self.transport is not None:
            try:
                runtime.run(self.transport.close(), timeout=10)
            except Exception:
                log.exception("closing the transport failed")
        runtime.close()

    @property
    def fatal(self) -> str | None:
        return self._fatal

    # ---------------------------------------------------------------- waking

    def wake_from_thread(self, replica: Replica) -> None:
        """Called by user and apply threads after queueing input for `replica`."""
        if self._closing:
            raise Closed("the NodeHost is closed")
        with self._from_threads_lock:
            self._from_threads.append(replica)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self.loop.call_soon_threadsafe(self._on_thread_wake)

    def report(self, replica: Replica, event: ReplicaEvent) -> None:
        """A replica's report, from any thread: handled on the loop, in order."""
        with self._from_threads_lock:
            self._reports.append((replica, event))
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._on_thread_wake)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass

    def _on_thread_wake(self) -> None:
        with self._from_threads_lock:
            replicas, self._from_threads = self._from_threads, []
            reports, self._reports = self._reports, []
            self._wake_scheduled = False
        if replicas:
            ready, expiring = self._ready, self._expiring
            for replica in replicas:
                ready[replica] = None
                expiring[replica] = None  # every request is queued with a wake
            self._wake.set()
        for replica, event in reports:
            self._handle(replica, event)

    def wake(self, replica: Replica) -> None:
        """On the loop: mark `replica` as having input."""
        self._ready[replica] = None
        self._wake.set()

    # ---------------------------------------------------------------- reports

    def _handle(self, replica: Replica, event: ReplicaEvent) -> None:
        """On the loop: what a replica reported."""
        match event:
            case ReplicaFailed(reason):
                self._replica_stopped(replica, reason)
                return
            case SnapshotReady(message):
                self._send_snapshot(message)
                return
            case SnapshotCreated(snapshot, compact_to):
                replica.loop.snapshot_created(snapshot, compact_to)
                if compact_to > 1:
                    self._compact(replica, compact_to - 1)
        if self.listener is not None:
            self.listener.replica_event(replica, event)

    def _compact(self, replica: Replica, index: int) -> None:
        shard_id, replica_id = replica.shard_id, replica.replica_id

        def done(error: BaseException | None) -> None:  # on the IO thread
            if error is not None:
                log.warning(
                    "shard %d replica %d: removing entries up to %d from the log store failed: %s",
                    shard_id,
                    replica_id,
                    index,
                    error,
                )
            elif self.listener is not None:
                self.listener.log_db_compacted(replica, index)

        self.runtime.io_later(
            lambda: self.logdb.remove_entries_to(shard_id, replica_id, index), done
        )

    # ---------------------------------------------------------------- the passes

    async def _main_loop(self) -> None:
        self._tick_handle = self.loop.call_later(self.rtt, self._on_tick)
        try:
            while not self._closing:
                if not self._ready:
                    await self._wake.wait()
                    self._wake.clear()
                try:
                    await self._pass()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._fail_stop(f"engine pass failed: {exc!r}")
                    log.exception("engine pass failed; the NodeHost stops")
                    return
        finally:
            self._tick_handle.cancel()

    def _on_tick(self) -> None:
        self._tick += 1
        self._tick_handle = self.loop.call_later(self.rtt, self._on_tick)
        if self._expiring:
            now = self.clock.monotonic()
            for replica in list(self._expiring):
                requests = replica.requests
                requests.expire(now)
                if not requests.has_pending():
                    del self._expiring[replica]
        if self._awake:
            self._ready.update(self._awake)
            self._wake.set()

    async def _pass(self) -> None:
        ready, self._ready = self._ready, {}
        tick = self._tick
        release = self.receive_queue.release
        work: list[tuple[Replica, Update]] = []
        for replica in ready:
            status = replica.status
            if status.stopped or status.failed is not None:
                size = replica.inputs.discard_inbox()
                if size:
                    release(size)
                continue
            side = replica.loop
            ticks = tick - side.last_tick
            side.last_tick = tick
            if side.quiesced:
                ticks = 0
            try:
                update = side.step(ticks)
            except Exception as exc:
                release(replica.inputs.take_inbox_bytes())
                self._replica_raised(replica, "stepping its core", exc)
                continue
            inputs = replica.inputs
            if inputs.inbox_bytes:
                release(inputs.take_inbox_bytes())
            if side.peer.quiesced is not side.quiesced:
                side.quiesced = not side.quiesced
                if side.quiesced:
                    self._awake.pop(replica, None)
                else:
                    self._awake[replica] = None
            if update is not None:
                work.append((replica, update))
        if not work:
            return
        for replica, update in work:
            if update.replicate:
                try:
                    self._send(update.replicate)
                except Exception as exc:
                    self._replica_raised(replica, "sending", exc)
        work = [(r, u) for r, u in work if r.status.failed is None]
        records = [u for _, u in work if u.state is not None or u.entries or u.snapshot]
        if records:
            started = time.perf_counter()
            await self._save(records, {id(u): r for r, u in work})
            self.metrics.logdb_save(len(records), time.perf_counter() - started)
            work = [(r, u) for r, u in work if r.status.failed is None]
        for replica, update in work:
            try:
                reader = replica.loop.log_reader
                if update.snapshot is not None:
                    reader.apply_snapshot(update.snapshot)
                if update.entries:
                    reader.append(update.entries)
                if update.state is not None:
                    reader.set_state(update.state)
            except Exception as exc:
                self._replica_raised(replica, "reading back what it saved", exc)
        for replica, update in work:
            if update.messages and replica.status.failed is None:
                try:
                    self._send(update.messages)
                except Exception as exc:
                    self._replica_raised(replica, "sending", exc)
        with batched_wakeups():  # reads released by this pass wake each loop once
            for replica, update in work:
                status = replica.status
                if status.stopped or status.failed is not None:
                    continue
                side = replica.loop
                try:
                    side.peer.commit_update(update)
                    side.advance(update)
                except Exception as exc:
                    self._replica_raised(replica, "committing its update", exc)
                    continue
                if side.peer.has_update():
                    self._ready[replica] = None

    async def _save(self, records: list[Update], owners: dict[int, Replica]) -> None:
        """Save every record in one write. A record the log store refuses (it would
        break a rule of the log: InvalidRequestError) is one replica's fault, and
        nothing of the write happened: save the others one by one and fail that
        replica alone. Any other failure is the store's, and stops the host (raised)."""
        try:
            await self._write(records)
            return
        except (WriteError, StoreClosedError):
            raise
        except Exception:
            log.warning("the log store refused a write of %d replicas; finding whose", len(records))
        for record in records:
            try:
                await self._write([record])
            except (WriteError, StoreClosedError):
                raise
            except Exception as exc:
                replica = owners.get(id(record))
                if replica is None:
                    raise
                self._replica_raised(replica, "saving its update", exc)

    async def _write(self, records: list[Update]) -> None:
        if any(u.must_sync or u.entries or u.snapshot for u in records):
            await self.runtime.io(self.logdb.save, records)
        else:
            # Only a commit index moved: an unsynced write of a few bytes costs less
            # than the hop to the IO thread and back, which sits on the commit path.
            self.logdb.save(records)

    def _send(self, messages: Sequence[pb.Message]) -> None:
        transport = self.transport
        if transport is None:
            return
        plain: list[pb.Message] = messages  # type: ignore[assignment]
        if any(m.type == pb.INSTALL_SNAPSHOT for m in messages):
            plain = []
            for m in messages:
                if m.type != pb.INSTALL_SNAPSHOT:
                    plain.append(m)
                    continue
                snapshot = m.snapshot
                replica = self.nodes.get(m.shard_id)
                if snapshot.witness or (snapshot.dummy and replica is None):
                    plain.append(m)
                elif snapshot.dummy:
                    assert replica is not None
                    copy = pb.Message()
                    copy.CopyFrom(m)
                    replica.stream_snapshot(copy)
                else:
                    self._send_snapshot(m)
        if plain:
            transport.send(plain)

    def _send_snapshot(self, message: pb.Message) -> None:
        """On the loop: stream a snapshot; its outcome comes back through the transport."""
        if self.transport is None:
            return
        if self.listener is not None:
            self.listener.snapshot_send_started(message)
        self.transport.send_snapshot(message)

    def _replica_raised(self, replica: Replica, doing: str, exc: BaseException) -> None:
        """One replica failed while the engine drove it: it stops, the others go on."""
        status = replica.status
        if status.failed is not None:
            return
        log.error(
            "shard %d replica %d failed %s; it stops, the other replicas go on",
            replica.shard_id,
            replica.replica_id,
            doing,
            exc_info=exc,
        )
        status.failed = f"failed {doing}: {exc!r}"
        self._replica_stopped(replica, status.failed)

    def _replica_stopped(self, replica: Replica, reason: str) -> None:
        """On the loop: `replica` failed (status.failed is set); report it once and
        complete everything it had pending with the reason."""
        status = replica.status
        if status.stopped:
            return
        status.stopped = True
        size = replica.inputs.discard_inbox()
        if size:
            self.receive_queue.release(size)
        self._forget(replica)
        replica.requests.fail_all(
            ResultCode.TERMINATED,
            f"shard {replica.shard_id} stopped: {reason}",
            status.failure_error,
        )
        self.metrics.replica_failed(replica.shard_id)
        if self.listener is not None:
            self.listener.replica_event(replica, ReplicaFailed(reason))

    def _fail_stop(self, reason: str) -> None:
        """LogDB or an invariant failed: nothing more may be acknowledged."""
        self._fatal = reason
        for replica in self.nodes.values():
            replica.status.stopped = True
            replica.requests.fail_all(ResultCode.TERMINATED, reason)

    # ---------------------------------------------------------------- replicas

    def add_node(self, replica: Replica) -> None:
        """On the loop."""
        self.nodes[replica.shard_id] = replica
        replica.loop.last_tick = self._tick
        if not replica.loop.quiesced:
            self._awake[replica] = None
        self.wake(replica)

    def remove_node(self, shard_id: int) -> Replica | None:
        """On the loop."""
        replica = self.nodes.pop(shard_id, None)
        if replica is not None:
            replica.status.stopped = True
            size = replica.inputs.discard_inbox()
            if size:
                self.receive_queue.release(size)
            self._forget(replica)
        return replica

    def _forget(self, replica: Replica) -> None:
        self._ready.pop(replica, None)
        self._awake.pop(replica, None)
        self._expiring.pop(replica, None)

    def peers(self) -> Iterable[Peer]:
        return (r.loop.peer for r in self.nodes.values())
