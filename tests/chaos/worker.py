"""One NodeHost of a chaos run, in its own process: replicas, clients, and a command line.

    python -m tests.chaos.worker CONFIG_JSON_PATH

The controller (cluster.py) writes the config, reads one {"ready": ...} line, then sends
JSON commands on stdin; each gets one reply line {"id": n, "ok": ...} or
{"id": n, "error": "..."}. Commands never block for longer than their own timeout, so
a reply always comes unless the process is paused or killed.

Rules:
- Which replica this host runs for each shard is kept in `replicas.json` in the
  NodeHost directory, written before the change it records, so a restart after a
  SIGKILL starts exactly the replicas the host had (a replica added later joins).
- Network faults are set on the transport's FaultHook before any replica starts: a
  restarted host must not talk to the hosts it is cut from for even one message.
- Replica settings the run leaves unset (None) are `nodehost.Config`'s defaults, as a
  user who sets nothing gets them; the ready line reports the values in force.
- Each shard runs one state machine kind on every host (regular, concurrent or
  on-disk); an on-disk replica keeps its data beside the NodeHost directory, and a
  replica removed from its shard loses it with the rest of its data.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from nodehost import (
    Closed,
    Config,
    NodeHost,
    NodeHostConfig,
    NodeHostInfoOption,
    RaftError,
    ReplicaRemoved,
    SnapshotOption,
)
from tests.chaos.clients import Clients, HistoryLog, WorkloadConfig
from tests.chaos.hooks import EventLog, QuiesceWatch, SendFilter
from tests.chaos.machine import (
    ChaosConcurrentKV,
    ChaosDiskKV,
    ChaosKV,
    command,
    remove_database,
)
from transport import FaultHook


class Worker:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.host: int = config["host"]
        self.addresses: list[str] = config["addresses"]
        self.dir = Path(config["dir"])
        self.shards: dict[int, str] = {int(s["id"]): s["kind"] for s in config["shards"]}
        self.machines: dict[int, str] = {int(s["id"]): s["machine"] for s in config["shards"]}
        self.machine_root = str(self.dir.parent / "machines")
        self.replicas_path = self.dir / "replicas.json"
        self.out_lock = threading.Lock()
        self.events = EventLog()
        self.nh = NodeHost(
            NodeHostConfig(
                node_host_dir=str(self.dir),
                raft_address=self.addresses[self.host],
                rtt_millisecond=config["rtt_ms"],
                raft_event_listener=self.events,
                system_event_listener=self.events,
            )
        )
        self.hook = FaultHook(seed=config["seed"] * 7919 + self.host)
        self.nh._transport.set_fault_hook(self.hook)
        transport: Any = self.nh._transport
        self.filter = SendFilter(transport.send, config["seed"] * 7919 + self.host)
        transport.send = self.filter
        self.set_faults(config.get("faults") or {})
        self.filter.rules = list(config.get("rewrite") or [])
        self.history = HistoryLog(config["history"])
        self.events.history = self.history
        self.clients = Clients(
            self.nh,
            self.history,
            WorkloadConfig(
                epoch_ns=config["epoch_ns"],
                gen_seconds=config["gen_seconds"],
                op_timeout=config["op_timeout"],
                session_attempt=config["session_attempt"],
                session_deadline=config["session_deadline"],
                think=(config["think"][0], config["think"][1]),
                kv_keys=config["kv_keys"],
                append_keys=config["append_keys"],
                bursts=(config["bursts"][0], config["bursts"][1]),
            ),
        )
        self.client_serial = 0
        self.probe_serial = 0
        self.quiesce_watch = QuiesceWatch(self.nh, self.events)

    # ------------------------------------------------------------------ replicas

    def replica_table(self) -> dict[int, dict[str, Any]]:
        if self.replicas_path.exists():
            return {int(k): v for k, v in json.loads(self.replicas_path.read_text()).items()}
        return {s: {"rid": self.host + 1, "join": False} for s in self.shards}

    def save_table(self, table: dict[int, dict[str, Any]]) -> None:
        tmp = self.replicas_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(k): v for k, v in table.items()}))
        os.replace(tmp, self.replicas_path)

    def replica_config(self, shard: int, rid: int) -> Config:
        settings = {k: v for k, v in self.config["replica"].items() if v is not None}
        return Config(
            shard_id=shard,
            replica_id=rid,
            _mutations=frozenset(self.config["mutations"]),
            **settings,
        )

    def effective_config(self) -> dict[str, Any]:
        """The replica settings in force, defaults included (for the run's summary)."""
        c = self.replica_config(1, 1)
        names = ("election_rtt", "heartbeat_rtt", "check_quorum", "pre_vote", "quiesce")
        more = ("snapshot_entries", "compaction_overhead", "max_in_mem_log_size")
        return {name: getattr(c, name) for name in names + more}

    def start_one(self, shard: int, rid: int, members: dict[int, str], join: bool) -> None:
        config = self.replica_config(shard, rid)
        machine = self.machines[shard]
        if machine == "regular":
            self.nh.start_replica(members, join, ChaosKV, config)
        elif machine == "concurrent":
            self.nh.start_concurrent_replica(members, join, ChaosConcurrentKV, config)
        elif machine == "on-disk":
            create = ChaosDiskKV.factory(self.machine_root)
            self.nh.start_on_disk_replica(members, join, create, config)
        else:
            raise ValueError(f"unknown state machine kind {machine!r}")

    def start_replicas(self) -> dict[int, int]:
        table = self.replica_table()
        self.save_table(table)
        members = {i + 1: a for i, a in enumerate(self.addresses)}
        started: dict[int, int] = {}
        for shard, entry in sorted(table.items()):
            rid, join = entry["rid"], entry["join"]
            initial = {} if join or self.nh.has_node_info(shard, rid) else members
            try:
                self.start_one(shard, rid, initial, join)
            except ReplicaRemoved:
                continue
            started[shard] = rid
        return started

    # ------------------------------------------------------------------ clients

    def start_clients(self) -> None:
        if self.clients.running():
            return
        c = self.config
        seed, inc = c["seed"], c["incarnation"]
        clients = []
        for shard, kind in sorted(self.shards.items()):
            for i in range(c["sync_clients"] + c["async_clients"]):
                self.client_serial += 1
                client_id = (self.host + 1) * 10**8 + inc * 10**4 + self.client_serial
                rng = random.Random(f"{seed}/{self.host}/{inc}/{shard}/{i}")
                # On-disk state machines take no client sessions (see IOnDiskStateMachine).
                sessions = self.machines[shard] != "on-disk"
                clients.append((client_id, shard, kind, i >= c["sync_clients"], sessions, rng))
        self.clients.start(clients)

    # ------------------------------------------------------------------ commands

    def set_faults(self, faults: dict[str, Any]) -> None:
        self.hook.heal()
        delay = faults.get("delay", (0.0, 0.0))
        for src, dst in faults.get("cuts", []):
            self.hook.cut(src, dst)
        self.filter.duplicate = faults.get("duplicate", 0.0)
        self.hook.set_random(
            drop=faults.get("drop", 0.0),
            delay=(delay[0], delay[1]),
            delay_rate=faults.get("delay_rate", 0.0),
        )

    def handle(self, request: dict[str, Any]) -> Any:
        op = request["op"]
        nh = self.nh
        timeout = float(request.get("timeout", 5.0))
        if op == "faults":
            self.set_faults(request["faults"])
            return True
        if op == "rewrite":
            self.filter.rules = list(request["rules"])
            return True
        if op == "clients":
            if request["on"]:
                self.start_clients()
            else:
                self.clients.halt(timeout)
            return True
        if op == "state":
            return self.state()
        if op == "transfer":
            nh.request_leader_transfer(request["shard"], request["target"])
            return True
        if op == "snapshot":
            option = SnapshotOption(
                override_compaction_overhead=True, compaction_overhead=request["overhead"]
            )
            return nh.sync_request_snapshot(request["shard"], option, timeout)
        if op == "probe":
            self.probe_serial += 1
            shard = request["shard"]
            cmd = command("put", f"s{shard}/_probe", f"{self.host}.{self.probe_serial}")
            nh.sync_propose(nh.get_noop_session(shard), cmd, timeout)
            return True
        if op == "membership":
            m = nh.sync_get_shard_membership(request["shard"], timeout)
            return {"nodes": m.nodes, "removed": sorted(m.removed)}
        if op == "delete_replica":
            nh.sync_request_delete_replica(request["shard"], request["rid"], 0, timeout)
            return True
        if op == "add_replica":
            nh.sync_request_add_replica(
                request["shard"], request["rid"], request["address"], 0, timeout
            )
            return True
        if op == "drop_replica":
            return self.drop_replica(request["shard"])
        if op == "join":
            shard, rid = request["shard"], request["rid"]
            table = self.replica_table()
            table[shard] = {"rid": rid, "join": True}
            self.save_table(table)
            self.start_one(shard, rid, {}, True)
            return True
        if op == "final":
            return self.final_reads(timeout)
        raise ValueError(f"unknown command {op!r}")

    def drop_replica(self, shard: int) -> bool:
        """Stop this host's replica of `shard` and delete its data (it was removed)."""
        table = self.replica_table()
        entry = table.pop(shard, None)
        if entry is None:
            return False
        self.save_table(table)
        try:
            self.nh.stop_shard(shard)
        except RaftError:
            pass
        self.nh.remove_data(shard, entry["rid"])
        if self.machines[shard] == "on-disk":
            remove_database(self.machine_root, shard, entry["rid"])
        return True

    def state(self) -> dict[str, Any]:
        try:
            info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        except Closed as exc:  # the engine stopped for good (a broken invariant)
            return {"shards": {}, "fatal": str(exc)}
        shards: dict[str, Any] = {}
        for s in info.shard_info_list:
            entry: dict[str, Any] = {
                "rid": s.replica_id,
                "leader": s.leader_id,
                "term": s.term,
                "applied": s.applied_index,
                "failed": s.failed,
                "nodes": sorted(s.nodes),
                "quiesced": self.quiesce_watch.quiesced(s.shard_id),
                "snapshots_received": self.events.snapshots_received[s.shard_id],
            }
            try:
                entry["hash"] = self.nh.get_state_hash(s.shard_id)
            except RaftError as exc:
                entry["hash"] = None
                entry["failed"] = entry["failed"] or str(exc)
            shards[str(s.shard_id)] = entry
        return {"shards": shards, "fatal": None}

    def final_reads(self, timeout: float) -> dict[str, Any]:
        """One linearizable read of every key per shard (all shards at once), written
        to the history."""
        answered: dict[str, Any] = {}

        def read(shard: int) -> None:
            start = time.monotonic_ns()
            try:
                dump = self.nh.sync_read(shard, ("dump", f"s{shard}/"), timeout)
            except RaftError as exc:
                answered[str(shard)] = str(exc)
                return
            self.history.write(
                {"e": "f", "s": shard, "t0": start, "t1": time.monotonic_ns(), "dump": dump}
            )
            answered[str(shard)] = len(dump)

        threads = [threading.Thread(target=read, args=(s,)) for s in sorted(self.shards)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 1.0)
        return answered

    # ------------------------------------------------------------------ main loop

    def reply(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str)
        with self.out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def serve(self) -> None:
        for line in sys.stdin:
            request = json.loads(line)
            if request["op"] == "exit":
                break
            threading.Thread(target=self._serve_one, args=(request,), daemon=True).start()

    def _serve_one(self, request: dict[str, Any]) -> None:
        try:
            answer: dict[str, Any] = {"ok": self.handle(request)}
        except RaftError as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        self.reply({"id": request.get("id"), **answer})

    def close(self) -> None:
        self.quiesce_watch.stop()
        self.clients.halt(5.0)
        self.nh.close()
        self.history.close()


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    worker = Worker(config)
    started = worker.start_replicas()
    worker.quiesce_watch.start()
    if config.get("clients_on", True):
        worker.start_clients()
    worker.reply(
        {
            "ready": {str(k): v for k, v in started.items()},
            "pid": os.getpid(),
            "config": worker.effective_config(),
        }
    )
    worker.serve()
    worker.close()


if __name__ == "__main__":
    main()
