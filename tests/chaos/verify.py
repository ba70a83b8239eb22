"""After a run: merge the workers' history files, judge them, count what was lost.

Rules:
- An invoke with no outcome line (its process was killed) is an operation of unknown
  outcome; so is one recorded "unknown". A write may then take effect at any later
  time or never; a read is dropped (it showed nothing).
- Final reads (one dump per host and shard, after every client stopped) join the
  histories as reads of every key the clients touched, at the dump's interval.
- Registers and KV keys (strings appended included) are checked for linearizability
  per key; sets for durability (nothing acknowledged lost, nothing invented, nothing
  seen vanishing). Lost acknowledged writes are counted directly where the data shows
  them: set members and appended tokens missing from the final reads.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodehost.testing import (
    UNKNOWN,
    Operation,
    Verdict,
    check_durability,
    check_operations,
    dump_history,
    kv_model,
)

FINAL_CLIENTS = 9 * 10**8  # client ids of final reads start here


@dataclass
class Histories:
    kv: list[Operation] = field(default_factory=list)
    sets: dict[str, list[Operation]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter[str] = field(default_factory=Counter)
    ok_returns: list[float] = field(default_factory=list)  # seconds, for throughput
    acked_adds: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    acked_appends: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    finals: list[tuple[int, int, float, float, dict[str, Any]]] = field(default_factory=list)
    keys: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: Counter[str] = field(default_factory=Counter)


def load(paths: list[tuple[int, Path]]) -> Histories:
    """Read every (host, history file) pair into one set of histories."""
    invokes: dict[tuple[int, int], dict[str, Any]] = {}
    returns: dict[tuple[int, int], dict[str, Any]] = {}
    h = Histories()
    for host, path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line torn by SIGKILL
                if r["e"] == "i":
                    invokes[(r["c"], r["n"])] = r
                elif r["e"] == "r":
                    returns[(r["c"], r["n"])] = r
                elif r["e"] == "f":
                    h.finals.append((host, r["s"], r["t0"] / 1e9, r["t1"] / 1e9, r["dump"]))
                elif r["e"] == "ev":
                    h.events[r["name"]] += 1
    for key, inv in invokes.items():
        _add(h, inv, returns.get(key))
    _add_final_reads(h)
    h.kv.sort(key=lambda o: o.call)
    return h


def _add(h: Histories, inv: dict[str, Any], ret: dict[str, Any] | None) -> None:
    status = ret["st"] if ret is not None else "unknown"
    h.counts["attempted"] += 1
    h.counts[{"ok": "ok", "fail": "failed"}.get(status, "indeterminate")] += 1
    if status == "fail":
        return
    inp = tuple(inv["in"])
    kind, key = inp[0], inp[1]
    h.keys[inv["s"]].add(key)
    call = inv["t"] / 1e9
    known = status == "ok"
    ret_time = ret["t"] / 1e9 if known and ret is not None else math.inf
    out = ret["out"] if known and ret is not None else UNKNOWN
    if known:
        h.ok_returns.append(ret_time)
    client = inv["c"]
    if kind in ("add", "read"):
        if kind == "read":
            if ret is None or not known:
                return
            members = frozenset(ret["out"])
            h.sets[key].append(Operation(client, ("read",), call, members, ret_time))
        else:
            h.sets[key].append(Operation(client, ("add", inp[2]), call, out, ret_time))
            if known:
                h.acked_adds[key].add(inp[2])
        return
    if kind == "get" and not known:
        return
    if kind == "append" and known:
        h.acked_appends[key].add(inp[2])
    h.kv.append(Operation(client, inp, call, out, ret_time))


def _add_final_reads(h: Histories) -> None:
    for n, (_, shard, t0, t1, dump) in enumerate(h.finals):
        client = FINAL_CLIENTS + n
        for key in sorted(h.keys[shard]):
            if key in h.sets:
                h.sets[key].append(
                    Operation(client, ("read",), t0, frozenset(dump.get(key, [])), t1)
                )
            else:
                h.kv.append(Operation(client, ("get", key), t0, dump.get(key), t1))


@dataclass
class Verdicts:
    linearizable: str
    explanation: str
    keys: int
    unknown_keys: int
    seconds: float
    durability: list[str]
    acked_writes_lost: int
    applied_twice: int
    final_reads: int

    @property
    def violations(self) -> int:
        return int(self.linearizable == Verdict.ILLEGAL.value) + len(self.durability)


def judge(h: Histories, timeout: float, out_dir: Path | None = None) -> Verdicts:
    result = check_operations(kv_model(), h.kv, timeout=timeout)
    durability = []
    for key, ops in sorted(h.sets.items()):
        verdict = check_durability(ops)
        if verdict.verdict is not Verdict.OK:
            durability.append(f"set {key}: {verdict.explanation}")
    lost, twice = _lost(h)
    if out_dir is not None:
        dump_history(h.kv, out_dir / "kv-history.json")
        sets_dir = out_dir / "set-histories"
        sets_dir.mkdir(exist_ok=True)
        for key, ops in sorted(h.sets.items()):
            dump_history(ops, sets_dir / (key.replace("/", "_") + ".json"))
    return Verdicts(
        linearizable=result.verdict.value,
        explanation=result.explanation,
        keys=len(result.partitions),
        unknown_keys=sum(p.verdict is Verdict.UNKNOWN for p in result.partitions),
        seconds=round(result.seconds, 3),
        durability=durability,
        acked_writes_lost=lost,
        applied_twice=twice,
        final_reads=len(h.finals),
    )


def _lost(h: Histories) -> tuple[int, int]:
    """Acknowledged set members and appended tokens missing from a final read; members
    and tokens found more than once (a write applied twice)."""
    finals: dict[str, list[Any]] = defaultdict(list)
    for _, shard, _, _, dump in h.finals:
        for key in h.keys[shard]:
            finals[key].append(dump.get(key))
    lost: set[tuple[str, str]] = set()
    twice: set[tuple[str, str]] = set()
    for key, acked in h.acked_adds.items():
        for seen in finals.get(key, []):
            lost.update((key, x) for x in acked - set(seen or []))
            # Clients never retry an add, and the network never duplicates a proposal.
            counts = Counter(seen or [])
            twice.update((key, x) for x, n in counts.items() if n > 1)
    for key, acked in h.acked_appends.items():
        for seen in finals.get(key, []):
            tokens = Counter(t + ";" for t in (seen or "").split(";") if t)
            lost.update((key, x) for x in acked if x not in tokens)
            twice.update((key, x) for x, n in tokens.items() if n > 1)
    return len(lost), len(twice)


def throughput(returns: list[float], windows: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Completed operations per second in each named [start, end) window."""
    rates = {}
    for name, (start, end) in windows.items():
        n = sum(1 for t in returns if start <= t < end)
        rates[name] = round(n / (end - start), 1) if end > start else 0.0
    return rates
