"""What helloworld tells a person whose replica cannot commit: each rule on its own.

The end-to-end tests see these lines in real terminals; here every case is pinned,
including those a three-terminal session rarely produces (five members, a joiner
nobody added, a replica that runs without uv).
"""

from __future__ import annotations

import pytest

from examples.helloworld.advice import (
    Commands,
    View,
    down_without_majority,
    stalled,
    start_failure,
)
from examples.helloworld.main import DEFAULT_ADDRESSES, options_from
from nodehost import DirectoryLocked, InvalidConfig, InvalidShardSettings, ReplicaRemoved

A = DEFAULT_ADDRESSES
UV = Commands(builtin=A)


def view(**kw: object) -> View:
    base: dict[str, object] = {"replica_id": 1, "address": A[1], "members": A}
    base.update(kw)
    return View(**base)  # type: ignore[arg-type]


def test_alone_names_the_two_missing_replicas_and_how_to_start_them() -> None:
    line = stalled(view(reached={A[2]: False, A[3]: False}), UV)
    assert line == (
        "no majority: only 1 of the 3 replicas of shard 128 is running, and replicas 2 and 3 "
        "do not answer (localhost:63002, localhost:63003). Start one of them in another "
        "terminal, in this directory: `uv run example-helloworld -replicaid 2` or "
        "`uv run example-helloworld -replicaid 3`"
    )


def test_without_uv_the_command_is_the_installed_one() -> None:
    line = stalled(view(reached={A[2]: False, A[3]: False}), Commands(builtin=A, prefix=""))
    assert line is not None and "`example-helloworld -replicaid 2`" in line


def test_an_added_replica_is_started_with_its_address_and_join() -> None:
    members = {**A, 4: "localhost:63100", 5: "localhost:63101"}
    reached = {A[2]: False, A[3]: True, "localhost:63100": False, "localhost:63101": False}
    line = stalled(view(members=members, reached=reached), UV)
    assert line is not None
    assert "only 2 of the 5 replicas" in line and "replicas 2, 4 and 5 do not answer" in line
    assert "Start one of them" in line
    assert "`uv run example-helloworld -replicaid 4 -addr localhost:63100 -join`" in line


def test_one_missing_replica_is_named_alone() -> None:
    members = {1: A[1], 2: A[2]}
    line = stalled(view(members=members, reached={A[2]: False}), UV)
    assert line is not None
    assert "replica 2 does not answer (localhost:63002). Start it in another" in line


def test_no_advice_while_a_majority_may_be_up() -> None:
    assert stalled(view(reached={A[2]: False, A[3]: True}), UV) is None, "an election is due"
    assert stalled(view(reached={A[2]: False}), UV) is None, "3 was never tried: unknown"
    assert stalled(view(reached={}), UV) is None
    assert down_without_majority(view(reached={A[2]: False})) == []


def test_a_leader_needs_no_advice_but_a_removed_replica_does() -> None:
    assert stalled(view(has_leader=True, reached={A[2]: False, A[3]: False}), UV) is None
    line = stalled(view(replica_id=4, address="localhost:63100", removed=True), UV)
    assert line == (
        "replica 4 was removed from shard 128: it takes no part in it any more, and id 4 "
        "can never be added back. Type exit to quit"
    )


def test_a_joiner_nobody_added_is_told_to_add_it() -> None:
    line = stalled(view(replica_id=4, address="localhost:63100", members={}), UV)
    assert line is not None
    assert "replica 4 has not heard from shard 128 yet" in line
    assert "`add localhost:63100 4` in a running replica" in line


@pytest.mark.parametrize(
    ("argv", "error", "fix"),
    [
        (["-replicaid", "1"], DirectoryLocked("locked"), "already runs in another terminal"),
        (
            ["-replicaid", "2"],
            InvalidConfig("listen_address: cannot listen on localhost:63002"),
            "another program uses localhost:63002: is replica 2 already running",
        ),
        (
            ["-replicaid", "3"],
            InvalidConfig("raft_address is 'x' but the data in d was written with 'y'"),
            "start it with the same flags as then, or delete example-data",
        ),
        (
            ["-replicaid", "2"],
            InvalidShardSettings("join=False but the replica first started with join=True"),
            "first started with -join: start it with -join again",
        ),
        (
            ["-replicaid", "4", "-addr", "localhost:63100", "-join"],
            ReplicaRemoved("removed"),
            "it was removed from shard 128 and can never come back",
        ),
        (["-replicaid", "1"], InvalidConfig("node_host_dir: store damaged"), "delete example-data"),
    ],
)
def test_a_failed_start_says_how_to_fix_it(argv: list[str], error: Exception, fix: str) -> None:
    options = options_from(argv, {})
    line = start_failure(options, error)
    assert line.startswith(f"cannot start replica {options.replica_id}: ")
    assert fix in line and "\n" not in line
