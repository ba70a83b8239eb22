"""What a typed line means: a message to replicate, a membership change, or `exit`.

Rules:
- A line whose first word is `add` or `remove` (any case) is a membership command and
  is never proposed as a message: a malformed one gets a usage line instead.
- `exit` alone quits; a blank line does nothing; every other line is proposed as typed.
- Nothing here touches the NodeHost: parsing is pure, so a typo cannot reach the shard.
"""

from __future__ import annotations

from dataclasses import dataclass

USAGE_ADD = "usage: add <host:port> <replica id>   e.g. add localhost:63100 4"
USAGE_REMOVE = "usage: remove <replica id>   e.g. remove 4"
MAX_REPLICA_ID = 2**64 - 1


@dataclass(frozen=True)
class Propose:
    text: str


@dataclass(frozen=True)
class AddReplica:
    replica_id: int
    address: str


@dataclass(frozen=True)
class RemoveReplica:
    replica_id: int


@dataclass(frozen=True)
class Usage:
    text: str


@dataclass(frozen=True)
class Exit:
    pass


Command = Propose | AddReplica | RemoveReplica | Usage | Exit


def parse(line: str) -> Command | None:
    """The command a typed line asks for; None for a blank line."""
    if not line.strip():
        return None
    if line.strip() == "exit":
        return Exit()
    words = line.split()
    verb = words[0].lower()
    if verb == "add":
        if len(words) != 3 or not _is_address(words[1]):
            return Usage(USAGE_ADD)
        replica_id = _replica_id(words[2])
        return Usage(USAGE_ADD) if replica_id is None else AddReplica(replica_id, words[1])
    if verb == "remove":
        replica_id = _replica_id(words[1]) if len(words) == 2 else None
        return Usage(USAGE_REMOVE) if replica_id is None else RemoveReplica(replica_id)
    return Propose(line)


def _replica_id(word: str) -> int | None:
    if not word.isascii() or not word.isdigit():
        return None
    value = int(word)
    return value if 0 < value <= MAX_REPLICA_ID else None


def _is_address(word: str) -> bool:
    """host:port with a port in range; the NodeHost checks the host itself."""
    host, sep, port = word.rpartition(":")
    return bool(sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536)
