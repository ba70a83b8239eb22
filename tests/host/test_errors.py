"""Every failure is a clear error, raised within its timeout."""

from __future__ import annotations

import logging
import time

import pytest

from nodehost import (
    Closed,
    InvalidOperation,
    PayloadTooBig,
    ShardClosed,
    ShardNotFound,
    ShardNotReady,
    SystemBusy,
    Timeout,
)
from tests.host.cluster import Cluster, encode, propose_retrying, wait_for


def test_no_quorum_times_out_within_the_timeout(cluster: Cluster) -> None:
    cluster.start_shard(1)
    leader = cluster.leader(1)
    propose_retrying(cluster.host(leader), 1, encode("put", "a", 1))
    for rid in cluster.addresses:
        if rid != leader:
            cluster.stop(rid)
    host = cluster.host(leader)
    started = time.monotonic()
    with pytest.raises((Timeout, ShardNotReady)):
        host.sync_propose(host.get_noop_session(1), encode("put", "b", 2), timeout=1.0)
    with pytest.raises((Timeout, ShardNotReady)):
        host.sync_read(1, "a", timeout=1.0)
    assert time.monotonic() - started < 4.0


def test_shard_without_leader_is_not_ready(cluster: Cluster) -> None:
    cluster.start_replica(1, 1, dict(cluster.addresses), False)  # peers never start
    host = cluster.host(1)
    rs = host.propose(host.get_noop_session(1), b"x", timeout=2)
    assert rs.wait().code.name in ("DROPPED", "TIMEOUT")
    with pytest.raises(ShardNotReady):
        host.sync_propose(host.get_noop_session(1), b"x", timeout=0.5)


def test_argument_errors(cluster: Cluster) -> None:
    cluster.start_shard(1)
    host = cluster.host(1)
    with pytest.raises(ShardNotFound):
        host.sync_propose(host.get_noop_session(99), b"x", 1)
    with pytest.raises(ShardNotFound):
        host.sync_read(99, "x", 1)
    with pytest.raises(PayloadTooBig):
        host.propose(host.get_noop_session(1), b"x" * (8 * 1024 * 1024 + 1), 1)
    with pytest.raises(InvalidOperation):
        host.propose(host.get_noop_session(1), b"x", 0)
    with pytest.raises(InvalidOperation):
        host.request_add_replica(1, 4, "not an address", 0, 1)
    with pytest.raises(TypeError):
        host.propose(host.get_noop_session(1), "text", 1)  # type: ignore[arg-type]


def test_calls_after_close(cluster: Cluster) -> None:
    cluster.start_shard(1)
    host = cluster.host(1)
    host.close()
    host.close()  # idempotent
    with pytest.raises(Closed):
        host.sync_propose(host.get_noop_session(1), b"x", 1)
    with pytest.raises(Closed):
        host.sync_read(1, "x", 1)
    cluster.hosts[1] = None


def test_in_memory_log_limit_gives_system_busy(cluster: Cluster) -> None:
    cluster.start_shard(1, max_in_mem_log_size=64 * 1024)
    leader = cluster.host(cluster.leader(1))
    session = leader.get_noop_session(1)
    # The state machine sleeps, so entries pile up unapplied in memory.
    leader.propose(session, encode("sleep", "s", 1.5), 5)
    busy = False
    deadline = time.monotonic() + 5
    while not busy and time.monotonic() < deadline:
        try:
            leader.propose(session, encode("put", "big", "x" * 4096), 5)
        except SystemBusy:
            busy = True
        time.sleep(0.002)
    assert busy
    wait_for(lambda: _accepts(leader), timeout=15, what="the limit lifts once applied")


def _accepts(host) -> bool:  # type: ignore[no-untyped-def]
    try:
        host.sync_propose(host.get_noop_session(1), encode("put", "ok", 1), 2)
        return True
    except SystemBusy:
        return False


def test_failing_state_machine_stops_its_replica_only(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    cluster.start_shard(1)
    cluster.start_shard(2)
    cluster.leader(1)
    host = cluster.host(1)
    with caplog.at_level(logging.ERROR):
        rs = host.propose(host.get_noop_session(1), encode("fail", "x"), 3)
        rs.wait()
        wait_for(
            lambda: all(
                h.get_node_host_info().shard_info_list
                and any(s.failed for s in h.get_node_host_info().shard_info_list if s.shard_id == 1)
                for _, h in cluster.live()
            ),
            what="every replica of shard 1 stopped",
        )
    assert "asked to fail" in caplog.text
    with pytest.raises(ShardClosed):
        host.sync_propose(host.get_noop_session(1), encode("put", "a", 1), 1)
    # Shard 2 is unaffected.
    propose_retrying(host, 2, encode("put", "b", 1))


def test_slow_state_machine_causes_no_elections_elsewhere(cluster: Cluster) -> None:
    cluster.start_shard(1)
    cluster.start_shard(2)
    leader2 = cluster.leader(2)
    _, term2, _ = cluster.host(leader2).get_leader_id(2)
    host = cluster.host(cluster.leader(1))
    rs = host.propose(host.get_noop_session(1), encode("sleep", "slow", 1.5), 5)
    for i in range(20):
        propose_retrying(cluster.host(leader2), 2, encode("put", f"k{i}", i))
        time.sleep(0.05)
    assert rs.wait().completed()
    assert cluster.host(leader2).get_leader_id(2) == (leader2, term2, True)
