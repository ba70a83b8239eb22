"""What to tell a person whose replica cannot make progress, and how to fix it.

Rules:
- Pure: every function takes what the replica knows now (a `View`) and returns text;
  nothing here touches a NodeHost, a clock or the terminal, so each rule is tested alone.
- A peer counts as down only once this host tried to reach it and failed: a follower
  never dials the other followers, and "not running" must never be a guess. So advice
  about a lost majority is given only when the peers known to be down leave too few.
- Every line names what to do next as a command the person can type or paste, never
  "retry" when retrying cannot work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from examples.helloworld.main import SHARD_ID, Options
from nodehost import DirectoryLocked, InvalidShardSettings, ReplicaRemoved

_NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True)
class View:
    """One replica's knowledge of its shard at one moment."""

    replica_id: int
    address: str
    members: Mapping[int, str]  # voting members as this replica knows them; {} before it hears any
    reached: Mapping[str, bool] = field(default_factory=dict)  # address -> last dial succeeded
    has_leader: bool = False
    removed: bool = False


@dataclass(frozen=True)
class Commands:
    """How this program is started here: the exact commands to suggest."""

    builtin: Mapping[int, str]  # replica ids that need no -addr, and their addresses
    prefix: str = "uv run "  # "" when the program was started without uv

    def start(self, replica_id: int, address: str) -> str:
        if self.builtin.get(replica_id) == address:
            return f"{self.prefix}example-helloworld -replicaid {replica_id}"
        return f"{self.prefix}example-helloworld -replicaid {replica_id} -addr {address} -join"


def down_without_majority(view: View) -> list[int]:
    """The members known to be down when, without them, no majority can be reached;
    [] when a majority may be up (or nothing is known yet)."""
    others = {rid: a for rid, a in view.members.items() if rid != view.replica_id}
    if view.replica_id not in view.members or not others:
        return []
    down = sorted(rid for rid, a in others.items() if view.reached.get(a) is False)
    majority = len(view.members) // 2 + 1
    return down if len(view.members) - len(down) < majority else []


def removed_line(replica_id: int) -> str:
    return (
        f"replica {replica_id} was removed from shard {SHARD_ID}: it takes no part in it any "
        f"more, and id {replica_id} can never be added back. Type exit to quit"
    )


def not_added_line(view: View) -> str:
    return (
        f"replica {view.replica_id} has not heard from shard {SHARD_ID} yet: type "
        f"`add {view.address} {view.replica_id}` in a running replica to add it (a majority "
        "of the shard must be running)"
    )


def no_majority_line(view: View, down: list[int], commands: Commands) -> str:
    total = len(view.members)
    running = total - len(down)
    addresses = ", ".join(view.members[rid] for rid in down)
    names = _and([str(rid) for rid in down])
    who = f"replica {names} does" if len(down) == 1 else f"replicas {names} do"
    starts = " or ".join(f"`{commands.start(rid, view.members[rid])}`" for rid in down)
    need = total // 2 + 1 - running
    if need == len(down):
        action = "Start it" if need == 1 else "Start them"
    else:
        action = f"Start {_NUMBERS.get(need, str(need))} of them"
    verb = "is" if running == 1 else "are"
    return (
        f"no majority: only {running} of the {total} replicas of shard {SHARD_ID} {verb} "
        f"running, and {who} not answer ({addresses}). {action} in another terminal, in "
        f"this directory: {starts}"
    )


def stalled(view: View, commands: Commands) -> str | None:
    """Why this replica cannot commit anything now, with the fix; None if it may."""
    if view.removed:
        return removed_line(view.replica_id)
    if view.has_leader:
        return None
    if not view.members:
        return not_added_line(view)
    down = down_without_majority(view)
    return no_majority_line(view, down, commands) if down else None


def _and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def start_failure(options: Options, exc: Exception) -> str:
    """One line for a replica that could not start: the library's reason, then the fix."""
    rid, text = options.replica_id, str(exc)
    if isinstance(exc, ReplicaRemoved):
        return (
            f"cannot start replica {rid}: it was removed from shard {SHARD_ID} and can never "
            "come back. To add a replica again, give it a new id: type `add <host:port> <new "
            "id>` in a running replica, then start it with -replicaid <new id> -addr "
            "<host:port> -join"
        )
    if isinstance(exc, DirectoryLocked):
        fix = f"replica {rid} already runs in another terminal: use that one"
    elif "cannot listen on" in text:
        fix = (
            f"another program uses {options.address}: is replica {rid} already running in "
            "another terminal? Stop it first"
        )
    elif "raft_address" in text:
        fix = (
            f"replica {rid} was first started at another address: start it with the same "
            "flags as then, or delete example-data to start over with an empty shard"
        )
    elif isinstance(exc, InvalidShardSettings) and "join" in text:
        fix = (
            f"replica {rid} was first started {'without' if options.join else 'with'} -join: "
            f"start it {'without' if options.join else 'with'} -join again"
        )
    else:
        fix = "delete example-data to start over with an empty shard"
    return f"cannot start replica {rid}: {text}; {fix}"
