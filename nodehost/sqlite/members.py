"""The member table: who is in the cluster, where clients reach them, in which role.

Rules:
- The table is replicated like a database (a reserved one, `MEMBERS_DATABASE`): each
  row maps a member's id (its Raft replica id) to its client address and Raft address.
- Roles are not stored: they are read from the Raft membership (voting members are
  voters, non-voting ones stand-bys, rows without a replica in the shard spares), so
  the table and Raft can never disagree about them.
- MEMBERS commands carry a small JSON object; it is validated before it is applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum

import apsw

from nodehost.sqlite.command import Command, CommandResult, Outcome
from nodehost.sqlite.database import WriteDatabase

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS members (id INTEGER PRIMARY KEY, "
    "address TEXT NOT NULL, raft_address TEXT NOT NULL)"
)


class Role(IntEnum):
    """dqlite's role numbers (its wire protocol carries them)."""

    VOTER = 0
    STANDBY = 1
    SPARE = 2


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One member as `App.cluster()` lists it (dqlite's NodeInfo)."""

    id: int
    address: str
    role: Role
    raft_address: str = ""


def upsert_payload(member_id: int, address: str, raft_address: str) -> bytes:
    return json.dumps(
        {"op": "upsert", "id": member_id, "address": address, "raft_address": raft_address}
    ).encode()


def remove_payload(member_id: int) -> bytes:
    return json.dumps({"op": "remove", "id": member_id}).encode()


def apply(database: WriteDatabase, command: Command, index: int) -> CommandResult:
    """Apply a MEMBERS command inside the state machine's open batch."""
    try:
        change = json.loads(command.payload)
        if not isinstance(change, dict):
            raise ValueError("not an object")
        op = change.get("op")
        member_id = change.get("id")
        if isinstance(member_id, bool) or not isinstance(member_id, int) or member_id <= 0:
            raise ValueError("bad member id")
        if op == "upsert":
            address, raft_address = change.get("address"), change.get("raft_address")
            if not isinstance(address, str) or not isinstance(raft_address, str):
                raise ValueError("addresses must be strings")
            if not address or len(address) > 300 or len(raft_address) > 300:
                raise ValueError("bad address")
            sql = "INSERT OR REPLACE INTO members(id, address, raft_address) VALUES (?, ?, ?)"
            bindings: tuple[object, ...] = (member_id, address, raft_address)
        elif op == "remove":
            sql, bindings = "DELETE FROM members WHERE id = ?", (member_id,)
        else:
            raise ValueError(f"unknown op {op!r}")
    except (ValueError, UnicodeDecodeError) as exc:
        return CommandResult(Outcome.REJECTED, message=f"bad member change: {exc}")
    connection = database.connection
    database.authorizer.internal = True
    try:
        connection.execute(_SCHEMA)
        if op == "upsert":
            connection.execute(
                "DELETE FROM members WHERE address = ? AND id != ?", (address, member_id)
            )
        connection.execute(sql, bindings)
    except apsw.Error as exc:
        return CommandResult(Outcome.FAILED, message=str(exc))
    finally:
        database.authorizer.internal = False
    return CommandResult(Outcome.COMMITTED)


def read_rows(connection: apsw.Connection) -> dict[int, tuple[str, str]]:
    """id -> (address, raft_address), from a read connection of the member database."""
    try:
        rows = connection.execute("SELECT id, address, raft_address FROM members").fetchall()
    except apsw.SQLError:
        return {}  # no member registered yet
    return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}  # type: ignore[arg-type]
