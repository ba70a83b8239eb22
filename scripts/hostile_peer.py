"""A hostile peer against a running cluster: frames no honest NodeHost sends, then a
check that every shard still commits and nothing acknowledged was lost.

    uv run python scripts/hostile_peer.py \\
        --raft 127.0.0.1:12001,127.0.0.1:12002,127.0.0.1:12003 \\
        --http http://127.0.0.1:11001,http://127.0.0.1:11002,http://127.0.0.1:11003

--raft names the Raft ports to attack (any NodeHost's). --http names the nodes of an
example-kvstore cluster: through its API the script learns the shards, members and
terms, writes and reads while and after it attacks, and reads the nodes' counters of
what they refused. Without --http it only attacks, then checks the ports still answer.

What it sends to every Raft port, each frame `--rounds` times (replays), with batches
also reversed and doubled: bytes that are no frame, a frame over the size limit, frames
of another deployment or wire version, kinds replicas never send each other, terms at
or near 2**64 and beyond any replica's reach, term 0 where a term is due, senders that
are no members, 0 or the receiver itself, shards and replicas not hosted, REPLICATEs
whose entries leave gaps, repeat, go back in term, name a term newer than their sender
or carry entries of unknown kinds and config changes that do not decode, forwarded
proposals already numbered, fields a kind never carries, memberships that cannot be
one, snapshot metadata that cannot describe a log, and snapshot streams with a bad
checksum, a path that leaves the directory, an unknown sender or a file that is no
snapshot. Every one of them must be refused: the script compares how many it sent
with how many more refusals the nodes count (a little more is honest traffic).

It sends nothing a member could not be told from the truth (a lie in a member's own
name: see nodehost/testing/hostile.py). Keeping those out is mutual TLS's job.

Exit codes: 0 all held, 1 something did not (listed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples.kvstore.service import shard_for
from nodehost.raft.messages import INDEX_LIMIT, TERM_LIMIT, TERM_STEP_LIMIT
from nodehost.testing.wire import (
    batch,
    send_snapshot_frames,
    snapshot_frames,
    write_frames,
)
from protos import raft_pb2 as pb
from transport.frames import BATCH_METHOD, BIN_VERSION

MAX_UINT64 = 2**64 - 1
NOBODY = 1_000_003  # a replica id no shard has
UNHOSTED = 2**40 + 17  # a shard id no host runs
LOCAL_KINDS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 19, 35, 99)


# ---------------------------------------------------------------------- the cluster


def http(
    method: str, url: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, TimeoutError) as exc:
        return 0, str(exc).encode()


@dataclass
class ShardView:
    shard_id: int
    term: int = 1
    leader: int = 0
    members: dict[int, str] = field(default_factory=dict)


@dataclass
class Cluster:
    """What the attack needs to know: shards, members, terms; who is at which port."""

    shards: dict[int, ShardView]
    replica_at: dict[str, int]  # raft address -> replica id (kvstore: node id)
    http: list[str]

    @classmethod
    def learn(cls, raft: list[str], urls: list[str], shards: int, replicas: list[int]) -> Cluster:
        views: dict[int, ShardView] = {}
        replica_at: dict[str, int] = {}
        for url in urls:
            status, body = http("GET", f"{url}/cluster")
            if status != 200:
                raise SystemExit(
                    f"hostile_peer: GET {url}/cluster answered {status}: {body[:200]!r}"
                )
            info = json.loads(body)
            replica_at[info["node"]["raft_addr"]] = int(info["node"]["id"])
            for s in info["shards"]:
                view = views.setdefault(s["shard_id"], ShardView(s["shard_id"]))
                view.term = max(view.term, int(s.get("term") or 1))
                view.leader = view.leader or int(s.get("leader_id") or 0)
                view.members.update({int(k): v for k, v in s.get("members", {}).items()})
        for i, address in enumerate(raft):
            if address not in replica_at:
                replica_at[address] = replicas[i] if i < len(replicas) else i + 1
        if not views:
            ids = sorted(replica_at.values())
            views = {s: ShardView(s, members={r: "" for r in ids}) for s in range(1, shards + 1)}
        return cls(views, replica_at, urls)

    def terms(self) -> int:
        return max(v.term for v in self.shards.values())


# ---------------------------------------------------------------------- hostile frames


@dataclass
class Frame:
    """One hostile frame and how many refusals it must cost the receiver: one when the
    whole frame is refused, one per message when each is checked."""

    kind: str
    data: bytes
    refusals: int


def _frames_for(
    cluster: Cluster, replica: int, deployment: int, rng: random.Random, max_mib: int
) -> list[Frame]:
    out: list[Frame] = []

    def add(kind: str, messages: list[pb.Message], **header: Any) -> None:
        out.append(Frame(kind, batch(messages, deployment_id=deployment, **header), len(messages)))

    for view in cluster.shards.values():
        members = sorted(r for r in view.members if r != replica) or [replica + 1]
        leader = view.leader if view.leader and view.leader != replica else members[0]
        term = view.term

        def msg(
            kind: int, from_id: int = leader, shard_id: int = view.shard_id, **fields: Any
        ) -> pb.Message:
            return pb.Message(type=kind, from_id=from_id, shard_id=shard_id, to=replica, **fields)

        # Terms: near 2**64 (the transport refuses exactly 2**64-1), past the limit,
        # beyond any replica's step, and 0 where a term is due.
        for value in (
            MAX_UINT64 - 1,
            TERM_LIMIT,
            TERM_LIMIT + 5,
            term + TERM_STEP_LIMIT + (1 << 24),
        ):
            add(
                "huge-terms",
                [
                    msg(pb.HEARTBEAT, term=value, commit=1 << 40),
                    msg(pb.HEARTBEAT, from_id=NOBODY, term=value),
                    msg(pb.REQUEST_VOTE, term=value, log_index=1 << 30, log_term=value),
                    msg(pb.REPLICATE, term=value, log_index=1, log_term=1, commit=1 << 40),
                ],
            )
        add(
            "term-zero",
            [
                msg(pb.HEARTBEAT, term=0, commit=1 << 40),
                msg(pb.REPLICATE_RESP, term=0, log_index=1),
                msg(pb.TIMEOUT_NOW, term=0),
            ],
        )
        forward = msg(pb.PROPOSE_FORWARD, term=term)
        forward.entries.add(cmd=b'{"op": "put", "k": "hostile", "v": 1}')
        add("term-zero", [forward, msg(pb.READ_INDEX, term=term, hint=7, hint_high=7)])
        # Senders: nobody, 0, the receiver itself; shards and replicas not hosted.
        nobody = [
            msg(kind, from_id=NOBODY, term=term, **fields)
            for kind, fields in (
                (pb.HEARTBEAT, {}),
                (pb.HEARTBEAT_RESP, {}),
                (pb.TIMEOUT_NOW, {}),
                (pb.QUIESCE, {}),
                (pb.REQUEST_VOTE, {"log_index": 1 << 30, "log_term": term}),
                (pb.REQUEST_PRE_VOTE, {"log_index": 1 << 30, "log_term": term}),
                (pb.REPLICATE, {"log_index": 1, "log_term": 1, "commit": 1 << 30}),
                (pb.REPLICATE_RESP, {"log_index": 1}),
                (pb.RATE_LIMIT, {"hint": 1 << 40}),
                (pb.READ_INDEX_RESP, {"log_index": 1 << 30, "hint": 5, "hint_high": 5}),
            )
        ]
        add("non-members", nobody)
        add(
            "bad-senders",
            [
                msg(pb.HEARTBEAT, from_id=0, term=term),
                msg(pb.HEARTBEAT, from_id=replica, term=term),
            ],
        )
        add(
            "wrong-shard",
            [
                pb.Message(
                    type=pb.HEARTBEAT, shard_id=UNHOSTED, to=replica, from_id=leader, term=term
                ),
                pb.Message(
                    type=pb.HEARTBEAT, shard_id=view.shard_id, to=NOBODY, from_id=leader, term=term
                ),
            ],
        )
        add("local-kinds", [msg(kind, term=term) for kind in LOCAL_KINDS])
        # Entries: gaps, repeats, order, terms, kinds, config changes.
        garbage_change = b"\xff\xfe not a config change"
        nowhere = pb.ConfigChange(
            type=pb.ADD_NODE, replica_id=NOBODY, address="nowhere"
        ).SerializeToString()
        replicated = []
        for entries in (
            [(3, term, 0, b"x")],
            [(2, term, 0, b"x"), (2, term, 0, b"x")],
            [(3, term, 0, b"x"), (2, term, 0, b"x")],
            [(2, term, 0, b"x"), (3, term - 1 if term > 1 else 0, 0, b"x")],
            [(2, 0, 0, b"x")],
            [(2, term + 1, 0, b"x")],
            [(2, term, pb.METADATA, b"")],
            [(2, term, 7, b"x")],
            [(2, term, pb.CONFIG_CHANGE, garbage_change)],
            [(2, term, pb.CONFIG_CHANGE, nowhere)],
        ):
            m = msg(pb.REPLICATE, term=term, log_index=1, log_term=1, hint=1)
            for index, entry_term, kind, cmd in entries:
                m.entries.add(index=index, term=entry_term, type=kind, cmd=cmd)  # type: ignore[arg-type]
            replicated.append(m)
        far = msg(pb.REPLICATE, term=term, log_index=INDEX_LIMIT - 1, log_term=1)
        far.entries.add(index=INDEX_LIMIT, term=term)
        replicated.append(far)
        add("bad-entries", replicated)
        numbered = msg(pb.PROPOSE_FORWARD)
        numbered.entries.add(index=5, term=term, cmd=b"x")
        metadata = msg(pb.PROPOSE_FORWARD)
        metadata.entries.add(type=pb.METADATA)
        change = msg(pb.PROPOSE_FORWARD)
        change.entries.add(type=pb.CONFIG_CHANGE, cmd=garbage_change)
        add(
            "bad-forwards",
            [
                numbered,
                metadata,
                change,
                msg(pb.PROPOSE_FORWARD),
                msg(pb.READ_INDEX),
                msg(pb.LEADER_TRANSFER),
            ],
        )
        # Fields a kind never carries, hints it cannot carry, impossible answers.
        stowaway = msg(pb.HEARTBEAT, term=term)
        stowaway.entries.add(index=1, term=1, cmd=b"x")
        add(
            "bad-fields",
            [
                stowaway,
                msg(pb.REPLICATE, term=term, log_index=1, log_term=1, reject=True),
                msg(pb.REPLICATE, term=term, log_index=1, log_term=1, hint=9),
                msg(pb.REPLICATE, term=term, log_index=5, log_term=0),
                msg(pb.REQUEST_VOTE_RESP, term=term, commit=9),
                msg(pb.REQUEST_VOTE, term=term, log_index=3, log_term=term + 1),
                msg(pb.REPLICATE_RESP, term=term, log_index=3, reject=True, hint=9),
                msg(pb.REPLICATE_RESP, term=term, log_index=INDEX_LIMIT),
                msg(pb.READ_INDEX_RESP, term=term, hint=3, hint_high=3),
                msg(pb.RATE_LIMIT, term=term, hint=INDEX_LIMIT),
            ],
        )
        # Memberships that cannot be one, presented by a leader.
        presented = []
        for membership in (
            pb.Membership(addresses={leader: "not an address"}),
            pb.Membership(addresses={NOBODY: "127.0.0.1:1"}),
            pb.Membership(addresses={leader: "127.0.0.1:1"}, witnesses={leader: "127.0.0.1:2"}),
            pb.Membership(non_votings={leader: "127.0.0.1:1"}),
        ):
            m = msg(pb.HEARTBEAT, term=term)
            m.snapshot.membership.CopyFrom(membership)
            presented.append(m)
        add("bad-memberships", presented)
        # Snapshot metadata that cannot describe a log (no data: a batch carries none).
        good = pb.Membership(
            addresses={r: a or "127.0.0.1:1" for r, a in view.members.items()}
            or {leader: "127.0.0.1:1"}
        )
        snapshots = []
        for fields in (
            {"index": 0},
            {"term": term + 1},
            {"membership": pb.Membership()},
            {"membership": pb.Membership(config_change_id=1 << 41, addresses=dict(good.addresses))},
            {"shard_id": view.shard_id + 1},
        ):
            snapshot: dict[str, Any] = {
                "shard_id": view.shard_id,
                "index": 1 << 40,
                "term": term,
                "dummy": True,
                "membership": good,
            }
            snapshot.update(fields)
            snapshots.append(msg(pb.INSTALL_SNAPSHOT, term=term, snapshot=pb.Snapshot(**snapshot)))
        with_file = pb.Snapshot(
            shard_id=view.shard_id,
            index=1 << 40,
            term=term,
            membership=good,
            filepath="/etc/passwd",
        )
        snapshots.append(msg(pb.INSTALL_SNAPSHOT, term=term, snapshot=with_file))
        add("forged-snapshots", snapshots)
    # Whole frames refused at once.
    out.append(
        Frame(
            "wrong-deployment",
            batch(
                [pb.Message(type=pb.HEARTBEAT, to=replica, from_id=1, shard_id=1, term=1)],
                deployment_id=deployment + 1,
            ),
            1,
        )
    )
    out.append(
        Frame(
            "wrong-version",
            batch(
                [pb.Message(type=pb.HEARTBEAT, to=replica, from_id=1, shard_id=1, term=1)],
                deployment_id=deployment,
                bin_ver=BIN_VERSION + 1,
            ),
            1,
        )
    )
    for _ in range(5):
        # Random bytes: not a frame at all (or, by luck, a batch of version 0).
        out.append(Frame("garbage", b"\xff" + os.urandom(rng.randint(1, 400)), 1))
    if max_mib:
        # Just over the limit: gRPC's own cap sits a little higher, so the node's check
        # sees it (far bigger ones end their stream inside gRPC, counted nowhere).
        out.append(Frame("oversized", b"\x0a" + b"\x00" * (max_mib * 1024 * 1024 + 16), 1))
    return out


def _reshuffled(frames: list[Frame], rng: random.Random) -> list[Frame]:
    """The message batches again, reversed and doubled: order and duplicates change
    nothing, each message is refused on its own."""
    out = []
    for f in frames:
        if f.refusals > 1:
            decoded = pb.MessageBatch.FromString(f.data)
            messages = list(decoded.requests)
            messages.reverse()
            messages += messages[: rng.randint(1, len(messages))]
            again = pb.MessageBatch(
                deployment_id=decoded.deployment_id,
                source_address=decoded.source_address,
                bin_ver=decoded.bin_ver,
                requests=messages,
            ).SerializeToString()
            out.append(Frame(f.kind + " (reordered, doubled)", again, len(messages)))
    return out


def _snapshot_attacks(
    cluster: Cluster, address: str, replica: int, deployment: int, tmp: Path
) -> list[tuple[str, list[bytes]]]:
    """Streams, each refused once: a bad chunk checksum, a path out of the directory,
    a sender nobody knows, a file that is no snapshot."""
    out = []
    view = next(iter(cluster.shards.values()))
    members = sorted(r for r in view.members if r != replica) or [replica + 1]
    leader = view.leader if view.leader and view.leader != replica else members[0]
    membership = pb.Membership(
        addresses={r: a or "127.0.0.1:1" for r, a in view.members.items()}
        or {leader: "127.0.0.1:1"}
    )
    data = tmp / f"forged-{replica}.snap"
    data.write_bytes(os.urandom(20_000))

    def install(from_id: int) -> pb.Message:
        return pb.Message(
            type=pb.INSTALL_SNAPSHOT,
            shard_id=view.shard_id,
            to=replica,
            from_id=from_id,
            term=view.term,
            snapshot=pb.Snapshot(
                shard_id=view.shard_id,
                index=1 << 40,
                term=view.term,
                membership=membership,
                filepath=str(data),
                checksum=hashlib.sha256(b"not this file").digest(),
                type=pb.REGULAR_STATE_MACHINE,
            ),
        )

    frames = snapshot_frames(install(leader), deployment_id=deployment, chunk_size=8192)
    bad_crc = pb.SnapshotChunk.FromString(frames[1])
    bad_crc.chunk_checksum ^= 1
    out.append(("snapshot bad checksum", [frames[0], bad_crc.SerializeToString(), *frames[2:]]))
    escape = pb.SnapshotChunk.FromString(frames[0])
    escape.filepath = "../../escape.snap"
    out.append(("snapshot path escape", [escape.SerializeToString(), *frames[1:]]))
    out.append(("snapshot from nobody", snapshot_frames(install(NOBODY), deployment_id=deployment)))
    out.append(("snapshot no snapshot file", frames))
    return out


# ---------------------------------------------------------------------- counters


def refusals(url: str) -> int | None:
    """Everything a node counts as refused: the transport's rejections and admission's."""
    status, body = http("GET", f"{url}/metrics")
    if status != 200:
        return None
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(("nodehost_transport_rejected_", "nodehost_refused_messages_total{")):
            name, _, value = line.rpartition(" ")
            if "_created" not in name:
                total += float(value)
    return int(total)


# ---------------------------------------------------------------------- writes and reads


class Writers:
    """Writes through the kvstore API from a few threads; keeps what was acknowledged."""

    def __init__(self, urls: list[str], prefix: str, threads: int = 3) -> None:
        self.urls = urls
        self.prefix = prefix
        self.acked: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        n = 0
        while not self.stop.is_set():
            n += 1
            key = f"{self.prefix}-{index}-{n}"
            url = rng.choice(self.urls)
            status, _ = http(
                "PUT", f"{url}/key/{urllib.parse.quote(key, safe='')}", json.dumps(n).encode()
            )
            if status == 200:
                with self.lock:
                    self.acked[key] = n

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def write_each_shard(
    urls: list[str], shards: int, prefix: str, deadline: float
) -> tuple[dict[str, int], list[str]]:
    """One acknowledged write per shard, through every node."""
    acked: dict[str, int] = {}
    problems = []
    for shard in range(1, shards + 1):
        key = next(
            f"{prefix}-{i}" for i in range(10_000) if shard_for(f"{prefix}-{i}", shards) == shard
        )
        for url in urls:
            k = f"{key}@{urllib.parse.quote(url, safe='')}"
            while shard_for(k, shards) != shard:
                k += "+"
            while True:
                status, body = http("PUT", f"{url}/key/{urllib.parse.quote(k, safe='')}", b"1")
                if status == 200:
                    acked[k] = 1
                    break
                if time.monotonic() > deadline:
                    problems.append(
                        f"shard {shard}: no write through {url} committed ({status} {body[:120]!r})"
                    )
                    break
                time.sleep(0.2)
    return acked, problems


def read_back(urls: list[str], acked: dict[str, int], deadline: float) -> list[str]:
    """Every acknowledged write reads back from every node (a linearizable read)."""
    missing = []
    for url in urls:
        for key, value in acked.items():
            while True:
                status, body = http("GET", f"{url}/key/{urllib.parse.quote(key, safe='')}")
                if status == 200 and json.loads(body) == value:
                    break
                if status in (200, 404) or time.monotonic() > deadline:
                    missing.append(f"{key} on {url}: {status} {body[:80]!r}")
                    break
                time.sleep(0.2)
    return missing


def converged(urls: list[str], deadline: float) -> list[str]:
    """No replica failed, every shard has a leader, and the replicas agree."""
    while True:
        problems = []
        hashes: dict[int, set[str | None]] = {}
        for url in urls:
            status, body = http("GET", f"{url}/cluster")
            if status != 200:
                problems.append(f"{url}/cluster answered {status}")
                continue
            for s in json.loads(body)["shards"]:
                if s.get("failed"):
                    problems.append(f"{url}: shard {s['shard_id']} failed: {s['failed']}")
                if not s.get("leader_id"):
                    problems.append(f"{url}: shard {s['shard_id']} knows no leader")
                hashes.setdefault(s["shard_id"], set()).add(s.get("state_hash"))
        for shard, seen in hashes.items():
            if len(seen) != 1 or None in seen:
                problems.append(
                    f"shard {shard}: the replicas' state hashes differ: {sorted(map(str, seen))}"
                )
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


# ---------------------------------------------------------------------- main


def port_answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            return True
    except OSError:
        return False


def junk_on_the_raw_port(address: str) -> None:
    host, _, port = address.rpartition(":")
    for payload in (
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512),
    ):
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as s:
                s.sendall(payload)
                s.settimeout(2)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
        except OSError:
            pass


def attack(
    cluster: Cluster, args: argparse.Namespace, rng: random.Random
) -> tuple[int, dict[str, int], list[str]]:
    """Send everything to every port; return the refusals it must cost and a tally."""
    expected = 0
    tally: dict[str, int] = {}
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for address in args.raft:
            replica = cluster.replica_at[address]
            frames = _frames_for(cluster, replica, args.deployment_id, rng, args.max_message_mib)
            frames += _reshuffled(frames, rng)
            for _ in range(args.rounds):
                rng.shuffle(frames)
                for start in range(0, len(frames), 50):
                    chunk = frames[start : start + 50]
                    try:
                        asyncio.run(
                            write_frames(address, BATCH_METHOD, [f.data for f in chunk], timeout=60)
                        )
                    except Exception as exc:  # the peer may end a stream; the next one goes on
                        problems.append(f"{address}: a stream of hostile frames broke: {exc!r}")
                        continue
                    for f in chunk:
                        expected += f.refusals
                        tally[f.kind.split(" (")[0]] = (
                            tally.get(f.kind.split(" (")[0], 0) + f.refusals
                        )
                for name, stream in _snapshot_attacks(
                    cluster, address, replica, args.deployment_id, Path(tmp)
                ):
                    outcome = send_snapshot_frames(address, stream)
                    expected += 1
                    tally[name] = tally.get(name, 0) + 1
                    if (
                        name != "snapshot no snapshot file"
                        and name != "snapshot from nobody"
                        and outcome == "accepted"
                    ):
                        problems.append(f"{address}: {name}: the stream was accepted")
            junk_on_the_raw_port(address)
    return expected, tally, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--raft", required=True, help="Raft addresses to attack, comma-separated host:port"
    )
    parser.add_argument(
        "--http", default="", help="the example-kvstore nodes' HTTP URLs, comma-separated"
    )
    parser.add_argument("--deployment-id", type=int, default=0)
    parser.add_argument("--shards", type=int, default=1, help="without --http: shard ids 1..N")
    parser.add_argument(
        "--replica-ids", default="", help="without --http: replica id at each --raft address"
    )
    parser.add_argument("--rounds", type=int, default=2, help="times each frame is sent (replays)")
    parser.add_argument(
        "--max-message-mib",
        type=int,
        default=64,
        help="the nodes' frame limit; 0 skips the oversized frame",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds the checks may take")
    args = parser.parse_args(argv)
    args.raft = [a.strip() for a in args.raft.split(",") if a.strip()]
    urls = [u.strip().rstrip("/") for u in args.http.split(",") if u.strip()]
    try:
        replicas = [int(r) for r in args.replica_ids.split(",") if r.strip()]
    except ValueError:
        parser.error("--replica-ids: comma-separated integers")
    if not args.raft or any(":" not in a for a in args.raft) or args.rounds < 1:
        parser.error("--raft needs host:port addresses, --rounds at least 1")
    rng = random.Random(args.seed)
    cluster = Cluster.learn(args.raft, urls, args.shards, replicas)
    shards = len(cluster.shards)
    print(f"attacking {len(args.raft)} Raft ports, {shards} shards, terms up to {cluster.terms()}")
    before = {url: refusals(url) for url in urls}
    started = time.monotonic()
    with Writers(urls, f"hp{args.seed}") as writers:
        expected, tally, problems = attack(cluster, args, rng)
        wait_more = time.monotonic() + 5
        while (
            urls
            and writers.count() < 1
            and time.monotonic() < min(wait_more, started + args.timeout)
        ):
            time.sleep(0.1)
    seconds = time.monotonic() - started
    print(f"sent {expected} hostile messages, frames and streams in {seconds:.1f} s:")
    for kind, count in sorted(tally.items()):
        print(f"  {kind:<30} {count}")
    for address in args.raft:
        if not port_answers(address):
            problems.append(f"{address} no longer accepts connections")
    if urls:
        deadline = time.monotonic() + args.timeout
        acked = dict(writers.acked)
        print(f"{len(acked)} writes acknowledged while the attack ran")
        after_attack, write_problems = write_each_shard(
            urls, shards, f"hp{args.seed}-after", deadline
        )
        problems += write_problems
        acked.update(after_attack)
        problems += read_back(urls, acked, deadline)
        problems += converged(urls, deadline)
        counted = 0
        for url in urls:
            now, then = refusals(url), before[url]
            if now is None or then is None:
                problems.append(f"{url}/metrics has no refusal counters")
                continue
            counted += now - then
            print(f"  {url}: {now - then} refusals counted")
        if counted < expected:
            problems.append(
                f"only {counted} refusals counted for {expected} hostile inputs: some got in"
            )
        print(
            f"every shard committed after the attack; {len(acked)} acknowledged writes read back from every node"
        )
    else:
        print("no --http: the Raft ports still answer; give --http to check commits and data")
    if problems:
        print(f"FAILED: {len(problems)} problem(s)")
        for p in problems[:50]:
            print(f"  {p}")
        return 1
    print(
        "OK: every hostile input was refused, every shard kept committing, nothing acknowledged was lost"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
