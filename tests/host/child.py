"""A NodeHost in its own process, driven by JSON lines on stdin (for kill tests).

    python -m tests.host.child DIR ADDRESS MEMBERS_JSON REPLICA_ID

Requests: {"op": "put", "k", "v"} | {"op": "read", "k"} | {"op": "all"} | {"op": "hash"};
each gets one JSON line back: {"ok": value} or {"error": "..."}.
"""

from __future__ import annotations

import json
import sys

from nodehost import Config, NodeHost, NodeHostConfig, RaftError
from tests.host.cluster import KV, encode


def main() -> None:
    directory, address, members_json, replica_id = sys.argv[1:5]
    members = {int(k): v for k, v in json.loads(members_json).items()}
    rid = int(replica_id)
    nh = NodeHost(NodeHostConfig(node_host_dir=directory, raft_address=address, rtt_millisecond=20))
    config = Config(
        shard_id=1,
        replica_id=rid,
        election_rtt=10,
        heartbeat_rtt=1,
        check_quorum=True,
        pre_vote=True,
        snapshot_entries=50,
        compaction_overhead=10,
    )
    nh.start_replica(members if not nh.has_node_info(1, rid) else {}, False, KV, config)
    session = nh.get_noop_session(1)
    print(json.dumps({"ready": rid}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "put":
                nh.sync_propose(session, encode("put", request["k"], request["v"]), timeout=2)
                reply: dict[str, object] = {"ok": True}
            elif request["op"] == "read":
                reply = {"ok": nh.sync_read(1, request["k"], timeout=2)}
            elif request["op"] == "all":
                reply = {"ok": nh.sync_read(1, "__all__", timeout=5)}
            else:
                reply = {"ok": nh.get_state_hash(1)}
        except RaftError as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"id": request.get("id"), **reply}), flush=True)
    nh.close()


if __name__ == "__main__":
    main()
