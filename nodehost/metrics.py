"""Prometheus metrics of one NodeHost (NodeHostConfig.enable_metrics).

Each NodeHost has its own registry, so several NodeHosts in one process (tests) never
collide; `NodeHost.write_health_metrics` renders it in the text exposition format.
With metrics off every method is a cheap no-op.

Per-shard series (label `shard`) are those of Dragonboat's per-replica raft metrics:
`nodehost_shard_has_leader` (0 while this replica knows no leader: alert on it),
`nodehost_shard_term`, and the proposals and reads the core dropped (no leader,
leadership moving, replica removed). They are read from the replicas when scraped, or
counted as they happen, and a stopped replica's series go away with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.registry = CollectorRegistry(auto_describe=True)
        if not enabled:
            return
        r = self.registry
        self._proposals = Counter(
            "nodehost_proposals", "Proposals submitted on this NodeHost", ["shard"], registry=r
        )
        self._proposal_results = Counter(
            "nodehost_proposal_results",
            "Proposals finished, by outcome (a ResultCode name)",
            ["code"],
            registry=r,
        )
        self._proposal_result_children: dict[str, Any] = {}
        self._reads = Counter("nodehost_reads", "Linearizable reads submitted", registry=r)
        self._applied = Counter(
            "nodehost_applied_entries", "Entries applied to state machines", ["shard"], registry=r
        )
        self._apply_seconds = Histogram(
            "nodehost_apply_batch_seconds",
            "Time to apply one batch of committed entries",
            registry=r,
            buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0),
        )
        self._save_seconds = Histogram(
            "nodehost_logdb_save_seconds",
            "Time of one LogDB write (all shards of one pass, one fsync)",
            registry=r,
            buckets=(0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
        )
        self._elections = Counter(
            "nodehost_leader_changes",
            "Leader changes seen by local replicas",
            ["shard"],
            registry=r,
        )
        self._snapshots = Counter(
            "nodehost_snapshots",
            "Snapshots by event: " + ", ".join(SNAPSHOT_EVENTS),
            ["event"],
            registry=r,
        )
        self._shards = Gauge("nodehost_replicas", "Replicas running on this NodeHost", registry=r)
        self._refused = Counter(
            "nodehost_refused_messages",
            "Messages from peers refused before any replica saw them, by reason",
            ["reason"],
            registry=r,
        )
        self._replica_failures = Counter(
            "nodehost_replica_failures",
            "Replicas stopped by a failure of their own (the host and others go on)",
            ["shard"],
            registry=r,
        )
        self._proposals_dropped = Counter(
            "nodehost_shard_proposals_dropped",
            "Proposals the replica dropped: no leader, leadership moving, or removed",
            ["shard"],
            registry=r,
        )
        self._reads_dropped = Counter(
            "nodehost_shard_reads_dropped",
            "Linearizable reads the replica dropped: no leader, leadership moving, or removed",
            ["shard"],
            registry=r,
        )
        self._busy = Counter(
            "nodehost_system_busy",
            "Calls refused with SystemBusy (a bound on pending work was reached)",
            ["kind"],
            registry=r,
        )

    def watch_transport(self, stats: Callable[[], dict[str, int]]) -> None:
        """Export the transport's counters (drops, rejections, bytes) as they are."""
        if self.enabled:
            self.registry.register(_StatsCollector("nodehost_transport", stats))

    def watch_replicas(self, replicas: Callable[[], Iterable[ReplicaLeadership]]) -> None:
        """Export each replica's leadership as it is when scraped."""
        if self.enabled:
            self.registry.register(_LeadershipCollector(replicas))

    def watch_receive_queue(self, stats: Callable[[], dict[str, int]]) -> None:
        """Export the receive queue's drops (counters) and bytes (gauges)."""
        if self.enabled:
            gauges = frozenset({"bytes", "peak_bytes", "limit_bytes"})
            self.registry.register(_StatsCollector("nodehost_receive_queue", stats, gauges))

    def system_busy(self, kind: str) -> None:
        if self.enabled:
            self._busy.labels(kind).inc()

    def proposal(self, shard_id: int) -> None:
        if self.enabled:
            self._proposals.labels(str(shard_id)).inc()

    def proposal_result(self, code: IntEnum) -> None:
        """A proposal ended (its RequestState's on_done, any thread)."""
        if not self.enabled:
            return
        child = self._proposal_result_children.get(code.name)
        if child is None:
            child = self._proposal_results.labels(code.name)
            self._proposal_result_children[code.name] = child
        child.inc()

    def dropped(self, shard_id: int, proposals: int, reads: int) -> None:
        if self.enabled:
            if proposals:
                self._proposals_dropped.labels(str(shard_id)).inc(proposals)
            if reads:
                self._reads_dropped.labels(str(shard_id)).inc(reads)

    def forget_shard(self, shard_id: int) -> None:
        """The replica was unloaded: drop its series, so they do not pile up."""
        if not self.enabled:
            return
        label = str(shard_id)
        for family in (
            self._proposals,
            self._applied,
            self._elections,
            self._proposals_dropped,
            self._reads_dropped,
        ):
            try:
                family.remove(label)
            except KeyError:
                pass

    def read(self) -> None:
        if self.enabled:
            self._reads.inc()

    def applied(self, shard_id: int, count: int, seconds: float) -> None:
        if self.enabled:
            self._applied.labels(str(shard_id)).inc(count)
            self._apply_seconds.observe(seconds)

    def logdb_save(self, records: int, seconds: float) -> None:
        if self.enabled:
            self._save_seconds.observe(seconds)

    def leader_changed(self, shard_id: int) -> None:
        if self.enabled:
            self._elections.labels(str(shard_id)).inc()

    def snapshot(self, event: str) -> None:
        if self.enabled:
            assert event in SNAPSHOT_EVENTS, event
            self._snapshots.labels(event).inc()

    def replicas(self, count: int) -> None:
        if self.enabled:
            self._shards.set(count)

    def refused(self, reason: str) -> None:
        if self.enabled:
            self._refused.labels(reason).inc()

    def replica_failed(self, shard_id: int) -> None:
        if self.enabled:
            self._replica_failures.labels(str(shard_id)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


#: The `event` label values of nodehost_snapshots_total.
SNAPSHOT_EVENTS = (
    "created",  # saved by this replica (automatic or requested)
    "save_failed",  # could not be written (disk full, IO error); tried again later
    "compacted",  # an older snapshot deleted from disk behind a newer one
    "recovered",  # the state machine restored from one (start, or one received)
    "received",  # a snapshot streamed in from the leader
    "sent",  # a snapshot streamed to a follower
    "send_aborted",  # a stream to a follower failed; the core tries again
)


@dataclass(frozen=True, slots=True)
class ReplicaLeadership:
    shard_id: int
    leader_id: int  # 0: no leader known
    term: int


class _LeadershipCollector(Collector):
    def __init__(self, replicas: Callable[[], Iterable[ReplicaLeadership]]) -> None:
        self._replicas = replicas

    def collect(self) -> Iterable[Metric]:
        has_leader = GaugeMetricFamily(
            "nodehost_shard_has_leader",
            "1 while this replica knows a leader of its shard, else 0",
            labels=["shard"],
        )
        term = GaugeMetricFamily(
            "nodehost_shard_term", "The term this replica is in", labels=["shard"]
        )
        for replica in self._replicas():
            label = [str(replica.shard_id)]
            has_leader.add_metric(label, 1.0 if replica.leader_id else 0.0)
            term.add_metric(label, float(replica.term))
        yield has_leader
        yield term

    def describe(self) -> Iterable[Metric]:
        return []


class _StatsCollector(Collector):
    def __init__(
        self,
        prefix: str,
        stats: Callable[[], dict[str, int]],
        gauges: frozenset[str] = frozenset(),
    ) -> None:
        self._prefix = prefix
        self._stats = stats
        self._gauges = gauges

    def collect(self) -> Iterable[Metric]:
        for name, value in sorted(self._stats().items()):
            family = GaugeMetricFamily if name in self._gauges else CounterMetricFamily
            metric = family(f"{self._prefix}_{name}", f"{self._prefix} {name}")
            metric.add_metric([], float(value))
            yield metric

    def describe(self) -> Iterable[Metric]:
        return []
