"""After a run: merge the workers' history files, judge them, name what broke.

Rules:
- An invoke with no outcome line (its process was killed) is an operation of unknown
  outcome; so is one recorded "unknown". A write may then take effect at any later
  time or never; a read is dropped (it showed nothing).
- Final reads (one dump per host and shard, after every client stopped) join the
  histories as reads of every key the clients touched, at the dump's interval.
- Every check decides or the run fails: registers (put, cas, delete) by the search
  within the run's budget (UNKNOWN fails the run), appended strings by the exact
  list-append check (tokens are unique), sets by the durability check.
- The anomalies (anomalies.py) name the damage: lost acknowledged writes, stale reads,
  writes applied twice, values never written, two leaders in one term.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodehost.testing import (
    UNKNOWN,
    Operation,
    Verdict,
    check_durability,
    check_list_append,
    check_operations,
    dump_history,
    kv_model,
)
from tests.chaos import anomalies
from tests.chaos.anomalies import Finding, Kind

FINAL_CLIENTS = 9 * 10**8  # client ids of final reads start here
SEPARATOR = ";"  # ends every appended token


@dataclass
class Histories:
    kv: list[Operation] = field(default_factory=list)
    sets: dict[str, list[Operation]] = field(default_factory=lambda: defaultdict(list))
    set_reads: dict[str, list[tuple[Operation, list[Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )  # every answered read of a set with the members as shown (duplicates kept)
    counts: Counter[str] = field(default_factory=Counter)
    ok_returns: list[float] = field(default_factory=list)  # seconds, for throughput
    finals: list[tuple[int, int, float, float, dict[str, Any]]] = field(default_factory=list)
    keys: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    events: Counter[str] = field(default_factory=Counter)
    leaders: list[tuple[int, int, int, int]] = field(default_factory=list)
    origin: float = math.inf  # the first call (explanations count time from it)


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
                    _event(h, r)
    for key, inv in invokes.items():
        _add(h, inv, returns.get(key))
    _add_final_reads(h)
    h.kv.sort(key=lambda o: o.call)
    return h


def _event(h: Histories, r: dict[str, Any]) -> None:
    name = r["name"]
    if name == "leader":
        h.leaders.append((r["s"], r["term"], r["leader"], r["rid"]))
        if r["leader"] == r["rid"]:
            h.events["became_leader"] += 1
    else:
        h.events[name] += 1


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
    h.origin = min(h.origin, call)
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
            shown = list(ret["out"] or [])
            op = Operation(client, ("read",), call, frozenset(shown), ret_time)
            h.sets[key].append(op)
            h.set_reads[key].append((op, shown))
        else:
            h.sets[key].append(Operation(client, ("add", inp[2]), call, out, ret_time))
        return
    if kind == "get" and not known:
        return
    h.kv.append(Operation(client, inp, call, out, ret_time))


def _add_final_reads(h: Histories) -> None:
    for n, (_, shard, t0, t1, dump) in enumerate(h.finals):
        client = FINAL_CLIENTS + n
        for key in sorted(h.keys[shard]):
            if key in h.sets:
                shown = list(dump.get(key) or [])
                op = Operation(client, ("read",), t0, frozenset(shown), t1)
                h.sets[key].append(op)
                h.set_reads[key].append((op, shown))
            else:
                h.kv.append(Operation(client, ("get", key), t0, dump.get(key), t1))


@dataclass
class Verdicts:
    linearizable: str  # registers and lists together: ok, illegal or unknown
    explanation: str
    keys: int
    unknown_keys: int
    list_keys: int
    seconds: float
    illegal: list[str]  # one explanation per key that failed a check
    findings: list[Finding]
    final_reads: int
    missing_final_reads: list[int]  # shards no host answered a final read of


def judge(h: Histories, timeout: float, out_dir: Path | None = None) -> Verdicts:
    started = time.monotonic()
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in h.kv:
        by_key[op.input[1]].append(op)
    lists = {k for k, ops in by_key.items() if any(o.input[0] == "append" for o in ops)}
    registers = [op for op in h.kv if op.input[1] not in lists]
    result = check_operations(kv_model(), registers, timeout=timeout)
    illegal: list[str] = []
    if result.verdict is Verdict.ILLEGAL:
        illegal.append(result.explanation)
    for key in sorted(lists):
        verdict = check_list_append(_as_list_history(by_key[key]))
        if verdict.verdict is not Verdict.OK:
            illegal.append(f"key {key!r}: {verdict.explanation}")
    for key, ops in sorted(h.sets.items()):
        durable = check_durability(ops)
        if durable.verdict is not Verdict.OK:
            illegal.append(f"set {key!r}: {durable.explanation}")
    if illegal:
        linearizable = Verdict.ILLEGAL.value
    else:
        linearizable = result.verdict.value
    findings = _findings(h, by_key, lists)
    if out_dir is not None:
        dump_history(h.kv, out_dir / "kv-history.json")
        sets_dir = out_dir / "set-histories"
        sets_dir.mkdir(exist_ok=True)
        for key, ops in sorted(h.sets.items()):
            dump_history(ops, sets_dir / (key.replace("/", "_") + ".json"))
    answered = {shard for _, shard, _, _, _ in h.finals}
    return Verdicts(
        linearizable=linearizable,
        explanation=illegal[0] if illegal else result.explanation,
        keys=len(result.partitions) + len(lists),
        # After an illegal key the search stops: the keys left are unchecked, not undecided.
        unknown_keys=sum(p.verdict is Verdict.UNKNOWN for p in result.partitions)
        if result.verdict is Verdict.UNKNOWN
        else 0,
        list_keys=len(lists),
        seconds=round(time.monotonic() - started, 3),
        illegal=illegal,
        findings=findings,
        final_reads=len(h.finals),
        missing_final_reads=sorted(set(h.keys) - answered),
    )


def _tokens(value: Any) -> list[str]:
    return [t for t in value.split(SEPARATOR) if t] if isinstance(value, str) else []


def _as_list_history(ops: list[Operation]) -> list[Operation]:
    """An appended string's history as the list model's: ("append", token) and whole
    reads answering the tokens in order."""
    out = []
    for o in ops:
        if o.input[0] == "append":
            token = o.input[2].removesuffix(SEPARATOR)
            out.append(Operation(o.client_id, ("append", token), o.call, o.output, o.return_time))
        else:
            shown = UNKNOWN if o.output is UNKNOWN else tuple(_tokens(o.output))
            out.append(Operation(o.client_id, ("read",), o.call, shown, o.return_time))
    return out


def _findings(h: Histories, by_key: dict[str, list[Operation]], lists: set[str]) -> list[Finding]:
    origin = h.origin if not math.isinf(h.origin) else 0.0
    found: list[Finding] = []
    for key, ops in sorted(by_key.items()):
        client_ops = [o for o in ops if o.client_id < FINAL_CLIENTS]
        finals = [o for o in ops if o.client_id >= FINAL_CLIENTS]
        if key in lists:
            writes = [
                Operation(
                    o.client_id,
                    ("append", key, o.input[2].removesuffix(SEPARATOR)),
                    o.call,
                    o.output,
                    o.return_time,
                )
                for o in client_ops
                if o.input[0] == "append"
            ]
            reads = [(o, _tokens(o.output)) for o in client_ops if o.input[0] == "get"]
            shown = [(o, _tokens(o.output)) for o in finals]
            found += anomalies.grow_only(key, writes, reads, shown, origin)
        else:
            found += anomalies.registers(key, client_ops, finals, origin)
    for key, ops in sorted(h.sets.items()):
        adds = [
            Operation(o.client_id, ("add", key, o.input[1]), o.call, o.output, o.return_time)
            for o in ops
            if o.input[0] == "add"
        ]
        pairs = h.set_reads[key]
        seen = [(o, shown) for o, shown in pairs if o.client_id < FINAL_CLIENTS]
        last = [(o, shown) for o, shown in pairs if o.client_id >= FINAL_CLIENTS]
        found += anomalies.grow_only(key, adds, seen, last, origin)
    found += anomalies.leaders(h.leaders)
    return found


def throughput(returns: list[float], windows: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Completed operations per second in each named [start, end) window."""
    rates = {}
    for name, (start, end) in windows.items():
        n = sum(1 for t in returns if start <= t < end)
        rates[name] = round(n / (end - start), 1) if end > start else 0.0
    return rates


def counts(findings: list[Finding]) -> Counter[Kind]:
    return Counter(f.kind for f in findings)
