"""The bootstrap rules, without a network: who bootstraps, who joins, who waits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodehost.discovery import (
    Bootstrap,
    ClusterConflict,
    Join,
    LeaderRecord,
    PeerStatus,
    Wait,
    decide_by_peers,
    decide_by_record,
)


def peer(node_id: int, *, member: bool = False, leader: int = 0, key: str = "k") -> PeerStatus:
    members = {node_id: f"r{node_id}", leader: f"r{leader}"} if member else {}
    return PeerStatus(key, node_id, f"r{node_id}", f"a{node_id}", member, leader, 1, members)


def test_the_lowest_id_bootstraps_once_all_expected_nodes_answer() -> None:
    answers = {f"a{n}": peer(n) for n in (1, 2, 3)}
    assert isinstance(decide_by_peers(peer(1), answers, 3), Bootstrap)
    waiting = decide_by_peers(peer(2), answers, 3)
    assert isinstance(waiting, Wait) and "node 1 has the lowest id" in waiting.reason


def test_too_few_nodes_wait_for_bootstrap_expect() -> None:
    decision = decide_by_peers(peer(1), {"a1": peer(1), "a2": peer(2)}, 3)
    assert isinstance(decision, Wait) and "2 of the 3 expected" in decision.reason


def test_a_silent_peer_blocks_bootstrapping() -> None:
    answers: dict[str, PeerStatus | str] = {"a1": peer(1), "a2": peer(2), "a3": "refused"}
    decision = decide_by_peers(peer(1), answers, 2)
    assert isinstance(decision, Wait) and "did not answer" in decision.reason


def test_members_are_joined_leader_first() -> None:
    answers: dict[str, PeerStatus | str] = {
        "a1": peer(1, member=True, leader=3),
        "a3": peer(3, member=True, leader=3),
        "a9": "timeout",
    }
    decision = decide_by_peers(peer(5), answers, 3)
    assert decision == Join("a3", "node 3 at a3 is the leader of the cluster")


def test_another_clusters_peers_are_ignored() -> None:
    answers = {"a1": peer(1, member=True, leader=1, key="other"), "a2": peer(2)}
    assert isinstance(decide_by_peers(peer(2), answers, 1), Bootstrap)


def test_a_node_knowing_a_cluster_blocks_bootstrapping() -> None:
    removed = PeerStatus("k", 1, "r1", "a1", False, 0, 0, {2: "r2"})
    decision = decide_by_peers(peer(2), {"a1": removed, "a2": peer(2)}, 2)
    assert isinstance(decision, Wait) and "knows a cluster" in decision.reason


def test_two_nodes_with_one_id_is_a_conflict() -> None:
    impostor = PeerStatus("k", 1, "elsewhere", "a9", False)
    with pytest.raises(ClusterConflict, match="two nodes share an id"):
        decide_by_peers(peer(1), {"a9": impostor}, 1)


def test_the_key_decides_in_etcd_mode() -> None:
    me = peer(2)
    assert isinstance(decide_by_record(me, LeaderRecord(2, "r2", "a2", 0, False), "k"), Bootstrap)
    assert decide_by_record(me, LeaderRecord(1, "r1", "a1", 4, True), "k") == Join(
        "a1", "k says node 1 leads in term 4"
    )
    with pytest.raises(ClusterConflict, match="has no data"):
        decide_by_record(me, LeaderRecord(2, "r2", "a2", 4, True), "k")
    with pytest.raises(ClusterConflict, match="two nodes share an id"):
        decide_by_record(me, LeaderRecord(2, "r9", "a9", 0, False), "k")


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 7),
    seed=st.randoms(use_true_random=False),
)
def test_with_exactly_bootstrap_expect_nodes_at_most_one_bootstraps(
    size: int, seed: object
) -> None:
    """Whatever each node sees (some peers listed and answering, some silent, some not
    yet listed), at most one node of `size` started with bootstrap_expect=size decides
    to bootstrap, and only the lowest id can."""
    import random

    assert isinstance(seed, random.Random)
    ids = seed.sample(range(1, 100), size)
    bootstrappers = []
    for me in ids:
        answers: dict[str, PeerStatus | str] = {}
        for other in ids:
            view = seed.choice(["answers", "silent", "unlisted"]) if other != me else "answers"
            if view == "answers":
                answers[f"a{other}"] = peer(other)
            elif view == "silent":
                answers[f"a{other}"] = "no answer"
        if isinstance(decide_by_peers(peer(me), answers, size), Bootstrap):
            bootstrappers.append(me)
    assert bootstrappers in ([], [min(ids)])
