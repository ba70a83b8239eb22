"""Member lists as operators type them: "ID=TARGET,ID=TARGET,...".

TARGET is the replica's host:port, or its NodeHost id where hosts are addressed by id
(NodeHostConfig.address_by_node_host_id). Every mistake is a ToolError naming the
entry: a missing "=", an id that is not a positive integer, a bad address, an id or
a target given twice.
"""

from __future__ import annotations

from nodehost.config import parse_address
from nodehost.errors import InvalidConfig
from nodehost.tools.errors import ToolError
from transport.config import is_node_host_id as _canonical

MAX_ID = 2**64 - 1


def is_node_host_id(target: str) -> bool:
    """A NodeHost id, in any case (it is stored in lower case)."""
    return _canonical(target.lower())


def check_target(target: str, where: str) -> str:
    """A NodeHost id (canonical UUID text) or host:port; ToolError otherwise."""
    if is_node_host_id(target):
        return target.lower()
    try:
        parse_address(target, where)
    except InvalidConfig as exc:
        raise ToolError(f"{exc} (nor a NodeHost id)") from None
    return target


def parse_id(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_ID:
        raise ToolError(f"{what} {text!r} is not an id (an integer in 1..2**64-1)")
    return int(text)


def parse_members(text: str, option: str = "--members") -> dict[int, str]:
    """{replica_id: target} from "1=host:port,2=host:port"; ToolError on any mistake."""
    if not text or not text.strip():
        raise ToolError(f"{option}: the list is empty; give ID=TARGET,ID=TARGET,...")
    members: dict[int, str] = {}
    seen: dict[str, int] = {}
    for raw in text.split(","):
        entry = raw.strip()
        name, sep, target = entry.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ToolError(f"{option}: entry {entry!r} is not ID=TARGET (e.g. 1=10.0.0.1:63001)")
        replica_id = parse_id(name.strip(), f"{option}: replica")
        target = check_target(target.strip(), f"{option} entry {entry!r}")
        if replica_id in members:
            raise ToolError(f"{option}: replica {replica_id} is given twice")
        if target in seen:
            raise ToolError(
                f"{option}: replicas {seen[target]} and {replica_id} share the target {target}"
            )
        members[replica_id] = target
        seen[target] = replica_id
    return members


def format_members(members: dict[int, str]) -> str:
    return ",".join(f"{rid}={target}" for rid, target in sorted(members.items()))
