"""Join token records in `core_token_records`: issue, list, revoke, and redeem.

Rules:
- One token per member name; a name already in the cluster gets none.
- The record keeps the SHA-256 of the secret, never the secret: listing shows names and
  expiry dates only, and a lost token is revoked and issued again.
- Redeeming runs inside the transaction that admits the member: the record must exist
  (compared in constant time), be for the joiner's name and not be expired; it is deleted
  in the same transaction, so a token admits one member at most, even when two joiners
  race with copies of it (the loser's commit conflicts and finds it gone).
- An expired record is deleted when it is presented, so the joiner hears "expired"
  rather than "invalid". Records nobody presented are purged by the leader's heartbeat
  once they have been expired for PURGE_AFTER, and issuing a token for a name replaces
  that name's expired record. Expiry is checked against the clock of the member that
  checks it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from nodehost.cluster.errors import Conflict, Forbidden, NotFound
from nodehost.cluster.members import Cursor, now_text, parse_time
from nodehost.cluster.tokens import new_secret, same_digest, secret_digest

PURGE_AFTER = datetime.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    digest: str
    expires: str | None  # ISO 8601 UTC, None for never

    def expired(self, now: datetime.datetime) -> bool:
        moment = parse_time(self.expires)
        return moment is not None and moment <= now

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "expires_at": self.expires}


def read_records(cursor: Cursor) -> list[TokenRecord]:
    cursor.execute("SELECT name, secret, expiry_date FROM core_token_records ORDER BY name")
    return [
        TokenRecord(str(row[0]), str(row[1]), None if row[2] is None else str(row[2]))
        for row in cursor.fetchall()
    ]


def issue(cursor: Cursor, name: str, lifetime: float, now: datetime.datetime) -> str:
    """Create the record for `name`; the secret to put in the token."""
    cursor.execute("SELECT count(*) FROM core_cluster_members WHERE name = ?", (name,))
    if int(cursor.fetchone()[0]):
        raise Conflict(f"{name!r} is already a member of the cluster")
    cursor.execute(
        "DELETE FROM core_token_records WHERE name = ? AND expiry_date IS NOT NULL "
        "AND expiry_date <= ?",
        (name, now_text(now)),
    )
    cursor.execute("SELECT count(*) FROM core_token_records WHERE name = ?", (name,))
    if int(cursor.fetchone()[0]):
        raise Conflict(f"a join token for {name!r} exists already (remove it to issue another)")
    secret = new_secret()
    expires = now_text(now + datetime.timedelta(seconds=lifetime)) if lifetime > 0 else None
    cursor.execute(
        "INSERT INTO core_token_records (name, secret, expiry_date) VALUES (?, ?, ?)",
        (name, secret_digest(secret), expires),
    )
    return secret


def revoke(cursor: Cursor, name: str) -> None:
    cursor.execute("DELETE FROM core_token_records WHERE name = ?", (name,))
    if cursor.rowcount == 0:
        raise NotFound(f"no join token for {name!r}")


def purge_expired(cursor: Cursor, now: datetime.datetime) -> None:
    """Delete the records expired for longer than PURGE_AFTER."""
    cursor.execute(
        "DELETE FROM core_token_records WHERE expiry_date IS NOT NULL AND expiry_date <= ?",
        (now_text(now - PURGE_AFTER),),
    )


class ExpiredToken(Forbidden):
    """The token matched a record that has expired (the record is deleted)."""


def redeem(cursor: Cursor, secret: str, name: str, now: datetime.datetime) -> TokenRecord | None:
    """Find and delete the record `secret` belongs to. None when it has expired (the
    caller commits the deletion, then refuses); raises when there is no such record or
    it is for another name."""
    record = next((r for r in read_records(cursor) if same_digest(r.digest, secret)), None)
    if record is None:
        raise Forbidden(
            "invalid join token: it was never issued by this cluster, was already used, "
            "was revoked, or expired over an hour ago"
        )
    if record.name != name:
        raise Forbidden(f"this join token was issued for member {record.name!r}, not {name!r}")
    cursor.execute("DELETE FROM core_token_records WHERE name = ?", (record.name,))
    if record.expired(now):
        return None
    return record
