"""The member's replicated database: a nodehost.sqlite App, its status, and transactions.

Rules:
- One App per member, in `state_dir/database`; the database is `cluster` (core tables
  and the user's, one SQLite file on every member with a replica). The App listens for
  dqlite's wire protocol on the member's port + 1000 and runs Raft on port + 2000, both
  with mutual TLS under the cluster certificate (the member's database certificate is
  signed by the cluster key).
- A member whose replica hears a leader (a voter or stand-by) reads and writes through
  it; one that does not (a spare, or a member just starting) goes to the other members
  over the wire protocol. Either way the caller gets the same PEP 249 connection.
- `transaction(work)` runs `work(cursor)` between BEGIN and COMMIT and runs it again
  (up to `attempts` times) when the commit conflicts with another member's transaction.
- The status says what the API may do: nothing before `ready`, except what the
  endpoints allow (listing members while waiting for an upgrade, for one).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from nodehost.cluster.errors import Unavailable
from nodehost.cluster.members import Cursor
from nodehost.cluster.names import database_address
from nodehost.cluster.statedir import StateDir
from nodehost.sqlite import App, Connection, NodeInfo, Role, TLSOptions, client_tls, connect
from nodehost.sqlite import errors as sql_errors
from nodehost.sqlite.client import Connection as RemoteConnection

log = logging.getLogger("nodehost.cluster")

DATABASE_NAME = "cluster"
BUSY_SNAPSHOT = 517
T = TypeVar("T")


class DatabaseStatus(StrEnum):
    UNINITIALIZED = "uninitialized"
    STARTING = "starting"
    WAITING = "waiting"  # this member's code has a newer schema than some members'
    BEHIND = "behind"  # this member's code is older than the cluster's schema
    FAILED = "failed"  # a schema update failed
    READY = "ready"
    STOPPING = "stopping"


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """Settings of the App under the cluster (see nodehost.sqlite.App)."""

    voters: int = 3
    standbys: int = 3
    rtt_millisecond: int = 100
    election_rtt: int = 10
    unreachable_timeout: float = 5.0
    timeout: float = 10.0  # bound of one SQL call


class Database:
    def __init__(self, state_dir: StateDir, options: DatabaseOptions) -> None:
        self._state_dir = state_dir
        self.options = options
        self.app: App | None = None
        self._peers: Callable[[], list[str]] = list
        self._lock = threading.Lock()
        self.status = DatabaseStatus.UNINITIALIZED
        self.detail = "database is uninitialized"

    # ------------------------------------------------------------------ status

    def set_status(self, status: DatabaseStatus, detail: str = "") -> None:
        self.status = status
        self.detail = detail or {
            DatabaseStatus.UNINITIALIZED: "database is uninitialized",
            DatabaseStatus.STARTING: "database is starting",
            DatabaseStatus.READY: "database is ready",
            DatabaseStatus.STOPPING: "the daemon is stopping",
        }.get(status, str(status))

    def check_ready(self) -> None:
        if self.status is not DatabaseStatus.READY:
            raise Unavailable(self.detail)

    def check_started(self) -> None:
        """The App runs (it may still wait for an upgrade): raw SQL and listing work."""
        if self.app is None or self.status in (
            DatabaseStatus.UNINITIALIZED,
            DatabaseStatus.STOPPING,
        ):
            raise Unavailable(self.detail)

    # ------------------------------------------------------------------ lifetime

    def start(self, address: str, join: list[str], peers: Callable[[], list[str]]) -> None:
        """Start the App (blocking): found a cluster when `join` is empty, join through
        the members at the network addresses `join` otherwise, restart when the
        directory already holds a member. `peers` lists the other members' network
        addresses, for when this member has no replica of its own."""
        tls = TLSOptions(
            str(self._state_dir.cluster_certificate),
            str(self._state_dir.database_certificate),
            str(self._state_dir.server_key),
        )
        options = self.options
        try:
            app = App(
                self._state_dir.database,
                address=database_address(address),
                cluster=[database_address(a) for a in join],
                tls=tls,
                voters=options.voters,
                standbys=options.standbys,
                rtt_millisecond=options.rtt_millisecond,
                election_rtt=options.election_rtt,
                unreachable_timeout=options.unreachable_timeout,
            )
        except sql_errors.Error as exc:
            raise Unavailable(f"the database could not start: {exc}") from None
        with self._lock:
            self.app = app
            self._peers = peers

    def close(self) -> None:
        with self._lock:
            app, self.app = self.app, None
        if app is None:
            return
        try:
            app.close()
        except Exception:
            log.exception("closing the database failed")

    def hand_over_leadership(self, timeout: float = 3.0) -> None:
        """Before a clean stop: move leadership to another voter, so the cluster does
        not wait an election timeout to notice this member is gone."""
        app = self.app
        if app is None or not app.is_leader():
            return
        try:
            voters = [n for n in app.cluster(timeout) if n.id != app.id and n.role is Role.VOTER]
            if voters:
                app.transfer(voters[0].id, timeout)
        except Exception as exc:  # best effort: the stop goes on
            log.info("leadership hand-over before stopping: %s", exc)

    # ------------------------------------------------------------------ access

    def require_app(self) -> App:
        app = self.app
        if app is None:
            raise Unavailable(self.detail)
        return app

    def has_replica(self) -> bool:
        """Whether this member's replica hears a leader (so it can serve reads itself)."""
        app = self.app
        return app is not None and app.leader() is not None

    def is_leader(self) -> bool:
        app = self.app
        return app is not None and app.is_leader()

    def nodes(self, timeout: float = 5.0) -> list[NodeInfo]:
        """The App's members and roles (linearizable, through this member's replica)."""
        try:
            return self.require_app().cluster(timeout)
        except sql_errors.Error as exc:
            raise Unavailable(f"the database membership is unavailable: {exc}") from None

    def connect(
        self, consistency: str = "strong", *, remote: bool = False
    ) -> Connection | RemoteConnection:
        """A PEP 249 connection (autocommit: transactions are explicit); `remote` asks
        the other members even when this member's replica hears a leader."""
        app = self.require_app()
        if not remote and app.leader() is not None:
            return app.open(
                DATABASE_NAME,
                consistency=consistency,
                isolation_level=None,
                timeout=self.options.timeout,
            )
        others = [database_address(a) for a in self._peers()]
        if not others:
            raise Unavailable("this member's database hears no leader and knows no other member")
        context = client_tls(
            str(self._state_dir.cluster_certificate),
            str(self._state_dir.database_certificate),
            str(self._state_dir.server_key),
        )
        try:
            return connect(
                others,
                DATABASE_NAME,
                timeout=self.options.timeout,
                consistency=consistency,
                isolation_level=None,
                tls=context,
            )
        except sql_errors.Error as exc:
            raise Unavailable(f"no member's database answers: {exc}") from None

    def transaction(
        self, work: Callable[[Cursor], T], *, attempts: int = 8, consistency: str = "strong"
    ) -> T:
        """`work(cursor)` in one replicated transaction, retried on commit conflicts."""
        for attempt in range(1, attempts + 1):
            connection = self.connect(consistency)
            try:
                cursor = connection.cursor()
                cursor.execute("BEGIN")
                try:
                    result = work(cursor)
                    cursor.execute("COMMIT")
                    return result
                except BaseException:
                    _rollback(cursor)
                    raise
            except sql_errors.OperationalError as exc:
                if exc.code != BUSY_SNAPSHOT or attempt == attempts:
                    raise
                log.debug("transaction conflict (attempt %d): retrying", attempt)
            finally:
                connection.close()
            time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise AssertionError("unreachable")

    def read(
        self, work: Callable[[Cursor], T], consistency: str = "strong", *, remote: bool = False
    ) -> T:
        """`work(cursor)` outside a transaction (reads only)."""
        connection = self.connect(consistency, remote=remote)
        try:
            return work(connection.cursor())
        finally:
            connection.close()


def _rollback(cursor: Cursor) -> None:
    try:
        cursor.execute("ROLLBACK")
    except sql_errors.Error:
        pass  # the transaction is gone with the error (or never began)
