"""The engine: one asyncio loop per NodeHost that drives every replica in batched passes.

One pass (Raft thesis 10.2.1):
  1. step every replica with queued input (messages, proposals, reads, ticks),
  2. send the leaders' REPLICATE messages at once, so followers save in parallel,
  3. save the updates of all replicas in ONE LogDB write with ONE fsync (off the loop,
     unless the pass is small: INLINE_SAVE_ENTRIES),
  4. send the remaining messages (votes and acknowledgements only leave after 3),
  5. commit_update, then hand committed entries to the apply workers (those saved
     here in an earlier pass go before 3: Update.saved_committed).

Rules:
- The loop thread is the only one that touches a Peer; nothing on it blocks but a small
  pass's LogDB write (bigger ones run on one IO thread; state machines and snapshots on
  apply threads).
- Passes never overlap, so no replica is stepped while its previous update is unsaved.
- Other threads wake the loop at most once per pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from logdb import ILogDB
from nodehost.errors import Closed, Timeout
from nodehost.limits import DEFAULT_MAX_MESSAGE_SIZE
from nodehost.metrics import Metrics
from nodehost.mutations import ACK_BEFORE_FSYNC, LazySaves
from nodehost.raft import Peer, Update
from nodehost.receive import ReceiveQueue
from nodehost.request import ResultCode, batched_wakeups
from protos import raft_pb2 as pb
from transport import ITransport

if TYPE_CHECKING:
    from nodehost.node import Node

log = logging.getLogger("nodehost.engine")
# A pass whose save holds at most this many entries writes (and fsyncs) on the loop
# thread; a bigger one on the IO thread, so the loop decodes what arrives meanwhile.
INLINE_SAVE_ENTRIES = 8
T = TypeVar("T")


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
        except ImportError:  # pragma: no cover - platforms without uvloop
            pass
    return asyncio.new_event_loop()


class Engine:
    def __init__(
        self,
        logdb: ILogDB,
        rtt_millisecond: int,
        apply_workers: int,
        notify_commit: bool,
        metrics: Metrics,
        use_uvloop: bool = True,
        receive_queue: ReceiveQueue | None = None,
    ) -> None:
        self.logdb = logdb
        self.rtt = rtt_millisecond / 1000.0
        self.notify_commit = notify_commit
        self.metrics = metrics
        self.transport: ITransport | None = None
        # Messages from peers waiting for a pass, bounded in bytes (receive.py).
        self.receive_queue = receive_queue or ReceiveQueue(2 * DEFAULT_MAX_MESSAGE_SIZE)
        self.nodes: dict[int, Node] = {}
        self.listener: EngineListener | None = None
        self.lazy_saves: LazySaves | None = None  # test-only, see mutations.py
        self._rng = random.Random()
        self._ready: set[Node] = set()
        # Ticks reach only replicas that are not quiesced, and deadlines are checked only
        # for replicas that may hold requests: a tick costs nothing per idle replica.
        self._awake: set[Node] = set()
        self._expiring: set[Node] = set()
        self._from_threads: list[Node] = []
        self._from_threads_lock = threading.Lock()
        self._wake_scheduled = False
        self._tick = 0
        self._fatal: str | None = None
        self._closing = False
        self.loop = new_event_loop(use_uvloop)
        self._wake = asyncio.Event()
        self._io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nodehost-io")
        self._apply_queues: list[queue.SimpleQueue[Node | list[Node] | None]] = []
        # During a pass, replicas with new apply work are gathered here and each apply
        # worker is woken once (a wake-up is a syscall and a GIL hand-off), not once
        # per replica: see schedule_apply.
        self._apply_batch: list[Node] | None = None
        self._apply_threads: list[threading.Thread] = []
        for i in range(apply_workers):
            q: queue.SimpleQueue[Node | list[Node] | None] = queue.SimpleQueue()
            thread = threading.Thread(
                target=self._apply_worker, args=(q,), name=f"nodehost-apply-{i}", daemon=True
            )
            self._apply_queues.append(q)
            self._apply_threads.append(thread)
            thread.start()
        self._thread = threading.Thread(target=self._run_loop, name="nodehost-engine", daemon=True)
        self._thread.start()
        self._main: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(
            self._main_loop(), self.loop
        )

    # ---------------------------------------------------------------- threads

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the engine loop from another thread and wait for it;
        Timeout (a RaftError, never the bare TimeoutError) when it did not finish."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("Engine.run called on the engine loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise Timeout(f"the NodeHost's engine did not answer within {timeout} s") from None

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Run `fn` on the engine loop and wait for its result.

        Either `fn` runs and its result is returned, or it never runs and Timeout is
        raised (a loop that did not start it within `timeout`): a caller that gave up
        never has its change made behind its back."""
        lock = threading.Lock()
        state = {"started": False, "abandoned": False}

        async def wrapper() -> T:
            with lock:
                if state["abandoned"]:
                    raise asyncio.CancelledError
                state["started"] = True
            return fn()

        if threading.current_thread() is self._thread:
            raise RuntimeError("Engine.call called on the engine loop")
        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            with lock:
                if not state["started"]:
                    state["abandoned"] = True
                    raise Timeout(
                        f"the NodeHost's engine did not answer within {timeout} s"
                    ) from None
            return future.result()  # it runs now; `fn` never awaits, so this is short

    def apply_worker_for(self, shard_id: int) -> int:
        return shard_id % len(self._apply_queues)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._thread.is_alive():

            async def stop() -> None:
                self._wake.set()
                self._main.cancel()

            try:
                self.run(stop(), timeout=5)
            except Exception:  # pragma: no cover - loop already gone
                pass
            if self.transport is not None:
                try:
                    self.run(self.transport.close(), timeout=10)
                except Exception:
                    log.exception("closing the transport failed")
            try:
                self.run(_cancel_remaining_tasks(), timeout=5)
            except Exception:  # pragma: no cover - best effort at shutdown
                log.debug("tasks left at shutdown", exc_info=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        for q in self._apply_queues:
            q.put(None)
        for thread in self._apply_threads:
            thread.join(timeout=10)
        self._io.shutdown(wait=True)
        if not self.loop.is_running():
            self.loop.close()

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
        self._ready.update(nodes)
        self._expiring.update(nodes)  # every request is queued with a wake
        self._wake.set()

    def wake(self, node: Node) -> None:
        """On the loop: mark `node` as having input."""
        self._ready.add(node)
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
            now = time.monotonic()
            for node in list(self._expiring):
                node.expire(now)
                if not node.has_pending():
                    self._expiring.discard(node)
        if self._awake:
            self._ready |= self._awake
            self._wake.set()

    async def _pass(self) -> None:
        self._apply_batch = []
        try:
            await self._step_save_send()
        finally:
            self._wake_apply_workers()
            self._apply_batch = None

    async def _step_save_send(self) -> None:
        ready, self._ready = self._ready, set()
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
            update = node.step_inputs(ticks)
            if node.peer.quiesced is not node.quiesced:
                node.quiesced = not node.quiesced
                if node.quiesced:
                    self._awake.discard(node)
                else:
                    self._awake.add(node)
            if update is not None:
                work.append((node, update))
        if not work:
            return
        transport = self.transport
        for node, update in work:
            if update.replicate:
                self._send(update.replicate)
            if update.saved_committed and not node.stopped:
                node.apply_saved(update)  # durable already: no need to wait for this save
        self._wake_apply_workers()  # they apply while this pass saves
        records = [u for _, u in work if u.state is not None or u.entries or u.snapshot]
        if self.lazy_saves is not None:  # MUTATION "ack-before-fsync" (test-only)
            records = self.lazy_saves.hold(work, records)
        if records:
            started = time.perf_counter()
            entries = 0
            synced = False
            for u in records:
                entries += len(u.entries)
                synced = synced or u.must_sync or bool(u.entries) or u.snapshot is not None
            if synced and (entries > INLINE_SAVE_ENTRIES or any(u.snapshot for u in records)):
                await self.loop.run_in_executor(self._io, self.logdb.save, records)
            else:
                # A commit index, or a few entries: written here. The hop to the IO
                # thread and back (two thread wake-ups, each waiting for the GIL) cost
                # more than building so small a batch, and it sits on every answer's
                # path; the fsync itself releases the GIL. Passes never overlap, so the
                # loop has nothing to step meanwhile: what this pass sent leaves first.
                if synced:
                    await asyncio.sleep(0)
                self.logdb.save(records)
            self.metrics.logdb_save(len(records), time.perf_counter() - started)
        for node, update in work:
            reader = node.log_reader
            if update.snapshot is not None:
                reader.apply_snapshot(update.snapshot)
            if update.entries:
                reader.append(update.entries)
            if update.state is not None:
                reader.set_state(update.state)
        for _, update in work:
            if update.messages:
                self._send(update.messages)
        with batched_wakeups():  # reads released by this pass wake each loop once
            for node, update in work:
                if node.stopped:
                    continue
                node.peer.commit_update(update)
                node.on_update(update)
                if node.peer.has_update():
                    self._ready.add(node)
        del transport

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

    def _fail_stop(self, reason: str) -> None:
        """LogDB or an invariant failed: nothing more may be acknowledged."""
        self._fatal = reason
        for node in self.nodes.values():
            node.stopped = True
            node.fail_all(ResultCode.TERMINATED, reason)

    # ---------------------------------------------------------------- apply workers

    def schedule_apply(self, node: Node) -> None:
        batch = self._apply_batch
        if batch is not None and threading.get_ident() == self._thread.ident:
            batch.append(node)  # woken by _wake_apply_workers, once per pass
        else:
            self._apply_queues[node.apply_worker].put(node)

    def _wake_apply_workers(self) -> None:
        """On the loop: hand each apply worker the replicas gathered for it."""
        batch = self._apply_batch
        if not batch:
            return
        self._apply_batch = []
        queues = self._apply_queues
        if len(queues) == 1:
            queues[0].put(batch)
            return
        by_worker: dict[int, list[Node]] = {}
        for node in batch:
            by_worker.setdefault(node.apply_worker, []).append(node)
        for worker, nodes in by_worker.items():
            queues[worker].put(nodes)

    def _apply_worker(self, q: queue.SimpleQueue[Node | list[Node] | None]) -> None:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, list):
                for node in item:
                    node.run_apply()
            else:
                item.run_apply()

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
        def on_loop() -> None:
            node.stopped = True
            node.fail_all(ResultCode.TERMINATED, reason, node.failure_error)
            if self.listener is not None:
                self.listener.replica_failed(node, reason)

        self.loop.call_soon_threadsafe(on_loop)

    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, overhead: int) -> None:
        """On the apply thread: record the snapshot, then compact the log behind it."""
        self.logdb.save_snapshot(node.shard_id, node.replica_id, snapshot)
        compact_to = snapshot.index - overhead if snapshot.index > overhead else 0

        def on_loop() -> None:
            node.log_reader.create_snapshot(snapshot)
            if compact_to > 0:
                node.log_reader.compact(compact_to)
                if compact_to > 1:
                    removed = self._io.submit(
                        self.logdb.remove_entries_to, node.shard_id, node.replica_id, compact_to - 1
                    )
                    removed.add_done_callback(
                        lambda done: self._log_db_compacted(node, compact_to - 1, done)
                    )
            if self.listener is not None:
                self.listener.snapshot_created(node, snapshot, compact_to)

        self.loop.call_soon_threadsafe(on_loop)

    def _log_db_compacted(
        self, node: Node, index: int, done: concurrent.futures.Future[None]
    ) -> None:
        """On the IO thread: the store dropped the entries up to `index`, or failed to."""
        if done.cancelled():
            return
        error = done.exception()
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
            self._awake.add(node)
        if ACK_BEFORE_FSYNC in node.config._mutations and self.lazy_saves is None:
            self.lazy_saves = LazySaves()
        self.wake(node)

    def remove_node(self, shard_id: int) -> Node | None:
        """On the loop."""
        node = self.nodes.pop(shard_id, None)
        if node is not None:
            node.stopped = True
            node.discard_inbox()
            self._ready.discard(node)
            self._awake.discard(node)
            self._expiring.discard(node)
        return node

    def peers(self) -> Iterable[Peer]:
        return (n.peer for n in self.nodes.values())


async def _cancel_remaining_tasks() -> None:
    """Let the tasks the transport leaves on the loop finish (gRPC aborts the server-side
    RPCs of peers still connected when the server stops; it needs a few loop turns), so
    closing the loop destroys no pending task. Only what is still pending after that
    is cancelled."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=1.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


class EngineListener:
    """What the engine reports to its NodeHost (called on the loop or apply threads)."""

    def leader_changed(self, node: Node) -> None: ...
    def membership_changed(self, node: Node) -> None: ...
    def replica_failed(self, node: Node, reason: str) -> None: ...
    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, compacted_to: int) -> None: ...
    def snapshot_recovered(self, node: Node, snapshot: pb.Snapshot) -> None: ...
    def snapshot_send_started(self, message: pb.Message) -> None: ...
    def log_db_compacted(self, node: Node, index: int) -> None: ...
