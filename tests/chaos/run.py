"""One chaos run: 3 NodeHost processes, clients on every shard, a seeded nemesis, then
heal, recovery, final reads, replica comparison and the checks. One JSON summary.

    uv run python -m tests.chaos.run --seed 7 --fault-seconds 40

The same command replays a run: the seed fixes the fault schedule and every client's
choices (timing, and so the exact interleaving, is the machine's). A failing run's
summary names that command in `replay`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.cluster import Cluster
from tests.chaos.nemesis import KINDS, Nemesis, schedule
from tests.chaos.verify import judge, load, throughput
from tests.host.cluster import free_ports

MAX_FAULT_SECONDS = 120.0  # a fault still running this long after the period is cut short
SHOWN = 1500  # characters of one violation in the summary's list (all in "checker")


@dataclass
class RunOptions:
    seed: int
    fault_seconds: float = 40.0
    warmup_seconds: float = 5.0
    after_seconds: float = 5.0
    shards: int = 4
    workloads: list[str] = field(default_factory=lambda: ["register", "kv", "set", "kv"])
    sync_clients: int = 1  # per host and shard
    async_clients: int = 1
    faults: list[str] = field(default_factory=lambda: sorted(KINDS))
    mutations: list[str] = field(default_factory=list)
    gen_seconds: float = 10.0
    rtt_ms: int = 20
    election_rtt: int = 25
    heartbeat_rtt: int = 2
    snapshot_entries: int = 200
    compaction_overhead: int = 50
    op_timeout: float = 2.0
    session_attempt: float = 0.5
    session_deadline: float = 4.0
    think_ms: tuple[float, float] = (5.0, 20.0)
    check_seconds: float = 60.0
    recovery_timeout: float = 30.0
    converge_timeout: float = 15.0

    def replay(self) -> str:
        """The command that reruns this run (options left at their default omitted)."""
        defaults = RunOptions(seed=0)
        args = [f"--seed {self.seed}"]
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "seed" or value == getattr(defaults, f.name):
                continue
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, list | tuple):
                args.append(f"{flag} {','.join(str(v) for v in value)}")
            else:
                args.append(f"{flag} {value}")
        return "uv run python -m tests.chaos.run " + " ".join(args)


class Log:
    def __init__(self, path: Path, echo: bool) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._echo = echo
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, text: str) -> None:
        line = f"[{time.monotonic() - self._t0:8.2f}] {text}"
        with self._lock:
            self._file.write(line + "\n")
            if self._echo:
                print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        self._file.close()


def run(options: RunOptions, out_dir: Path, echo: bool = False) -> dict[str, Any]:
    """Run once; write `out_dir`/summary.json and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Log(out_dir / "run.log", echo)
    log(f"seed {options.seed}: {options.replay()}")
    shards = list(range(1, options.shards + 1))
    cluster = Cluster(out_dir, _worker_config(options, shards))
    nemesis = Nemesis(cluster, shards, log)
    summary: dict[str, Any] = {"seed": options.seed, "replay": options.replay()}
    marks: dict[str, float] = {}
    try:
        _drive(options, cluster, nemesis, shards, log, summary, marks)
    finally:
        cluster.close()
    log("processes stopped")
    histories = load([(h.index, p) for h in cluster.hosts for p in h.histories()])
    log(f"histories loaded: {len(histories.kv)} register/kv operations")
    verdicts = judge(histories, options.check_seconds, out_dir)
    log(f"checked in {verdicts.seconds}s")
    ops = histories.counts
    summary["ops"] = {
        "attempted": ops["attempted"],
        "ok": ops["ok"],
        "failed": ops["failed"],
        "indeterminate": ops["indeterminate"],
    }
    summary["ops_per_second"] = throughput(
        histories.ok_returns,
        {
            "before": (marks["load"], marks["faults"]),
            "during": (marks["faults"], marks["heal"]),
            "after": (marks["heal"], marks["stop"]),
        },
    )
    summary["checker"] = {
        "linearizable": verdicts.linearizable,
        "explanation": verdicts.explanation,
        "keys": verdicts.keys,
        "unknown_keys": verdicts.unknown_keys,
        "seconds": verdicts.seconds,
        "durability_violations": verdicts.durability,
        "final_reads": verdicts.final_reads,
    }
    summary["raft_events"] = dict(sorted(histories.events.items()))
    summary["acked_writes_lost"] = verdicts.acked_writes_lost
    summary["applied_twice"] = verdicts.applied_twice
    summary["violations"] = _violations(summary)
    summary["ok"] = not summary["violations"]
    summary["options"] = dataclasses.asdict(options)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(f"summary: ok={summary['ok']} violations={summary['violations']}")
    log.close()
    return summary


