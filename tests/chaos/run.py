"""One chaos run: 3 NodeHost processes, clients on every shard, a seeded nemesis, then
heal, recovery, final reads, replica comparison and the checks. One JSON summary.

    uv run python -m tests.chaos.run --seed 7 --fault-seconds 40
    uv run python -m tests.chaos.run --seed 7 --profile defaults

The same command replays a run: the seed fixes the fault schedule and every client's
choices (timing, and so the exact interleaving, is the machine's). A failing run's
summary names that command in `replay`.

Rules:
- A run passes only when nothing is in `violations`: every check decided (an
  undecided one is a violation), nothing was found, the cluster recovered and its
  replicas agree. Each violation is named by its kind (anomalies.Kind).
- The summary counts faults as the nemesis saw them: attempted, injected, and the
  ones that did not happen with their reasons; only injected ones prove anything.
- Options are a profile (PROFILES) plus deviations; the replay command names the
  profile and only the deviations.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.anomalies import Kind, summarize
from tests.chaos.cluster import Cluster
from tests.chaos.nemesis import KINDS, Nemesis, schedule
from tests.chaos.verify import Verdicts, counts, judge, load, throughput
from tests.host.cluster import free_ports

MAX_FAULT_SECONDS = 120.0  # a fault still running this long after the period is cut short
MAX_EXTRA_SECONDS = 60.0  # faults start this long past the period at most, for min_faults
SHOWN = 1500  # characters of one violation in the summary's list (all in "checker")


@dataclass
class RunOptions:
    """Everything a run depends on besides the machine. Replica settings left at None
    are `nodehost.Config`'s defaults; `profile` names the base the others deviate from
    (PROFILES), which is what `replay` and the command line start from."""

    seed: int
    profile: str = "tuned"
    fault_seconds: float = 40.0
    min_faults: int = 0  # faults go on past fault_seconds until this many were injected
    warmup_seconds: float = 5.0
    after_seconds: float = 5.0
    shards: int = 4
    workloads: list[str] = field(default_factory=lambda: ["register", "kv", "set", "kv"])
    machines: list[str] = field(default_factory=lambda: ["regular"])  # cycled over shards
    sync_clients: int = 1  # per host and shard
    async_clients: int = 1
    faults: list[str] = field(default_factory=lambda: sorted(KINDS))
    mutations: list[str] = field(default_factory=list)
    gen_seconds: float = 10.0
    bursts: tuple[float, float] = (0.0, 0.0)  # clients' (busy, idle) seconds; idle 0: always
    rtt_ms: int = 20
    election_rtt: int | None = 25
    heartbeat_rtt: int | None = 2
    check_quorum: bool | None = True
    pre_vote: bool | None = True
    quiesce: bool | None = None
    snapshot_entries: int | None = 200
    compaction_overhead: int | None = 50
    op_timeout: float = 2.0
    session_attempt: float = 0.5
    session_deadline: float = 4.0
    think_ms: tuple[float, float] = (5.0, 20.0)
    check_seconds: float = 60.0
    recovery_timeout: float = 30.0
    converge_timeout: float = 15.0

    @classmethod
    def of(cls, profile: str, seed: int, **overrides: Any) -> RunOptions:
        """The options of a profile, with some changed."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        return cls(seed=seed, profile=profile, **{**PROFILES[profile], **overrides})

    def replay(self) -> str:
        """The command that reruns this run (options left at their profile's omitted)."""
        base = RunOptions.of(self.profile, seed=self.seed)
        args = [f"--seed {self.seed}"]
        if self.profile != "tuned":
            args.append(f"--profile {self.profile}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("seed", "profile") or value == getattr(base, f.name):
                continue
            args.append(f"--{f.name.replace('_', '-')} {_show(value)}")
        return "uv run python -m tests.chaos.run " + " ".join(args)

    def replica_settings(self) -> dict[str, Any]:
        """The `nodehost.Config` fields the run sets (None: the library's default)."""
        return {name: getattr(self, name) for name in REPLICA_SETTINGS}


# The replica settings a run may set; the rest are always the library's defaults.
REPLICA_SETTINGS = (
    "election_rtt",
    "heartbeat_rtt",
    "check_quorum",
    "pre_vote",
    "quiesce",
    "snapshot_entries",
    "compaction_overhead",
)

# The bases runs start from: deviations from RunOptions' defaults.
PROFILES: dict[str, dict[str, Any]] = {
    # Settings chosen for a fast, busy test: quick elections with check-quorum and
    # pre-vote, frequent snapshots, the regular state machine, clients always busy.
    "tuned": {},
    # What a user who sets nothing gets: every replica setting is nodehost.Config's
    # default (pre-vote and check-quorum as shipped), quiesce on, the concurrent and
    # on-disk state machines, and clients that pause long enough for idle shards to
    # quiesce. Only the host's time unit, rtt_millisecond, is set (the library's
    # 200 ms would make each election take seconds).
    "defaults": {
        "rtt_ms": 25,
        "election_rtt": None,
        "heartbeat_rtt": None,
        "check_quorum": None,
        "pre_vote": None,
        "quiesce": True,
        "snapshot_entries": None,
        "compaction_overhead": None,
        "machines": ["concurrent", "on-disk"],
        "bursts": (3.0, 5.0),
    },
}


def _show(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _parse(text: str, hint: Any, name: str) -> Any:
    """A command-line value of one RunOptions field (the inverse of `_show`)."""
    choices = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = type(None) in typing.get_args(hint)
    base = choices[0] if optional else hint
    if optional and text == "default":
        return None
    origin = typing.get_origin(base)
    if origin is list:
        return [v for v in text.split(",") if v]
    if origin is tuple:
        return tuple(float(v) for v in text.split(","))
    if base is bool:
        if text.lower() not in ("true", "false"):
            raise argparse.ArgumentTypeError(f"--{name}: true or false, not {text!r}")
        return text.lower() == "true"
    return base(text)


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
    summary: dict[str, Any] = {
        "seed": options.seed,
        "profile": options.profile,
        "replay": options.replay(),
    }
    marks: dict[str, float] = {}
    try:
        _drive(options, cluster, nemesis, shards, log, summary, marks)
    finally:
        cluster.close()
    log("processes stopped")
    histories = load([(h.index, p) for h in cluster.hosts for p in h.histories()])
    log(f"histories loaded: {len(histories.kv)} register/kv operations")
    verdicts = judge(histories, options.check_seconds, out_dir)
    log(f"checked in {verdicts.seconds}s: {verdicts.linearizable}")
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
        "list_keys": verdicts.list_keys,
        "unknown_keys": verdicts.unknown_keys,
        "seconds": verdicts.seconds,
        "budget_seconds": options.check_seconds,
        "illegal": verdicts.illegal,
        "final_reads": verdicts.final_reads,
        "missing_final_reads": verdicts.missing_final_reads,
    }
    summary["raft_events"] = dict(sorted(histories.events.items()))
    found = counts(verdicts.findings)
    summary["anomalies"] = {kind.value: n for kind, n in sorted(found.items())}
    summary["acked_writes_lost"] = found[Kind.LOST_WRITE]
    summary["applied_twice"] = found[Kind.APPLIED_TWICE]
    summary["violations"] = _violations(summary, verdicts)
    summary["violation_kinds"] = sorted({v["kind"] for v in summary["violations"]})
    summary["ok"] = not summary["violations"]
    summary["options"] = dataclasses.asdict(options)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    log(f"summary: ok={summary['ok']} violations={summary['violation_kinds']}")
    log.close()
    return summary


def _worker_config(options: RunOptions, shards: list[int]) -> dict[str, Any]:
    """What every worker process is started with (cluster.py adds per-host fields)."""
    return {
        "addresses": [f"127.0.0.1:{p}" for p in free_ports(3)],
        "seed": options.seed,
        "epoch_ns": time.monotonic_ns(),
        "shards": [
            {
                "id": s,
                "kind": options.workloads[(s - 1) % len(options.workloads)],
                "machine": options.machines[(s - 1) % len(options.machines)],
            }
            for s in shards
        ],
        "sync_clients": options.sync_clients,
        "async_clients": options.async_clients,
        "mutations": options.mutations,
        "gen_seconds": options.gen_seconds,
        "rtt_ms": options.rtt_ms,
        "replica": options.replica_settings(),
        "bursts": list(options.bursts),
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
    summary["replica_config"] = cluster.hosts[0].replica_config
    log(f"hosts started; replica settings {summary['replica_config']}")
    marks["load"] = time.monotonic()
    first_leaders = _wait_all_leaders(cluster, shards, 60.0)
    log(f"leaders after {first_leaders:.2f}s; warm-up {options.warmup_seconds}s")
    time.sleep(options.warmup_seconds)

    kinds = {k: KINDS.get(k, 1.0) for k in options.faults}
    faults = schedule(options.seed, options.fault_seconds, kinds, len(cluster.hosts))
    marks["faults"] = start = time.monotonic()
    until = start + options.fault_seconds
    # Recorded before the faults: a run cut short by an exception still says what ran.
    summary["faults_attempted"] = nemesis.attempted
    summary["faults_injected"] = nemesis.injected
    summary["faults_not_injected"] = nemesis.not_injected
    latest = until + MAX_EXTRA_SECONDS
    thread = threading.Thread(
        target=nemesis.run, args=(faults, start, until, options.min_faults, latest), daemon=True
    )
    thread.start()
    thread.join(options.fault_seconds + MAX_EXTRA_SECONDS + MAX_FAULT_SECONDS)
    nemesis.stop.set()  # only if a fault overran its bound: cut it short
    thread.join(120)
    nemesis.stop.clear()
    log("fault period over")
    nemesis.heal()
    marks["heal"] = time.monotonic()
    summary["fault_minutes"] = round((marks["heal"] - marks["faults"]) / 60, 3)
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
    summary["faults_attempted"] = dict(sorted(nemesis.attempted.items()))
    summary["faults_injected"] = dict(sorted(nemesis.injected.items()))
    summary["fault_timeline"] = nemesis.timeline
    summary["nemesis_problems"] = nemesis.problems


def _violations(summary: dict[str, Any], verdicts: Verdicts) -> list[dict[str, str]]:
    """Everything that fails the run, each named by its Kind."""
    found: list[tuple[Kind, str]] = []
    checker = summary["checker"]
    if verdicts.illegal:
        more = f" ({len(verdicts.illegal)} keys in all)" if len(verdicts.illegal) > 1 else ""
        found.append((Kind.NOT_LINEARIZABLE, verdicts.illegal[0] + more))
    if checker["linearizable"] == "unknown":
        found.append(
            (
                Kind.UNDECIDED,
                f"{checker['explanation']} (a check that ran out of budget proves nothing: "
                "raise --check-seconds or shorten the keys' lives with --gen-seconds)",
            )
        )
    found.extend(summarize(verdicts.findings).items())
    if verdicts.missing_final_reads:
        found.append(
            (
                Kind.NO_FINAL_READ,
                f"shards {verdicts.missing_final_reads}: no host answered a final read, so "
                "lost writes cannot be counted",
            )
        )
    if summary.get("replica_hash_mismatch"):
        found.append((Kind.STATE_HASHES_DIFFER, f"{summary['hash_details']}"))
    if summary.get("replica_failures"):
        found.append((Kind.REPLICA_FAILED, f"{summary['replica_failures']}"))
    if summary.get("recovery_seconds") is None:
        found.append((Kind.NO_RECOVERY, "some shard never accepted writes after the heal"))
    if summary.get("replicas_not_converged"):
        found.append((Kind.NOT_CONVERGED, f"applied indexes: {summary['hash_details']}"))
    restarts = [p for p in summary.get("nemesis_problems", []) if "did not restart" in p]
    if restarts:
        found.append((Kind.HOST_DID_NOT_RESTART, "; ".join(restarts)))
    return [{"kind": kind.value, "detail": _short(detail, SHOWN)} for kind, detail in found]


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
            # A failed replica is reported as such; its state is not comparable.
            views = {host: v for host, v in views.items() if not v["failed"]}
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
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--profile", default="tuned", choices=sorted(PROFILES))
    hints = typing.get_type_hints(RunOptions)
    names = [f.name for f in dataclasses.fields(RunOptions) if f.name not in ("seed", "profile")]
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), default=None, metavar="VALUE")
    parser.add_argument("--out", default="", help="run directory (default: a temp dir)")
    args = parser.parse_args(argv)
    overrides = {}
    for name in names:
        text = getattr(args, name)
        if text is not None:
            try:
                overrides[name] = _parse(text, hints[name], name)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"--{name.replace('_', '-')}: {exc}")
    return RunOptions.of(args.profile, args.seed, **overrides), args.out


def main(argv: list[str] | None = None) -> int:
    options, out_arg = parse_args(argv)
    out = Path(out_arg) if out_arg else Path(tempfile.mkdtemp(prefix=f"chaos-{options.seed}-"))
    summary = run(options, out, echo=True)
    shown = ("ok", "violations", "ops", "faults_attempted", "faults_injected", "checker")
    print(json.dumps({k: summary.get(k) for k in shown}, indent=2, default=str))
    print(f"summary: {out / 'summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
