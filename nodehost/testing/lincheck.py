"""Linearizability checking: can one total order explain every client's view?

Each key is checked alone (Horn & Kroening 2015, P-compositionality: a map is
linearizable iff every key is) by the search in search.py, Wing & Gong's with Lowe's
memoization, as porcupine runs it.

Rules:
- An operation with an unknown outcome (return_time = inf) may take effect at any
  point after its call, or never.
- Verdicts are sound both ways: OK means an order was found, ILLEGAL means none
  exists. When the budget runs out first the verdict is UNKNOWN, never a guess.
- Keys share the budget in rounds of equal slices, easy keys first, and a search
  resumes where its slice ended: one hard key cannot starve the others.
- On ILLEGAL the explanation names the earliest point of failure (explain.py),
  within the same budget.
- The check is CPU-bound and runs in the caller's thread: from asyncio, hand it to
  an executor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nodehost.testing.explain import as_recorded, explain
from nodehost.testing.history import Operation, validate
from nodehost.testing.models import Model
from nodehost.testing.search import Search, Verdict

__all__ = ["CheckResult", "PartitionResult", "Verdict", "check_operations"]


@dataclass(slots=True)
class PartitionResult:
    """The verdict on one key."""

    key: Hashable
    verdict: Verdict
    operations: int
    explored: int
    seconds: float


@dataclass(slots=True)
class CheckResult:
    """`key` is the illegal key (or the first undecided one); `operations` are the ones
    that cannot be ordered, the failing one first."""

    verdict: Verdict
    key: Hashable = None
    explanation: str = ""
    explored: int = 0
    seconds: float = 0.0
    operations: list[Operation] = field(default_factory=list)
    partitions: list[PartitionResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK


def check_operations(
    model: Model[Any], history: Iterable[Operation], timeout: float | None = None
) -> CheckResult:
    """Is `history` linearizable under `model`? `timeout` (seconds) bounds the whole
    check; None means no bound. Raises ValueError for a malformed history."""
    started = time.monotonic()
    deadline = math.inf if timeout is None else started + timeout
    ops = list(history)
    validate(ops)
    searches = [(key, Search(model, part)) for key, part in model.partition(ops).items()]
    searches.sort(key=lambda ks: ks[1].n)  # many small keys decided beats one big one
    pending = searches
    illegal: tuple[Hashable, Search] | None = None
    # Rounds of equal shares: a hard key cannot starve the easy ones.
    while pending and illegal is None:
        share = (deadline - time.monotonic()) / len(pending)
        undecided = []
        for key, search in pending:
            verdict = search.run(min(deadline, time.monotonic() + max(share, 0.0)))
            if verdict is None:
                undecided.append((key, search))
            elif verdict is Verdict.ILLEGAL:
                illegal = (key, search)
                break
        pending = undecided
        if time.monotonic() >= deadline:
            break

    partitions = [
        PartitionResult(
            key, s.verdict or Verdict.UNKNOWN, len(s.ops), s.explored, round(s.seconds, 6)
        )
        for key, s in searches
    ]
    explored = sum(p.explored for p in partitions)
    if illegal is not None:
        key, search = illegal
        explanation, culprits = explain(model, key, search, deadline)
        culprits = as_recorded(culprits, ops)
        verdict, found_key = Verdict.ILLEGAL, key
    else:
        undecided_keys = [p for p in partitions if p.verdict is Verdict.UNKNOWN]
        if undecided_keys:
            first = undecided_keys[0]
            verdict, found_key, culprits = Verdict.UNKNOWN, first.key, []
            explanation = (
                f"{len(undecided_keys)} of {len(partitions)} keys undecided after "
                f"{timeout} s; first: key {first.key!r}, {first.operations} operations, "
                f"{first.explored} states explored"
            )
        else:
            verdict, found_key, culprits = Verdict.OK, None, []
            explanation = f"linearizable: {len(ops)} operations, {len(partitions)} keys"
    return CheckResult(
        verdict,
        found_key,
        explanation,
        explored,
        time.monotonic() - started,
        culprits,
        partitions,
    )
