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
from typing import TYPE_CHECKING, Any, TypeVar

from logdb import ILogDB, StoreClosedError, WriteError
from nodehost.errors import Closed
from nodehost.limits import DEFAULT_MAX_MESSAGE_SIZE
from nodehost.metrics import Metrics
from nodehost.parts import WALL_CLOCK, Clock
from nodehost.raft import Peer, Update
from nodehost.receive import ReceiveQueue
from nodehost.request import ResultCode, batched_wakeups
from nodehost.runtime import Runtime
from protos import raft_pb2 as pb
from transport import ITransport

if TYPE_CHECKING:
    from nodehost.node import Node

log = logging.getLogger("nodehost.engine")
T = TypeVar("T")


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
        self.nodes: dict[int, Node] = {}
        self.listener: EngineListener | None = None
        self._rng = rng or random.Random()
        # Sets of replicas are dicts (insertion-ordered): a pass steps replicas in the
        # order they became ready, the same in every run of a simulation.
        self._ready: dict[Node, None] = {}
        # Ticks reach only replicas that are not quiesced, and deadlines are checked only
        # for replicas that may hold requests: a tick costs nothing per idle replica.
        self._awake: dict[Node, None] = {}
        self._expiring: dict[Node, None] = {}
        self._from_threads: list[Node] = []
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

    def wake_from_thread(self, node: Node) -> None:
        """Called by user and apply threads after queueing input for `node`."""
        if self._closing:
            raise Closed("the NodeHost is closed")
        with self._from_threads_lock:
            self._from_threads.append(node)
            if self._wake_scheduled:
                return
            self._wake_scheduled = True
        self.loop.call_soon_threadsafe(self._on_thread_wake)

    def _on_thread_wake(self) -> None:
        with self._from_threads_lock:
            nodes, self._from_threads = self._from_threads, []
            self._wake_scheduled = False
        ready, expiring = self._ready, self._expiring
        for node in nodes:
            ready[node] = None
            expiring[node] = None  # every request is queued with a wake
        self._wake.set()

    def wake(self, node: Node) -> None:
        """On the loop: mark `node` as having input."""
        self._ready[node] = None
        self._wake.set()

    def read_ctx_low(self) -> int:
        return self._rng.getrandbits(64)

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
            for node in list(self._expiring):
                node.expire(now)
                if not node.has_pending():
                    del self._expiring[node]
        if self._awake:
            self._ready.update(self._awake)
            self._wake.set()

    async def _pass(self) -> None:
        ready, self._ready = self._ready, {}
        tick = self._tick
        work: list[tuple[Node, Update]] = []
        for node in ready:
            if node.stopped or node.failed is not None:
                node.discard_inbox()
                continue
            ticks = tick - node.last_tick
            node.last_tick = tick
            if node.quiesced:
                ticks = 0
            try:
                update = node.step_inputs(ticks)
            except Exception as exc:
                self._replica_raised(node, "stepping its core", exc)
                continue
            if node.peer.quiesced is not node.quiesced:
                node.quiesced = not node.quiesced
                if node.quiesced:
                    self._awake.pop(node, None)
                else:
                    self._awake[node] = None
            if update is not None:
                work.append((node, update))
        if not work:
            return
        for node, update in work:
            if update.replicate:
                try:
                    self._send(update.replicate)
                except Exception as exc:
                    self._replica_raised(node, "sending", exc)
        work = [(n, u) for n, u in work if n.failed is None]
        records = [u for _, u in work if u.state is not None or u.entries or u.snapshot]
        if records:
            started = time.perf_counter()
            await self._save(records, {id(u): n for n, u in work})
            self.metrics.logdb_save(len(records), time.perf_counter() - started)
            work = [(n, u) for n, u in work if n.failed is None]
        for node, update in work:
            try:
                reader = node.log_reader
                if update.snapshot is not None:
                    reader.apply_snapshot(update.snapshot)
                if update.entries:
                    reader.append(update.entries)
                if update.state is not None:
                    reader.set_state(update.state)
            except Exception as exc:
                self._replica_raised(node, "reading back what it saved", exc)
        for node, update in work:
            if update.messages and node.failed is None:
                try:
                    self._send(update.messages)
                except Exception as exc:
                    self._replica_raised(node, "sending", exc)
        with batched_wakeups():  # reads released by this pass wake each loop once
            for node, update in work:
                if node.stopped or node.failed is not None:
                    continue
                try:
                    node.peer.commit_update(update)
                    node.on_update(update)
                except Exception as exc:
                    self._replica_raised(node, "committing its update", exc)
                    continue
                if node.peer.has_update():
                    self._ready[node] = None

    async def _save(self, records: list[Update], owners: dict[int, Node]) -> None:
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
                node = owners.get(id(record))
                if node is None:
                    raise
                self._replica_raised(node, "saving its update", exc)

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
                node = self.nodes.get(m.shard_id)
                if snapshot.witness or (snapshot.dummy and node is None):
                    plain.append(m)
                elif snapshot.dummy:
                    assert node is not None
                    copy = pb.Message()
                    copy.CopyFrom(m)
                    node.submit_apply("stream", copy)
                else:
                    self._send_snapshot(m)
        if plain:
            transport.send(plain)

    def deliver_threadsafe(self, node: Node, message: pb.Message) -> None:
        """Queue a message for `node` from another thread."""
        node.inbox.append(message)
        self.wake_from_thread(node)

    def send_snapshot_threadsafe(self, message: pb.Message) -> None:
        self.loop.call_soon_threadsafe(self._send_snapshot, message)

    def _send_snapshot(self, message: pb.Message) -> None:
        """On the loop: stream a snapshot; its outcome comes back through the transport."""
        if self.transport is None:
            return
        if self.listener is not None:
            self.listener.snapshot_send_started(message)
        self.transport.send_snapshot(message)

    def _replica_raised(self, node: Node, doing: str, exc: BaseException) -> None:
        """One replica failed while the engine drove it: it stops, the others go on."""
        if node.failed is not None:
            return
        log.error(
            "shard %d replica %d failed %s; it stops, the other replicas go on",
            node.shard_id,
            node.replica_id,
            doing,
            exc_info=exc,
        )
        node.failed = f"failed {doing}: {exc!r}"
        self._replica_stopped(node, node.failed)

    def _replica_stopped(self, node: Node, reason: str) -> None:
        """On the loop: `node` failed (node.failed is set); report it once and complete
        everything it had pending with the reason."""
        if node.stopped:
            return
        node.stopped = True
        node.discard_inbox()
        self._forget(node)
        node.fail_all(
            ResultCode.TERMINATED, f"shard {node.shard_id} stopped: {reason}", node.failure_error
        )
        self.metrics.replica_failed(node.shard_id)
        if self.listener is not None:
            self.listener.replica_failed(node, reason)

    def _fail_stop(self, reason: str) -> None:
        """LogDB or an invariant failed: nothing more may be acknowledged."""
        self._fatal = reason
        for node in self.nodes.values():
            node.stopped = True
            node.fail_all(ResultCode.TERMINATED, reason)

    # ---------------------------------------------------------------- apply workers

    def schedule_apply(self, node: Node) -> None:
        self.runtime.apply(node.apply_worker, node.run_apply)

    # ---------------------------------------------------------------- node callbacks

    def leader_changed(self, node: Node) -> None:
        if self.listener is not None:
            self.listener.leader_changed(node)

    def membership_changed(self, node: Node) -> None:
        if self.listener is not None:
            self.listener.membership_changed(node)

    def applied(self, node: Node, count: int, seconds: float) -> None:
        self.metrics.applied(node.shard_id, count, seconds)
        if node.rate_limited:  # applying shrinks the in-memory log: look again
            self.wake_from_thread(node)

    def dropped(self, node: Node, proposals: int, reads: int) -> None:
        self.metrics.dropped(node.shard_id, proposals, reads)

    def snapshot_not_saved(self, node: Node) -> None:
        self.metrics.snapshot("save_failed")

    def replica_failed(self, node: Node, reason: str) -> None:
        """From the apply worker: its replica failed (node.failed is set)."""
        self.loop.call_soon_threadsafe(self._replica_stopped, node, reason)

    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, overhead: int) -> None:
        """On the apply thread: record the snapshot, then compact the log behind it."""
        self.logdb.save_snapshot(node.shard_id, node.replica_id, snapshot)
        compact_to = snapshot.index - overhead if snapshot.index > overhead else 0

        def on_loop() -> None:
            node.log_reader.create_snapshot(snapshot)
            if compact_to > 0:
                node.log_reader.compact(compact_to)
                if compact_to > 1:
                    self.runtime.io_later(
                        lambda: self.logdb.remove_entries_to(
                            node.shard_id, node.replica_id, compact_to - 1
                        ),
                        lambda error: self._log_db_compacted(node, compact_to - 1, error),
                    )
            if self.listener is not None:
                self.listener.snapshot_created(node, snapshot, compact_to)

        self.loop.call_soon_threadsafe(on_loop)

    def _log_db_compacted(self, node: Node, index: int, error: BaseException | None) -> None:
        """On the IO thread: the store dropped the entries up to `index`, or failed to."""
        if error is not None:
            log.warning(
                "shard %d replica %d: removing entries up to %d from the log store failed: %s",
                node.shard_id,
                node.replica_id,
                index,
                error,
            )
        elif self.listener is not None:
            self.listener.log_db_compacted(node, index)

    def snapshot_recovered(self, node: Node, snapshot: pb.Snapshot) -> None:
        if self.listener is not None:
            self.listener.snapshot_recovered(node, snapshot)

    # ---------------------------------------------------------------- nodes

    def add_node(self, node: Node) -> None:
        """On the loop."""
        self.nodes[node.shard_id] = node
        node.last_tick = self._tick
        if not node.quiesced:
            self._awake[node] = None
        self.wake(node)

    def remove_node(self, shard_id: int) -> Node | None:
        """On the loop."""
        node = self.nodes.pop(shard_id, None)
        if node is not None:
            node.stopped = True
            node.discard_inbox()
            self._forget(node)
        return node

    def _forget(self, node: Node) -> None:
        self._ready.pop(node, None)
        self._awake.pop(node, None)
        self._expiring.pop(node, None)

    def peers(self) -> Iterable[Peer]:
        return (n.peer for n in self.nodes.values())


class EngineListener:
    """What the engine reports to its NodeHost (called on the loop or apply threads)."""

    def leader_changed(self, node: Node) -> None: ...
    def membership_changed(self, node: Node) -> None: ...
    def replica_failed(self, node: Node, reason: str) -> None: ...
    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, compacted_to: int) -> None: ...
    def snapshot_recovered(self, node: Node, snapshot: pb.Snapshot) -> None: ...
    def snapshot_send_started(self, message: pb.Message) -> None: ...
    def log_db_compacted(self, node: Node, index: int) -> None: ...
