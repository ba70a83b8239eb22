"""Majority arithmetic over the voting members (voters and witnesses).

Pure functions: the caller decides who votes; nothing here knows about roles.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    WON = 1
    LOST = 2


def quorum(voters: int) -> int:
    return voters // 2 + 1


def committed_index(matches: list[int]) -> int:
    """The highest index stored on a majority, given each voter's match index."""
    if not matches:
        return 0
    ordered = sorted(matches, reverse=True)
    return ordered[len(ordered) // 2]


def vote_result(voters: Collection[int], votes: dict[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer grant."""
    granted = rejected = 0
    for voter in voters:
        vote = votes.get(voter)
        if vote is True:
            granted += 1
        elif vote is False:
            rejected += 1
    need = quorum(len(voters))
    if granted >= need:
        return VoteResult.WON
    if len(voters) - rejected < need:
        return VoteResult.LOST
    return VoteResult.PENDING
