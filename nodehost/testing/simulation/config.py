"""A simulated run's settings: how big, how long and how hostile. Times are simulated
seconds; the fault kinds are described in nemesis.py."""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_KINDS: dict[str, float] = {
    "crash": 1.0,
    "crash-majority": 0.4,
    "partition": 1.0,
    "one-way": 0.6,
    "flaky": 0.8,
    "disk-full": 0.5,
    "snapshot": 0.5,
    "membership": 0.5,
    "transfer": 0.4,
    "figure-8": 0.25,
    "lagging-leader": 0.25,
}


@dataclass(frozen=True)
class SimulationConfig:
    """How big, how long and how hostile a run is. Times are simulated seconds."""

    hosts: int = 3
    rtt_ms: int = 50
    election_rtt: int = 10
    heartbeat_rtt: int = 2
    pre_vote: bool = False
    snapshot_entries: int = 16
    compaction_overhead: int = 4
    clients_per_host: int = 1
    op_timeout: float = 1.5
    session_attempt: float = 0.5
    think: tuple[float, float] = (0.05, 0.25)  # between a client's operations
    warmup: float = 0.3  # before the first fault may come
    window: float = 2.0  # operations are made, faults injected
    settle: float = 15.0  # at most, to converge once everything healed
    faults: tuple[int, int] = (1, 3)  # how many, at least and at most
    kinds: dict[str, float] = field(default_factory=lambda: dict(FAULT_KINDS))
    io_latency: tuple[float, float] = (0.0002, 0.002)
    apply_latency: tuple[float, float] = (0.0, 0.001)
    check_seconds: float = 20.0  # wall-clock budget of the linearizability check
