"""The service's own Prometheus metrics, beside the NodeHost's.

Its own registry (not the global one), so several services in one test process never
collide; `/metrics` renders the NodeHost's registry and then this one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "kvstore_http_requests",
            "HTTP requests answered, by method, route and status code",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "kvstore_http_request_seconds",
            "Time to answer an HTTP request, by method and route",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.retries = Counter(
            "kvstore_retries",
            "Attempts repeated within a request's timeout (no leader yet, or a lost read)",
            registry=self.registry,
        )
        self.removed = Gauge(
            "kvstore_node_removed",
            "1 once this node was removed from the cluster (it can never serve again)",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        self.requests.labels(method, route, str(code)).inc()
        self.seconds.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
