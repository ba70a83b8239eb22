"""The dispatch table and the message kinds."""

from __future__ import annotations

import pytest

from nodehost.raft import HANDLERS, MessageType, Role, is_local
from protos import raft_pb2 as pb

MT = MessageType

# Cells that must stay empty: a handler there would mean a role acting on a message
# it can never legitimately get, or taking a part it must never take.
MUST_BE_EMPTY = [
    # Only a leader hears answers to what only a leader sends.
    *[
        (role, mt)
        for role in Role
        if role is not Role.LEADER
        for mt in (
            MT.REPLICATE_RESP,
            MT.HEARTBEAT_RESP,
            MT.PROPOSE_FORWARD,
            MT.SNAPSHOT_STATUS,
            MT.UNREACHABLE,
            MT.CHECK_QUORUM,
            MT.LEADER_HEARTBEAT,
        )
    ],
    # Two leaders in one term is the one thing Raft forbids: a leader never follows.
    *[
        (Role.LEADER, mt)
        for mt in (
            MT.REPLICATE,
            MT.HEARTBEAT,
            MT.INSTALL_SNAPSHOT,
            MT.TIMEOUT_NOW,
            MT.QUIESCE,
            MT.REQUEST_VOTE_RESP,
            MT.REQUEST_PRE_VOTE_RESP,
            MT.ELECTION,
        )
    ],
    # Non-voting replicas and witnesses never campaign.
    *[
        (role, mt)
        for role in (Role.NON_VOTING, Role.WITNESS)
        for mt in (
            MT.ELECTION,
            MT.TIMEOUT_NOW,
            MT.REQUEST_VOTE_RESP,
            MT.REQUEST_PRE_VOTE_RESP,
        )
    ],
    # Votes are counted only by whoever asked for them.
    (Role.FOLLOWER, MT.REQUEST_VOTE_RESP),
    (Role.FOLLOWER, MT.REQUEST_PRE_VOTE_RESP),
    (Role.CANDIDATE, MT.REQUEST_PRE_VOTE_RESP),
    (Role.PRE_CANDIDATE, MT.REQUEST_VOTE_RESP),
    # Nothing handles a message whose type was never set.
    *[(role, MT.INVALID) for role in Role],
]


@pytest.mark.parametrize(("role", "mt"), MUST_BE_EMPTY, ids=lambda x: x.name)
def test_must_be_empty_cells_are_empty(role: Role, mt: MessageType) -> None:
    assert (role, mt) not in HANDLERS


@pytest.mark.parametrize(
    ("role", "mt"),
    [
        (Role.FOLLOWER, MT.REPLICATE),
        (Role.CANDIDATE, MT.REPLICATE),
        (Role.WITNESS, MT.REPLICATE),
        (Role.NON_VOTING, MT.REPLICATE),
        (Role.LEADER, MT.REPLICATE_RESP),
        (Role.LEADER, MT.HEARTBEAT_RESP),
        (Role.CANDIDATE, MT.REQUEST_VOTE_RESP),
        (Role.PRE_CANDIDATE, MT.REQUEST_PRE_VOTE_RESP),
        (Role.WITNESS, MT.REQUEST_VOTE),
        (Role.FOLLOWER, MT.TIMEOUT_NOW),
        *[(role, MT.LOCAL_TICK) for role in Role],
        *[(role, MT.PROPOSE) for role in Role],
    ],
    ids=lambda x: x.name,
)
def test_needed_cells_are_filled(role: Role, mt: MessageType) -> None:
    assert (role, mt) in HANDLERS


def test_message_types_mirror_the_proto() -> None:
    assert {m.name: m.value for m in MessageType} == dict(pb.MessageType.items())


def test_local_kinds_are_the_ones_below_twenty() -> None:
    # The proto numbers local inputs 0-19 and wire messages 20 and up.
    for mt in MessageType:
        if mt is MT.LEADER_TRANSFER:
            assert is_local(mt) is False  # a follower forwards it to the leader
            continue
        assert is_local(mt) == (mt < 20), mt
