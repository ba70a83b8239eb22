"""Member names and addresses, and the ports a member derives from its address.

Rules:
- A member name is a DNS name (labels of letters, digits and inner hyphens, joined by
  dots, at most 253 characters): it goes into certificates and URLs, so "c/1",
  "invalid_name", ".x" and "x." are refused.
- A member address is "host:port": the network listener (HTTPS, mutual TLS). The member's
  database takes port + 1000 (dqlite's wire protocol, for members without a replica) and
  its Raft transport port + 2000, on the same host; so the port must be below 63536.
"""

from __future__ import annotations

import re

from nodehost.cluster.errors import BadRequest
from nodehost.config import parse_address
from nodehost.errors import InvalidConfig

DATABASE_PORT_OFFSET = 1000
RAFT_PORT_OFFSET = 2000
MAX_NAME_LENGTH = 253

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def check_name(name: object, what: str = "member name") -> str:
    if not isinstance(name, str) or not name:
        raise BadRequest(f"the {what} is missing")
    if len(name) > MAX_NAME_LENGTH or _NAME.fullmatch(name) is None:
        raise BadRequest(
            f"{what} {name!r} is not valid: use letters, digits and inner hyphens, "
            "in labels joined by dots (a DNS name)"
        )
    return name


def check_address(address: object) -> tuple[str, int]:
    """(host, port) of a member address, or BadRequest."""
    if not isinstance(address, str) or not address:
        raise BadRequest("the address is missing")
    try:
        host, port = parse_address(address, "address")
    except InvalidConfig as exc:
        raise BadRequest(str(exc)) from None
    if host in ("0.0.0.0", "[::]", "::"):
        raise BadRequest(
            f"address {address!r}: give the address other members dial, not a wildcard"
        )
    if port + RAFT_PORT_OFFSET > 65535:
        raise BadRequest(
            f"address {address!r}: the port must be below {65536 - RAFT_PORT_OFFSET} "
            f"(the database uses port + {DATABASE_PORT_OFFSET}, Raft port + {RAFT_PORT_OFFSET})"
        )
    return host, port


def host_of(address: str) -> str:
    return check_address(address)[0]


def database_address(address: str) -> str:
    host, port = check_address(address)
    return f"{host}:{port + DATABASE_PORT_OFFSET}"


def raft_address(address: str) -> str:
    host, port = check_address(address)
    return f"{host}:{port + RAFT_PORT_OFFSET}"
