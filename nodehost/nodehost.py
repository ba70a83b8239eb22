"""NodeHost: the public entry point. One per process, any number of shards.

Every public method is thread-safe and may be called from any thread, including from
inside an asyncio event loop (none of them block on the engine loop for long; the
`sync_*` ones block the calling thread until done or timed out: from a coroutine, prefer
`await nh.propose(...)` and friends, which return awaitable RequestStates).
"""

from __future__ import annotations

import itertools
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from logdb import LogDBError, RocksLogDB
from nodehost import errors
from nodehost.config import Config, NodeHostConfig, parse_address
from nodehost.engine import Engine, EngineListener
from nodehost.env import Env
from nodehost.events import (
    ConnectionInfo,
    EventDispatcher,
    LeaderInfo,
    NodeInfo,
    SnapshotInfo,
)
from nodehost.logreader import CachedLogReader
from nodehost.metrics import Metrics
from nodehost.node import Node, SnapshotRequest
from nodehost.raft import Mutation, Peer, RaftConfig
from nodehost.request import RequestResult, RequestState, ResultCode
from nodehost.rsm import (
    SERIES_ID_NOOP,
    SERIES_ID_REGISTER,
    SERIES_ID_UNREGISTER,
    Session,
    SnapshotStore,
    StateMachineManager,
)
from protos import raft_pb2 as pb
from statemachine import (
    IConcurrentStateMachine,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    StateMachineType,
)
from transport import BindError, GrpcTransport, TransportConfig, TransportError

log = logging.getLogger("nodehost")

_PB_KIND = {
    StateMachineType.REGULAR: pb.REGULAR_STATE_MACHINE,
    StateMachineType.CONCURRENT: pb.CONCURRENT_STATE_MACHINE,
    StateMachineType.ON_DISK: pb.ON_DISK_STATE_MACHINE,
}


@dataclass
class SnapshotOption:
    """How `request_snapshot` should snapshot.

    exported: write the snapshot to `export_path` for backup or import; it is not used
    by this replica and the log is not compacted behind it.
    override_compaction_overhead: keep `compaction_overhead` entries behind this
    snapshot instead of the replica's configured number.
    """

    exported: bool = False
    export_path: str = ""
    override_compaction_overhead: bool = False
    compaction_overhead: int = 0


@dataclass
class Membership:
    """A shard's members: replica id -> address, per role; removed ids never return."""

    config_change_id: int
    nodes: dict[int, str]
    non_votings: dict[int, str]
    witnesses: dict[int, str]
    removed: set[int]


@dataclass
class ShardInfo:
    shard_id: int
    replica_id: int
    is_leader: bool
    is_non_voting: bool
    is_witness: bool
    leader_id: int
    term: int
    config_change_index: int
    nodes: dict[int, str]
    state_machine_type: StateMachineType
    applied_index: int
    failed: str | None = None


@dataclass
class NodeHostInfoOption:
    skip_log_info: bool = False


@dataclass
class NodeHostInfo:
    node_host_id: str
    raft_address: str
    shard_info_list: list[ShardInfo] = field(default_factory=list)
    log_info: list[tuple[int, int]] = field(default_factory=list)


