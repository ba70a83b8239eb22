"""Prometheus metrics of one NodeHost (NodeHostConfig.enable_metrics).

Each NodeHost has its own registry, so several NodeHosts in one process (tests) never
collide; `NodeHost.write_health_metrics` renders it in the text exposition format.
With metrics off every method is a cheap no-op.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
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
            "nodehost_proposal_results", "Proposals finished, by outcome", ["code"], registry=r
        )
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
        self._snapshots = Counter("nodehost_snapshots", "Snapshots by event", ["event"], registry=r)
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

    def watch_transport(self, stats: Callable[[], dict[str, int]]) -> None:
        """Export the transport's counters (drops, rejections, bytes) as they are."""
        if self.enabled:
            self.registry.register(_StatsCollector("nodehost_transport", stats))

    def proposal(self, shard_id: int) -> None:
        if self.enabled:
            self._proposals.labels(str(shard_id)).inc()

    def proposal_result(self, code: str) -> None:
        if self.enabled:
            self._proposal_results.labels(code).inc()

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


class _StatsCollector(Collector):
    def __init__(self, prefix: str, stats: Callable[[], dict[str, int]]) -> None:
        self._prefix = prefix
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        for name, value in sorted(self._stats().items()):
            metric = CounterMetricFamily(f"{self._prefix}_{name}", f"transport counter {name}")
            metric.add_metric([], float(value))
            yield metric

    def describe(self) -> Iterable[Metric]:
        return []
