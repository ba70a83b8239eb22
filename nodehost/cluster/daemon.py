"""The daemon: one member of a cluster, from its first start to its removal.

    daemon = Daemon("/var/lib/myd", version="1.0", schema_updates=[...],
                    endpoints=[...], hooks=Hooks(...), heartbeat_interval=10.0)
    daemon.run()        # until SIGTERM or SIGINT, or `shutdown` on the control socket

Rules:
- At start the daemon takes the state directory (one daemon per directory) and opens
  its control socket. An initialized member (daemon.json exists) starts its network
  listener and database at once and rejoins the cluster with its identity and data;
  an uninitialized one warns "database is uninitialized" and waits for `init`.
- `init` either bootstraps a cluster or joins one with a token; each is all-or-nothing:
  if any step fails, what it made (keys, files, database, listener) is undone, and the
  daemon is uninitialized again. daemon.json is written last.
- A member becomes ready when its database is reachable, it is still in the member
  table, and the schema is settled (see schema.py); hooks and heartbeats run from then.
- A member removed from the cluster (told so by the member that removed it, or finding
  itself missing from the member table) stops its database, forgets the cluster and is
  uninitialized again, ready for a new init.
- SIGTERM / SIGINT stop it cleanly: leadership is handed to another voter, the database
  is closed, the socket removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import inspect
import logging
import signal
import ssl
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from nodehost.cluster import heartbeat, identity, removal, sqlcommand, tokenrecords
from nodehost.cluster.admission import admit
from nodehost.cluster.client import Client, WrongCluster
from nodehost.cluster.core import control_endpoints, internal_endpoints
from nodehost.cluster.database import Database, DatabaseOptions, DatabaseStatus
from nodehost.cluster.errors import (
    BadRequest,
    ClusterError,
    Conflict,
    Forbidden,
    Unavailable,
    Unreachable,
)
from nodehost.cluster.hooks import Hooks
from nodehost.cluster.members import (
    Cursor,
    Member,
    Role,
    insert_member,
    now_text,
    read_members,
    statuses,
)
from nodehost.cluster.names import check_address, check_name, database_address, raft_address
from nodehost.cluster.pem import KeyPair
from nodehost.cluster.rest import Endpoint
from nodehost.cluster.schema import Decision, Schema, SchemaError, SchemaUpdate, Verdict
from nodehost.cluster.server import Dispatcher, Listener, port_free, serve_control, serve_network
from nodehost.cluster.state import State
from nodehost.cluster.statedir import DaemonConfig, StateDir
from nodehost.cluster.tls import ServerTLS, member_client_context
from nodehost.cluster.tokens import JoinToken, parse_duration
from nodehost.cluster.truststore import Remote, TrustStore
from nodehost.sqlite import errors as sql_errors

log = logging.getLogger("nodehost.cluster")
T = TypeVar("T")

USER_PREFIX = "/1.0/"
READY_TIMEOUT = 60.0


class _Refused(Exception):
    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.detail)
        self.decision = decision


class Daemon:
    def __init__(
        self,
        state_dir: str,
        *,
        version: str = "0.0.0",
        schema_updates: Sequence[SchemaUpdate] = (),
        endpoints: Sequence[Endpoint] = (),
        hooks: Hooks | None = None,
        heartbeat_interval: float = 10.0,
        database: DatabaseOptions | None = None,
    ) -> None:
        if not heartbeat_interval > 0:
            raise ValueError("heartbeat_interval must be positive")
        routes = set()
        for endpoint in endpoints:
            for method in endpoint.handlers:
                if (method, endpoint.path) in routes:
                    raise ValueError(f"two endpoints serve {method} {endpoint.path}")
                routes.add((method, endpoint.path))
        self.state_dir = StateDir(state_dir)
        self.version = version
        self.schema = Schema(schema_updates)
        self.hooks = hooks or Hooks()
        self.heartbeat_interval = float(heartbeat_interval)
        self.trust = TrustStore(self.state_dir)
        self.database = Database(self.state_dir, database or DatabaseOptions())
        self.state = State(self)
        self._user_endpoints = list(endpoints)
        self._config: DaemonConfig | None = None
        self._fingerprint = ""
        self._client_context: ssl.SSLContext | None = None
        self._server_tls: ServerTLS | None = None
        self._network: Listener | None = None
        self._network_closing: asyncio.Task[None] | None = None
        self._control: Listener | None = None
        self._executor = ThreadPoolExecutor(max_workers=24, thread_name_prefix="nodehost-cluster")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._strays = heartbeat.StrayTracker()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._init_lock: asyncio.Lock | None = None
        self._schema_nudge: asyncio.Event | None = None
        self._reset_done: asyncio.Event | None = None
        self.trust.subscribe(self._trust_changed)

    # ------------------------------------------------------------------ Host

    @property
    def name(self) -> str:
        if self._config is None:
            raise Unavailable("database is uninitialized")
        return self._config.name

    @property
    def address(self) -> str:
        if self._config is None:
            raise Unavailable("database is uninitialized")
        return self._config.address

    def peer(self, address: str, timeout: float | None = None) -> Client:
        if self._client_context is None:
            raise Unavailable("this member belongs to no cluster")
        return Client(address=address, context=self._client_context, timeout=timeout or 30.0)

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    async def run_hook(self, name: str, *args: Any) -> None:
        hook = getattr(self.hooks, name)
        if hook is None:
            return
        if inspect.iscoroutinefunction(hook):
            await hook(self.state, *args)
        else:
            result = await self.in_thread(hook, self.state, *args)
            if inspect.isawaitable(result):
                await result

    async def wait_reset(self, timeout: float) -> bool:
        assert self._reset_done is not None
        try:
            await asyncio.wait_for(self._reset_done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ running

    def run(self) -> None:
        """Serve until SIGTERM, SIGINT or a `shutdown` request."""
        asyncio.run(self.serve())

    async def serve(self, *, handle_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._init_lock = asyncio.Lock()
        self._schema_nudge = asyncio.Event()
        self._reset_done = asyncio.Event()
        await self._open()
        if handle_signals:
            for number in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(number, self._stopping.set)
        try:
            await self._stopping.wait()
            log.info("stopping")
        finally:
            await self._close()

    def request_stop(self) -> None:
        """Stop the daemon (from any thread)."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def _open(self) -> None:
        self.state_dir.create()
        self.state_dir.lock()
        try:
            self.trust.load()
            dispatcher = Dispatcher(self, self.state)
            routes = [("/core/control/", e) for e in control_endpoints(self)]
            routes += [(USER_PREFIX, e) for e in self._user_endpoints]
            self._control = await serve_control(
                dispatcher.application(routes, network=False), self.state_dir.control_socket
            )
            self._config = self.state_dir.load_config()
        except BaseException:
            self.state_dir.unlock()
            raise
        if self._config is None:
            log.warning(
                "database is uninitialized: initialize this member with init NAME ADDRESS "
                "--bootstrap, or --token TOKEN"
            )
            return
        self._spawn(self._resume())

    async def _close(self) -> None:
        self.database.set_status(DatabaseStatus.STOPPING)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self._stop_network()
        await self.in_thread(self.database.hand_over_leadership)
        await self.in_thread(self.database.close)
        if self._control is not None:
            await self._control.close()
        self.state_dir.control_socket.unlink(missing_ok=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.state_dir.unlock()
        log.info("stopped")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        config = self._config
        return {
            "initialized": config is not None,
            "name": config.name if config else None,
            "address": config.address if config else None,
            "fingerprint": self._fingerprint or None,
            "database": str(self.database.status),
            "detail": self.database.detail,
            "version": self.version,
        }

    # ------------------------------------------------------------------ init

    async def initialize(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self._init_lock is not None
        name = check_name(body.get("name"))
        address = body.get("address")
        host = check_address(address)[0]
        assert isinstance(address, str)
        bootstrap, token = body.get("bootstrap", False), body.get("token")
        config = body.get("config") or {}
        if not isinstance(bootstrap, bool):
            raise BadRequest("bootstrap must be true or false")
        if bootstrap == (token is not None):
            raise BadRequest("give exactly one of --bootstrap and --token")
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in config.items()
        ):
            raise BadRequest("config must map names to strings")
        async with self._init_lock:
            if self._config is not None:
                raise Conflict(
                    f"this daemon is already initialized as member {self._config.name!r} "
                    f"({self._config.address}): it cannot bootstrap or join another cluster"
                )
            if self._network_closing is not None:
                await self._network_closing
            for label, candidate in (
                ("the network listener", address),
                ("the database", database_address(address)),
                ("Raft", raft_address(address)),
            ):
                problem = port_free(host, int(candidate.rpartition(":")[2]))
                if problem is not None:
                    raise Conflict(f"{label} cannot use {candidate}: {problem}")
            self._reset_done = asyncio.Event()
            if bootstrap:
                await self._bootstrap(name, address, config)
            else:
                await self._join(name, address, token, config)
        return self.status()

    async def _bootstrap(self, name: str, address: str, config: dict[str, str]) -> None:
        log.info("bootstrapping a new cluster as %s (%s)", name, address)
        self._begin(name, address)
        try:
            host = check_address(address)[0]
            member = await self.in_thread(identity.generate_member, name, host)
            cluster = await self.in_thread(identity.generate_cluster, f"nodehost-cluster-{name}")
            await self.in_thread(self._save_identity, member, cluster, name, host)
            self.trust.replace([Remote.of(name, address, member.certificate)])
            await self._start_network()
            await self.in_thread(self.database.start, address, [], self._peer_addresses)
            await self.in_thread(self.database.require_app().ready, READY_TIMEOUT)
            now = now_text()
            record = Member(
                name,
                address,
                member.certificate,
                member.fingerprint,
                str(Role.VOTER),
                self.schema.versions.internal,
                self.schema.versions.external,
                now,
            )

            def found(cursor: Cursor) -> None:
                applied = self.schema.applied(cursor)
                if applied.internal or applied.external:
                    raise Conflict("the database already holds a cluster")
                self.schema.apply(cursor, applied, now)
                insert_member(cursor, record)

            await self.in_thread(self.database.transaction, found)
            await self.in_thread(self.state_dir.save_config, DaemonConfig(name, address))
        except BaseException as exc:
            log.error("bootstrap failed: %s", exc)
            await self._undo()
            raise
        self.database.set_status(DatabaseStatus.READY)
        log.info("cluster bootstrapped; member %s is ready", name)
        self._start_loops()
        await self._hook_reporting("on_bootstrap", config)
        await self._hook_reporting("on_start")

    async def _join(
        self, name: str, address: str, token_text: object, config: dict[str, str]
    ) -> None:
        token = JoinToken.decode(token_text)
        if token.name != name:
            raise BadRequest(
                f"this join token was issued for member {token.name!r}: initialize with that name"
            )
        log.info("joining the cluster as %s (%s)", name, address)
        self._begin(name, address)
        admitted_by: str | None = None
        try:
            host = check_address(address)[0]
            member = await self.in_thread(identity.generate_member, name, host)
            self.state_dir.save_pair(
                member, self.state_dir.server_certificate, self.state_dir.server_key
            )
            answer, admitted_by = await self._ask_to_join(token, name, address, member)
            cluster, remotes = self._check_admission(answer, token)
            await self.in_thread(self._save_identity, member, cluster, name, host)
            self.trust.replace(remotes)
            await self._start_network()
            others = [r.address for r in remotes if r.name != name]
            await self.in_thread(self.database.start, address, others, self._peer_addresses)
            await self._wait_database(READY_TIMEOUT)
            decision = await self.in_thread(self._ensure_schema)
            if decision.verdict not in (Verdict.CURRENT, Verdict.APPLY):
                raise Conflict(f"joined, but the schema is not settled: {decision.detail}")
            await self._record_own_role()
            await self.in_thread(self.state_dir.save_config, DaemonConfig(name, address))
        except BaseException as exc:
            log.error("join failed: %s", exc)
            await self._undo(abandon=admitted_by)
            raise
        self.database.set_status(DatabaseStatus.READY)
        log.info("joined the cluster; member %s is ready", name)
        self._start_loops()
        admitting = str(admitted_by)
        try:
            await self.in_thread(
                lambda: self.peer(admitting).request(
                    "POST", "/core/internal/joined", {"name": name}
                )
            )
        except ClusterError as exc:
            log.warning("the other members could not run their on_new_member hooks: %s", exc)
        await self._hook_reporting("on_join", config)
        await self._hook_reporting("on_start")

    async def _ask_to_join(
        self, token: JoinToken, name: str, address: str, member: KeyPair
    ) -> tuple[Any, str]:
        body = {
            "name": name,
            "address": address,
            "certificate": member.certificate,
            "secret": token.secret,
            "schema_internal": self.schema.versions.internal,
            "schema_external": self.schema.versions.external,
        }
        problems: list[str] = []
        foreign = 0
        for join_address in token.join_addresses:
            client = Client.pinned(join_address, token.fingerprint, timeout=60.0)
            try:
                answer = await self.in_thread(client.request, "POST", "/core/internal/join", body)
            except (Unreachable, Unavailable, WrongCluster) as exc:
                foreign += isinstance(exc, WrongCluster)
                problems.append(str(exc) if join_address in str(exc) else f"{join_address}: {exc}")
                continue
            return answer, join_address
        detail = "; ".join(problems)
        if foreign == len(problems):
            raise WrongCluster(
                "no member the token lists presented the cluster certificate it names, so "
                f"nothing was sent (is the token for another cluster?): {detail}"
            )
        raise Unreachable(
            f"could not join through any member the token lists (nothing was changed): {detail}"
        )

    def _check_admission(self, answer: Any, token: JoinToken) -> tuple[KeyPair, list[Remote]]:
        if not isinstance(answer, dict):
            raise Forbidden("the member's answer to the join request is malformed")
        cluster = KeyPair(
            str(answer.get("cluster_certificate", "")), str(answer.get("cluster_key", ""))
        )
        identity.check_pair(cluster)
        if cluster.fingerprint != token.fingerprint:
            raise Forbidden("the member sent another cluster certificate than the token names")
        members = answer.get("members")
        if not isinstance(members, list):
            raise Forbidden("the member's answer lists no members")
        return cluster, [Remote.from_json(item) for item in members]

    def _save_identity(self, member: KeyPair, cluster: KeyPair, name: str, host: str) -> None:
        layout = self.state_dir
        layout.save_pair(member, layout.server_certificate, layout.server_key)
        layout.save_pair(cluster, layout.cluster_certificate, layout.cluster_key)
        layout.write(
            layout.database_certificate,
            identity.issue_database_certificate(cluster, member, name, host),
        )
        self._load_identity()

    def _load_identity(self) -> None:
        layout = self.state_dir
        member = layout.load_pair(layout.server_certificate, layout.server_key)
        if member is None or not layout.cluster_certificate.exists():
            raise Unavailable(f"{layout.root} lacks this member's certificates")
        self._fingerprint = member.fingerprint
        self._client_context = member_client_context(
            layout.cluster_certificate, layout.server_certificate, layout.server_key
        )

    def _begin(self, name: str, address: str) -> None:
        self._config = DaemonConfig(name, address)
        self.database.set_status(DatabaseStatus.STARTING)

    async def _undo(self, abandon: str | None = None) -> None:
        """Take back a failed init: the listener, the database, the files."""
        name = self._config.name if self._config else ""
        await self._stop_network(wait=True)
        await self.in_thread(self.database.close)
        if abandon is not None:
            try:  # the admitting member drops our pending row (and replica, if any)
                await self.in_thread(
                    lambda: self.peer(abandon, 10.0).request(
                        "DELETE", f"/core/internal/members/{name}", query={"force": "1"}
                    )
                )
            except ClusterError as exc:
                log.warning("could not withdraw from the cluster (remove %s there): %s", name, exc)
        await self.in_thread(self.state_dir.remove_membership)
        self.trust.clear()
        self._config = None
        self._fingerprint = ""
        self._client_context = None
        self.database.set_status(DatabaseStatus.UNINITIALIZED)

    async def _hook_reporting(self, name: str, *args: Any) -> None:
        """Run a hook of init; its failure is the command's error (the init stands)."""
        try:
            await self.run_hook(name, *args)
        except Exception as exc:
            log.exception("the %s hook failed", name)
            raise ClusterError(
                f"the member is initialized, but its {name} hook failed: {exc}"
            ) from None

    # ------------------------------------------------------------------ restart

    async def _resume(self) -> None:
        assert self._config is not None
        self.database.set_status(DatabaseStatus.STARTING)
        try:
            self._load_identity()
            await self._start_network()
            await self.in_thread(self.database.start, self.address, [], self._peer_addresses)
            await self._wait_database(None)
            members = await self.in_thread(self.database.read, read_members)
            if not any(m.name == self.name and m.fingerprint == self._fingerprint for m in members):
                log.error("this member was removed from the cluster while it was away")
                await self._forget()
                return
            if not await self._settle():
                return
        except (ClusterError, sql_errors.Error) as exc:
            log.error("could not rejoin the cluster: %s", exc)
            self.database.set_status(DatabaseStatus.FAILED, f"could not rejoin the cluster: {exc}")
            return
        log.info("member %s is ready", self.name)
        self._start_loops()
        try:
            await self.run_hook("on_start")
        except Exception:
            log.exception("the on_start hook failed")

    async def _wait_database(self, timeout: float | None) -> None:
        """Until the member table can be read (through this member or the others);
        `timeout` None waits as long as the daemon runs."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            try:
                await self.in_thread(self.database.read, read_members)
                return
            except (ClusterError, sql_errors.Error) as exc:
                self.database.set_status(DatabaseStatus.STARTING, f"database is starting: {exc}")
                if deadline is not None and loop.time() > deadline:
                    raise Unavailable(
                        f"the cluster database did not answer in time: {exc}"
                    ) from None
            await asyncio.sleep(0.5)

    async def _settle(self) -> bool:
        """Record this member's schema versions and wait until the schema is settled."""
        assert self._schema_nudge is not None and self._stopping is not None
        warned = ""
        while True:
            self._schema_nudge.clear()
            try:
                decision = await self.in_thread(self._ensure_schema)
            except SchemaError as exc:
                log.error("%s", exc)
                self.database.set_status(DatabaseStatus.FAILED, str(exc))
                return False
            except (ClusterError, sql_errors.Error) as exc:
                self.database.set_status(
                    DatabaseStatus.STARTING, f"cannot reach the cluster database: {exc}"
                )
                await self._pause(1.0)
                continue
            if decision.verdict in (Verdict.CURRENT, Verdict.APPLY):
                self.database.set_status(DatabaseStatus.READY)
                if decision.verdict is Verdict.APPLY:
                    log.info("schema updated to version %s", self.schema.versions)
                    self._spawn(self._announce_schema())
                return True
            status = (
                DatabaseStatus.WAITING
                if decision.verdict is Verdict.WAIT
                else DatabaseStatus.BEHIND
            )
            self.database.set_status(status, decision.detail)
            if decision.detail != warned:
                log.warning("%s", decision.detail)
                warned = decision.detail
            await self._pause(min(30.0, 3 * self.heartbeat_interval))

    async def _pause(self, seconds: float) -> None:
        assert self._schema_nudge is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._schema_nudge.wait(), seconds)

    def _ensure_schema(self) -> Decision:
        now = now_text()
        name = self.name

        def work(cursor: Cursor) -> Decision:
            decision = self.schema.ensure(cursor, name, now)
            if decision.verdict is Verdict.BEHIND:
                raise _Refused(decision)  # rolls back: a member behind records nothing
            return decision

        try:
            return self.database.transaction(work)
        except _Refused as refused:
            return refused.decision

    async def _announce_schema(self) -> None:
        try:
            await self.state.broadcast("POST", "/core/internal/schema/upgraded", timeout=10.0)
        except ClusterError as exc:
            log.info("telling the others about the new schema: %s", exc)

    def schema_changed(self) -> None:
        if self._schema_nudge is not None:
            self._schema_nudge.set()

    async def _record_own_role(self) -> None:
        """Right after joining: wait (briefly) for the database to give this member a
        role, and record it with a first heartbeat time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while not self.database.has_replica() and loop.time() < deadline:
            await asyncio.sleep(0.2)
        role = Role.PENDING
        if self.database.has_replica():
            mine = database_address(self.address)
            nodes = await self.in_thread(self.database.nodes)
            found = next((n for n in nodes if n.address == mine), None)
            if found is not None:
                role = heartbeat.ROLE_NAMES[found.role]
        now, name = now_text(), self.name

        def work(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE core_cluster_members SET role = ?, heartbeat = ? WHERE name = ?",
                (str(role), now, name),
            )

        await self.in_thread(self.database.transaction, work)

    # ------------------------------------------------------------------ network

    async def _start_network(self) -> None:
        layout = self.state_dir
        host, port = check_address(self.address)
        self._server_tls = ServerTLS(layout.cluster_certificate, layout.cluster_key)
        self._server_tls.trust([r.certificate for r in self.trust.remotes()])
        dispatcher = Dispatcher(self, self.state)
        routes = [("/core/internal/", e) for e in internal_endpoints(self)]
        routes += [(USER_PREFIX, e) for e in self._user_endpoints]
        self._network = await serve_network(
            dispatcher.application(routes, network=True), host, port, self._server_tls.context
        )

    async def _stop_network(self, wait: bool = True) -> None:
        network, self._network = self._network, None
        self._server_tls = None
        if network is None:
            return
        task = asyncio.ensure_future(network.close())
        self._network_closing = task
        if wait:
            await task

    def _trust_changed(self, remotes: list[Remote]) -> None:
        tls = self._server_tls
        if tls is not None:
            tls.trust([r.certificate for r in remotes])

    def _peer_addresses(self) -> list[str]:
        own = self._config.name if self._config else ""
        return [r.address for r in self.trust.remotes() if r.name != own]

    # ------------------------------------------------------------------ loops

    def _start_loops(self) -> None:
        self._spawn(self._heartbeat_loop())
        self._spawn(self._watch_loop())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            if self.database.status not in (DatabaseStatus.READY, DatabaseStatus.WAITING):
                continue
            if not self.database.is_leader():
                continue
            try:
                result = await heartbeat.run_round(self, self._strays)
                app = self.database.require_app()
                for node in result.strays:
                    log.warning(
                        "removing %s from the database: it is no member of the cluster",
                        node.address,
                    )
                    await self.in_thread(app.remove_member, node.id, 10.0)
                await self.run_hook("on_heartbeat", result.roles)
            except (ClusterError, sql_errors.Error) as exc:
                log.info("heartbeat round: %s", exc)
            except Exception:
                log.exception("heartbeat round failed")

    async def _watch_loop(self) -> None:
        """Keep the trust store in step with the member table, and notice a removal
        that happened while this member was cut off."""
        assert self._init_lock is not None
        period = max(0.5, min(2.0, self.heartbeat_interval / 2))
        leaderless_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            if self._init_lock.locked() or self._config is None:
                continue
            try:
                if self.database.has_replica():
                    leaderless_since = None
                    members = await self.in_thread(self.database.read, read_members, "none")
                    if self._listed(members):
                        self.trust.replace(heartbeat.remotes_of(members))
                        continue
                else:
                    leaderless_since = leaderless_since or loop.time()
                    if loop.time() - leaderless_since < max(10.0, 3 * self.heartbeat_interval):
                        continue
                    leaderless_since = loop.time()
                confirmed = await self.in_thread(
                    lambda: self.database.read(read_members, "strong", remote=True)
                )
                if not self._listed(confirmed):
                    log.error("this member is no longer in the cluster's member table")
                    async with self._init_lock:
                        await self._forget()
                    return
            except (ClusterError, sql_errors.Error) as exc:
                log.debug("membership check: %s", exc)

    def _listed(self, members: list[Member]) -> bool:
        return any(m.name == self.name and m.fingerprint == self._fingerprint for m in members)

    async def _forget(self) -> None:
        """This member was removed: stop serving the cluster and forget it."""
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        await self._stop_network(wait=False)
        await self.in_thread(self.database.close)
        await self.in_thread(self.state_dir.remove_membership)
        self.trust.clear()
        self._config = None
        self._fingerprint = ""
        self._client_context = None
        self._strays = heartbeat.StrayTracker()
        self.database.set_status(DatabaseStatus.UNINITIALIZED)
        if self._reset_done is not None:
            self._reset_done.set()
        log.warning("removed from the cluster: database is uninitialized")

    # ------------------------------------------------------------------ core operations

    async def list_members(self) -> list[dict[str, Any]]:
        self.database.check_started()
        try:
            members = await self.in_thread(self.database.read, read_members)
        except (ClusterError, sql_errors.OperationalError) as exc:
            log.info("listing members from this member's copy: %s", exc)
            members = await self.in_thread(self.database.read, read_members, "none")
        seen = statuses(
            members,
            local=self.name,
            now=datetime.datetime.now(datetime.UTC),
            heartbeat_interval=self.heartbeat_interval,
        )
        return [m.to_json(seen[m.name]) for m in members]

    async def remove_member(self, name: str, force: bool, forwarded: bool) -> None:
        self.database.check_started()
        check_name(name)
        await removal.remove(self, name, force, forwarded=forwarded)

    async def add_token(self, name: str, expire_after: str) -> str:
        self.database.check_ready()
        check_name(name, "token name")
        lifetime = parse_duration(expire_after)
        now = datetime.datetime.now(datetime.UTC)

        def work(cursor: Cursor) -> tuple[str, list[str]]:
            secret = tokenrecords.issue(cursor, name, lifetime, now)
            members = read_members(cursor)
            own = [m.address for m in members if m.name == self.name]
            others = [m.address for m in members if m.name != self.name and m.role != Role.PENDING]
            return secret, own + others

        secret, addresses = await self.in_thread(self.database.transaction, work)
        cluster_fingerprint = identity.fingerprint(self.state_dir.cluster_certificate.read_text())
        return JoinToken(name, secret, cluster_fingerprint, tuple(addresses)).encode()

    async def list_tokens(self) -> list[dict[str, Any]]:
        self.database.check_ready()
        now = datetime.datetime.now(datetime.UTC)
        records = await self.in_thread(self.database.read, tokenrecords.read_records)
        return [r.to_json() for r in records if not r.expired(now)]

    async def revoke_token(self, name: str) -> None:
        self.database.check_ready()
        await self.in_thread(
            self.database.transaction, lambda cursor: tokenrecords.revoke(cursor, name)
        )

    async def run_sql(self, query: str) -> dict[str, Any]:
        self.database.check_started()
        return await self.in_thread(sqlcommand.run, self.database, query)

    async def shutdown(self) -> None:
        assert self._stopping is not None
        self._stopping.set()

    async def admit(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.in_thread(admit, self, body)

    async def joined(self, name: str) -> None:
        member = self.trust.by_name(name)
        if member is None:
            raise Conflict(f"{name!r} is not a member this one knows")
        body = {"member": member.to_json()}
        await self.run_hook("on_new_member", member)
        others = [r for r in self.trust.remotes() if r.name not in (name, self.name)]
        failures = []
        for remote in others:
            try:
                await self.in_thread(
                    lambda r=remote: self.peer(r.address, 30.0).request(
                        "POST", "/core/internal/hooks/new-member", body, notification=True
                    )
                )
            except ClusterError as exc:
                failures.append(f"{remote.name}: {exc}")
        if failures:
            raise ClusterError("on_new_member failed on " + "; ".join(failures))

    async def new_member(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise BadRequest("expected {member}")
        await self.run_hook("on_new_member", Remote.from_json(body.get("member")))

    async def heartbeat(self, body: Any) -> dict[str, Any]:
        if not heartbeat.receive(self, body, self._fingerprint):
            log.info("a heartbeat left this member out of the member list")
        self.schema_changed()
        return {"name": self.name, "database": str(self.database.status)}

    async def reset_removed(self) -> None:
        """Another member removed this one: check the member table, then forget."""
        assert self._init_lock is not None
        if self._config is None:
            return
        try:
            members = await self.in_thread(
                lambda: self.database.read(read_members, "strong", remote=True)
            )
        except (ClusterError, sql_errors.Error) as exc:
            raise Unavailable(f"cannot confirm the removal with the other members: {exc}") from None
        if self._listed(members):
            raise Conflict("this member is still in the member table: not resetting")
        async with self._init_lock:
            if self._config is not None:
                await self._forget()
