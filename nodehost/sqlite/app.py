"""App: this process's member of a replicated SQLite cluster (go-dqlite's app.App).

    app = App("data/node1", address="127.0.0.1:9001")            # a new cluster
    app = App("data/node2", address="127.0.0.1:9002", cluster=["127.0.0.1:9001"])
    app.ready(timeout=30)
    conn = app.open("demo")                                       # PEP 249

Rules:
- One NodeHost and one Raft shard per App; the shard replicates every database (one
  SQLite file each), like dqlite's single Raft group. Only the public NodeHost API is used.
- `address` is where clients connect (dqlite's wire protocol); `raft_address` is where
  the Raft transport listens, by default the same host with the port plus 1000
  (9001 -> 10001). Both, the member id and how the member started are kept in
  `dir/app.json`, so a restart needs only `dir` (other arguments must then agree).
- Start-up: no `cluster` -> this member founds a cluster alone. `cluster` listing
  `address` itself -> a static cluster: every member is started with the same list; the
  first `voters` addresses (sorted) found it, the others join it as stand-bys or spares.
  `cluster` without `address` -> join an existing cluster by asking its members over
  the wire protocol (ADD, then the leader assigns a role).
- Roles (as in dqlite's app): at most `voters` voters, then `standbys` stand-bys that
  follow the log, the rest spares. The leader adjusts them: when a voter has been
  unreachable for `unreachable_timeout` seconds (or leaves) and a stand-by is online, the
  stand-by becomes a voter and the lost voter is removed from the shard (a spare in
  `cluster()`; it rejoins with a new replica when it returns); a missing stand-by is
  filled from the spares.
- Every call that waits takes a timeout and raises OperationalError when it passes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import apsw

from nodehost import (
    Config,
    ConnectionInfo,
    ISystemEventListener,
    Membership,
    NodeHost,
    NodeHostConfig,
    NodeHostInfoOption,
    PayloadTooBig,
    RaftError,
    ShardNotReady,
    Timeout,
)
from nodehost.config import parse_address
from nodehost.errors import InvalidConfig
from nodehost.sqlite import errors, members
from nodehost.sqlite.batcher import Batcher
from nodehost.sqlite.command import (
    Command,
    CommandKind,
    CommandResult,
    Outcome,
    Statement,
    StatementResult,
    decode_result,
    encode_command,
)
from nodehost.sqlite.database import check_name
from nodehost.sqlite.dbapi import Connection
from nodehost.sqlite.members import NodeInfo, Role
from nodehost.sqlite.session import Consistency
from nodehost.sqlite.statemachine import (
    MEMBERS_DATABASE,
    Read,
    Release,
    Speculate,
    SQLStateMachine,
)
from nodehost.sqlite.statements import StatementInfo
from nodehost.sqlite.wire.join import cluster_of, join
from nodehost.sqlite.wire.server import WireServer, server_ssl_context

log = logging.getLogger("nodehost.sqlite")

SHARD_ID = 1
RAFT_PORT_OFFSET = 1000


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """Mutual TLS for the Raft transport and the client port: PEM files."""

    ca_file: str
    cert_file: str
    key_file: str


def default_raft_address(address: str) -> str:
    host, port = parse_address(address, "address")
    raft_port = (
        port + RAFT_PORT_OFFSET if port + RAFT_PORT_OFFSET < 65536 else port - RAFT_PORT_OFFSET
    )
    return f"{host}:{raft_port}"


class _Connections(ISystemEventListener):
    """Tracks which Raft addresses the transport can reach (for the roles loop)."""

    def __init__(self) -> None:
        self.down_since: dict[str, float] = {}
        self.lock = threading.Lock()

    def connection_established(self, info: ConnectionInfo) -> None:
        with self.lock:
            self.down_since.pop(info.address, None)

    def connection_failed(self, info: ConnectionInfo) -> None:
        with self.lock:
            self.down_since.setdefault(info.address, time.monotonic())

    def down_for(self, address: str) -> float:
        with self.lock:
            since = self.down_since.get(address)
        return 0.0 if since is None else time.monotonic() - since


class App:
    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        address: str,
        cluster: Sequence[str] = (),
        raft_address: str | None = None,
        tls: TLSOptions | None = None,
        voters: int = 3,
        standbys: int = 3,
        rtt_millisecond: int = 100,
        election_rtt: int = 10,
        snapshot_entries: int = 10_000,
        compaction_overhead: int = 1_000,
        unreachable_timeout: float = 5.0,
        fsync: bool = True,
        serve: bool = True,
    ) -> None:
        try:
            parse_address(address, "address")
            for member in cluster:
                parse_address(member, "cluster")
            if raft_address is not None:
                parse_address(raft_address, "raft_address")
        except InvalidConfig as exc:
            raise errors.InterfaceError(str(exc)) from None
        if voters < 1 or standbys < 0:
            raise errors.InterfaceError("voters must be at least 1 and standbys at least 0")
        self.dir = Path(dir)
        self.address = address
        self.voters = voters
        self.standbys = standbys
        self.unreachable_timeout = unreachable_timeout
        self._tls = tls
        self._closed = False
        self._stop = threading.Event()
        self._rtt = rtt_millisecond / 1000.0
        self._election = election_rtt * self._rtt
        # How long one attempt of a write waits before it is proposed again: past two
        # election timeouts a lost leader has been replaced.
        self.attempt_timeout = max(2.5 * election_rtt * self._rtt, 0.5)
        self.dir.mkdir(parents=True, exist_ok=True)
        identity = self._identity(list(cluster), raft_address or default_raft_address(address))
        self.id: int = identity["id"]
        self.raft_address: str = identity["raft_address"]
        self._static: list[str] = identity.get("static", [])
        self._connections = _Connections()
        self.nodehost = NodeHost(
            NodeHostConfig(
                node_host_dir=str(self.dir / "raft"),
                raft_address=self.raft_address,
                rtt_millisecond=rtt_millisecond,
                mutual_tls=tls is not None,
                ca_file=tls.ca_file if tls else "",
                cert_file=tls.cert_file if tls else "",
                key_file=tls.key_file if tls else "",
                system_event_listener=self._connections,
                fsync=fsync,
            )
        )
        try:
            self.state = SQLStateMachine(self.dir / "sql", members.apply)
            self._replica_options = {
                "election_rtt": election_rtt,
                "snapshot_entries": snapshot_entries,
                "compaction_overhead": compaction_overhead,
            }
            initial, join = self._start_members(identity)
            self.nodehost.start_on_disk_replica(
                initial, join, lambda s, r: self.state, self._replica_config()
            )
        except BaseException:
            self.nodehost.close()
            raise
        self._session = self.nodehost.get_noop_session(SHARD_ID)
        # One asyncio loop per member: the write batcher and the wire server run on it.
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="nodehost-sql-loop", daemon=True
        )
        self._loop_thread.start()
        self.batcher = Batcher(
            self.nodehost,
            self._session,
            self.loop,
            retry_pause=self._rtt,
            attempt_timeout=self.attempt_timeout,
        )
        self._server: WireServer | None = None
        if serve:
            try:
                self._server = WireServer(self, address, self._server_ssl(), loop=self.loop)
                self._server.start()
            except OSError as exc:
                self._stop_loop()
                self.nodehost.close()
                self.state.close()
                raise errors.OperationalError(f"address {address}: {exc}") from None
        self._roles = threading.Thread(
            target=self._roles_loop, name="nodehost-sql-roles", daemon=True
        )
        self._roles.start()

    # ------------------------------------------------------------------ identity

    def _identity(self, cluster: list[str], raft_address: str) -> dict:  # type: ignore[type-arg]
        path = self.dir / "app.json"
        if path.exists():
            try:
                identity = json.loads(path.read_text())
                if not isinstance(identity, dict) or not isinstance(identity.get("id"), int):
                    raise ValueError("no member id")
            except (ValueError, OSError) as exc:
                raise errors.InterfaceError(f"{path}: unreadable ({exc})") from None
            if identity.get("address") != self.address:
                raise errors.InterfaceError(
                    f"{self.dir} belongs to the member at {identity.get('address')}, "
                    f"not {self.address}"
                )
            return dict(identity)
        identity: dict = {"address": self.address, "raft_address": raft_address}  # type: ignore[type-arg,no-redef]
        if not cluster:
            identity.update(id=1, mode="bootstrap")
        elif self.address in cluster:
            static = sorted(set(cluster))
            identity.update(id=static.index(self.address) + 1, mode="static", static=static)
        else:
            if raft_address != default_raft_address(self.address):
                raise errors.InterfaceError(
                    "a member that joins through `cluster` uses the default raft_address "
                    "(the members learn it from the client address)"
                )
            member_id = int.from_bytes(os.urandom(8), "big") >> 1 or 2
            join(cluster, member_id, self.address, self._client_ssl())
            identity.update(id=member_id, mode="join")
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(identity))
        os.replace(temporary, path)
        return dict(identity)

    def _replica_config(self) -> Config:
        return Config(
            shard_id=SHARD_ID,
            replica_id=self.id,
            heartbeat_rtt=1,
            check_quorum=True,
            pre_vote=True,
            election_rtt=self._replica_options["election_rtt"],
            snapshot_entries=self._replica_options["snapshot_entries"],
            compaction_overhead=self._replica_options["compaction_overhead"],
        )

    def _start_members(self, identity: dict) -> tuple[dict[int, str], bool]:  # type: ignore[type-arg]
        if self.nodehost.has_node_info(SHARD_ID, self.id):
            return {}, False
        mode = identity["mode"]
        if mode == "join":
            return {}, True
        if mode == "bootstrap":
            return {self.id: self.raft_address}, False
        static = identity["static"]
        founders = static[: self.voters]
        if self.address in founders:
            return {i + 1: default_raft_address(a) for i, a in enumerate(founders)}, False
        return {}, True

    # ------------------------------------------------------------------ public

    def ready(self, timeout: float = 30.0) -> None:
        """Wait until this member knows a leader and has applied what it committed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.leader() is not None:
                    self.nodehost.sync_read(
                        SHARD_ID, Read(MEMBERS_DATABASE), max(deadline - time.monotonic(), 0.05)
                    )
                    return
            except RaftError:
                pass
            if time.monotonic() >= deadline:
                raise errors.OperationalError(f"no leader within {timeout} s")
            time.sleep(0.05)

    def open(
        self,
        name: str,
        *,
        consistency: str = "strong",
        isolation_level: str | None = "",
        timeout: float = 10.0,
    ) -> Connection:
        """A PEP 249 connection to database `name` (created by its first write)."""
        self._check_open()
        try:
            check_name(name)
        except ValueError as exc:
            raise errors.ProgrammingError(str(exc)) from None
        return Connection(
            _Backend(self),
            name,
            consistency=consistency,
            isolation_level=isolation_level,
            timeout=timeout,
        )

    def leader(self) -> NodeInfo | None:
        """The leader as this member knows it (None while there is none)."""
        self._check_open()
        try:
            leader_id, _, valid = self.nodehost.get_leader_id(SHARD_ID)
        except RaftError:
            return None
        if not valid:
            return None
        rows = members.read_rows(self.state.reads.get(MEMBERS_DATABASE).connection)
        if leader_id not in rows:
            return None
        address, raft_address = rows[leader_id]
        return NodeInfo(leader_id, address, Role.VOTER, raft_address)

    def is_leader(self) -> bool:
        """Whether this member leads, as it knows (cheap: no member table read)."""
        try:
            leader_id, _, valid = self.nodehost.get_leader_id(SHARD_ID)
        except RaftError:
            return False
        return valid and leader_id == self.id

    def cluster(self, timeout: float = 5.0) -> list[NodeInfo]:
        """Every member with its role, as of a linearizable read."""
        self._check_open()
        try:
            self.nodehost.sync_read(SHARD_ID, Read(MEMBERS_DATABASE), timeout)
        except RaftError as exc:
            raise errors.OperationalError(f"cluster: {exc}") from None
        return self._cluster_local()

    def handover(self, timeout: float = 10.0) -> None:
        """Before a planned shutdown: hand leadership and this member's vote to others.

        A stand-by (when there is one online) becomes a voter first, so the number of
        voters is kept; then leadership moves away and this member leaves the voters.
        """
        self._check_open()
        deadline = time.monotonic() + timeout
        try:
            membership = self.nodehost.sync_get_shard_membership(SHARD_ID, timeout)
        except RaftError as exc:
            raise errors.OperationalError(f"handover: {exc}") from None
        if self.id not in membership.nodes:
            return
        others = [r for r in membership.nodes if r != self.id]
        if not others:
            return  # the only voter: nobody to hand over to
        standby = self._online_standby(membership.non_votings)
        if standby is not None:
            self._call(
                lambda t: self.nodehost.sync_request_add_replica(
                    SHARD_ID, standby[0], standby[1], 0, t
                ),
                deadline,
            )
            others.append(standby[0])
        leader_id, _, _ = self.nodehost.get_leader_id(SHARD_ID)
        if leader_id == self.id:
            target = next(
                (r for r in others if self._online(membership.nodes.get(r, ""))), others[0]
            )
            self.nodehost.request_leader_transfer(SHARD_ID, target)
            while self.nodehost.get_leader_id(SHARD_ID)[0] == self.id:
                if time.monotonic() > deadline:
                    raise errors.OperationalError("handover: leadership did not move in time")
                time.sleep(0.02)
        self._call(
            lambda t: self.nodehost.sync_request_delete_replica(SHARD_ID, self.id, 0, t), deadline
        )

    def state_hash(self) -> int:
        """A digest of every database on this member (equal across members at one index)."""
        return self.state.get_hash()

    def applied_index(self) -> int:
        return self.state.applied_index

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._roles.join(timeout=5)
        if self._server is not None:
            self._server.close()
        self.nodehost.close()
        self._stop_loop()
        self.state.close()

    def _stop_loop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(timeout=10)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ membership (wire)

    def add_member(self, member_id: int, address: str, timeout: float = 10.0) -> None:
        """Register a member as a spare (dqlite's ADD); the roles loop assigns it."""
        try:
            parse_address(address, "address")
        except InvalidConfig as exc:
            raise errors.InterfaceError(str(exc)) from None
        if not 0 < member_id < 2**63:
            raise errors.InterfaceError(f"bad member id {member_id}")
        membership = self._membership(timeout)
        if member_id in membership.removed:
            raise errors.OperationalError(f"member id {member_id} was removed; use a new id")
        raft_address = default_raft_address(address)
        self._propose_members(members.upsert_payload(member_id, address, raft_address), timeout)
        # It just spoke to us: whatever the transport saw of that address before is old.
        with self._connections.lock:
            self._connections.down_since.pop(raft_address, None)

    def assign(self, member_id: int, role: int, timeout: float = 10.0) -> None:
        """Give a member a role (dqlite's ASSIGN)."""
        try:
            wanted = Role(role)
        except ValueError:
            raise errors.InterfaceError(f"unknown role {role}") from None
        rows = members.read_rows(self.state.reads.get(MEMBERS_DATABASE).connection)
        if member_id not in rows:
            raise errors.OperationalError(f"no member with id {member_id}")
        raft_address = rows[member_id][1]
        membership = self._membership(timeout)
        deadline = time.monotonic() + timeout
        if wanted is Role.SPARE:
            if member_id in membership.nodes or member_id in membership.non_votings:
                self._call(
                    lambda t: self.nodehost.sync_request_delete_replica(SHARD_ID, member_id, 0, t),
                    deadline,
                )
            return
        if member_id in membership.removed:
            raise errors.OperationalError(
                f"member {member_id} left the Raft group; restart it to rejoin under a new id"
            )
        if wanted is Role.STANDBY:
            if member_id in membership.nodes:
                raise errors.NotSupportedError("a voter cannot become a stand-by (make it a spare)")
            if member_id not in membership.non_votings:
                self._call(
                    lambda t: self.nodehost.sync_request_add_non_voting(
                        SHARD_ID, member_id, raft_address, 0, t
                    ),
                    deadline,
                )
            return
        if member_id not in membership.nodes:
            if member_id not in membership.non_votings:
                self._call(
                    lambda t: self.nodehost.sync_request_add_non_voting(
                        SHARD_ID, member_id, raft_address, 0, t
                    ),
                    deadline,
                )
            self._call(
                lambda t: self.nodehost.sync_request_add_replica(
                    SHARD_ID, member_id, raft_address, 0, t
                ),
                deadline,
            )

    def remove_member(self, member_id: int, timeout: float = 10.0) -> None:
        """Remove a member from the cluster (dqlite's REMOVE)."""
        membership = self._membership(timeout)
        deadline = time.monotonic() + timeout
        if member_id in membership.nodes or member_id in membership.non_votings:
            self._call(
                lambda t: self.nodehost.sync_request_delete_replica(SHARD_ID, member_id, 0, t),
                deadline,
            )
        self._propose_members(members.remove_payload(member_id), timeout)

    def transfer(self, member_id: int, timeout: float = 10.0) -> None:
        """Hand leadership to `member_id` (dqlite's TRANSFER); waits until it moved."""
        membership = self._membership(timeout)
        if member_id not in membership.nodes:
            raise errors.OperationalError(f"member {member_id} is not a voter")
        self.nodehost.request_leader_transfer(SHARD_ID, member_id)
        deadline = time.monotonic() + timeout
        while self.nodehost.get_leader_id(SHARD_ID)[0] != member_id:
            if time.monotonic() > deadline:
                raise errors.OperationalError("leadership did not move in time")
            time.sleep(0.02)

    def backend(self) -> _Backend:
        """A session backend on this member (one per client connection)."""
        return _Backend(self)

    def dump(self, name: str) -> bytes:
        """The database file's image as this member has it (dqlite's DUMP)."""
        connection = self.state.reads.get(name).connection
        return bytes(connection.serialize("main") or b"")

    def _membership(self, timeout: float) -> Membership:
        try:
            return self.nodehost.sync_get_shard_membership(SHARD_ID, timeout)
        except RaftError as exc:
            raise errors.OperationalError(str(exc)) from None

    def _server_ssl(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        return server_ssl_context(self._tls.ca_file, self._tls.cert_file, self._tls.key_file)

    def _client_ssl(self) -> ssl.SSLContext | None:
        if self._tls is None:
            return None
        context = ssl.create_default_context(cafile=self._tls.ca_file)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        context.check_hostname = False
        return context

    # ------------------------------------------------------------------ roles

    def _cluster_local(self) -> list[NodeInfo]:
        rows = members.read_rows(self.state.reads.get(MEMBERS_DATABASE).connection)
        try:
            info = self.nodehost.get_node_host_info()
        except RaftError:
            return []
        voters: set[int] = set()
        for shard in info.shard_info_list:
            if shard.shard_id == SHARD_ID:
                voters = set(shard.nodes)
        standbys = self._standbys_local()
        listed = []
        for member_id, (address, raft_address) in sorted(rows.items()):
            role = (
                Role.VOTER
                if member_id in voters
                else Role.STANDBY
                if member_id in standbys
                else Role.SPARE
            )
            listed.append(NodeInfo(member_id, address, role, raft_address))
        return listed

    def _standbys_local(self) -> set[int]:
        try:
            return set(self.nodehost.sync_get_shard_membership(SHARD_ID, 1.0).non_votings)
        except RaftError:
            return set()

    def _online(self, raft_address: str) -> bool:
        if raft_address == self.raft_address:
            return True
        return self._connections.down_for(raft_address) < self.unreachable_timeout

    def _online_standby(self, standbys: dict[int, str]) -> tuple[int, str] | None:
        for replica_id, raft_address in sorted(standbys.items()):
            if self._online(raft_address):
                return replica_id, raft_address
        return None

    def _roles_loop(self) -> None:
        leaderless_since: float | None = None
        while not self._stop.wait(max(self._rtt * 5, 0.2)):
            try:
                leader_id, _, valid = self.nodehost.get_leader_id(SHARD_ID)
                if valid and leader_id == self.id:
                    self._adjust_roles()
                if valid:
                    leaderless_since = None
                    continue
                now = time.monotonic()
                if leaderless_since is None:
                    leaderless_since = now
                elif now - leaderless_since > max(self.unreachable_timeout, 5 * self._election):
                    leaderless_since = now
                    self._rejoin_if_removed()
            except (RaftError, errors.Error, apsw.Error) as exc:
                log.debug("roles: %s", exc)
            except Exception:
                log.exception("roles adjustment failed")

    def _rejoin_if_removed(self) -> None:
        """A member that hears no leader for long asks the others whether it still
        belongs; one that was removed while away (its vote given to a stand-by) drops
        its old replica and joins again under a new id, as a spare."""
        if not self._believes_member():
            return  # a spare: it never had a replica in the shard, nothing was taken away
        rows = members.read_rows(self.state.reads.get(MEMBERS_DATABASE).connection)
        others = sorted(
            {address for address, _ in rows.values()} | set(self._static) - {self.address}
        )
        if not others:
            return
        listed = cluster_of(others, self._client_ssl())
        if listed is None:
            return  # nobody leads: a quorum is down, not this member's exclusion
        mine = [n for n in listed if n.node_id == self.id and n.role in (Role.VOTER, Role.STANDBY)]
        if mine:
            return
        log.warning("member %d was removed from the cluster; joining again under a new id", self.id)
        self.nodehost.stop_shard(SHARD_ID)
        self.state.close()
        self.nodehost.remove_data(SHARD_ID, self.id)
        shutil.rmtree(self.dir / "sql", ignore_errors=True)
        member_id = int.from_bytes(os.urandom(8), "big") >> 1 or 2
        join(others, member_id, self.address, self._client_ssl())
        identity = {
            "address": self.address,
            "raft_address": self.raft_address,
            "id": member_id,
            "mode": "join",
        }
        path = self.dir / "app.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(identity))
        os.replace(temporary, path)
        self.id = member_id
        self._static = []
        self.state = SQLStateMachine(self.dir / "sql", members.apply)
        self.nodehost.start_on_disk_replica(
            {}, True, lambda s, r: self.state, self._replica_config()
        )

    def _believes_member(self) -> bool:
        """Whether this member's own (possibly stale) view of the shard lists it."""
        try:
            info = self.nodehost.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        except RaftError:
            return False
        for shard in info.shard_info_list:
            if shard.shard_id == SHARD_ID:
                return self.id in shard.nodes or shard.is_non_voting
        return False

    def _adjust_roles(self) -> None:
        timeout = 3.0
        membership = self.nodehost.sync_get_shard_membership(SHARD_ID, timeout)
        rows = members.read_rows(self.state.reads.get(MEMBERS_DATABASE).connection)
        known = dict(membership.nodes) | dict(membership.non_votings)
        # Register members the table lacks: raft members, and the static list.
        wanted: dict[int, tuple[str, str]] = {}
        for position, address in enumerate(self._static):
            wanted[position + 1] = (address, default_raft_address(address))
        if self.id not in wanted:
            wanted[self.id] = (self.address, self.raft_address)
        for member_id, (address, raft_address) in wanted.items():
            if member_id in membership.removed:
                continue
            if rows.get(member_id) != (address, raft_address):
                self._propose_members(
                    members.upsert_payload(member_id, address, raft_address), timeout
                )
                rows[member_id] = (address, raft_address)
        voters = dict(membership.nodes)
        standbys = dict(membership.non_votings)
        # A voter that stays unreachable is replaced by an online stand-by.
        for replica_id, raft_address in sorted(voters.items()):
            if replica_id == self.id or self._online(raft_address):
                continue
            standby = self._online_standby(standbys)
            if standby is None:
                break
            log.warning("voter %d unreachable; promoting stand-by %d", replica_id, standby[0])
            self.nodehost.sync_request_add_replica(SHARD_ID, standby[0], standby[1], 0, timeout)
            self.nodehost.sync_request_delete_replica(SHARD_ID, replica_id, 0, timeout)
            voters[standby[0]] = standby[1]
            del voters[replica_id]
            del standbys[standby[0]]
        # Fill the voters from stand-bys, then the stand-bys from spares.
        while len(voters) < self.voters:
            standby = self._online_standby(standbys)
            if standby is None:
                break
            self.nodehost.sync_request_add_replica(SHARD_ID, standby[0], standby[1], 0, timeout)
            voters[standby[0]] = standby[1]
            del standbys[standby[0]]
        spares = {
            member_id: raft_address
            for member_id, (_, raft_address) in rows.items()
            if member_id not in known and member_id not in membership.removed
        }
        for member_id, raft_address in sorted(spares.items()):
            if len(voters) < self.voters and self._online(raft_address):
                self.nodehost.sync_request_add_non_voting(
                    SHARD_ID, member_id, raft_address, 0, timeout
                )
                self.nodehost.sync_request_add_replica(
                    SHARD_ID, member_id, raft_address, 0, timeout
                )
                voters[member_id] = raft_address
            elif len(standbys) < self.standbys and self._online(raft_address):
                self.nodehost.sync_request_add_non_voting(
                    SHARD_ID, member_id, raft_address, 0, timeout
                )
                standbys[member_id] = raft_address

    def _propose_members(self, payload: bytes, timeout: float) -> None:
        command = Command(CommandKind.MEMBERS, time.time_ns() // 1_000_000, 0, payload=payload)
        self.nodehost.sync_propose(self._session, encode_command(command), timeout)

    # ------------------------------------------------------------------ plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise errors.InterfaceError("the App is closed")

    def _call(self, work, deadline: float) -> None:  # type: ignore[no-untyped-def]
        try:
            work(max(deadline - time.monotonic(), 0.1))
        except RaftError as exc:
            raise errors.OperationalError(str(exc)) from None


class _Backend:
    """The session backend of an App's local connections (see session.Backend)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.nodehost = app.nodehost

    @property
    def state(self) -> SQLStateMachine:
        return self.app.state  # replaced when the member rejoins under a new id

    def classify(self, database: str, sql: str, fresh: bool, timeout: float) -> StatementInfo:
        if fresh:
            self._barrier(timeout)
        return self.state.reads.classify(database, sql)

    def read(
        self,
        database: str,
        statements: list[Statement],
        consistency: Consistency,
        timeout: float,
    ) -> list[StatementResult]:
        query = Read(database, statements)
        try:
            if consistency is Consistency.NONE or (
                consistency is Consistency.WEAK and self._leads()
            ):
                result = self.state.lookup(query)
            else:
                self._barrier(timeout)
                result = self.state.lookup(query)
        except apsw.Error as exc:
            from nodehost.sqlite.reads import read_error

            raise read_error(exc, self.state.reads.reason(database)) from None
        return result  # type: ignore[no-any-return]

    def write(self, command: Command, timeout: float) -> CommandResult:
        """Propose and wait. A command of a client session is proposed again when an
        attempt times out (its leader may have died): the state machine applies it once."""
        self.app._check_open()
        if command.client_id:
            return self.app.batcher.write(command, timeout)
        data = encode_command(command)
        deadline = time.monotonic() + timeout
        attempt = timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                result = self.nodehost.sync_propose(
                    self.app._session, data, max(min(attempt, remaining), 0.01)
                )
                break
            except PayloadTooBig as exc:
                raise errors.DataError(f"the statement is too large to replicate: {exc}") from None
            except (Timeout, ShardNotReady) as exc:
                if deadline - time.monotonic() <= 0.01 or not command.client_id:
                    raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
            except RaftError as exc:
                raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
        decoded = decode_result(result.data)
        if decoded.outcome is Outcome.REJECTED:
            raise errors.InterfaceError(decoded.message)
        return decoded

    async def write_async(self, command: Command, timeout: float) -> CommandResult:
        """`write` for coroutines (the wire server's loop): awaits without a thread."""
        self.app._check_open()
        if command.client_id:
            return await self.app.batcher.write_async(command, timeout)
        data = encode_command(command)
        deadline = time.monotonic() + timeout
        attempt = self.app.attempt_timeout if command.client_id else timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0.01:
                raise errors.OperationalError("Timeout: the write was not answered in time")
            try:
                outcome = await self.nodehost.propose(
                    self.app._session, data, max(min(attempt, remaining), 0.01)
                )
            except PayloadTooBig as exc:
                raise errors.DataError(f"the statement is too large to replicate: {exc}") from None
            except RaftError as exc:
                raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
            if outcome.completed():
                break
            if outcome.dropped():
                await asyncio.sleep(self.app._rtt)
                continue
            if outcome.timeout() and command.client_id:
                continue
            try:
                outcome.raise_for_code()
            except RaftError as exc:
                raise errors.OperationalError(f"{type(exc).__name__}: {exc}") from None
        decoded = decode_result(outcome.result.data)
        if decoded.outcome is Outcome.REJECTED:
            raise errors.InterfaceError(decoded.message)
        return decoded

    async def read_async(
        self, database: str, statements: list[Statement], consistency: Consistency, timeout: float
    ) -> list[StatementResult]:
        """`read` for coroutines: the ReadIndex round is awaited, the read runs here."""
        if consistency is Consistency.STRONG or (
            consistency is Consistency.WEAK and not self._leads()
        ):
            deadline = time.monotonic() + timeout
            while True:
                try:
                    outcome = await self.nodehost.read_index(
                        SHARD_ID, max(deadline - time.monotonic(), 0.01)
                    )
                except RaftError as exc:
                    raise errors.OperationalError(
                        f"no quorum for a consistent read: {exc}"
                    ) from None
                if outcome.dropped() and time.monotonic() < deadline:
                    await asyncio.sleep(self.app._rtt)
                    continue
                try:
                    outcome.raise_for_code()
                except RaftError as exc:
                    raise errors.OperationalError(
                        f"no quorum for a consistent read: {exc}"
                    ) from None
                break
        try:
            result: list[StatementResult] = self.state.lookup(Read(database, statements))
        except apsw.Error as exc:
            from nodehost.sqlite.reads import read_error

            raise read_error(exc, self.state.reads.reason(database)) from None
        return result

    def speculate(
        self,
        owner: object,
        command: Command,
        fresh: bool,
        consistency: Consistency,
        timeout: float,
    ) -> tuple[list[StatementResult], bool]:
        self.app._check_open()
        if fresh and consistency is not Consistency.NONE:
            self._barrier(timeout)
        try:
            return self.state.lookup(Speculate(owner, command))  # type: ignore[no-any-return]
        except Exception as exc:
            if isinstance(exc, apsw.Error | errors.Error):
                raise
            raise errors.OperationalError(str(exc)) from None

    def release(self, owner: object, database: str) -> None:
        self.state.lookup(Release(owner, database))

    def _leads(self) -> bool:
        leader_id, _, valid = self.nodehost.get_leader_id(SHARD_ID)
        return valid and leader_id == self.app.id

    def _barrier(self, timeout: float) -> None:
        """Wait until this member has applied everything committed before now."""
        try:
            rs = self.nodehost.read_index(SHARD_ID, timeout)
            outcome = rs.wait(timeout + 0.5)
            if outcome.dropped():
                self.nodehost.sync_read(SHARD_ID, Read(MEMBERS_DATABASE), timeout)
                return
            outcome.raise_for_code()
        except RaftError as exc:
            raise errors.OperationalError(f"no quorum for a consistent read: {exc}") from None
