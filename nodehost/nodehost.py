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
from collections.abc import Callable
from typing import Any

from logdb import ILogDB, LogDBError
from nodehost import errors
from nodehost.addressing import check_target
from nodehost.admin.server import AdminServer, start_admin
from nodehost.aio import AsyncAPI
from nodehost.bootstrap import check_bootstrap
from nodehost.config import Config, NodeHostConfig
from nodehost.engine import Engine
from nodehost.env import Env
from nodehost.events import EventDispatcher, NodeInfo, SnapshotInfo
from nodehost.inbound import Admission
from nodehost.info import (
    Membership,
    NodeHostInfo,
    NodeHostInfoOption,
    ShardInfo,
    SnapshotOption,
)
from nodehost.limits import queue_bytes, replicate_bytes
from nodehost.logreader import CachedLogReader
from nodehost.membership_api import MembershipAPI
from nodehost.metrics import Metrics, ReplicaLeadership
from nodehost.parts import (
    DEFAULT_REPLICA_PARTS,
    WALL_CLOCK,
    Clock,
    LogDBFactory,
    ReplicaParts,
    RuntimeFactory,
    TransportFactory,
    default_transport_factory,
    rocksdb_logdb,
    threaded_runtime,
)
from nodehost.raft import Peer, RaftConfig
from nodehost.receive import ReceiveQueue
from nodehost.replica import Replica
from nodehost.reports import HostReports
from nodehost.request import RequestResult, RequestState, ResultCode, check_timeout
from nodehost.routing import TransportRouter
from nodehost.rsm import (
    SERIES_ID_NOOP,
    Session,
    SnapshotError,
    SnapshotStore,
    StateMachineError,
)
from statemachine import (
    IConcurrentStateMachine,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    StateMachineType,
)
from transport import BindError, TransportConfig, TransportError

log = logging.getLogger("nodehost")

# How long start_* and stop_* wait for the engine loop to take a replica in or out.
ENGINE_CALL_TIMEOUT = 10.0


