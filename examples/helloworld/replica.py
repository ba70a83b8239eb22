"""The library flow of helloworld: one NodeHost, one replica of shard 128, and the
NodeHost calls behind each thing a person types. Everything about the terminal is in
console.py; this module is the part to read to write a program of one's own.

Rules:
- Built on the public API only (`nodehost`, `statemachine`).
- Every request is bounded by TIMEOUT; failures arrive as `nodehost.RaftError`s for
  the console to explain.
- `view` reports what this replica knows locally (members, leader, which peers answer),
  without asking the shard: it must work when nothing else does.
"""

from __future__ import annotations

import logging
import threading

from examples.helloworld.advice import View
from examples.helloworld.main import SHARD_ID, Options
from examples.helloworld.statemachine import ExampleStateMachine
from nodehost import (
    Config,
    ConnectionInfo,
    ISystemEventListener,
    NodeHost,
    NodeHostConfig,
    NodeHostInfoOption,
    SnapshotInfo,
)

TIMEOUT = 3.0  # seconds, for every request

log = logging.getLogger("helloworld")


class Events(ISystemEventListener):
    """Logs the snapshots this replica takes, and remembers which peers answer.

    The NodeHost calls these methods on its event thread; `reached` is read from others.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reached: dict[str, bool] = {}

    def snapshot_created(self, info: SnapshotInfo) -> None:
        log.info("snapshot captured, index %d", info.index)

    def connection_established(self, info: ConnectionInfo) -> None:
        with self._lock:
            self._reached[info.address] = True

    def connection_failed(self, info: ConnectionInfo) -> None:
        with self._lock:
            self._reached[info.address] = False

    def reached(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._reached)


class Replica:
    """This process's replica of shard 128."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.events = Events()
        nh = NodeHost(
            NodeHostConfig(
                node_host_dir=options.data_dir,  # example-data/helloworld-data/node1
                rtt_millisecond=200,
                raft_address=options.address,  # localhost:63001
                system_event_listener=self.events,
            )
        )
        self.nh = nh
        try:
            nh.start_replica(
                options.members,  # {1: "localhost:63001", ...}, or {} with -join
                options.join,  # False: found the shard with these members; True: join it
                ExampleStateMachine,  # called as ExampleStateMachine(shard_id, replica_id)
                Config(
                    shard_id=SHARD_ID,
                    replica_id=options.replica_id,
                    election_rtt=10,
                    heartbeat_rtt=1,
                    check_quorum=True,
                    snapshot_entries=10,
                    compaction_overhead=5,
                ),
            )
        except BaseException:
            nh.close()
            raise
        self.session = nh.get_noop_session(SHARD_ID)

    def propose(self, text: str) -> None:
        self.nh.sync_propose(self.session, text.encode(), timeout=TIMEOUT)

    def count(self) -> int:
        """The count, read linearizably: it needs a majority too."""
        data = self.nh.sync_read(SHARD_ID, b"", timeout=TIMEOUT)
        return int.from_bytes(data, "little")

    def add(self, replica_id: int, address: str) -> None:
        self.nh.sync_request_add_replica(SHARD_ID, replica_id, address, 0, timeout=TIMEOUT)

    def remove(self, replica_id: int) -> None:
        self.nh.sync_request_delete_replica(SHARD_ID, replica_id, 0, timeout=TIMEOUT)

    def view(self) -> View:
        info = self.nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
        shard = next(s for s in info.shard_info_list if s.shard_id == SHARD_ID)
        return View(
            replica_id=self.options.replica_id,
            address=self.options.address,
            members=dict(shard.nodes),
            reached=self.events.reached(),
            has_leader=shard.leader_id != 0,
            removed=shard.is_removed,
        )

    def close(self) -> None:
        self.nh.close()
