"""A NodeHost in its own process, for the operator tool tests.

    python -m tests.tools.hostproc SPEC_JSON

SPEC: {"dir", "raft_address", "admin_address", "replica_id", "shards": [ids],
"members": {"1": target, ...} (a new shard) or {} (a restart or a join), "join": bool,
"tls": {"ca_file", "cert_file", "key_file"} | null, "node_host_id": str,
"address_by_node_host_id": bool, "seeds": [addresses], "listen_address": str}.

Prints {"ready": node_host_id} once every replica started, then answers JSON lines on
stdin, one line each: {"op": "put", "shard", "k", "v"} | {"op": "get", "shard", "k"}
(linearizable) | {"op": "all", "shard"} (linearizable) | {"op": "stale", "shard"}.
Exits 0 on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

from nodehost import Config, NodeHost, NodeHostConfig, RaftError
from tests.host.cluster import KV, encode


def main() -> None:
    spec = json.loads(sys.argv[1])
    extra: dict[str, Any] = {}
    if spec.get("tls"):
        extra.update(mutual_tls=True, **spec["tls"])
    if spec.get("address_by_node_host_id"):
        extra.update(
            address_by_node_host_id=True,
            node_host_id=spec.get("node_host_id", ""),
            seeds=list(spec.get("seeds", [])),
        )
    nh = NodeHost(
        NodeHostConfig(
            node_host_dir=spec["dir"],
            raft_address=spec["raft_address"],
            listen_address=spec.get("listen_address", ""),
            rtt_millisecond=20,
            admin_address=spec.get("admin_address", ""),
            **extra,
        )
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    rid = spec["replica_id"]
    members = {int(k): v for k, v in spec.get("members", {}).items()}
    for shard in spec["shards"]:
        config = Config(
            shard_id=shard,
            replica_id=rid,
            election_rtt=10,
            heartbeat_rtt=1,
            check_quorum=True,
            pre_vote=True,
            snapshot_entries=spec.get("snapshot_entries", 0),
            compaction_overhead=5,
        )
        join = bool(spec.get("join"))
        first = members if not nh.has_node_info(shard, rid) and not join else {}
        nh.start_replica(first, join, KV, config)
    print(json.dumps({"ready": nh.id}), flush=True)
    reader = threading.Thread(target=_serve, args=(nh, stop), daemon=True)
    reader.start()
    while not stop.wait(0.2):
        pass
    nh.close()


def _serve(nh: NodeHost, stop: threading.Event) -> None:
    sessions: dict[int, Any] = {}
    for line in sys.stdin:
        request = json.loads(line)
        shard = request.get("shard", 1)
        try:
            if request["op"] == "put":
                session = sessions.setdefault(shard, nh.get_noop_session(shard))
                nh.sync_propose(session, encode("put", request["k"], request["v"]), timeout=3)
                reply: dict[str, Any] = {"ok": True}
            elif request["op"] == "get":
                reply = {"ok": nh.sync_read(shard, request["k"], timeout=3)}
            elif request["op"] == "all":
                reply = {"ok": nh.sync_read(shard, "__all__", timeout=3)}
            else:
                reply = {"ok": nh.stale_read(shard, "__all__")}
        except RaftError as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
    stop.set()


if __name__ == "__main__":
    main()
