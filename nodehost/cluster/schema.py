"""Schema updates: the core's and the user's, ordered, each applied once cluster-wide.

    Daemon(..., schema_updates=[
        "CREATE TABLE extended_table (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
        add_some_other_table,            # def add_some_other_table(cursor) -> None
    ])

Rules (Microcluster's):
- The schema version is a pair: the number of core updates ("internal") and of user
  updates ("external"). The `schemas` table records each applied update with its type.
- Every member records in its own row of `core_cluster_members` the versions its code
  has. An update is applied by the member that finds every (non-pending) member's code
  at its own versions: then all of them can read the new schema. Until then a member
  whose code is newer WAITS (its API answers "waiting for N members to upgrade"), while
  the members with the old code go on serving the old schema. A member whose code is
  older than the cluster's schema (or than another member's) is BEHIND and serves
  nothing until it is upgraded.
- All of it happens in one transaction: the updates, the `schemas` rows and the
  member's row. Two members applying at once conflict at commit; the loser retries and
  finds the work done. A failing update rolls everything back and is reported.
- An update is SQL text (one or more statements) or a function of a PEP 249 cursor; it
  runs inside the transaction and must not commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from nodehost.cluster.errors import ClusterError
from nodehost.cluster.members import Cursor, Role
from nodehost.sqlite.statements import split

SchemaUpdate = Callable[[Cursor], None] | str

INTERNAL = 0
EXTERNAL = 1


class SchemaError(ClusterError):
    """A schema update failed, or this member's code cannot serve the cluster's schema."""


@dataclass(frozen=True, slots=True, order=True)
class Versions:
    internal: int
    external: int

    def __str__(self) -> str:
        return f"{self.internal}.{self.external}"


class Verdict(Enum):
    CURRENT = "current"  # the cluster's schema is this code's
    APPLY = "apply"  # every member is ready: apply the missing updates now
    WAIT = "wait"  # this code is newer; some members still run older code
    BEHIND = "behind"  # the cluster (or another member) is newer than this code


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    detail: str = ""
    waiting_for: tuple[str, ...] = ()


def decide(ours: Versions, applied: Versions, members: dict[str, Versions]) -> Decision:
    """What a member whose code has `ours` does, given the applied schema and the versions
    every settled member recorded (a pure function)."""
    if applied.internal > ours.internal or applied.external > ours.external:
        return Decision(
            Verdict.BEHIND,
            f"the cluster's schema is at version {applied}, this member's code knows only "
            f"{ours}: upgrade this member",
        )
    newer = sorted(
        name
        for name, versions in members.items()
        if versions.internal > ours.internal or versions.external > ours.external
    )
    if newer:
        return Decision(
            Verdict.BEHIND,
            f"member(s) {', '.join(newer)} run code with a newer schema than this member's "
            f"({ours}): upgrade this member",
        )
    older = tuple(sorted(name for name, versions in members.items() if versions != ours))
    if older:
        return Decision(
            Verdict.WAIT,
            f"waiting for {len(older)} other member(s) to be upgraded to schema {ours} "
            f"({', '.join(older)})",
            older,
        )
    if applied != ours:
        return Decision(Verdict.APPLY)
    return Decision(Verdict.CURRENT)


_CORE_V1 = """
CREATE TABLE schemas (
  id          INTEGER  PRIMARY KEY AUTOINCREMENT NOT NULL,
  version     INTEGER  NOT NULL,
  type        INTEGER  NOT NULL,
  updated_at  TEXT     NOT NULL,
  UNIQUE (version, type)
);
CREATE TABLE core_cluster_members (
  id               INTEGER  PRIMARY KEY AUTOINCREMENT NOT NULL,
  name             TEXT     NOT NULL UNIQUE,
  address          TEXT     NOT NULL UNIQUE,
  certificate      TEXT     NOT NULL UNIQUE,
  fingerprint      TEXT     NOT NULL UNIQUE,
  schema_internal  INTEGER  NOT NULL,
  schema_external  INTEGER  NOT NULL,
  heartbeat        TEXT     NOT NULL,
  role             TEXT     NOT NULL
);
CREATE TABLE core_token_records (
  id           INTEGER  PRIMARY KEY AUTOINCREMENT NOT NULL,
  name         TEXT     NOT NULL UNIQUE,
  secret       TEXT     NOT NULL UNIQUE,
  expiry_date  TEXT
);
"""

CORE_UPDATES: tuple[SchemaUpdate, ...] = (_CORE_V1,)


class Schema:
    def __init__(
        self, updates: Sequence[SchemaUpdate] = (), *, core: Sequence[SchemaUpdate] = CORE_UPDATES
    ) -> None:
        for position, update in enumerate(updates, start=1):
            if not (isinstance(update, str) or callable(update)):
                raise TypeError(
                    f"schema update {position} must be SQL text or a function of a cursor"
                )
        self.internal = tuple(core)
        self.external = tuple(updates)
        self.versions = Versions(len(self.internal), len(self.external))

    def applied(self, cursor: Cursor) -> Versions:
        cursor.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schemas'"
        )
        if int(cursor.fetchone()[0]) == 0:
            return Versions(0, 0)
        cursor.execute(
            "SELECT COALESCE(MAX(version), 0) FROM schemas WHERE type = ? "
            "UNION ALL SELECT COALESCE(MAX(version), 0) FROM schemas WHERE type = ?",
            (INTERNAL, EXTERNAL),
        )
        rows = cursor.fetchall()
        return Versions(int(rows[0][0]), int(rows[1][0]))

    def apply(self, cursor: Cursor, applied: Versions, now: str) -> None:
        """Run the updates `applied` lacks, in order, recording each in `schemas`."""
        for kind, updates, start in (
            (INTERNAL, self.internal, applied.internal),
            (EXTERNAL, self.external, applied.external),
        ):
            for version in range(start + 1, len(updates) + 1):
                what = "core" if kind == INTERNAL else "user"
                try:
                    _run(cursor, updates[version - 1])
                except Exception as exc:
                    raise SchemaError(f"{what} schema update {version} failed: {exc}") from exc
                cursor.execute(
                    "INSERT INTO schemas (version, type, updated_at) VALUES (?, ?, ?)",
                    (version, kind, now),
                )

    def ensure(self, cursor: Cursor, member_name: str, now: str) -> Decision:
        """Inside a transaction: record this member's versions, then decide and, when
        every member is ready, apply. A BEHIND decision writes nothing."""
        applied = self.applied(cursor)
        early = decide(self.versions, applied, {})
        if early.verdict is Verdict.BEHIND:
            return early
        ours = self.versions
        cursor.execute(
            "UPDATE core_cluster_members SET schema_internal = ?, schema_external = ? "
            "WHERE name = ? AND role != ?",
            (ours.internal, ours.external, member_name, str(Role.PENDING)),
        )
        cursor.execute(
            "SELECT name, schema_internal, schema_external FROM core_cluster_members "
            "WHERE role != ? AND name != ?",
            (str(Role.PENDING), member_name),
        )
        others = {str(row[0]): Versions(int(row[1]), int(row[2])) for row in cursor.fetchall()}
        decision = decide(ours, applied, others)
        if decision.verdict is Verdict.APPLY:
            self.apply(cursor, applied, now)
        return decision


def _run(cursor: Cursor, update: SchemaUpdate) -> None:
    if isinstance(update, str):
        for statement in split(update):
            cursor.execute(statement)
    else:
        update(cursor)
