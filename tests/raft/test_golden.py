"""Golden transcripts: scripted scenarios whose every message is compared to a file.

Each file in testdata/ holds blocks of

    # why this step matters (comments are kept)
    command arg ...
    ----
    the messages sent while it ran, one describe_message() line each,
    then any output of the command itself

A message the network lost (cut link, isolated replica) ends in "(lost)". Run with
REWRITE_GOLDEN=1 to rewrite the expected parts after a deliberate change; the diff
then shows exactly what changed on the wire.

Commands: new N [key=value ...], campaign ID, stabilize, tick ID [N], tick-all [N],
propose ID TEXT, read ID, transfer ID TARGET, add ID voter|non-voting|witness,
remove ID, isolate ID, cut A B, heal, crash ID, restart ID, snapshot ID [OVERHEAD],
status, log ID.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodehost.raft import describe_entry
from protos import raft_pb2 as pb

from .network import Network

TESTDATA = Path(__file__).parent / "testdata"
REWRITE = os.environ.get("REWRITE_GOLDEN") == "1"


class Script:
    def __init__(self) -> None:
        self.net: Network | None = None

    @property
    def n(self) -> Network:
        assert self.net is not None, "start with: new N"
        return self.net

    def run(self, command: str) -> list[str]:
        words = command.split()
        name, args = words[0], words[1:]
        if name == "new":
            config: dict[str, object] = {}
            for kv in args[1:]:
                key, value = kv.split("=")
                config[key] = value == "true" if value in ("true", "false") else int(value)
            self.net = Network.of(int(args[0]), seed=1, trace=True, **config)
            self.n.stabilize()
            assert self.n.trace is not None
            self.n.trace.clear()
            return []
        net = self.n
        assert net.trace is not None
        start = len(net.trace)
        extra = getattr(self, "_" + name.replace("-", "_"))(net, *args)
        return net.trace[start:] + (extra or [])

    def _campaign(self, net: Network, rid: str) -> None:
        net.step(int(rid), pb.Message(type=pb.ELECTION))
        net.stabilize()

    def _stabilize(self, net: Network) -> None:
        net.stabilize()

    def _tick(self, net: Network, rid: str, ticks: str = "1") -> None:
        net.tick(int(rid), ticks=int(ticks))

    def _tick_all(self, net: Network, ticks: str = "1") -> None:
        net.tick(ticks=int(ticks))

    def _propose(self, net: Network, rid: str, text: str) -> None:
        net.propose(int(rid), text.encode())
        net.stabilize()

    def _read(self, net: Network, rid: str) -> list[str]:
        ctx = net.read(int(rid))
        net.stabilize()
        served = net.read_served(int(rid), ctx) and net.checker.reads_served > self._reads
        self._reads = net.checker.reads_served
        return [f"read {ctx[0]} on {rid}: {'served' if served else 'not served'}"]

    _reads = 0

    def _transfer(self, net: Network, rid: str, target: str) -> None:
        net.peer(int(rid)).transfer_leader(int(target))
        net.stabilize()

    def _add(self, net: Network, rid: str, kind: str) -> None:
        types = {"voter": pb.ADD_NODE, "non-voting": pb.ADD_NON_VOTING, "witness": pb.ADD_WITNESS}
        new = int(rid)
        if new not in net.nodes:
            net.add_node(new, is_non_voting=kind == "non-voting", is_witness=kind == "witness")
        net.propose_config_change(net.leader(), types[kind], new)
        net.stabilize()

    def _remove(self, net: Network, rid: str) -> None:
        net.propose_config_change(net.leader(), pb.REMOVE_NODE, int(rid))
        net.stabilize()

    def _isolate(self, net: Network, rid: str) -> None:
        net.isolate(int(rid))

    def _cut(self, net: Network, a: str, b: str) -> None:
        net.cut_link(int(a), int(b))

    def _heal(self, net: Network) -> None:
        net.heal()

    def _crash(self, net: Network, rid: str) -> None:
        net.crash(int(rid))

    def _restart(self, net: Network, rid: str) -> None:
        net.restart(int(rid))
        net.stabilize()

    def _snapshot(self, net: Network, rid: str, overhead: str = "0") -> list[str]:
        index = net.take_snapshot(int(rid), int(overhead))
        log = net.nodes[int(rid)].log
        return [f"snapshot {rid} at {index}, log from {log.first_index()}"]

    def _status(self, net: Network) -> list[str]:
        out = []
        for rid, node in sorted(net.nodes.items()):
            if node.peer is None:
                out.append(f"{rid}: down")
                continue
            r = node.peer.raft
            out.append(
                f"{rid}: {r.role.name} term={r.term} leader={r.leader_id} "
                f"commit={r.log.committed} last={r.log.last_index()} applied={node.sm.applied}"
            )
        return out

    def _log(self, net: Network, rid: str) -> list[str]:
        log = net.peer(int(rid)).raft.log
        first = log.first_index()
        head = [f"snapshot at {first - 1}"] if first > 1 else []
        return head + [describe_entry(e) for e in log.entries(first, log.last_index() + 1, 1 << 30)]


def parse(text: str) -> list[tuple[list[str], str, list[str]]]:
    """Blocks of (comments, command, expected lines)."""
    blocks: list[tuple[list[str], str, list[str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        comments = []
        while i < len(lines) and (lines[i].startswith("#") or not lines[i].strip()):
            if lines[i].startswith("#"):
                comments.append(lines[i])
            i += 1
        if i >= len(lines):
            break
        command = lines[i]
        i += 1
        assert i < len(lines) and lines[i] == "----", f"expected ---- after {command!r}"
        i += 1
        expected = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        blocks.append((comments, command, expected))
    return blocks


def render(blocks: list[tuple[list[str], str, list[str]]]) -> str:
    out = []
    for comments, command, lines in blocks:
        out.extend(comments)
        out.append(command)
        out.append("----")
        out.extend(lines or ["ok"])
        out.append("")
    return "\n".join(out)


@pytest.mark.parametrize("path", sorted(TESTDATA.glob("*.txt")), ids=lambda p: p.stem)
def test_golden(path: Path) -> None:
    blocks = parse(path.read_text())
    script = Script()
    got = [(comments, command, script.run(command) or ["ok"]) for comments, command, _ in blocks]
    if REWRITE:
        path.write_text(render(got))
        return
    for (_, command, expected), (_, _, actual) in zip(blocks, got, strict=True):
        assert actual == expected, f"{path.name}: {command}"