class NodeHost(MembershipAPI, AsyncAPI):
    """Hosts replicas of many shards over one transport and one log store."""

    def __init__(
        self,
        config: NodeHostConfig,
        *,
        logdb_factory: LogDBFactory | None = None,
        transport_factory: TransportFactory | None = None,
        clock: Clock | None = None,
        runtime_factory: RuntimeFactory | None = None,
        rng: random.Random | None = None,
        replica_parts: ReplicaParts | None = None,
    ) -> None:
        """Open the NodeHost's directory, its log store and its transport.

        The keywords replace a part (nodehost.parts): `logdb_factory` the log store
        (RocksDB), `transport_factory` the transport (gRPC), `clock` the monotonic
        clock (the machine's), `runtime_factory` the threads the engine runs on, `rng`
        the source of its random choices (session ids, election timeouts),
        `replica_parts` the Raft protocol and state machine layer each replica runs.
        Tests hand in the in-memory store and transport, nodehost.testing.simulation
        also a simulated clock, a single-threaded runtime and a seeded generator, and
        the known-bug tests a broken part.
        """
        if not isinstance(config, NodeHostConfig):
            raise errors.InvalidConfig("NodeHost needs a NodeHostConfig")
        self.config = config
        self._clock: Clock = clock or WALL_CLOCK
        self._replica_parts = replica_parts or DEFAULT_REPLICA_PARTS
        self._lock = threading.RLock()
        self._closed = False
        self._rng = rng or random.Random()
        self._keys = itertools.count(self._rng.getrandbits(62) + 1)
        self._stale_read_warned = False
        self._env = Env(
            config.node_host_dir,
            config.wal_dir,
            config.raft_address,
            config.deployment_id,
            node_host_id=config.node_host_id,
            address_by_node_host_id=config.address_by_node_host_id,
        )
        self._logdb: ILogDB | None = None
        self._engine: Engine | None = None
        self._admin: AdminServer | None = None
        try:
            self._logdb = (logdb_factory or rocksdb_logdb)(config, str(self._env.logdb_dir))
            self._metrics = Metrics(config.enable_metrics)
            runtime = (runtime_factory or threaded_runtime)(config)
            self._events = EventDispatcher(
                config.raft_event_listener, config.system_event_listener, runtime.listen
            )
            self._engine = Engine(
                self._logdb,
                runtime,
                config.rtt_millisecond,
                config.notify_commit,
                self._metrics,
                receive_queue=ReceiveQueue(
                    queue_bytes(config.max_receive_queue_size, config.max_message_size)
                ),
                clock=self._clock,
                rng=random.Random(self._rng.getrandbits(64)),
            )
            router = TransportRouter(
                self._engine, self._events, self._metrics, lambda: self._closed
            )
            self._transport = (transport_factory or default_transport_factory(config))(
                TransportConfig(
                    raft_address=config.raft_address,
                    listen_address=config.listen_address,
                    deployment_id=config.deployment_id,
                    mutual_tls=config.mutual_tls,
                    ca_file=config.ca_file,
                    cert_file=config.cert_file,
                    key_file=config.key_file,
                    max_send_queue_size=queue_bytes(
                        config.max_send_queue_size, config.max_message_size
                    ),
                    max_message_size=config.max_message_size,
                    address_by_node_host_id=config.address_by_node_host_id,
                    node_host_id=self._env.node_host_id,
                    seeds=tuple(config.seeds),
                ),
                router,
            )
            self._reports = HostReports(
                self._metrics, self._events, self._transport.registry, router
            )
            self._engine.listener = self._reports
            self._engine.transport = self._transport
            self._admission = Admission(self._transport.registry, self._metrics)
            self._engine.run(self._transport.start(), timeout=30)
            self._metrics.watch_transport(self._transport_stats)
            self._metrics.watch_replicas(self._leadership)
            self._metrics.watch_receive_queue(self._engine.receive_queue.as_dict)
            self._admin = start_admin(self)  # hook: issue 18, the admin service
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
        if self._admin is not None:  # first: no operator call reaches a closing host
            self._admin.close()
            self._admin = None
        self._events.node_host_shutting_down()
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
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._engine is not None:
            self._engine.close()
        if self._logdb is not None:
            self._logdb.close()
            self._logdb = None
        self._env.close()

    def __enter__(self) -> NodeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        config_by_id = self.config.address_by_node_host_id
        for rid, address in members.items():
            if isinstance(rid, bool) or not isinstance(rid, int) or rid <= 0:
                raise errors.InvalidConfig(f"initial_members: bad replica id {rid!r}")
            check_target(address, f"initial_members[{rid}]", config_by_id)
        if len(set(members.values())) != len(members):
            raise errors.InvalidConfig("initial_members: two replicas share an address")
        if config.wait_ready:
            self._check_may_block("starts with Config.wait_ready")
        shard_id, replica_id = config.shard_id, config.replica_id
        with self._lock:
            if shard_id in engine.nodes:
                raise errors.ShardAlreadyExists(f"shard {shard_id} already runs here")
            if self._env.tombstone(shard_id, replica_id).exists():
                raise errors.ReplicaRemoved(
                    f"shard {shard_id} replica {replica_id} was removed; use a new replica id"
                )
            assert self._logdb is not None
            new = check_bootstrap(self._logdb, members, join, config, kind)
            if not new:
                # A restart resumes as first started, whatever the arguments: a replica
                # stopped before it saved any entry (a joiner the leader had not reached
                # yet) still joins, or still founds the shard with its first members.
                first = self._logdb.get_bootstrap(shard_id, replica_id)
                assert first is not None
                members, join = dict(first.addresses), first.join
            try:
                node = self._build_node(engine, members, join, create, config, kind)
            except StateMachineError as exc:
                raise errors.StateMachineFailed(
                    f"shard {shard_id} replica {replica_id} cannot start: {exc}"
                ) from exc
            except SnapshotError as exc:
                raise errors.InvalidShardSettings(
                    f"shard {shard_id} replica {replica_id} cannot start from its latest "
                    f"snapshot in {self._env.snapshot_dir(shard_id, replica_id)}: {exc}"
                ) from exc
            try:
                engine.call(lambda: self._add_node(engine, node, members), ENGINE_CALL_TIMEOUT)
            except BaseException:
                try:
                    node.rsm.close()
                except StateMachineError:
                    log.warning("shard %d replica %d: close failed", shard_id, replica_id)
                raise
        self._metrics.replicas(len(engine.nodes))
        if config.wait_ready:
            self._wait_ready(node)
        self._events.node_ready(NodeInfo(shard_id, replica_id))

    def _wait_ready(self, replica: Replica) -> None:
        """Block until the replica applied what it knew to be committed when it started
        (Config.wait_ready), however long its log is; it raises if the replica fails,
        stops or the NodeHost closes meanwhile."""
        while not replica.apply.ready.wait(0.05) and not self._closed:
            pass
        status = replica.status
        if status.failed is not None:
            raise status.failure_error(
                f"shard {replica.shard_id} stopped while starting: {status.failed}"
            )
        if self._closed:
            raise errors.Closed("the NodeHost was closed while a replica was starting")
        if status.stopped:
            raise errors.ShardClosed(f"shard {replica.shard_id} was stopped while starting")

    def _build_node(
        self,
        engine: Engine,
        members: dict[int, str],
        join: bool,
        create: Callable[[int, int], Any],
        config: Config,
        kind: StateMachineType,
    ) -> Replica:
        assert self._logdb is not None
        shard_id, replica_id = config.shard_id, config.replica_id
        reader = CachedLogReader(self._logdb, shard_id, replica_id)
        snapshots = SnapshotStore(
            str(self._env.snapshot_dir(shard_id, replica_id)),
            shard_id,
            replica_id,
            on_removed=lambda index: self._reports.snapshot_compacted(shard_id, replica_id, index),
        )
        sm = None
        if not config.is_witness:
            try:
                sm = create(shard_id, replica_id)
            except Exception as exc:
                raise StateMachineError(f"create raised {exc!r}") from exc
            expected = {
                StateMachineType.REGULAR: IStateMachine,
                StateMachineType.CONCURRENT: IConcurrentStateMachine,
                StateMachineType.ON_DISK: IOnDiskStateMachine,
            }[kind]
            if not isinstance(sm, expected):
                raise errors.InvalidConfig(
                    f"create returned {type(sm).__name__}, not an {expected.__name__}"
                )
        rsm = self._replica_parts.state_machine_manager(
            shard_id,
            replica_id,
            kind,
            sm,
            snapshots,
            ordered_config_change=config.ordered_config_change,
            compression=config.snapshot_compression,
        )
        stopped = lambda: self._closed  # noqa: E731
        try:
            rsm.open(stopped)
            snapshot = reader.snapshot()
            if snapshot.index > 0:
                rsm.recover(snapshot, stopped)
                if replica_id in snapshot.membership.removed:
                    raise errors.ReplicaRemoved(
                        f"shard {shard_id} replica {replica_id} was removed"
                    )
                self._metrics.snapshot("recovered")
                self._events.snapshot_recovered(SnapshotInfo(shard_id, replica_id, snapshot.index))
        except BaseException:
            try:
                rsm.close()
            except StateMachineError:
                log.warning("shard %d replica %d: close failed", shard_id, replica_id)
            raise
        recorded = self._logdb.get_bootstrap(shard_id, replica_id)
        founding = dict(recorded.addresses) if recorded is not None else members
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
                max_replicate_bytes=replicate_bytes(
                    self.config.max_message_size,
                    self.config.raft_address,
                    self.config.deployment_id,
                ),
            ),
            reader,
            random.Random(self._rng.getrandbits(64)),
            # From the record, not `members`: a restart may pass none, and a first start
            # that failed after the record was saved left a log still to be founded.
            initial_members=None if join else founding,
            join=join,
            applied=rsm.applied_index,
            protocol=self._replica_parts.raft,
        )
        return Replica(
            config,
            peer,
            rsm,
            reader,
            snapshots,
            self._logdb,
            engine.link_for,
            self._metrics,
            self._clock.monotonic,
            engine.new_read_rng(),
            self.config.notify_commit,
            engine.apply_worker_for(shard_id),
        )

    def _add_node(self, engine: Engine, node: Replica, members: dict[int, str]) -> None:
        registry = self._transport.registry
        for rid, address in members.items():
            registry.add(node.shard_id, rid, address)
        self._reports.sync_routes(node)
        node.loop.admission = self._admission
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

    def _unload(self, node: Replica, code: ResultCode) -> None:
        engine = self._engine
        assert engine is not None

        def on_loop() -> None:
            if engine.nodes.get(node.shard_id) is node:
                engine.remove_node(node.shard_id)
                self._transport.registry.remove_shard(node.shard_id)

        try:
            engine.call(on_loop, timeout=ENGINE_CALL_TIMEOUT)
        except errors.Timeout:
            # The loop is stuck: the replica stops taking input now (the engine skips
            # stopped replicas) and leaves the engine's table once the loop runs again.
            node.status.stopped = True
            try:
                engine.loop.call_soon_threadsafe(on_loop)
            except RuntimeError:  # the loop is closed: nothing left to remove from
                pass
        node.apply.ready.set()
        node.requests.fail_all(code, "the replica was stopped")
        # A task running now finishes first (the worker sees `stopped` after it).
        node.stop_applying(ENGINE_CALL_TIMEOUT)
        node.rsm.close()
        self._metrics.replicas(len(engine.nodes))
        self._metrics.forget_shard(node.shard_id)
        self._reports.unloaded(node)

    def remove_data(self, shard_id: int, replica_id: int) -> None:
        """Delete a stopped replica's log and snapshots; the id can never start here again.

        Only for a replica already deleted from its shard (request_delete_replica):
        removing the data of a member that the shard still counts on loses its votes
        and its copy of the log. ShardNotStopped while the replica runs here.
        """
        engine = self._check_open()
        with self._lock:  # against a start_* of the same replica meanwhile
            node = engine.nodes.get(shard_id)
            if node is not None and node.replica_id == replica_id:
                raise errors.ShardNotStopped(f"stop shard {shard_id} before removing its data")
            assert self._logdb is not None
            tombstone = self._env.tombstone(shard_id, replica_id)
            tombstone.write_text("removed\n")
            self._logdb.remove_node_data(shard_id, replica_id)
            shutil.rmtree(self._env.snapshot_dir(shard_id, replica_id), ignore_errors=True)
        self._events.node_deleted(NodeInfo(shard_id, replica_id))

    def sync_remove_data(self, shard_id: int, replica_id: int, timeout: float) -> None:
        """remove_data once the replica has fully left this NodeHost (Dragonboat's
        SyncRemoveData): a replica being stopped is waited for, up to `timeout`
        (Timeout past it); one still running raises ShardNotStopped at once."""
        engine = self._check_open()
        check_timeout(timeout)
        self._check_may_block("sync_* calls")
        deadline = time.monotonic() + timeout
        while True:
            node = engine.nodes.get(shard_id)
            if node is None or node.replica_id != replica_id:
                break
            if not node.status.stopped:
                raise errors.ShardNotStopped(
                    f"shard {shard_id} replica {replica_id} is running: stop it first"
                )
            if time.monotonic() >= deadline:
                raise errors.Timeout(
                    f"shard {shard_id} replica {replica_id} did not finish stopping in {timeout:g}s"
                )
            time.sleep(0.01)
            self._check_open()
        self.remove_data(shard_id, replica_id)

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
        result = self._retrying(lambda t: self._propose(session, b"", t), timeout)
        result.raise_for_code()
        return result

    def sync_propose(self, session: Session, cmd: bytes, timeout: float) -> Result:
        """Propose and wait for the state machine's Result.

        With a registered session the session advances on success; after a Timeout,
        retry with the same session and the command is applied at most once.
        """
        outcome = self._retrying(lambda t: self.propose(session, cmd, t), timeout)
        outcome.raise_for_code()
        if not session.is_noop():
            session.proposal_completed()
        return outcome.result

    # ---------------------------------------------------------------- reads

    def read_local_node(self, rs: RequestState, query: Any) -> Any:
        """Query the local state machine after `read_index` completed."""
        outcome = rs.result() if rs.done() else None
        if outcome is None or not outcome.completed():
            raise errors.InvalidOperation("read_local_node needs a completed read_index")
        return self._node(rs.shard_id).lookup(query)

    def sync_read(self, shard_id: int, query: Any, timeout: float) -> Any:
        """A linearizable read: reflects every write acknowledged before the call."""
        self._retrying(lambda t: self.read_index(shard_id, t), timeout).raise_for_code()
        return self._node(shard_id).lookup(query)

    def stale_read(self, shard_id: int, query: Any) -> Any:
        """Query the local state machine now: fast, but may miss recent writes."""
        self._check_open()
        node = self._node(shard_id)
        if node.config.is_witness:
            raise errors.InvalidOperation("a witness has no state machine to read")
        if not self._stale_read_warned:
            self._stale_read_warned = True
            # Once, for whoever reads the logs; using the documented behaviour is no
            # reason for a warning.
            log.info("stale_read may return data older than acknowledged writes")
        return node.lookup(query)

    # ---------------------------------------------------------------- snapshots

    def sync_request_snapshot(
        self, shard_id: int, option: SnapshotOption | None, timeout: float
    ) -> int:
        self._check_may_block("sync_* calls")
        rs = self.request_snapshot(shard_id, option, timeout)
        outcome = rs.wait(timeout + 0.5)
        outcome.raise_for_code()
        return outcome.snapshot_index

    # ---------------------------------------------------------------- information

    def get_leader_id(self, shard_id: int) -> tuple[int, int, bool]:
        """(leader_id, term, valid) as this replica knows it; valid is False with no leader."""
        self._check_open()
        node = self._node(shard_id)
        return node.leader_id, node.term, node.leader_id != 0

    def get_node_host_info(self, option: NodeHostInfoOption | None = None) -> NodeHostInfo:
        engine = self._check_open()
        option = option or NodeHostInfoOption()
        info = NodeHostInfo(self.id, self.raft_address)
        hosts = self._transport.hosts
        if hosts is not None:
            info.hosts = hosts.known()
        for node in list(engine.nodes.values()):
            m = node.membership
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
                    failed=node.status.failed,
                    is_removed=node.replica_id in m.removed,
                    non_votings=dict(m.non_votings),
                    witnesses=dict(m.witnesses),
                    removed=set(m.removed),
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

    def _leadership(self) -> list[ReplicaLeadership]:
        engine = self._engine
        if engine is None:
            return []
        return [
            ReplicaLeadership(n.shard_id, n.leader_id, n.term) for n in list(engine.nodes.values())
        ]

    def _transport_stats(self) -> dict[str, int]:
        return self._transport.stats.as_dict()


def abandon(nh: NodeHost) -> None:
    """What the operating system does for a process that died holding `nh`: the lock on
    its directory is released. Nothing is flushed or closed and nobody is told. For
    simulations (nodehost.testing.simulation), where a process dies by its runtime
    running nothing more, and its NodeHost must not hold its directory from the grave."""
    nh._closed = True
    nh._env.close()


def _open_error(config: NodeHostConfig, exc: LogDBError | TransportError) -> str:
    """Name the setting behind a store or transport that would not open."""
    if isinstance(exc, LogDBError):
        return f"{'wal_dir' if config.wal_dir else 'node_host_dir'}: {exc}"
    if isinstance(exc, BindError):
        return f"listen_address: {exc}"
    return str(exc)  # TransportConfigError names its field


__all__ = [
    "SERIES_ID_NOOP",
    "Membership",
    "NodeHost",
    "NodeHostInfo",
    "NodeHostInfoOption",
    "ShardInfo",
    "SnapshotOption",
]
