"""The core tables, read and written through a PEP 249 cursor, and what a member's status is.

    core_cluster_members  name, address, certificate, fingerprint, schema_internal,
                          schema_external, heartbeat, role
    core_token_records    name, secret (its SHA-256), expiry_date

Rules:
- Times are ISO 8601 UTC text ("2024-05-01T12:00:00.123456Z"); the writer passes them
  as parameters (the database replays statements, and must not read its own clock).
- Roles are the database's (voter, stand-by, spare) as the leader last saw them at a
  heartbeat, and PENDING for a member admitted but not yet seen there.
- Status is computed by whoever lists the members: a member whose last heartbeat is older
  than OFFLINE_AFTER heartbeat intervals is OFFLINE (the lister itself is always
  ONLINE); during a schema upgrade, online members whose code has the newest schema are
  UPGRADING (waiting for the others) and the others NEEDS UPGRADE.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

OFFLINE_AFTER = 3.0  # heartbeat intervals without a heartbeat


class Cursor(Protocol):
    """The part of a PEP 249 cursor the core uses (and user schema updates get)."""

    @property
    def description(self) -> Any: ...
    @property
    def rowcount(self) -> int: ...
    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Role(StrEnum):
    VOTER = "voter"
    STANDBY = "stand-by"
    SPARE = "spare"
    PENDING = "PENDING"


class Status(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"
    UPGRADING = "UPGRADING"
    NEEDS_UPGRADE = "NEEDS UPGRADE"


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    address: str
    certificate: str
    fingerprint: str
    role: str
    schema_internal: int
    schema_external: int
    heartbeat: str

    def to_json(self, status: Status | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "address": self.address,
            "role": self.role,
            "fingerprint": self.fingerprint,
            "certificate": self.certificate,
            "schema_internal": self.schema_internal,
            "schema_external": self.schema_external,
            "heartbeat": self.heartbeat,
        }
        if status is not None:
            data["status"] = str(status)
        return data


def now_text(now: datetime.datetime | None = None) -> str:
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


NEVER = "0001-01-01T00:00:00.000000Z"

_COLUMNS = (
    "name, address, certificate, fingerprint, role, schema_internal, schema_external, heartbeat"
)


def read_members(cursor: Cursor) -> list[Member]:
    cursor.execute(f"SELECT {_COLUMNS} FROM core_cluster_members ORDER BY name")
    return [
        Member(
            str(row[0]),
            str(row[1]),
            str(row[2]),
            str(row[3]),
            str(row[4]),
            int(row[5]),
            int(row[6]),
            str(row[7]),
        )
        for row in cursor.fetchall()
    ]


def insert_member(cursor: Cursor, member: Member) -> None:
    cursor.execute(
        f"INSERT INTO core_cluster_members ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            member.name,
            member.address,
            member.certificate,
            member.fingerprint,
            member.role,
            member.schema_internal,
            member.schema_external,
            member.heartbeat,
        ),
    )


def delete_member(cursor: Cursor, name: str) -> int:
    cursor.execute("DELETE FROM core_cluster_members WHERE name = ?", (name,))
    return cursor.rowcount


def statuses(
    members: Iterable[Member],
    *,
    local: str,
    now: datetime.datetime,
    heartbeat_interval: float,
) -> dict[str, Status]:
    """Each member's status as seen from member `local` at `now` (a pure function)."""
    listed = list(members)
    settled = [m for m in listed if m.role != Role.PENDING]
    newest = max(((m.schema_internal, m.schema_external) for m in settled), default=(0, 0))
    upgrading = any((m.schema_internal, m.schema_external) != newest for m in settled)
    limit = datetime.timedelta(seconds=OFFLINE_AFTER * heartbeat_interval)
    result: dict[str, Status] = {}
    for member in listed:
        seen = parse_time(member.heartbeat)
        online = member.name == local or (seen is not None and now - seen <= limit)
        versions = (member.schema_internal, member.schema_external)
        if not online:
            result[member.name] = Status.OFFLINE
        elif upgrading and member.role != Role.PENDING:
            result[member.name] = Status.UPGRADING if versions == newest else Status.NEEDS_UPGRADE
        else:
            result[member.name] = Status.ONLINE
    return result
