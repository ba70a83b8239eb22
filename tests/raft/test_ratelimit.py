"""Rate limiting by the size of the in-memory log (max_in_mem_log_size)."""

from __future__ import annotations

from nodehost.raft.ratelimit import RateLimiter

from .network import Network

ELECTION = 10
CMD = b"x" * 40  # 552 bytes of memory with an entry's own (ENTRY_MEMORY_OVERHEAD)
LIMIT = 10_000  # 20 entries pass it


def limited_cluster(seed: int, slow: int) -> Network:
    net = Network.of(3, seed=seed, max_in_mem_log_size=LIMIT)
    net.elect(1)
    net.nodes[slow].hold_applied = True
    for _ in range(20):
        net.propose(1, CMD)
    net.stabilize()
    return net


def test_a_leader_whose_state_machine_lags_refuses_proposals() -> None:
    net = limited_cluster(seed=1, slow=1)
    assert net.peer(1).rate_limited()
    assert not net.peer(2).rate_limited()


def test_a_slow_follower_limits_the_whole_shard() -> None:
    net = limited_cluster(seed=2, slow=3)
    assert not net.peer(1).rate_limited()
    net.tick(ticks=ELECTION)  # 3 reports its size; the leader answers its verdict
    assert net.peer(1).rate_limited()
    assert net.peer(2).rate_limited()  # told by the leader
    assert net.peer(3).rate_limited()


def test_limiting_ends_below_seventy_percent() -> None:
    net = limited_cluster(seed=3, slow=1)
    peer = net.peer(1)
    assert peer.rate_limited()
    log = peer.raft.log
    # Apply until about 80% of the limit is left: still limited (hysteresis).
    keep = 15  # 15 * 552 = 8,280 bytes
    peer.applied_to(log.last_index() - keep)
    net.tick(ticks=ELECTION)
    assert peer.rate_limited()
    peer.applied_to(log.last_index() - 5)  # 2,760 bytes: under 70% of 10,000
    net.tick(ticks=ELECTION)
    assert not peer.rate_limited()


def test_without_a_limit_nothing_is_refused() -> None:
    net = Network.of(3, seed=4)
    net.elect(1)
    net.nodes[1].hold_applied = True
    for _ in range(200):
        net.propose(1, CMD)
    net.stabilize()
    assert not net.peer(1).rate_limited()


def test_the_verdict_changes_at_most_once_per_period() -> None:
    rl = RateLimiter(max_bytes=100, period=10)
    assert rl.limited(150)
    assert rl.limited(10)  # too soon to release
    for _ in range(10):
        rl.tick()
    assert not rl.limited(10)


def test_stale_follower_reports_are_forgotten() -> None:
    rl = RateLimiter(max_bytes=100, period=10)
    rl.follower_size(2, 500)
    assert rl.limited(0)
    for _ in range(31):
        rl.tick()
    assert not rl.limited(0)


def test_an_idle_follower_sends_no_reports() -> None:
    net = Network.of(3, seed=5, max_in_mem_log_size=LIMIT, trace=True)
    net.elect(1)
    net.propose(1, CMD)
    net.stabilize()
    net.tick(ticks=2 * ELECTION)  # each follower tells its (empty) log once
    assert net.trace is not None
    net.trace.clear()
    net.tick(ticks=5 * ELECTION)
    assert not [line for line in net.trace if "RATE_LIMIT" in line]
    # Busy again: the reports come back.
    net.nodes[2].hold_applied = True
    for _ in range(20):
        net.propose(1, CMD)
    net.stabilize()
    net.tick(ticks=ELECTION)
    assert [line for line in net.trace if line.startswith("2->1 RATE_LIMIT")]
    assert net.peer(1).rate_limited()
