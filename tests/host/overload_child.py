"""A NodeHost with default bounds in its own process, whose state machine can be held,
driven by JSON lines on stdin (for the overload test; its memory is its own).

    python -m tests.host.overload_child DIR ADDRESS

Requests, each answered with one JSON line:
  {"op": "flood", "count": n, "size": s}  propose n commands of s bytes at once
      -> {"admitted", "busy", "counted", "rss", "peak"}  (the state machine is held:
         nothing applies; "counted" is the SystemBusy metric)
  {"op": "reads", "count": n}             start n linearizable reads
      -> {"admitted", "busy", "counted"}
  {"op": "release", "timeout": t}         let the state machine go; wait for the
      admitted proposals, then for a new one to succeed
      -> {"completed", "other", "recovered_after", "rss", "peak"}
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from nodehost import Config, NodeHost, NodeHostConfig, RequestState, SystemBusy
from statemachine import Entry, IStateMachine, Result, SnapshotFile, SnapshotFileCollection

GATE = threading.Event()


class Held(IStateMachine):
    """Applies nothing until GATE opens: a state machine that fell behind."""

    def __init__(self, shard_id: int, replica_id: int) -> None:
        self.count = 0

    def update(self, entry: Entry) -> Result:
        GATE.wait(120)
        self.count += 1
        return Result(self.count)

    def lookup(self, query: Any) -> Any:
        return self.count

    def save_snapshot(
        self, writer: BinaryIO, files: SnapshotFileCollection, stopped: Callable[[], bool]
    ) -> None:
        writer.write(str(self.count).encode())

    def recover_from_snapshot(
        self, reader: BinaryIO, files: list[SnapshotFile], stopped: Callable[[], bool]
    ) -> None:
        self.count = int(reader.read())


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def counted(nh: NodeHost, kind: str) -> float:
    """nodehost_system_busy_total for `kind`, as an operator's scraper reads it."""
    prefix = f'nodehost_system_busy_total{{kind="{kind}"}} '
    for line in nh.write_health_metrics().decode().splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def main() -> None:
    directory, address = sys.argv[1:3]
    nh = NodeHost(
        NodeHostConfig(
            node_host_dir=directory, raft_address=address, rtt_millisecond=20, enable_metrics=True
        )
    )
    nh.start_replica({1: address}, False, Held, Config(shard_id=1, replica_id=1))
    session = nh.get_noop_session(1)
    deadline = time.monotonic() + 30
    while not nh.get_leader_id(1)[2] and time.monotonic() < deadline:
        time.sleep(0.01)
    # The leader's own first entry goes through the state machine: let it.
    GATE.set()
    nh.sync_propose(session, b"first", timeout=10)
    GATE.clear()
    print(json.dumps({"ready": True}), flush=True)
    admitted: list[RequestState] = []
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "flood":
            command = b"c" * request["size"]  # one object: only what is queued costs
            busy = 0
            for _ in range(request["count"]):
                try:
                    admitted.append(nh.propose(session, command, timeout=120))
                except SystemBusy:
                    busy += 1
            reply: dict[str, Any] = {
                "admitted": len(admitted),
                "busy": busy,
                "counted": counted(nh, "proposal"),
                "rss": rss(),
                "peak": peak(),
            }
        elif op == "reads":
            reads, busy = 0, 0
            for _ in range(request["count"]):
                try:
                    nh.read_index(1, timeout=120)
                    reads += 1
                except SystemBusy:
                    busy += 1
            reply = {"admitted": reads, "busy": busy, "counted": counted(nh, "read")}
        else:
            GATE.set()
            released = time.monotonic()
            outcomes = [rs.wait(request["timeout"]) for rs in admitted]
            completed = sum(1 for o in outcomes if o.completed())
            recovered_after = -1.0
            deadline = released + request["timeout"]
            while time.monotonic() < deadline:
                try:
                    nh.sync_propose(session, b"after", timeout=5)
                    recovered_after = time.monotonic() - released
                    break
                except SystemBusy:
                    time.sleep(0.02)  # the limit lifts a period after the log drained
            reply = {
                "completed": completed,
                "other": sorted({o.code.name for o in outcomes if not o.completed()}),
                "recovered_after": recovered_after,
                "rss": rss(),
                "peak": peak(),
            }
        print(json.dumps(reply), flush=True)
    nh.close()


if __name__ == "__main__":
    main()