def _worker_config(options: RunOptions, shards: list[int]) -> dict[str, Any]:
    """What every worker process is started with (cluster.py adds per-host fields)."""
    return {
        "addresses": [f"127.0.0.1:{p}" for p in free_ports(3)],
        "seed": options.seed,
        "epoch_ns": time.monotonic_ns(),
        "shards": [
            {"id": s, "kind": options.workloads[(s - 1) % len(options.workloads)]} for s in shards
        ],
        "sync_clients": options.sync_clients,
        "async_clients": options.async_clients,
        "mutations": options.mutations,
        "gen_seconds": options.gen_seconds,
        "rtt_ms": options.rtt_ms,
        "election_rtt": options.election_rtt,
        "heartbeat_rtt": options.heartbeat_rtt,
        "snapshot_entries": options.snapshot_entries,
        "compaction_overhead": options.compaction_overhead,
        "op_timeout": options.op_timeout,
        "session_attempt": options.session_attempt,
        "session_deadline": options.session_deadline,
        "think": [t / 1000 for t in options.think_ms],
        "kv_keys": 3,
        "append_keys": 2,
    }


def _drive(
    options: RunOptions,
    cluster: Cluster,
    nemesis: Nemesis,
    shards: list[int],
    log: Log,
    summary: dict[str, Any],
    marks: dict[str, float],
) -> None:
    """The live part: load, faults, heal, recovery, final reads, replica comparison."""
    cluster.start()
    log("hosts started")
    marks["load"] = time.monotonic()
    first_leaders = _wait_all_leaders(cluster, shards, 60.0)
    log(f"leaders after {first_leaders:.2f}s; warm-up {options.warmup_seconds}s")
    time.sleep(options.warmup_seconds)

    kinds = {k: KINDS.get(k, 1.0) for k in options.faults}
    faults = schedule(options.seed, options.fault_seconds, kinds, len(cluster.hosts))
    marks["faults"] = start = time.monotonic()
    until = start + options.fault_seconds
    thread = threading.Thread(target=nemesis.run, args=(faults, start, until), daemon=True)
    thread.start()
    thread.join(options.fault_seconds + MAX_FAULT_SECONDS)
    nemesis.stop.set()  # only if a fault overran its bound: cut it short
    thread.join(120)
    nemesis.stop.clear()
    log("fault period over")
    nemesis.heal()
    marks["heal"] = time.monotonic()
    log("healed")
    if nemesis.membership_changed:
        nemesis.reconcile()
    recovery = _recover(cluster, shards, options.recovery_timeout)
    log(f"recovery {recovery}s; after-load {options.after_seconds}s")
    summary["recovery_seconds"] = recovery

    time.sleep(options.after_seconds)
    cluster.broadcast("clients", timeout=20.0, on=False)
    marks["stop"] = time.monotonic()
    log("clients stopped")
    finals = cluster.broadcast("final", timeout=5.0)
    log(f"final reads: {finals}")
    summary.update(_compare_replicas(cluster, shards, options.converge_timeout))
    log("replicas compared")
    summary["faults_injected"] = dict(sorted(nemesis.injected.items()))
    summary["fault_timeline"] = nemesis.timeline
    summary["nemesis_problems"] = nemesis.problems


def _violations(summary: dict[str, Any]) -> list[str]:
    found = []
    checker = summary["checker"]
    if checker["linearizable"] == "illegal":
        found.append(_short(f"not linearizable: {checker['explanation']}", SHOWN))
    found.extend(_short(v, SHOWN) for v in checker["durability_violations"])
    if summary["acked_writes_lost"]:
        found.append(f"{summary['acked_writes_lost']} acknowledged writes lost")
    if summary["applied_twice"]:
        found.append(f"{summary['applied_twice']} writes applied twice")
    if summary.get("replica_hash_mismatch"):
        found.append(f"replica hashes differ: {summary['hash_details']}")
    if summary.get("replica_failures"):
        found.append(f"replicas failed: {summary['replica_failures']}")
    if summary.get("recovery_seconds") is None:
        found.append("no recovery: some shard never accepted writes after the heal")
    if summary.get("replicas_not_converged"):
        found.append(f"replicas never reached one applied index: {summary['hash_details']}")
    found.extend(p for p in summary.get("nemesis_problems", []) if "did not restart" in p)
    return found


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more)"


