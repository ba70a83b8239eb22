"""Admitting a new member: what a member does with a joiner's request.

The joiner sends {name, address, certificate, secret, schema_internal, schema_external}
over a connection it checked against the cluster fingerprint; the member answers with
what the joiner needs (the cluster certificate and key, the members) or a refusal.

Rules:
- Everything is checked before anything changes, and the change is one transaction:
  the token is redeemed (deleted), the member row inserted as PENDING. A refusal changes
  nothing, except that an expired token is deleted.
- Refused: an invalid, used, revoked, expired or other member's token; a certificate that
  does not name the joiner; a name, address or certificate already in the cluster; code
  with another schema version than the cluster's (upgrade or downgrade it first).
- The admitting member trusts the joiner at once (its trust store), so the joiner's
  next calls are accepted while the others learn of it from the table.
"""

from __future__ import annotations

import datetime
from typing import Any

from nodehost.cluster.errors import BadRequest, Conflict
from nodehost.cluster.identity import common_name, fingerprint
from nodehost.cluster.members import Member, Role, insert_member, now_text, read_members
from nodehost.cluster.names import check_address, check_name
from nodehost.cluster.schema import Versions
from nodehost.cluster.state import Host
from nodehost.cluster.tokenrecords import ExpiredToken, redeem
from nodehost.cluster.truststore import Remote


def admit(host: Host, body: dict[str, Any]) -> dict[str, Any]:
    """Check and record the joiner (blocking); the answer it gets."""
    name = check_name(body.get("name"))
    address = body.get("address")
    check_address(address)
    certificate = body.get("certificate")
    if not isinstance(certificate, str):
        raise BadRequest("the certificate is missing")
    joiner_fingerprint = fingerprint(certificate)
    if common_name(certificate) != name:
        raise BadRequest(f"the joiner's certificate does not name {name!r}")
    secret = body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise BadRequest("the token secret is missing")
    versions = _versions(body)
    now = datetime.datetime.now(datetime.UTC)
    member = Member(
        name=name,
        address=str(address),
        certificate=certificate,
        fingerprint=joiner_fingerprint,
        role=str(Role.PENDING),
        schema_internal=versions.internal,
        schema_external=versions.external,
        heartbeat=now_text(now),
    )

    def work(cursor: Any) -> list[Member] | None:
        applied = host.schema.applied(cursor)
        if versions != applied:
            raise Conflict(
                f"the joiner's code has schema version {versions}, the cluster's is "
                f"{applied}: run the cluster's version to join"
            )
        if redeem(cursor, secret, name, now) is None:
            return None
        members = read_members(cursor)
        for existing in members:
            if existing.name == name:
                raise Conflict(f"a member named {name!r} is already in the cluster")
            if existing.address == address:
                raise Conflict(f"address {address} is already used by member {existing.name!r}")
            if existing.fingerprint == joiner_fingerprint:
                raise Conflict(f"member {existing.name!r} already has this certificate")
        insert_member(cursor, member)
        return [*members, member]

    members = host.database.transaction(work)
    if members is None:
        raise ExpiredToken("this join token has expired (it is now deleted): ask for a new one")
    remotes = [Remote(m.name, m.address, m.certificate, m.fingerprint) for m in members]
    host.trust.replace(remotes)
    return {
        "cluster_certificate": _read(host.state_dir.cluster_certificate),
        "cluster_key": _read(host.state_dir.cluster_key),
        "members": [r.to_json() for r in remotes],
        "admitted_by": host.name,
    }


def _versions(body: dict[str, Any]) -> Versions:
    internal, external = body.get("schema_internal"), body.get("schema_external")
    for value in (internal, external):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest("the joiner's schema versions must be non-negative integers")
    assert isinstance(internal, int) and isinstance(external, int)
    return Versions(internal, external)


def _read(path: Any) -> str:
    with open(path) as file:
        return file.read()