class NodeHost(EngineListener):
    """Hosts replicas of many shards over one transport and one log store."""

    def __init__(self, config: NodeHostConfig) -> None:
        if not isinstance(config, NodeHostConfig):
            raise errors.InvalidConfig("NodeHost needs a NodeHostConfig")
        self.config = config
        self._lock = threading.RLock()
        self._closed = False
        self._rng = random.Random()
        self._keys = itertools.count(self._rng.getrandbits(62) + 1)
        self._stale_read_warned = False
        self._env = Env(
            config.node_host_dir, config.wal_dir, config.raft_address, config.deployment_id
        )
        self._logdb: RocksLogDB | None = None
        self._engine: Engine | None = None
        try:
            self._logdb = RocksLogDB(str(self._env.logdb_dir), deployment_id=config.deployment_id)
            self._metrics = Metrics(config.enable_metrics)
            self._events = EventDispatcher(config.raft_event_listener, config.system_event_listener)
            self._engine = Engine(
                self._logdb,
                config.rtt_millisecond,
                config.apply_workers,
                config.notify_commit,
                self._metrics,
                use_uvloop=config.use_uvloop,
            )
            self._engine.listener = self
            self._transport = GrpcTransport(
                TransportConfig(
                    raft_address=config.raft_address,
                    listen_address=config.listen_address,
                    deployment_id=config.deployment_id,
                    mutual_tls=config.mutual_tls,
                    ca_file=config.ca_file,
                    cert_file=config.cert_file,
                    key_file=config.key_file,
                    max_send_queue_size=config.max_send_queue_size,
                ),
                _TransportHandler(self),
            )
            self._engine.transport = self._transport
            self._engine.run(self._transport.start(), timeout=30)
            self._metrics.watch_transport(self._transport_stats)
        except (LogDBError, TransportError) as exc:
            self._release()
            raise errors.InvalidConfig(_open_error(config, exc)) from exc
        except BaseException:
            self._release()
            raise
        log.info("NodeHost %s listening on %s", self.id, config.listen_address)

    # ---------------------------------------------------------------- lifecycle

    @property
    def id(self) -> str:
        """This NodeHost's persistent id."""
        return self._env.node_host_id

    @property
    def raft_address(self) -> str:
        return self.config.raft_address

    def close(self) -> None:
        """Stop every replica, the transport and the engine; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._events.system_event("node_host_shutting_down")
        engine = self._engine
        if engine is not None:
            try:
                nodes = engine.call(lambda: list(engine.nodes.values()), timeout=10)
            except Exception:
                nodes = list(engine.nodes.values())
            for node in nodes:
                self._unload(node, ResultCode.TERMINATED)
        self._release()

    def _release(self) -> None:
        if self._engine is not None:
            self._engine.close()
        if self._logdb is not None:
            self._logdb.close()
            self._logdb = None
        events = getattr(self, "_events", None)
        if events is not None:
            events.close()
        self._env.close()

    def __enter__(self) -> NodeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> Engine:
        if self._closed or self._engine is None:
            raise errors.Closed("the NodeHost is closed")
        if self._engine.fatal is not None:
            raise errors.Closed(f"the NodeHost stopped: {self._engine.fatal}")
        return self._engine

    # ---------------------------------------------------------------- replicas

    def start_replica(
        self,
        initial_members: dict[int, str],
        join: bool,
        create: Callable[[int, int], IStateMachine],
        config: Config,
    ) -> None:
        """Start this host's replica of `config.shard_id`.

        New shard: join=False with every initial member's address. A replica added with
        request_add_*: join=True and no members. Restart: the same arguments as the first
        start (or empty members).
        """
        self._start(initial_members, join, create, config, StateMachineType.REGULAR)

    def start_concurrent_replica(
        self,
        initial_members: dict[int, str],
        join: bool,
        create: Callable[[int, int], IConcurrentStateMachine],
        config: Config,
    ) -> None:
        self._start(initial_members, join, create, config, StateMachineType.CONCURRENT)

    def start_on_disk_replica(
        self,
        initial_members: dict[int, str],
        join: bool,
        create: Callable[[int, int], IOnDiskStateMachine],
        config: Config,
    ) -> None:
        self._start(initial_members, join, create, config, StateMachineType.ON_DISK)

    def _start(
        self,
        initial_members: dict[int, str],
        join: bool,
        create: Callable[[int, int], Any],
        config: Config,
        kind: StateMachineType,
    ) -> None:
        engine = self._check_open()
        if not isinstance(config, Config):
            raise errors.InvalidConfig("config must be a nodehost.Config")
        members = dict(initial_members or {})
        for rid, address in members.items():
            if isinstance(rid, bool) or not isinstance(rid, int) or rid <= 0:
                raise errors.InvalidConfig(f"initial_members: bad replica id {rid!r}")
            parse_address(address, f"initial_members[{rid}]")
        if len(set(members.values())) != len(members):
            raise errors.InvalidConfig("initial_members: two replicas share an address")
        shard_id, replica_id = config.shard_id, config.replica_id
        with self._lock:
            if shard_id in engine.nodes:
                raise errors.ShardAlreadyExists(f"shard {shard_id} already runs here")
            if self._env.tombstone(shard_id, replica_id).exists():
                raise errors.ReplicaRemoved(
                    f"shard {shard_id} replica {replica_id} was removed; use a new replica id"
                )
            assert self._logdb is not None
            new = self._check_bootstrap(members, join, config, kind)
            node = self._build_node(engine, members, join, new, create, config, kind)
            engine.call(lambda: self._add_node(engine, node, members))
        self._metrics.replicas(len(engine.nodes))
        self._events.system_event("node_ready", NodeInfo(shard_id, replica_id))

    def _check_bootstrap(
        self, members: dict[int, str], join: bool, config: Config, kind: StateMachineType
    ) -> bool:
        """Compare the arguments with the record of the first start; True for a new replica."""
        assert self._logdb is not None
        shard_id, replica_id = config.shard_id, config.replica_id
        bootstrap = self._logdb.get_bootstrap(shard_id, replica_id)
        if bootstrap is not None:
            if bootstrap.type != _PB_KIND[kind]:
                raise errors.InvalidShardSettings(
                    f"shard {shard_id} replica {replica_id} was started with another "
                    f"state machine type ({pb.StateMachineType.Name(bootstrap.type)})"
                )
            if members and dict(bootstrap.addresses) != members:
                raise errors.InvalidShardSettings(
                    f"initial_members differ from the first start: {dict(bootstrap.addresses)}"
                )
            if members and join != bootstrap.join:
                raise errors.InvalidShardSettings(
                    f"join={join} but the replica first started with join={bootstrap.join}"
                )
            if join and not bootstrap.join:
                raise errors.InvalidShardSettings(
                    "join=True but the replica first started as an initial member"
                )
            return False
        if join and members:
            raise errors.InvalidShardSettings("a joining replica takes no initial_members")
        if not join:
            if not members:
                raise errors.InvalidShardSettings(
                    f"shard {shard_id} replica {replica_id} has no data here: a new shard needs "
                    "initial_members, a replica added later needs join=True"
                )
            if replica_id not in members:
                raise errors.InvalidShardSettings(
                    f"replica {replica_id} is not among initial_members {sorted(members)}"
                )
        self._logdb.save_bootstrap(
            shard_id,
            replica_id,
            pb.Bootstrap(addresses=members, join=join, type=_PB_KIND[kind]),
        )
        return True

    def _build_node(
        self,
        engine: Engine,
        members: dict[int, str],
        join: bool,
        new: bool,
        create: Callable[[int, int], Any],
        config: Config,
        kind: StateMachineType,
    ) -> Node:
        assert self._logdb is not None
        shard_id, replica_id = config.shard_id, config.replica_id
        reader = CachedLogReader(self._logdb, shard_id, replica_id)
        snapshots = SnapshotStore(
            str(self._env.snapshot_dir(shard_id, replica_id)), shard_id, replica_id
        )
        sm = None
        if not config.is_witness:
            sm = create(shard_id, replica_id)
            expected = {
                StateMachineType.REGULAR: IStateMachine,
                StateMachineType.CONCURRENT: IConcurrentStateMachine,
                StateMachineType.ON_DISK: IOnDiskStateMachine,
            }[kind]
            if not isinstance(sm, expected):
                raise errors.InvalidConfig(
                    f"create returned {type(sm).__name__}, not an {expected.__name__}"
                )
        rsm = StateMachineManager(
            shard_id,
            replica_id,
            kind,
            sm,
            snapshots,
            ordered_config_change=config.ordered_config_change,
            compression=config.snapshot_compression,
        )
        stopped = lambda: self._closed  # noqa: E731
        rsm.open(stopped)
        snapshot = reader.snapshot()
        if snapshot.index > 0:
            rsm.recover(snapshot, stopped)
            if replica_id in snapshot.membership.removed:
                raise errors.ReplicaRemoved(f"shard {shard_id} replica {replica_id} was removed")
        peer = Peer(
            RaftConfig(
                shard_id=shard_id,
                replica_id=replica_id,
                election_rtt=config.election_rtt,
                heartbeat_rtt=config.heartbeat_rtt,
                check_quorum=config.check_quorum,
                pre_vote=config.pre_vote,
                ordered_config_change=config.ordered_config_change,
                max_in_mem_log_size=config.max_in_mem_log_size,
                is_non_voting=config.is_non_voting,
                is_witness=config.is_witness,
                quiesce=config.quiesce,
                mutations=frozenset(Mutation(m) for m in config._mutations),
            ),
            reader,
            random.Random(self._rng.getrandbits(64)),
            initial_members=members if new and not join else None,
            join=join,
        )
        return Node(engine, config, peer, rsm, reader, snapshots, engine.apply_worker_for(shard_id))

    def _add_node(self, engine: Engine, node: Node, members: dict[int, str]) -> None:
        registry = self._transport.registry
        for rid, address in members.items():
            registry.add(node.shard_id, rid, address)
        self._sync_registry(node)
        engine.add_node(node)

    def stop_shard(self, shard_id: int) -> None:
        """Stop and unload this host's replica of the shard (not a membership change)."""
        engine = self._check_open()
        node = engine.nodes.get(shard_id)
        if node is None:
            raise errors.ShardNotFound(f"shard {shard_id} does not run here")
        self._unload(node, ResultCode.TERMINATED)

    def stop_replica(self, shard_id: int, replica_id: int) -> None:
        engine = self._check_open()
        node = engine.nodes.get(shard_id)
        if node is None or node.replica_id != replica_id:
            raise errors.ShardNotFound(f"shard {shard_id} replica {replica_id} does not run here")
        self._unload(node, ResultCode.TERMINATED)

    def _unload(self, node: Node, code: ResultCode) -> None:
        engine = self._engine
        assert engine is not None

        def on_loop() -> None:
            engine.remove_node(node.shard_id)
            self._transport.registry.remove_shard(node.shard_id)

        try:
            engine.call(on_loop, timeout=10)
        except Exception:
            node.stopped = True
        node.fail_all(code, "the replica was stopped")
        done = threading.Event()

        def close_sm() -> None:
            try:
                node.rsm.close()
            finally:
                done.set()

        with node.apply_lock:
            node.apply_queue.clear()
            scheduled = node.apply_scheduled
        if scheduled:
            # The worker sees `stopped` after its current task; close after it.
            deadline = time.monotonic() + 10
            while node.apply_scheduled and time.monotonic() < deadline:
                time.sleep(0.005)
        close_sm()
        self._metrics.replicas(len(engine.nodes))
        self._events.system_event("node_unloaded", NodeInfo(node.shard_id, node.replica_id))

    def remove_data(self, shard_id: int, replica_id: int) -> None:
        """Delete a stopped replica's log and snapshots; the id can never start here again."""
        engine = self._check_open()
        node = engine.nodes.get(shard_id)
        if node is not None and node.replica_id == replica_id:
            raise errors.ShardNotStopped(f"stop shard {shard_id} before removing its data")
        assert self._logdb is not None
        tombstone = self._env.tombstone(shard_id, replica_id)
        tombstone.write_text("removed\n")
        self._logdb.remove_node_data(shard_id, replica_id)
        shutil.rmtree(self._env.snapshot_dir(shard_id, replica_id), ignore_errors=True)
        self._events.system_event("node_deleted", NodeInfo(shard_id, replica_id))

    def has_node_info(self, shard_id: int, replica_id: int) -> bool:
        """True when this host has started that replica before (its bootstrap record)."""
        self._check_open()
        assert self._logdb is not None
        return self._logdb.get_bootstrap(shard_id, replica_id) is not None

    # ---------------------------------------------------------------- writes

    def get_noop_session(self, shard_id: int) -> Session:
        """A session without exactly-once bookkeeping: retries may apply twice."""
        return Session.noop(shard_id, self._rng)

    def sync_get_session(self, shard_id: int, timeout: float) -> Session:
        """Register a client session: proposals through it are applied at most once."""
        session = Session.new(shard_id, self._rng)
        session.prepare_for_register()
        result = self._propose_session(session, timeout)
        if result.result.value != session.client_id:
            raise errors.Rejected("the shard did not register the session")
        session.registered()
        return session

    def sync_close_session(self, session: Session, timeout: float) -> None:
        """Unregister a session; its deduplication state is dropped on every replica."""
        if session.is_noop():
            raise errors.InvalidSession("the no-op session cannot be closed")
        session.prepare_for_unregister()
        self._propose_session(session, timeout)

    def _propose_session(self, session: Session, timeout: float) -> RequestResult:
        rs = self._propose(session, b"", timeout)
        result = rs.wait(timeout + 0.5)
        result.raise_for_code()
        return result

    def propose(self, session: Session, cmd: bytes, timeout: float) -> RequestState:
        """Propose `cmd`; returns at once. `rs.wait()` or `await rs` gives the outcome."""
        if session.series_id in (SERIES_ID_REGISTER, SERIES_ID_UNREGISTER):
            raise errors.InvalidSession("the session is being registered or closed")
        return self._propose(session, cmd, timeout)

    def sync_propose(self, session: Session, cmd: bytes, timeout: float) -> Result:
        """Propose and wait for the state machine's Result.

        With a registered session the session advances on success; after a Timeout,
        retry with the same session and the command is applied at most once.
        """
        rs = self.propose(session, cmd, timeout)
        outcome = rs.wait(timeout + 0.5)
        outcome.raise_for_code()
        if not session.is_noop():
            session.proposal_completed()
        return outcome.result

    def _propose(self, session: Session, cmd: bytes, timeout: float) -> RequestState:
        engine = self._check_open()
        if not isinstance(cmd, bytes | bytearray | memoryview):
            raise TypeError(f"cmd must be bytes, got {type(cmd).__name__}")
        _check_timeout(timeout)
        if len(cmd) > self.config.max_entry_size:
            raise errors.PayloadTooBig(
                f"{len(cmd)} bytes is more than max_entry_size ({self.config.max_entry_size})"
            )
        node = self._node(session.shard_id)
        if node.rsm.kind is StateMachineType.ON_DISK and not session.is_noop():
            raise errors.InvalidSession("on-disk state machines need the no-op session")
        if node.peer.rate_limited():
            raise errors.SystemBusy(
                f"shard {session.shard_id}: too much unapplied log in memory; retry later"
            )
        key = next(self._keys)
        rs = RequestState(key, time.monotonic() + timeout, self.config.notify_commit)
        node.pending_proposals.add(rs)
        node.proposals.append(
            pb.Entry(
                key=key,
                client_id=session.client_id,
                series_id=session.series_id,
                responded_to=session.responded_to,
                cmd=bytes(cmd),
            )
        )
        self._metrics.proposal(session.shard_id)
        engine.wake_from_thread(node)
        return rs

    # ---------------------------------------------------------------- asyncio

    async def aio_propose(self, session: Session, cmd: bytes, timeout: float) -> Result:
        """`sync_propose` for coroutines: awaits without blocking the event loop."""
        outcome = await self.propose(session, cmd, timeout)
        outcome.raise_for_code()
        if not session.is_noop():
            session.proposal_completed()
        return outcome.result

    async def aio_read(self, shard_id: int, query: Any, timeout: float) -> Any:
        """`sync_read` for coroutines. The lookup itself runs on the calling loop."""
        (await self.read_index(shard_id, timeout)).raise_for_code()
        return self._node(shard_id).rsm.lookup(query)

    async def aio_get_session(self, shard_id: int, timeout: float) -> Session:
        session = Session.new(shard_id, self._rng)
        session.prepare_for_register()
        outcome = await self._propose(session, b"", timeout)
        outcome.raise_for_code()
        if outcome.result.value != session.client_id:
            raise errors.Rejected("the shard did not register the session")
        session.registered()
        return session

    async def aio_close_session(self, session: Session, timeout: float) -> None:
        if session.is_noop():
            raise errors.InvalidSession("the no-op session cannot be closed")
        session.prepare_for_unregister()
        (await self._propose(session, b"", timeout)).raise_for_code()

    async def aio_request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> int:
        outcome = await self.request_snapshot(shard_id, option, timeout)
        outcome.raise_for_code()
        return outcome.snapshot_index

    async def aio_get_shard_membership(self, shard_id: int, timeout: float) -> Membership:
        (await self.read_index(shard_id, timeout)).raise_for_code()
        return self._membership(shard_id)

    # ---------------------------------------------------------------- reads

    def read_index(self, shard_id: int, timeout: float) -> RequestState:
        """Start a linearizable read; once it completes, call `read_local_node`."""
        engine = self._check_open()
        _check_timeout(timeout)
        node = self._node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to read")
        rs = RequestState(next(self._keys), time.monotonic() + timeout, shard_id=shard_id)
        node.pending_reads.add(rs)
        node.reads.append(rs)
        self._metrics.read()
        engine.wake_from_thread(node)
        return rs

    def read_local_node(self, rs: RequestState, query: Any) -> Any:
        """Query the local state machine after `read_index` completed."""
        outcome = rs.result() if rs.done() else None
        if outcome is None or not outcome.completed():
            raise errors.InvalidOperation("read_local_node needs a completed read_index")
        return self._node(rs.shard_id).rsm.lookup(query)

    def sync_read(self, shard_id: int, query: Any, timeout: float) -> Any:
        """A linearizable read: reflects every write acknowledged before the call."""
        rs = self.read_index(shard_id, timeout)
        rs.wait(timeout + 0.5).raise_for_code()
        node = self._node(shard_id)
        return node.rsm.lookup(query)

    def stale_read(self, shard_id: int, query: Any) -> Any:
        """Query the local state machine now: fast, but may miss recent writes."""
        self._check_open()
        node = self._node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to read")
        if not self._stale_read_warned:
            self._stale_read_warned = True
            log.warning("stale_read may return data older than acknowledged writes")
        return node.rsm.lookup(query)

    # ---------------------------------------------------------------- snapshots

    def request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> RequestState:
        """Snapshot the state machine now; `snapshot_index` of the result tells where."""
        engine = self._check_open()
        _check_timeout(timeout)
        option = option or SnapshotOption()
        if option.exported and not option.export_path:
            raise errors.InvalidOperation("an exported snapshot needs export_path")
        if option.override_compaction_overhead and option.compaction_overhead < 0:
            raise errors.InvalidOperation("compaction_overhead must not be negative")
        node = self._node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to snapshot")
        rs = RequestState(next(self._keys), time.monotonic() + timeout)
        node.pending_snapshots.add(rs)
        node.submit_apply(
            "snapshot",
            SnapshotRequest(
                rs,
                option.export_path if option.exported else None,
                option.compaction_overhead if option.override_compaction_overhead else None,
            ),
        )
        del engine
        return rs

    def sync_request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> int:
        rs = self.request_snapshot(shard_id, option, timeout)
        outcome = rs.wait(timeout + 0.5)
        outcome.raise_for_code()
        return outcome.snapshot_index

    # ---------------------------------------------------------------- membership

    def request_add_replica(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        """Add (or promote a non-voting replica to) a voting member at `target`."""
        return self._config_change(
            shard_id, pb.ADD_NODE, replica_id, target, config_change_index, timeout
        )

    def request_delete_replica(
        self, shard_id: int, replica_id: int, config_change_index: int, timeout: float
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.REMOVE_NODE, replica_id, "", config_change_index, timeout
        )

    def request_add_non_voting(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.ADD_NON_VOTING, replica_id, target, config_change_index, timeout
        )

    def request_add_witness(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.ADD_WITNESS, replica_id, target, config_change_index, timeout
        )

    def sync_request_add_replica(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        rs = self.request_add_replica(shard_id, replica_id, target, config_change_index, timeout)
        rs.wait(timeout + 0.5).raise_for_code()

    def sync_request_delete_replica(
        self, shard_id: int, replica_id: int, config_change_index: int, timeout: float
    ) -> None:
        rs = self.request_delete_replica(shard_id, replica_id, config_change_index, timeout)
        rs.wait(timeout + 0.5).raise_for_code()

    def sync_request_add_non_voting(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        rs = self.request_add_non_voting(shard_id, replica_id, target, config_change_index, timeout)
        rs.wait(timeout + 0.5).raise_for_code()

    def sync_request_add_witness(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        rs = self.request_add_witness(shard_id, replica_id, target, config_change_index, timeout)
        rs.wait(timeout + 0.5).raise_for_code()

    def _config_change(
        self,
        shard_id: int,
        change: pb.ConfigChangeType,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        engine = self._check_open()
        _check_timeout(timeout)
        if isinstance(replica_id, bool) or not isinstance(replica_id, int) or replica_id <= 0:
            raise errors.InvalidOperation(f"bad replica id {replica_id!r}")
        if change != pb.REMOVE_NODE:
            try:
                parse_address(target, "target")
            except errors.InvalidConfig as exc:
                raise errors.InvalidOperation(str(exc)) from None
        node = self._node(shard_id)
        key = next(self._keys)
        rs = RequestState(key, time.monotonic() + timeout)
        node.pending_config_changes.add(rs)
        cc = pb.ConfigChange(
            config_change_id=config_change_index,
            type=change,
            replica_id=replica_id,
            address=target,
        )
        node.config_changes.append((cc, key))
        engine.wake_from_thread(node)
        return rs

    def request_leader_transfer(self, shard_id: int, target_replica_id: int) -> None:
        """Ask the leader to hand leadership to `target_replica_id` (best effort)."""
        engine = self._check_open()
        node = self._node(shard_id)
        node.local_calls.append(lambda peer: peer.transfer_leader(target_replica_id))
        engine.wake_from_thread(node)

    def sync_get_shard_membership(self, shard_id: int, timeout: float) -> Membership:
        """The membership as of a linearizable read."""
        rs = self.read_index(shard_id, timeout)
        rs.wait(timeout + 0.5).raise_for_code()
        return self._membership(shard_id)

    def _membership(self, shard_id: int) -> Membership:
        m = self._node(shard_id).rsm.membership
        return Membership(
            config_change_id=m.config_change_id,
            nodes=dict(m.addresses),
            non_votings=dict(m.non_votings),
            witnesses=dict(m.witnesses),
            removed=set(m.removed),
        )

    def get_leader_id(self, shard_id: int) -> tuple[int, int, bool]:
        """(leader_id, term, valid) as this replica knows it; valid is False with no leader."""
        self._check_open()
        node = self._node(shard_id)
        return node.leader_id, node.term, node.leader_id != 0

    def get_node_host_info(self, option: NodeHostInfoOption | None = None) -> NodeHostInfo:
        engine = self._check_open()
        option = option or NodeHostInfoOption()
        info = NodeHostInfo(self.id, self.raft_address)
        for node in list(engine.nodes.values()):
            m = node.peer.membership
            info.shard_info_list.append(
                ShardInfo(
                    shard_id=node.shard_id,
                    replica_id=node.replica_id,
                    is_leader=node.leader_id == node.replica_id,
                    is_non_voting=node.replica_id in m.non_votings,
                    is_witness=node.replica_id in m.witnesses,
                    leader_id=node.leader_id,
                    term=node.term,
                    config_change_index=m.config_change_id,
                    nodes=dict(m.addresses),
                    state_machine_type=node.rsm.kind,
                    applied_index=node.applied_index,
                    failed=node.failed,
                )
            )
        if not option.skip_log_info and self._logdb is not None:
            info.log_info = self._logdb.list_node_info()
        return info

    def get_state_hash(self, shard_id: int) -> int:
        """A digest of the replica's state (sessions, membership, user IHash): replicas
        that applied the same entries have equal hashes. For tests and audits."""
        self._check_open()
        return self._node(shard_id).rsm.hash()

    def write_health_metrics(self) -> bytes:
        """Prometheus text exposition of this NodeHost's metrics (enable_metrics)."""
        return self._metrics.render()

    # ---------------------------------------------------------------- internals

    def _node(self, shard_id: int) -> Node:
        engine = self._check_open()
        node = engine.nodes.get(shard_id)
        if node is None:
            raise errors.ShardNotFound(f"shard {shard_id} does not run on this NodeHost")
        if node.failed is not None:
            raise errors.ShardClosed(f"shard {shard_id} stopped: {node.failed}")
        return node

    def _transport_stats(self) -> dict[str, int]:
        stats = self._transport.stats
        if isinstance(stats, dict):
            return {k: int(v) for k, v in stats.items()}
        return {k: int(v) for k, v in vars(stats).items() if isinstance(v, int)}

    def _sync_registry(self, node: Node) -> None:
        """Point the transport at the addresses in the core's membership (on the loop)."""
        registry = self._transport.registry
        m = node.peer.membership
        for group in (m.addresses, m.non_votings, m.witnesses):
            for rid, address in group.items():
                registry.add(node.shard_id, rid, address)
        for rid in m.removed:
            registry.remove(node.shard_id, rid)

    # EngineListener (on the loop or an apply thread)

    def leader_changed(self, node: Node) -> None:
        self._metrics.leader_changed(node.shard_id)
        self._events.leader_updated(
            LeaderInfo(node.shard_id, node.replica_id, node.term, node.leader_id)
        )

    def membership_changed(self, node: Node) -> None:
        self._sync_registry(node)
        self._events.system_event("membership_changed", NodeInfo(node.shard_id, node.replica_id))

    def replica_failed(self, node: Node, reason: str) -> None:
        self._events.system_event("node_unloaded", NodeInfo(node.shard_id, node.replica_id))

    def snapshot_created(self, node: Node, snapshot: pb.Snapshot, compacted_to: int) -> None:
        self._metrics.snapshot("created")
        info = SnapshotInfo(node.shard_id, node.replica_id, snapshot.index)
        self._events.system_event("snapshot_created", info)
        if compacted_to:
            from nodehost.events import EntryInfo

            self._events.system_event(
                "log_compacted", EntryInfo(node.shard_id, node.replica_id, compacted_to)
            )

    def snapshot_recovered(self, node: Node, snapshot: pb.Snapshot) -> None:
        self._metrics.snapshot("recovered")
        self._events.system_event(
            "snapshot_recovered", SnapshotInfo(node.shard_id, node.replica_id, snapshot.index)
        )


class _TransportHandler:
    """Routes what the transport receives to replicas (called on the engine loop)."""

    def __init__(self, nh: NodeHost) -> None:
        self._nh = nh

    def _engine(self) -> Engine:
        engine = self._nh._engine
        assert engine is not None
        return engine

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        engine = self._engine()
        nodes = engine.nodes
        registry = self._nh._transport.registry
        for m in messages:
            node = nodes.get(m.shard_id)
            if node is None or node.replica_id != m.to or node.stopped:
                continue
            if source_address and registry.resolve(m.shard_id, m.from_id) is None:
                registry.add(m.shard_id, m.from_id, source_address)
            node.inbox.append(m)
            engine.wake(node)

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        engine = self._engine()
        node = engine.nodes.get(shard_id)
        if node is not None:
            node.local_calls.append(lambda peer: peer.report_unreachable(replica_id))
            engine.wake(node)

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        engine = self._engine()
        node = engine.nodes.get(shard_id)
        if node is not None:
            node.local_calls.append(lambda peer: peer.report_snapshot_status(replica_id, failed))
            engine.wake(node)
        event = "send_snapshot_aborted" if failed else "send_snapshot_completed"
        self._nh._events.system_event(event, SnapshotInfo(shard_id, replica_id, 0))

    def on_snapshot_received(self, message: pb.Message) -> None:
        engine = self._engine()
        node = engine.nodes.get(message.shard_id)
        if node is None or node.replica_id != message.to:
            return
        self._nh._metrics.snapshot("received")
        self._nh._events.system_event(
            "snapshot_received",
            SnapshotInfo(message.shard_id, message.to, message.snapshot.index, message.from_id),
        )
        node.submit_apply("call", lambda: node.install_received(message))

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        node = self._engine().nodes.get(shard_id)
        if node is None or node.replica_id != replica_id:
            return None
        return node.snapshots.receive_dir(index)

    def is_hosted(self, shard_id: int, replica_id: int) -> bool:
        node = self._engine().nodes.get(shard_id)
        return node is not None and node.replica_id == replica_id

    def on_connection(self, address: str, established: bool) -> None:
        event = "connection_established" if established else "connection_failed"
        self._nh._events.system_event(event, ConnectionInfo(address))


def _open_error(config: NodeHostConfig, exc: LogDBError | TransportError) -> str:
    """Name the setting behind a store or transport that would not open."""
    if isinstance(exc, LogDBError):
        return f"{'wal_dir' if config.wal_dir else 'node_host_dir'}: {exc}"
    if isinstance(exc, BindError):
        return f"listen_address: {exc}"
    return str(exc)  # TransportConfigError names its field


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise errors.InvalidOperation(f"timeout must be a positive number of seconds: {timeout!r}")


__all__ = [
    "SERIES_ID_NOOP",
    "Membership",
    "NodeHost",
    "NodeHostInfo",
    "NodeHostInfoOption",
    "ShardInfo",
    "SnapshotOption",
]
