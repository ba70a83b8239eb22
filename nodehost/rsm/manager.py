"""The apply layer: committed entries in, user state machine calls and results out.

Rules:
- Entries arrive in log order, each index once; an index at or below the applied one is
  a replay after a restart and is skipped, and a gap is a broken invariant (ValueError).
- What reaches the user is decided by the entry alone, so every replica decides alike:
  a leader's no-op (client 0, empty cmd), METADATA entries (a witness's log), config
  changes and session registration never do; a no-op-session entry always does; a
  session entry does once per (client, series) while its session lives (thesis 6.3).
- Config changes go through `membership.check` and `membership.apply`, the functions
  the core uses, so the core and the state machine agree on every change.
- Batching never changes the outcome: results of a batch are stored in sessions after
  the user call with the same effect as one at a time (see ClientSession.add), and a
  retry of a series already in the batch flushes the batch first.
- A user exception stops the replica (StateMachineError); no later call is served.
- Locking: `_lock` guards the manager's state and every call that changes user state.
  Regular kind: `lookup` and `save_snapshot` take it too. Concurrent and on-disk kinds:
  `lookup` never takes it, and a snapshot holds it only while `prepare_snapshot` runs.
  Snapshot saves take `_saving` first, so they run one at a time (a second waits, then
  finds the snapshot made).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NoReturn, TypeVar, cast

from google.protobuf.message import DecodeError

from nodehost.raft import membership
from nodehost.rsm.adapters import UserStateMachine, adapt
from nodehost.rsm.errors import (
    SnapshotCorrupt,
    SnapshotError,
    SnapshotOutOfDate,
    StateMachineError,
)
from nodehost.rsm.session import SERIES_ID_NOOP, SERIES_ID_REGISTER, SERIES_ID_UNREGISTER
from nodehost.rsm.sessions import ClientSession, SessionTable, check_result_value
from nodehost.rsm.snapshotfiles import open_snapshot, write_snapshot
from nodehost.rsm.snapshotio import CompressionType, SnapshotWriter
from nodehost.rsm.store import SnapshotStore
from protos import raft_pb2 as pb
from statemachine import (
    Entry,
    IConcurrentStateMachine,
    IOnDiskStateMachine,
    IStateMachine,
    Result,
    SnapshotFileCollection,
    SnapshotStopped,
    StateMachineType,
)

Stopped = Callable[[], bool]
T = TypeVar("T")

_PB_TYPE = {
    StateMachineType.REGULAR: pb.REGULAR_STATE_MACHINE,
    StateMachineType.CONCURRENT: pb.CONCURRENT_STATE_MACHINE,
    StateMachineType.ON_DISK: pb.ON_DISK_STATE_MACHINE,
}


class ApplyKind(IntEnum):
    NOOP = 0  # a leader's empty entry
    APPLICATION = 1  # a user command
    CONFIG_CHANGE = 2
    REGISTER_SESSION = 3
    UNREGISTER_SESSION = 4
    METADATA = 5  # an entry a witness keeps in place of a command


@dataclass(slots=True)
class ApplyResult:
    """The outcome of one applied entry, for the proposal waiting on `key`.

    `rejected`: the entry took no effect, `reason` says why (an unknown session, a
    refused config change). `ignored`: nothing to report, complete no proposal (a retry
    the client has already seen answered, or an entry an on-disk state machine already
    had before a restart).
    """

    index: int
    key: int
    client_id: int
    series_id: int
    kind: ApplyKind
    result: Result = field(default_factory=Result)
    rejected: bool = False
    reason: str = ""
    ignored: bool = False
    config_change: pb.ConfigChange | None = None


class _Run:
    """One `apply` call: results in entry order, and the user entries not yet applied.

    A user entry's slot in `out` stays None until `_flush` calls the user's update for
    the whole batch; `keys` are the (client, series) pairs the batch holds.
    """

    __slots__ = ("batch", "keys", "out", "pending")

    def __init__(self) -> None:
        self.out: list[ApplyResult | None] = []
        self.pending: list[tuple[int, pb.Entry, ClientSession | None]] = []
        self.batch: list[Entry] = []
        self.keys: set[tuple[int, int]] = set()


class StateMachineManager:
    """Applies one replica's committed entries and takes and restores its snapshots."""

    def __init__(
        self,
        shard_id: int,
        replica_id: int,
        kind: StateMachineType,
        sm: IStateMachine | IConcurrentStateMachine | IOnDiskStateMachine | None,
        snapshots: SnapshotStore,
        *,
        ordered_config_change: bool = False,
        compression: CompressionType = CompressionType.NONE,
    ) -> None:
        self.shard_id = shard_id
        self.replica_id = replica_id
        self.kind = StateMachineType(kind)
        self.witness = sm is None
        self.snapshots = snapshots
        self._user: UserStateMachine = adapt(self.kind, sm)
        self._on_disk = self.kind is StateMachineType.ON_DISK and not self.witness
        self._ordered = ordered_config_change
        self._compression = CompressionType(compression)
        self._lock = threading.Lock()
        self._saving = threading.Lock()  # one snapshot save at a time; taken before _lock
        self._sessions = SessionTable()
        self._membership = pb.Membership()  # replaced, never changed in place
        self._applied_index = 0
        self._applied_term = 0
        self._on_disk_index = 0
        self._on_disk_init_index = 0
        self._opened = not self._on_disk
        self._failure: str | None = None
        self._closed = False

    # ------------------------------------------------------------------ state

    @property
    def applied_index(self) -> int:
        return self._applied_index

    @property
    def applied_term(self) -> int:
        return self._applied_term

    @property
    def on_disk_index(self) -> int:
        """On-disk kind: the last index the user's own data holds (0 for other kinds)."""
        return self._on_disk_index

    @property
    def membership(self) -> pb.Membership:
        """A copy of the membership as of the applied index."""
        copy = pb.Membership()
        copy.CopyFrom(self._membership)
        return copy

    def open(self, stopped: Stopped) -> int:
        """Open an on-disk state machine; returns the last index its data holds (else 0)."""
        with self._lock:
            self._check_usable(opening=True)
            if self._opened and self._on_disk:
                raise RuntimeError("the state machine is open already")
            index = self._user_call("open", self._user.open, stopped)
            self._on_disk_index = self._on_disk_init_index = index
            self._opened = True
            return index

    # ------------------------------------------------------------------ apply

    def apply(self, entries: Sequence[pb.Entry]) -> list[ApplyResult]:
        """Apply committed entries in order; one result per entry above the applied index."""
        with self._lock:
            self._check_usable()
            run = _Run()
            index = self._applied_index
            last: pb.Entry | None = None
            system = self.witness
            for e in entries:
                i = e.index
                if i <= index:
                    continue
                if i != index + 1:
                    raise ValueError(
                        f"shard {self.shard_id} replica {self.replica_id}: entry {i} "
                        f"does not follow applied index {index}"
                    )
                index, last = i, e
                if system or e.client_id == 0 or e.type != pb.APPLICATION:
                    run.out.append(self._system_entry(e))
                elif e.series_id == SERIES_ID_NOOP:
                    self._user_entry(run, e, None)
                else:
                    if (e.client_id, e.series_id) in run.keys:  # a retry within this batch
                        self._flush(run)
                    self._session_entry(run, e)
            self._flush(run)
            if last is not None:
                self._applied_index, self._applied_term = last.index, last.term
            return cast(list[ApplyResult], run.out)  # _flush filled every None

    def _system_entry(self, e: pb.Entry) -> ApplyResult:
        """Entries handled here, never passed to the user."""
        r = ApplyResult(e.index, e.key, e.client_id, e.series_id, ApplyKind.NOOP)
        if e.type == pb.CONFIG_CHANGE:
            self._config_change(e, r)
        elif e.type == pb.METADATA:
            r.kind = ApplyKind.METADATA
        elif e.type != pb.APPLICATION:
            r.rejected, r.reason = True, f"unknown entry type {e.type}"
        elif e.client_id == 0 and not e.cmd and e.series_id == SERIES_ID_NOOP:
            pass  # a new leader's no-op
        elif self.witness:
            r.kind, r.ignored = ApplyKind.APPLICATION, True
        else:
            r.kind = ApplyKind.APPLICATION
            r.rejected, r.reason = True, "an entry with client id 0 belongs to no session"
        return r

    def _config_change(self, e: pb.Entry, r: ApplyResult) -> None:
        r.kind = ApplyKind.CONFIG_CHANGE
        cc = pb.ConfigChange()
        try:
            cc.ParseFromString(e.cmd)
        except DecodeError:
            r.rejected, r.reason = True, "malformed config change"
            return
        r.config_change = cc
        reason = membership.check(self._membership, cc, self._ordered)
        if reason is not None:
            r.rejected, r.reason = True, reason
            return
        changed = pb.Membership()
        changed.CopyFrom(self._membership)
        membership.apply(changed, cc, e.index)
        self._membership = changed

    def _session_entry(self, run: _Run, e: pb.Entry) -> None:
        if e.series_id == SERIES_ID_REGISTER or e.series_id == SERIES_ID_UNREGISTER:
            run.out.append(self._register(e))
            return
        session = self._sessions.get(e.client_id)
        if session is not None:
            session.clear_to(e.responded_to)
            if not session.has_responded(e.series_id):
                cached = session.cached(e.series_id)
                if cached is None:
                    self._user_entry(run, e, session)
                else:
                    self._answer_retry(run, e, cached)
                return
        r = ApplyResult(e.index, e.key, e.client_id, e.series_id, ApplyKind.APPLICATION)
        if session is None:
            r.rejected, r.reason = True, "session expired"
        else:
            r.ignored = True  # the client has its answer and moved on
        run.out.append(r)

    def _answer_retry(self, run: _Run, e: pb.Entry, cached: Result) -> None:
        """A command its session already had applied, proposed again (a client retrying
        after a timeout): answered with the result it had, never applied again. This
        is what makes a registered session exactly once."""
        run.out.append(
            ApplyResult(e.index, e.key, e.client_id, e.series_id, ApplyKind.APPLICATION, cached)
        )

    def _register(self, e: pb.Entry) -> ApplyResult:
        r = ApplyResult(e.index, e.key, e.client_id, e.series_id, ApplyKind.REGISTER_SESSION)
        if e.series_id == SERIES_ID_UNREGISTER:
            r.kind = ApplyKind.UNREGISTER_SESSION
            if not self._sessions.unregister(e.client_id):
                r.rejected, r.reason = True, "unknown session"
        elif self._on_disk:
            r.rejected, r.reason = True, "on-disk state machines take no client sessions"
        elif not self._sessions.register(e.client_id):
            r.rejected, r.reason = True, "the session is registered already"
        if not r.rejected:
            r.result = Result(e.client_id)
        return r

    def _user_entry(self, run: _Run, e: pb.Entry, session: ClientSession | None) -> None:
        if e.index <= self._on_disk_init_index:
            # Already in the on-disk state machine's own data (thesis 5.2).
            run.out.append(
                ApplyResult(
                    e.index, e.key, e.client_id, e.series_id, ApplyKind.APPLICATION, ignored=True
                )
            )
            return
        run.pending.append((len(run.out), e, session))
        run.batch.append(Entry(e.index, e.cmd))
        if session is not None:
            run.keys.add((e.client_id, e.series_id))
        run.out.append(None)

    def _flush(self, run: _Run) -> None:
        """Call the user's update for the gathered entries and place their results."""
        if not run.batch:
            return
        results = self._user_call("update", self._user.update, run.batch)
        out = run.out
        for (slot, e, session), result in zip(run.pending, results, strict=True):
            if session is not None:
                self._keep(session, e.series_id, result)
            out[slot] = ApplyResult(
                e.index, e.key, e.client_id, e.series_id, ApplyKind.APPLICATION, result
            )
        if self._on_disk:
            self._on_disk_index = run.batch[-1].index
        run.pending.clear()
        run.batch.clear()
        run.keys.clear()

    def _keep(self, session: ClientSession, series_id: int, result: Result) -> None:
        try:
            check_result_value(result.value)
        except ValueError as e:
            self._user_failed("update", e)
        session.add(series_id, result)

    # ------------------------------------------------------------------ reads

    def lookup(self, query: Any) -> Any:
        """Query the user state machine; its exceptions reach the caller unchanged."""
        if self.witness:
            raise RuntimeError("a witness has no state machine to read")
        if self.kind is StateMachineType.REGULAR:
            with self._lock:
                self._check_usable()
                return self._user.lookup(query)
        self._check_usable()
        return self._user.lookup(query)

    def hash(self) -> int:
        """A digest of sessions, membership and the user's IHash (if any), 64 bits.

        Equal on replicas that applied the same entries; for tests and consistency checks.
        """
        with self._lock:
            self._check_usable()
            digest = hashlib.blake2b(digest_size=8)
            digest.update(self._sessions.digest())
            digest.update(self._membership.SerializeToString(deterministic=True))
            user = self._user_call("get_hash", self._user.hash)
            if user is not None:
                digest.update(user.to_bytes(8, "big"))
            return int.from_bytes(digest.digest(), "big")

    def sync(self) -> None:
        """Make what the on-disk state machine applied durable (no-op for other kinds)."""
        with self._lock:
            self._check_usable()
            self._user_call("sync", self._user.sync)

    # ------------------------------------------------------------------ snapshots

    def save_snapshot(self, stopped: Stopped, *, export_path: str | None = None) -> pb.Snapshot:
        """Snapshot the state at the applied index into the store (or into `export_path`).

        On-disk kind: metadata only (the user's data is its own snapshot), after a `sync`
        so that the log it stands for may be compacted; a full one when exporting.
        Witness: metadata only. Raises SnapshotOutOfDate when nothing is new.
        """
        with self._saving:
            if self.witness or (self._on_disk and export_path is None):
                return self._save_metadata_only()
            return self._save_full(stopped, export_path, streamable=False)

    def save_streamable_snapshot(self, stopped: Stopped) -> pb.Snapshot:
        """A snapshot with all the data, to send to a follower.

        On-disk kind: written in full into the store, replacing a metadata-only one at
        the same index; one that is already full is returned as it is. Other kinds:
        their regular snapshot (already full), or the existing one at the applied index.
        """
        with self._saving:
            if self.witness:
                return self._save_metadata_only()
            return self._save_full(stopped, None, streamable=True)

    def _save_metadata_only(self) -> pb.Snapshot:
        with self._lock:
            self._check_usable()
            index = self._applied_index
            self._check_new(index)
            self._user_call("sync", self._user.sync)
            snapshot = self._snapshot_meta(dummy=not self.witness)
        return self.snapshots.commit(self.snapshots.begin(index), snapshot)

    def _save_full(
        self, stopped: Stopped, export_path: str | None, streamable: bool
    ) -> pb.Snapshot:
        self._lock.acquire()
        locked = True
        try:
            self._check_usable()
            if streamable:
                existing = self.snapshots.get(self._applied_index)
                if existing is not None and not existing.dummy:
                    return existing
            if export_path is None and not streamable:
                self._check_new(self._applied_index)
            if self._applied_index == 0:
                raise SnapshotOutOfDate("nothing has been applied yet")
            meta = self._snapshot_meta(dummy=False)
            sessions = self._sessions.encode()
            ctx = self._user_call("prepare_snapshot", self._user.prepare)
            if self._user.prepares:
                self._lock.release()  # updates go on while the captured state is written
                locked = False

            def save(writer: SnapshotWriter, files: SnapshotFileCollection) -> None:
                try:
                    self._user.save(ctx, writer.data(), files, stopped)
                except (SnapshotStopped, StateMachineError):
                    raise
                except Exception as e:
                    if writer.io_error is not None:
                        raise writer.io_error from e  # our disk failed, not the user
                    self._user_failed("save_snapshot", e)

            return write_snapshot(
                self.snapshots,
                meta,
                sessions,
                save,
                self._compression,
                export_path=export_path,
                replace=streamable,
            )
        finally:
            if locked:
                self._lock.release()

    def _check_new(self, index: int) -> None:
        if index == 0:
            raise SnapshotOutOfDate("nothing has been applied yet")
        if self.snapshots.get(index) is not None:
            raise SnapshotOutOfDate(f"a snapshot at index {index} exists already")

    def _snapshot_meta(self, *, dummy: bool) -> pb.Snapshot:
        return pb.Snapshot(
            shard_id=self.shard_id,
            index=self._applied_index,
            term=self._applied_term,
            membership=self._membership,
            type=_PB_TYPE[self.kind],
            on_disk_index=self._on_disk_index,
            dummy=dummy and not self.witness,
            witness=self.witness,
        )

    def recover(self, snapshot: pb.Snapshot, stopped: Stopped) -> None:
        """Replace the state with `snapshot`'s (a local one on start, or a received one).

        Every checksum is checked before user state is touched. Raises
        SnapshotOutOfDate when the snapshot is not newer than the applied index,
        SnapshotCorrupt when a file is damaged (naming it), StateMachineError when
        the user's recover_from_snapshot raises.
        """
        if snapshot.index <= self._applied_index:
            raise SnapshotOutOfDate(
                f"snapshot {snapshot.index} is not newer than applied index {self._applied_index}"
            )
        self._check_usable()
        if not self._needs_data(snapshot):
            with self._lock:
                self._check_usable()
                if snapshot.index <= self._applied_index:
                    raise SnapshotOutOfDate(f"snapshot {snapshot.index} was overtaken")
                self._install(snapshot, SessionTable())
            return
        with open_snapshot(snapshot) as opened, self._lock:
            self._check_usable()
            if snapshot.index <= self._applied_index:
                raise SnapshotOutOfDate(f"snapshot {snapshot.index} was overtaken")
            try:
                self._user.recover(opened.reader.data(), opened.files, stopped)
            except BaseException as e:
                # The user's state may be half replaced: this replica cannot go on.
                self._fail(f"recover_from_snapshot raised {e!r}")
                if isinstance(e, SnapshotStopped | SnapshotCorrupt):
                    raise
                self._user_failed("recover_from_snapshot", e)
            if self._on_disk:
                self._on_disk_index = snapshot.on_disk_index
            self._install(snapshot, opened.sessions)

    def _needs_data(self, snapshot: pb.Snapshot) -> bool:
        if self.witness:
            return False
        kind = StateMachineType(snapshot.type) if snapshot.type else self.kind
        if not snapshot.witness and kind is not self.kind:
            raise SnapshotError(f"a {kind.name} snapshot cannot restore a {self.kind.name} replica")
        if not self._on_disk:
            if snapshot.dummy or snapshot.witness:
                raise SnapshotError(f"snapshot {snapshot.index} holds no state machine data")
            return True
        if snapshot.imported or snapshot.on_disk_index > self._on_disk_index:
            if snapshot.dummy or snapshot.witness:
                raise SnapshotError(
                    f"the on-disk state machine holds index {self._on_disk_index}, behind "
                    f"snapshot {snapshot.index} (on-disk index {snapshot.on_disk_index}) "
                    "which carries no data: its data was lost"
                )
            return True
        return False

    def _install(self, snapshot: pb.Snapshot, sessions: SessionTable) -> None:
        m = pb.Membership()
        m.CopyFrom(snapshot.membership)
        self._membership = m
        self._sessions = sessions
        self._applied_index, self._applied_term = snapshot.index, snapshot.term

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the user state machine once; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._user_call("close", self._user.close)

    def _check_usable(self, *, opening: bool = False) -> None:
        if self._failure is not None:
            raise StateMachineError(
                f"shard {self.shard_id} replica {self.replica_id} stopped: {self._failure}"
            )
        if self._closed:
            raise RuntimeError(f"shard {self.shard_id} replica {self.replica_id} is closed")
        if not (self._opened or opening):
            raise RuntimeError("the on-disk state machine is not open yet: call open() first")

    def _user_call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except SnapshotStopped:
            raise
        except StateMachineError as e:
            self._fail(str(e))
            raise
        except Exception as e:
            self._user_failed(what, e)

    def _user_failed(self, what: str, e: BaseException) -> NoReturn:
        self._fail(f"{what} raised {e!r}")
        raise StateMachineError(
            f"shard {self.shard_id} replica {self.replica_id}: {what} raised {e!r}"
        ) from e

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
