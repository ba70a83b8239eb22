"""The engine's threading rule, checked on a running cluster: only the engine loop's
thread touches a replica's core (its Peer). The core is not thread-safe; a read from an
apply or user thread walks state the loop is changing (an earlier version crashed a
replica that way, under load, with max_in_mem_log_size set)."""

from __future__ import annotations

import threading
from typing import Any

from nodehost import NodeHostInfoOption
from tests.host.cluster import Cluster, encode


class _LoopOnly:
    """Stands in for a Peer; records any access from a thread other than the loop's."""

    def __init__(self, peer: Any, loop_thread: threading.Thread, seen: list[str]) -> None:
        self._peer = peer
        self._loop_thread = loop_thread
        self._seen = seen

    def __getattr__(self, name: str) -> Any:
        thread = threading.current_thread()
        if thread is not self._loop_thread:
            self._seen.append(f"{name} from {thread.name}")
        return getattr(self._peer, name)


def test_only_the_engine_thread_touches_the_core(cluster: Cluster) -> None:
    cluster.start_shard(1, max_in_mem_log_size=1 << 20, snapshot_entries=20)
    cluster.leader(1)
    seen: list[str] = []
    for _, host in cluster.live():
        engine = host._engine
        assert engine is not None
        node = engine.nodes[1]

        def guard(node: Any = node) -> None:  # runs on the engine's loop thread
            node.loop.peer = _LoopOnly(node.loop.peer, threading.current_thread(), seen)

        engine.call(guard)
    host = cluster.host(2)
    session = host.get_noop_session(1)
    for i in range(60):
        host.sync_propose(session, encode("put", f"k{i}", i), timeout=5)
    for _, h in cluster.live():
        assert h.sync_read(1, "k59", timeout=5) == 59
        h.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        h.sync_get_shard_membership(1, timeout=5)
        h.get_leader_id(1)
    assert seen == []
