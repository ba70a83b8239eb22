"""Every online subcommand of `nodehost`, run as a user runs it, against three real
NodeHost processes (their admin services on unix sockets); table and JSON output both
checked, and bad input answered with one line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.tools import cli
from tests.host.cluster import free_ports
from tests.tools.hosts import Group, Host, nodehost_command, run_nodehost, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    g = Group(tmp_path_factory.mktemp("online"), shards=[1, 2])
    try:
        g.start()
        g.leader(1)
        g.leader(2)
        yield g
    finally:
        g.stop()


def ok(result: object) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)  # type: ignore[attr-defined]
    return str(result.stdout)  # type: ignore[attr-defined]


def one_line_error(result: object, code: int, *needles: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = str(result.stderr).strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""  # type: ignore[attr-defined]
    return lines[0]


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines() if line.strip()]


def test_info_shows_the_host_and_every_replica(group: Group) -> None:
    host = group.hosts[0]
    text = ok(host.nodehost("info"))
    assert f"node host id  {host.node_host_id}" in text
    assert f"raft address  {host.address}" in text
    table = {r[0]: r for r in rows(text) if r[0] in ("1", "2")}
    members = ",".join(f"{h.replica_id}={h.address}" for h in group.hosts)
    for shard in ("1", "2"):
        _shard_id, replica, role, leader, term = table[shard][:5]
        assert replica == "1"
        assert role in ("leader", "follower")
        assert (role == "leader") == (leader == "1")
        assert int(term) >= 1
        assert table[shard][-1] == members

    document = json.loads(ok(host.nodehost("info", "--format", "json")))
    assert document["node_host_id"] == host.node_host_id
    assert document["raft_address"] == host.address
    assert [s["shard_id"] for s in document["shards"]] == [1, 2]
    for s in document["shards"]:
        assert s["replica_id"] == 1
        assert s["state_machine"] == "REGULAR"
        assert s["membership"]["voters"] == {str(h.replica_id): h.address for h in group.hosts}
        assert s["applied_index"] >= 3
    assert document["stopped"] == []


def test_members_linearizable_and_local(group: Group) -> None:
    host = group.hosts[1]
    text = ok(host.nodehost("members", "1"))
    assert rows(text)[0] == ["REPLICA", "ROLE", "TARGET"]
    assert rows(text)[1:4] == [[str(h.replica_id), "voter", h.address] for h in group.hosts]
    assert "removed: none" in text
    for extra in ([], ["--local"]):
        document = json.loads(ok(host.nodehost("--format", "json", "members", "1", *extra)))
        assert document["shard_id"] == 1
        assert document["voters"] == {str(h.replica_id): h.address for h in group.hosts}
        assert document["non_votings"] == {} and document["witnesses"] == {}


def test_leader_names_the_replica_and_its_address(group: Group) -> None:
    leader = group.leader(1)
    for host in group.hosts:
        document = json.loads(ok(host.nodehost("leader", "1", "--format", "json")))
        assert document["leader_id"] == leader.replica_id
        assert document["known"] is True
        assert document["target"] == leader.address
    text = ok(group.hosts[2].nodehost("leader", "1"))
    assert text.startswith(f"shard 1: replica {leader.replica_id} at {leader.address} leads (term ")


def test_transfer_moves_leadership_and_waits_for_it(group: Group) -> None:
    leader = group.leader(1)
    target = next(h for h in group.hosts if h is not leader)
    text = ok(leader.nodehost("transfer", "1", str(target.replica_id)))
    assert f"shard 1: replica {target.replica_id} at {target.address} leads" in text
    assert group.leader(1) is target
    back = next(h for h in group.hosts if h is not target)
    document = json.loads(
        ok(target.nodehost("--format", "json", "transfer", "1", str(back.replica_id)))
    )
    assert document["leader_id"] == back.replica_id
    one_line_error(
        back.nodehost("transfer", "1", "9"), 1, "not a voting member", "InvalidOperation"
    )


def test_add_and_remove_each_kind_of_member(group: Group) -> None:
    host = group.hosts[0]
    port_a, port_b, port_c = free_ports(3)
    text = ok(host.nodehost("add", "1", "4", f"127.0.0.1:{port_a}", "--non-voting"))
    assert text.splitlines()[0] == f"shard 1: replica 4 added as non-voting at 127.0.0.1:{port_a}"
    assert ["4", "non-voting", f"127.0.0.1:{port_a}"] in rows(text)
    document = json.loads(ok(host.nodehost("--format", "json", "remove", "1", "4")))
    assert "4" not in document["non_votings"] and 4 in document["removed"]

    document = json.loads(
        ok(host.nodehost("--format", "json", "add", "1", "5", f"127.0.0.1:{port_b}", "--witness"))
    )
    assert document["witnesses"] == {"5": f"127.0.0.1:{port_b}"}
    text = ok(host.nodehost("remove", "1", "5"))
    assert text.splitlines()[0] == "shard 1: replica 5 removed"
    assert "removed: 4, 5" in text

    document = json.loads(
        ok(host.nodehost("--format", "json", "add", "1", "6", f"127.0.0.1:{port_c}"))
    )
    assert document["voters"]["6"] == f"127.0.0.1:{port_c}"
    ok(host.nodehost("remove", "1", "6"))
    # A removed id never comes back.
    one_line_error(
        host.nodehost("add", "1", "4", f"127.0.0.1:{port_a}"), 1, "can never be added back"
    )
    members = json.loads(ok(host.nodehost("--format", "json", "members", "1")))
    assert members["voters"] == {str(h.replica_id): h.address for h in group.hosts}
    assert members["removed"] == [4, 5, 6]


def test_snapshot_and_export(group: Group, tmp_path: Path) -> None:
    host = group.hosts[1]
    host.put("snap-key", "snap-value")
    document = json.loads(ok(host.nodehost("--format", "json", "snapshot", "1")))
    assert document["shard_id"] == 1 and document["index"] > 0 and document["path"] is None
    export = tmp_path / "export"
    text = ok(host.nodehost("snapshot", "1", "--export", str(export)))
    assert text.startswith("shard 1: snapshot at index ")
    path = Path(text.strip().rsplit(" exported to ", 1)[1])
    assert path.parent == export and (path / "snapshot.metadata").is_file()


def test_stop_and_remove_data(group: Group) -> None:
    host = group.hosts[2]
    # Its data cannot go while the replica runs, nor while the shard counts on it.
    one_line_error(host.nodehost("remove-data", "2", "3"), 1, "ShardNotStopped", "running")
    ok(group.hosts[0].nodehost("remove", "2", "3"))
    text = ok(host.nodehost("stop", "2"))
    assert text.strip() == "shard 2: replica 3 stopped"
    info = json.loads(ok(host.nodehost("--format", "json", "info")))
    assert [s["shard_id"] for s in info["shards"]] == [1]
    assert info["stopped"] == [{"shard_id": 2, "replica_id": 3}]
    document = json.loads(ok(host.nodehost("--format", "json", "remove-data", "2", "3")))
    assert document == {"shard_id": 2, "replica_id": 3, "removed": True}
    info = json.loads(ok(host.nodehost("--format", "json", "info")))
    assert info["stopped"] == []
    one_line_error(host.nodehost("stop", "2"), 1, "shard 2", "ShardNotFound")


def test_bad_input_gets_one_line_and_a_non_zero_exit(group: Group, tmp_path: Path) -> None:
    host = group.hosts[0]
    one_line_error(host.nodehost("members", "9"), 1, "shard 9", "ShardNotFound")
    one_line_error(host.nodehost("leader", "9"), 1, "shard 9", "ShardNotFound")
    one_line_error(host.nodehost("members", "x"), 2, "SHARD", "'x' is not an id")
    one_line_error(host.nodehost("add", "1", "7", "no-port"), 1, "not host:port")
    one_line_error(host.nodehost("add", "1"), 2, "required")
    one_line_error(host.nodehost("info", "--timeout", "-1"), 2, "--timeout")
    one_line_error(run_nodehost("info"), 1, "no admin address")
    one_line_error(
        run_nodehost("info", "--admin", f"unix:{tmp_path / 'none.sock'}"), 1, "nothing serves"
    )
    one_line_error(run_nodehost("frobnicate"), 2, "invalid choice")
    # Offline commands refuse a running host's directory.
    one_line_error(run_nodehost("inspect", str(host.dir)), 1, "in use by a running NodeHost")
    one_line_error(
        run_nodehost("recover", str(host.dir), "--shard", "1", "--members", f"1={host.address}"),
        1,
        "in use by a running NodeHost",
    )
    one_line_error(
        run_nodehost("recover", str(host.dir), "--shard", "1", "--members", "1=a:1,2"),
        1,
        "entry '2' is not ID=TARGET",
    )
    one_line_error(run_nodehost("remove-data", "1", "1", "--force"), 2, "--dir")


def test_the_admin_address_from_the_environment(group: Group) -> None:
    host = group.hosts[1]
    env = dict(os.environ, NODEHOST_ADMIN=host.admin)
    result = subprocess.run(
        [*nodehost_command(), "--format", "json", "info"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert json.loads(ok(result))["node_host_id"] == host.node_host_id


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [
        "info", "members", "leader", "add", "remove", "transfer", "snapshot", "stop",
        "remove-data", "inspect", "recover", "import",
    ]  # fmt: skip
    top = ok(run_nodehost("--help"))  # the installed command, once
    for command in commands:
        assert command in top
        with pytest.raises(SystemExit) as done:
            cli.run([command, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: nodehost {command}")
        assert "--format" in text


def test_a_host_at_a_stale_admin_socket(tmp_path: Path) -> None:
    """A socket left by a killed host is replaced when the host starts again."""
    host = Host(tmp_path, "solo", 1)
    host.spec["members"] = {"1": host.address}
    try:
        host.start()
        host.kill()
        assert host.admin_socket.exists()
        host.start()
        document = json.loads(ok(host.nodehost("--format", "json", "info")))
        assert document["node_host_id"] == host.node_host_id
        assert oct(host.admin_socket.stat().st_mode & 0o777) == oct(0o600)
        wait_for(
            "a leader",
            lambda: json.loads(ok(host.nodehost("--format", "json", "leader", "1")))["known"],
        )
    finally:
        if host.alive():
            host.stop()
    assert not host.admin_socket.exists()
