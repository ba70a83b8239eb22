"""What a failing run did wrong, by name: the kinds of violation, and the anomalies
found directly in the histories (lost acknowledged writes, stale reads, writes applied
twice, values never written, two leaders in one term).

The linearizability checks say whether a key's history can be explained; these say
what broke, in the words of a bug report, so a known bug's test can ask for its own
kind of damage and not be satisfied by any other failure.

Rules:
- Every finding is proved by a few operations and their real-time order alone (a
  returned before b was invoked); none rests on a guess about timing.
- Written values are unique (a client id and a counter), so a value names its write.
  Only "absent" has several writers: the deletes, and the key's initial state.
- "Acknowledged": its client was told it succeeded, or a read showed it (a read shows
  only what was committed, so it was as good as acknowledged).
- The final state of a key is what the final reads show, one linearizable read per
  host after every client stopped. A write is lost when at least half of the final
  reads of its shard show a state it cannot be in: missing an element (lists and
  sets), or a value written by a write that returned before it was invoked
  (registers). A read is stale when it misses a write that is not lost and that was
  acknowledged before the read was invoked.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nodehost.testing import UNKNOWN, Operation


class Kind(enum.StrEnum):
    """The names a run's violations go by (summary.json, the mutant tests, the report)."""

    LOST_WRITE = "lost acknowledged write"
    STALE_READ = "stale read"
    APPLIED_TWICE = "write applied twice"
    INVENTED = "read of a value never written"
    TWO_LEADERS = "two leaders in one term"
    STATE_HASHES_DIFFER = "state hashes differ"
    NOT_LINEARIZABLE = "not linearizable"
    UNDECIDED = "linearizability undecided"
    REPLICA_FAILED = "replica failed"
    NO_RECOVERY = "no recovery"
    NOT_CONVERGED = "replicas did not converge"
    NO_FINAL_READ = "no final read"
    HOST_DID_NOT_RESTART = "host did not restart"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: Kind
    key: str
    detail: str


def describe(op: Operation, origin: float) -> str:
    """One operation, times in seconds from `origin` ("?": never returned)."""
    ret = "?" if math.isinf(op.return_time) else f"{op.return_time - origin:.3f}"
    read = op.input[0] in ("get", "read")
    shown = "?" if op.output is UNKNOWN else repr(op.output)
    out = f" -> {shown}" if read or op.output is not None else ""
    args = ", ".join(repr(a) for a in op.input[1:])
    return f"{op.input[0]}({args}){out} by client {op.client_id} [{op.call - origin:.3f}, {ret}]"


def _lost(missing_from: int, finals: int) -> bool:
    return finals > 0 and 2 * missing_from >= finals


# ---------------------------------------------------------------------- registers


def registers(
    key: str, ops: Sequence[Operation], finals: Sequence[Operation], origin: float
) -> list[Finding]:
    """Keys of put, cas, delete and get (finals: the final reads of the key, as gets)."""
    writers: dict[Any, list[Operation]] = defaultdict(list)
    writes: list[tuple[Operation, Any]] = []
    for op in ops:
        kind = op.input[0]
        if kind == "get" or (kind == "cas" and op.output is False):
            continue
        value = None if kind == "delete" else op.input[-1]
        writers[value].append(op)
        writes.append((op, value))
    # When each write was acknowledged: its return, or the first read showing its value.
    shown_at: dict[Any, float] = {}
    for op in ops:
        if op.input[0] == "get" and op.output is not UNKNOWN and op.output is not None:
            shown_at[op.output] = min(shown_at.get(op.output, math.inf), op.return_time)
    acked: list[tuple[Operation, Any, float]] = []
    for w, value in writes:
        at = min(w.return_time, shown_at.get(value, math.inf) if value is not None else math.inf)
        if not math.isinf(at):
            acked.append((w, value, at))

    def settled(value: Any) -> float | None:
        """When every write of `value` had returned (-inf: the initial state);
        None if nothing wrote it."""
        found = writers.get(value, [])
        if value is not None and not found:
            return None
        return max((w.return_time for w in found), default=-math.inf)

    findings: list[Finding] = []
    lost: set[int] = set()
    for w, value, _ in acked:
        before = [
            f
            for f in finals
            if f.output != value and (t := settled(f.output)) is not None and t < w.call
        ]
        if _lost(len(before), len(finals)):
            lost.add(id(w))
            findings.append(
                Finding(
                    Kind.LOST_WRITE,
                    key,
                    f"{describe(w, origin)} is gone: {len(before)} of {len(finals)} final reads "
                    f"show an older value ({before[0].output!r})",
                )
            )
    # Stale: a read of v invoked after some write w was acknowledged (w not lost), where
    # w was invoked after every write of v had returned.
    kept = sorted(((w, at) for w, _, at in acked if id(w) not in lost), key=lambda p: p[0].call)
    calls = [w.call for w, _ in kept]
    earliest = [0] * len(kept)  # earliest[j]: index of the first acknowledged in kept[j:]
    for j in range(len(kept) - 1, -1, -1):
        nxt = earliest[j + 1] if j + 1 < len(kept) else j
        earliest[j] = j if kept[j][1] <= kept[nxt][1] else nxt
    reads = [o for o in ops if o.input[0] == "get" and o.output is not UNKNOWN]
    for r in [*reads, *finals]:
        t = settled(r.output)
        if t is None:
            findings.append(
                Finding(Kind.INVENTED, key, f"{describe(r, origin)}: no write of that value")
            )
            continue
        j = bisect.bisect_right(calls, t)
        if j < len(kept) and kept[earliest[j]][1] < r.call:
            w, at = kept[earliest[j]]
            findings.append(
                Finding(
                    Kind.STALE_READ,
                    key,
                    f"{describe(r, origin)} misses {describe(w, origin)}, acknowledged at "
                    f"{at - origin:.3f} (and not lost)",
                )
            )
    return findings


