"""example-helloworld: three replicas of one shard, typed into by hand.

Start three terminals with `example-helloworld -replicaid 1` (2, 3). Each line typed is
proposed to shard 128 and printed by the state machine on every replica; `add <addr>
<id>` and `remove <id>` change the membership; `exit`, Ctrl-D or Ctrl-C quit.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from examples.helloworld.statemachine import ExampleStateMachine
from nodehost import (
    Config,
    ISystemEventListener,
    NodeHost,
    NodeHostConfig,
    RaftError,
    SnapshotInfo,
)
from nodehost.config import parse_address

SHARD_ID = 128
ADDRESSES = {1: "localhost:63001", 2: "localhost:63002", 3: "localhost:63003"}
USAGE_ADD = "usage: add <host:port> <replica id>   e.g. add localhost:63100 4"
USAGE_REMOVE = "usage: remove <replica id>   e.g. remove 4"

log = logging.getLogger("helloworld")


class SnapshotLogger(ISystemEventListener):
    def snapshot_created(self, info: SnapshotInfo) -> None:
        log.info(
            "snapshot captured: shard %d, replica %d, index %d",
            info.shard_id,
            info.replica_id,
            info.index,
        )

    def snapshot_recovered(self, info: SnapshotInfo) -> None:
        log.info(
            "snapshot recovered: shard %d, replica %d, index %d",
            info.shard_id,
            info.replica_id,
            info.index,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="example-helloworld",
        description="Three replicas of shard 128: type a line to replicate it.",
        epilog="Data lives in example-data/helloworld-data/node<N>; delete it to start over.",
    )
    parser.add_argument(
        "-replicaid",
        "--replicaid",
        type=int,
        default=1,
        help="ReplicaID to use (1, 2 or 3 use built-in addresses)",
    )
    parser.add_argument(
        "-addr",
        "--addr",
        default="",
        help="NodeHost address HOST:PORT (needed for ids other than 1-3)",
    )
    parser.add_argument(
        "-join",
        "--join",
        action="store_true",
        help="join an existing shard (after `add <addr> <id>` on a member)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.addr and args.replicaid not in ADDRESSES:
        print("node id must be 1, 2 or 3 when address is not specified", file=sys.stderr)
        return 1
    if args.replicaid < 1:
        print("replica id must be a positive number", file=sys.stderr)
        return 1
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.setLevel(logging.INFO)
    members = {} if args.join else dict(ADDRESSES)
    address = args.addr or ADDRESSES[args.replicaid]
    try:
        parse_address(address, "-addr")
    except RaftError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"node address: {address}", flush=True)
    data_dir = os.path.join("example-data", "helloworld-data", f"node{args.replicaid}")
    try:
        nh = NodeHost(
            NodeHostConfig(
                node_host_dir=data_dir,
                rtt_millisecond=200,
                raft_address=address,
                system_event_listener=SnapshotLogger(),
            )
        )
    except (RaftError, OSError) as exc:
        print(f"cannot start the NodeHost: {exc}", file=sys.stderr)
        return 1
    config = Config(
        shard_id=SHARD_ID,
        replica_id=args.replicaid,
        election_rtt=10,
        heartbeat_rtt=1,
        check_quorum=True,
        snapshot_entries=10,
        compaction_overhead=5,
    )
    try:
        nh.start_replica(members, args.join, ExampleStateMachine, config)
    except RaftError as exc:
        print(f"failed to add cluster, {exc}", file=sys.stderr)
        nh.close()
        return 1
    try:
        return _interact(nh)
    finally:
        nh.close()


def _interact(nh: NodeHost) -> int:
    stop = threading.Event()
    work: queue.Queue[str | None] = queue.Queue(maxsize=16)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    proposer = threading.Thread(target=_propose_loop, args=(nh, work), daemon=True)
    reader = threading.Thread(target=_read_loop, args=(nh, stop), daemon=True)
    proposer.start()
    reader.start()
    try:
        for line in _input_lines():
            if line.strip() == "exit":
                break
            if line:
                work.put(line)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        try:
            work.put_nowait(None)
        except queue.Full:
            pass
    return 0


def _input_lines() -> Iterator[str]:
    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory
        from prompt_toolkit.patch_stdout import patch_stdout

        session: PromptSession[str] = PromptSession(history=InMemoryHistory())
        with patch_stdout(raw=True):
            while True:
                try:
                    yield session.prompt("> ")
                except EOFError:
                    return
    else:
        for line in sys.stdin:
            yield line.rstrip("\n")


def _propose_loop(nh: NodeHost, work: queue.Queue[str | None]) -> None:
    session = nh.get_noop_session(SHARD_ID)
    while True:
        line = work.get()
        if line is None:
            return
        if _membership_command(nh, line):
            continue
        try:
            nh.sync_propose(session, line.encode(), timeout=3.0)
        except RaftError as exc:
            print(f"SyncPropose returned error {exc}", file=sys.stderr, flush=True)


def _membership_command(nh: NodeHost, line: str) -> bool:
    """Handle `add <addr> <id>` / `remove <id>`; False when the line is a message."""
    parts = line.split()
    if not parts or parts[0].lower() not in ("add", "remove"):
        return False
    verb = parts[0].lower()
    try:
        if verb == "add":
            if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) == 0:
                print(USAGE_ADD, flush=True)
                return True
            parse_address(parts[1], "address")
            nh.sync_request_add_replica(SHARD_ID, int(parts[2]), parts[1], 0, timeout=3.0)
        else:
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) == 0:
                print(USAGE_REMOVE, flush=True)
                return True
            nh.sync_request_delete_replica(SHARD_ID, int(parts[1]), 0, timeout=3.0)
    except RaftError as exc:
        print(f"membership change failed, {exc}", file=sys.stderr, flush=True)
        return True
    print("membership change completed successfully", flush=True)
    return True


def _read_loop(nh: NodeHost, stop: threading.Event) -> None:
    while not stop.wait(10.0):
        try:
            data = nh.sync_read(SHARD_ID, b"", timeout=3.0)
        except RaftError:
            continue
        print(f"count: {int.from_bytes(data, 'little')}", flush=True)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