def _wait_all_leaders(cluster: Cluster, shards: list[int], timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if set(cluster.leaders()) >= set(shards):
            return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"not every shard elected a leader in {timeout}s")


def _recover(cluster: Cluster, shards: list[int], timeout: float) -> float | None:
    """Seconds until every shard accepted a write through every host; None if never."""
    start = time.monotonic()
    pending = {(h.index, s) for h in cluster.hosts for s in shards}
    while pending and time.monotonic() - start < timeout:
        if any(state.get("fatal") for state in cluster.states().values()):
            return None  # a NodeHost stopped for good: waiting cannot help
        for host, shard in sorted(pending):
            reply = cluster.hosts[host].request("probe", 2.0, shard=shard)
            if reply is not None and "ok" in reply:
                pending.discard((host, shard))
        if pending:
            time.sleep(0.1)
    return None if pending else round(time.monotonic() - start, 3)


def _compare_replicas(cluster: Cluster, shards: list[int], timeout: float) -> dict[str, Any]:
    """Wait until the replicas of each shard applied the same index, then compare
    their state hashes (sessions, membership and the user state)."""
    deadline = time.monotonic() + timeout
    while True:
        states = cluster.states()
        details: dict[str, Any] = {}
        mismatch = unconverged = 0
        failures = []
        for host, state in states.items():
            if state.get("fatal"):
                failures.append(f"host {host}: {state['fatal']}")
        for shard in shards:
            views = {
                host: s["shards"][str(shard)]
                for host, s in states.items()
                if str(shard) in s["shards"]
            }
            for host, v in views.items():
                if v["failed"]:
                    failures.append(f"host {host} shard {shard}: {v['failed']}")
            applied = {v["applied"] for v in views.values()}
            hashes = {v["hash"] for v in views.values()}
            if len(applied) > 1:
                unconverged += 1
                details[str(shard)] = {h: v["applied"] for h, v in views.items()}
            elif len(hashes) > 1:
                mismatch += 1
                details[str(shard)] = {h: v["hash"] for h, v in views.items()}
        if (not unconverged and len(states) == len(cluster.hosts)) or (time.monotonic() > deadline):
            return {
                "replica_hash_mismatch": mismatch,
                "replicas_not_converged": unconverged,
                "replicas_compared": sum(len(s["shards"]) for s in states.values()),
                "hash_details": details,
                "replica_failures": failures,
            }
        time.sleep(0.3)


def parse_args(argv: list[str] | None) -> tuple[RunOptions, str]:
    """RunOptions from command-line flags (the ones `RunOptions.replay` writes)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    defaults = RunOptions(seed=0)
    for f in dataclasses.fields(RunOptions):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if f.name == "seed":
            parser.add_argument(flag, type=int, required=True)
        elif isinstance(default, list | tuple):
            parser.add_argument(flag, default=",".join(map(str, default)))
        else:
            parser.add_argument(flag, type=type(default), default=default)
    parser.add_argument("--out", default="", help="run directory (default: a temp dir)")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(RunOptions):
        value = getattr(args, f.name)
        default = getattr(defaults, f.name)
        if isinstance(default, list):
            value = [v for v in value.split(",") if v]
        elif isinstance(default, tuple):
            value = tuple(float(v) for v in value.split(","))
        values[f.name] = value
    return RunOptions(**values), args.out


def main(argv: list[str] | None = None) -> int:
    options, out_arg = parse_args(argv)
    out = Path(out_arg) if out_arg else Path(tempfile.mkdtemp(prefix=f"chaos-{options.seed}-"))
    summary = run(options, out, echo=True)
    print(json.dumps({k: summary[k] for k in ("ok", "violations", "ops", "checker")}, indent=2))
    print(f"summary: {out / 'summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
