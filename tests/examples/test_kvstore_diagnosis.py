"""The words of a 503: a leader change (retry now) told from a lost quorum (bring nodes
back), from what one node knows. Each case of diagnosis.unavailable, alone."""

from __future__ import annotations

from examples.kvstore.diagnosis import Leader, down_without_quorum, removed_text, unavailable

MEMBERS = {1: "127.0.0.1:12001", 2: "127.0.0.1:12002", 3: "127.0.0.1:12003"}


def why(before: Leader, now: Leader, reached: dict[str, bool], write: bool = False) -> str:
    return unavailable(
        what="write" if write else "read",
        timeout=3,
        timed_out_write=write,
        node_id=2,
        before=before,
        now=now,
        members=MEMBERS,
        reached=reached,
    )


def test_the_leader_died_and_no_other_is_known_yet() -> None:
    text = why(Leader(1, 5), Leader(0, 5), {MEMBERS[1]: False})
    assert text == (
        "read failed after 3s: leader changing, no leader is known yet "
        "(node 1 was the leader); retry"
    )


def test_the_leader_changed_during_a_write() -> None:
    text = why(Leader(1, 5), Leader(3, 6), {MEMBERS[1]: False, MEMBERS[3]: True}, write=True)
    assert text.startswith("write failed after 3s: leader changing, the leader changed from ")
    assert "node 1 to node 3 (it may still be applied); retry if that is safe, or use cas" in text


def test_a_known_leader_that_does_not_answer_is_a_change_coming() -> None:
    text = why(Leader(1, 5), Leader(1, 5), {MEMBERS[1]: False})
    assert "leader changing, the leader, node 1, does not answer" in text
    assert "quorum" not in text


def test_a_quorum_known_lost_names_the_missing_nodes() -> None:
    text = why(Leader(2, 5), Leader(0, 6), {MEMBERS[1]: False, MEMBERS[3]: False}, write=True)
    assert text == (
        "write failed after 3s: no quorum, 1 of 3 nodes are up and node 1 (127.0.0.1:12001), "
        "node 3 (127.0.0.1:12003) do not answer (it may still be applied); start them or "
        "wait for the network, then retry"
    )


def test_unknown_peers_are_never_counted_as_down() -> None:
    assert down_without_quorum(2, MEMBERS, {MEMBERS[1]: False}) == []
    assert down_without_quorum(2, MEMBERS, {}) == []
    assert down_without_quorum(2, MEMBERS, {MEMBERS[1]: False, MEMBERS[3]: False}) == [1, 3]
    assert down_without_quorum(2, {}, {}) == []


def test_a_write_the_live_leader_did_not_commit_in_time() -> None:
    text = why(Leader(1, 5), Leader(1, 5), {MEMBERS[1]: True}, write=True)
    assert text == (
        "write timed out after 3s: the leader, node 1, did not commit it in time "
        "(it may still be applied); retry if that is safe, or use cas"
    )


def test_removed_says_what_to_do() -> None:
    assert removed_text(4, "./kvstore-data/4") == (
        "node 4 was removed from the cluster and can never serve again: stop it and delete "
        "./kvstore-data/4; to add a node here again, start one with a new --id and --join"
    )
