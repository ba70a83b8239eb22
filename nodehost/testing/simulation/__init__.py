"""The whole stack simulated deterministically: your state machine under Raft and faults.

    from nodehost.testing.simulation import Scenario, Workload, Write, Read

    COUNTER = Scenario(Counter, CounterWorkload)   # your IStateMachine, your workload

    def test_counter() -> None:
        for seed in range(50):
            COUNTER.check(seed)                     # fails with the replay command

Several NodeHosts run in one process over the in-memory transport and log store, on
simulated time, in an order drawn from the seed: the real engine, replicas, state
machine layer, sessions, snapshots and membership changes, while processes crash
(losing unsynced writes), restart, are cut off (both ways or one), messages are lost,
duplicated, delayed and reordered, disks fill up and snapshots are installed. Raft's
safety properties are checked throughout, and the clients' history by the
linearizability checker against the workload's model. A seed replays byte for byte:

    uv run python -m nodehost.testing.simulation [module:SCENARIO] --seed N

Modules: loop.py (simulated time, the seeded scheduler), runtime.py (the engine's
runtime on it), network.py, hosts.py (machines and their processes), clients.py,
workload.py, nemesis.py (faults), invariants.py (the safety checks), machines.py (how
applied entries are seen), simulation.py (one run), scenario.py (by seed, replayable).
"""

from nodehost.testing.simulation.config import FAULT_KINDS, SimulationConfig
from nodehost.testing.simulation.scenario import Scenario, load
from nodehost.testing.simulation.simulation import RunResult, Simulation
from nodehost.testing.simulation.workload import (
    KVStateMachine,
    KVWorkload,
    Read,
    Workload,
    Write,
)

#: The built-in scenario: a key-value map under puts, appends and gets, all faults.
KV = Scenario(KVStateMachine, KVWorkload, name="nodehost.testing.simulation:KV")

__all__ = [
    "FAULT_KINDS",
    "KV",
    "KVStateMachine",
    "KVWorkload",
    "Read",
    "RunResult",
    "Scenario",
    "Simulation",
    "SimulationConfig",
    "Workload",
    "Write",
    "load",
]
