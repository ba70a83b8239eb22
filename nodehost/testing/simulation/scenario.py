"""A scenario: your state machine and workload, run under the simulation seed by seed.

    # tests/test_counter.py
    from nodehost.testing.simulation import Scenario

    COUNTER = Scenario(Counter, CounterWorkload)     # at module level: replayable

    @pytest.mark.parametrize("seed", range(100))
    def test_counter_under_faults(seed: int) -> None:
        COUNTER.check(seed)                           # AssertionError with the replay line

A failing seed's report ends with the one command that replays it, byte for byte:

    uv run python -m nodehost.testing.simulation tests.test_counter:COUNTER --seed 17

Rules:
- A scenario made at a module's top level finds its own name there, so the replay
  command needs nothing else; one made elsewhere gives `name="module:attribute"`.
- `check_many` spreads seeds over processes (each imports the scenario by its name),
  so a scenario used that way must be importable at module level.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nodehost.testing.simulation.config import SimulationConfig
from nodehost.testing.simulation.hosts import LogDBWrapper
from nodehost.testing.simulation.simulation import RunResult, Simulation
from nodehost.testing.simulation.workload import Workload
from statemachine import StateMachineType


@dataclass
class Scenario:
    create: Callable[[int, int], Any]
    workload: Callable[[], Workload] | None = None
    kind: StateMachineType = StateMachineType.REGULAR
    config: SimulationConfig = field(default_factory=SimulationConfig)
    logdb_wrapper: LogDBWrapper | None = None
    host_parts: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # "module:attribute"; found by itself at a module's top level
    _module: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self._module:
            frame = sys._getframe(2)  # the caller of the dataclass __init__
            self._module = str(frame.f_globals.get("__name__", ""))

    @property
    def target(self) -> str:
        """The "module:attribute" the replay command imports from the current directory
        (a test runner may have imported the module under another name)."""
        if self.name:
            return self.name
        module = sys.modules.get(self._module)
        if module is not None:
            for attribute, value in vars(module).items():
                if value is self:
                    return f"{_importable_name(module)}:{attribute}"
        return f"{self._module}:<not at module level: give Scenario(name=...)>"

    def replay_command(self, seed: int) -> str:
        return f"uv run python -m nodehost.testing.simulation {self.target} --seed {seed}"

    def run(self, seed: int, *, keep_trace: bool = False) -> RunResult:
        return Simulation(
            self.create,
            self.workload,
            seed=seed,
            kind=self.kind,
            config=self.config,
            logdb_wrapper=self.logdb_wrapper,
            host_parts=self.host_parts,
            replay=self.replay_command(seed),
            keep_trace=keep_trace,
        ).run()

    def check(self, seed: int) -> RunResult:
        """Run `seed`; AssertionError with the report and its replay command if it failed."""
        result = self.run(seed)
        if not result.ok:
            raise AssertionError(result.report())
        return result

    def run_many(self, seeds: Iterable[int], processes: int = 1) -> list[RunResult]:
        """Every seed, spread over `processes` processes (each imports the scenario)."""
        seeds = list(seeds)
        if processes <= 1 or len(seeds) < 2:
            return [self.run(seed) for seed in seeds]
        target = self.target
        chunks = [seeds[i::processes] for i in range(processes)]
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes) as pool:
            parts = pool.starmap(_run_chunk, [(target, chunk) for chunk in chunks])
        results = [r for part in parts for r in part]
        results.sort(key=lambda r: r.seed)
        return results


def _importable_name(module: ModuleType) -> str:
    """The module's dotted path from the current directory when its file is under it
    (pytest imports tests/a/test_b.py as a.test_b; the command line needs tests.a.test_b)."""
    path = getattr(module, "__file__", None)
    if path:
        try:
            relative = Path(path).resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            return module.__name__
        parts = list(relative.with_suffix("").parts)
        if parts and parts[-1] == "__init__":
            parts.pop()
        if parts and all(part.isidentifier() for part in parts):
            return ".".join(parts)
    return module.__name__


def load(target: str) -> Scenario:
    """The scenario named "module:attribute"."""
    import importlib

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"a scenario is named module:attribute, not {target!r}")
    module = importlib.import_module(module_name)
    scenario = getattr(module, attribute, None)
    if not isinstance(scenario, Scenario):
        raise ValueError(f"{target} is not a nodehost.testing.simulation.Scenario")
    return scenario


def _run_chunk(target: str, seeds: list[int]) -> list[RunResult]:
    # A process of our own: the library's logs of faults we caused on purpose would
    # only bury the reports.
    logging.disable(logging.CRITICAL)
    scenario = load(target)
    return [scenario.run(seed) for seed in seeds]