# ---------------------------------------------------------------------- lists and sets


def grow_only(
    key: str,
    writes: Sequence[Operation],
    reads: Sequence[tuple[Operation, Sequence[Any]]],
    finals: Sequence[tuple[Operation, Sequence[Any]]],
    origin: float,
) -> list[Finding]:
    """Grow-only keys: appended strings and sets. `writes` add one element each
    (input[-1]); `reads` and `finals` pair each read with the elements it showed, in
    the order shown, duplicates kept."""
    findings: list[Finding] = []
    added: dict[Any, Operation] = {w.input[-1]: w for w in writes}
    first_seen: dict[Any, float] = {}  # element -> earliest return of a read showing it
    for r, shown in [*reads, *finals]:
        counts = Counter(shown)
        for x, n in sorted(counts.items(), key=lambda kv: repr(kv[0])):
            if n > 1:
                findings.append(
                    Finding(Kind.APPLIED_TWICE, key, f"{describe(r, origin)} shows {x!r} {n} times")
                )
            w = added.get(x)
            if w is None or w.call > r.return_time:
                findings.append(
                    Finding(Kind.INVENTED, key, f"{describe(r, origin)} shows {x!r}, never added")
                )
            first_seen[x] = min(first_seen.get(x, math.inf), r.return_time)
    final_sets = [set(shown) for _, shown in finals]
    # Acknowledged: by its client, or by a read that showed it (from when it returned).
    known: dict[Any, float] = {
        w.input[-1]: w.return_time for w in writes if w.output is not UNKNOWN
    }
    for x, t in first_seen.items():
        if x in added:
            known[x] = min(known.get(x, math.inf), t)
    lost: set[Any] = set()
    for x, t in sorted(known.items(), key=lambda kv: kv[1]):
        missing = sum(1 for s in final_sets if x not in s)
        if _lost(missing, len(final_sets)):
            lost.add(x)
            w = added[x]
            how = "acknowledged" if w.output is not UNKNOWN else "shown by a read"
            findings.append(
                Finding(
                    Kind.LOST_WRITE,
                    key,
                    f"{describe(w, origin)} ({how} at {t - origin:.3f}) is missing from "
                    f"{missing} of {len(final_sets)} final reads",
                )
            )
    by_time = sorted((t, x) for x, t in known.items() if x not in lost)
    times = [t for t, _ in by_time]
    for r, shown in [*reads, *finals]:
        seen = set(shown)
        for t, x in by_time[: bisect.bisect_left(times, r.call)]:
            if x not in seen:
                findings.append(
                    Finding(
                        Kind.STALE_READ,
                        key,
                        f"{describe(r, origin)} misses {x!r}, acknowledged at "
                        f"{t - origin:.3f} (and not lost)",
                    )
                )
                break
    return findings


# ---------------------------------------------------------------------- leaders


def leaders(reports: Iterable[tuple[int, int, int, int]]) -> list[Finding]:
    """(shard, term, leader, reporting replica) as replicas learned of leaders: at most
    one leader per shard and term (Raft's Election Safety)."""
    named: dict[tuple[int, int], dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for shard, term, leader, reporter in reports:
        named[(shard, term)][leader].add(reporter)
    findings = []
    for (shard, term), by_leader in sorted(named.items()):
        if len(by_leader) > 1:
            who = "; ".join(
                f"replica {leader} (reported by {sorted(r)})"
                for leader, r in sorted(by_leader.items())
            )
            findings.append(Finding(Kind.TWO_LEADERS, f"shard {shard}", f"term {term}: {who}"))
    return findings


def summarize(findings: Sequence[Finding]) -> dict[Kind, str]:
    """One line per kind: how many, on how many keys, and the first."""
    by_kind: dict[Kind, list[Finding]] = defaultdict(list)
    for f in findings:
        by_kind[f.kind].append(f)
    lines = {}
    for kind, found in by_kind.items():
        keys = {f.key for f in found}
        lines[kind] = (
            f"{len(found)} on {len(keys)} keys; first on {found[0].key}: {found[0].detail}"
        )
    return lines
