"""example-microctl and example-microd: --help everywhere, and bad input answered with
"Error: ..." (exit 1) while nothing is left half-done. The installed commands run as
processes where their wiring is the point (help, a daemon not running, init, shutdown,
a second daemon on one directory); the other calls run the command's main() in this
process (`ctl_here`: the same parser, client and output, against the real daemons), as
the README's tutorial (tests/examples/test_readme_cluster.py) runs every step as a
process already."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from examples.microcluster import microctl, microd
from nodehost.cluster import BadRequest, Conflict, JoinToken, NotFound, Unavailable
from tests.cluster.conftest import Daemons
from tests.cluster.forming import Node
from tests.cluster.processes import BIN, ROOT, ctl, ctl_here, fails, free_addresses, ok

SUBCOMMANDS = [
    ["init"],
    ["cluster"],
    ["cluster", "list"],
    ["cluster", "remove"],
    ["tokens"],
    ["tokens", "add"],
    ["tokens", "list"],
    ["tokens", "remove"],
    ["sql"],
    ["extended"],
    ["waitready"],
    ["shutdown"],
]


def test_the_programs_have_help() -> None:
    """The installed commands, as a user runs them (their subcommands' help is the same
    parser, checked in-process below: a process start apiece costs CI time)."""
    for program in ("example-microd", "example-microctl"):
        result = subprocess.run(
            [str(BIN / program), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {program} "), result.stdout
    assert "init" in result.stdout and "tokens" in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        microctl.main(["--state-dir", "x", *command, "--help"])
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"usage: example-microctl {' '.join(command)}"), printed
    if command == ["cluster", "list"]:
        assert "{table,csv,json,yaml}" in printed
    if command == ["cluster", "remove"]:
        assert "--force" in printed
    if command == ["tokens", "add"]:
        assert "--expire-after" in printed


def row_role(csv_row: str) -> str:
    """A joiner is PENDING until the next heartbeat gives it its role."""
    role = csv_row.split(",")[2]
    assert role in ("voter", "PENDING"), csv_row
    return role


def test_a_daemon_that_is_not_running(tmp_path: Path) -> None:
    fails(
        ctl(tmp_path / "nothing", "cluster", "list"), "the daemon is not running", "control.socket"
    )
    fails(ctl_here(tmp_path / "nothing", "extended", "127.0.0.1:1"), "holds no cluster membership")


def test_bad_daemon_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process: the programs' main() is what their installed scripts call."""
    directory = str(tmp_path / "d")
    assert microd.main(["--state-dir", directory, "--heartbeat", "often"]) == 1
    assert "Error: 'often' is not a duration" in capsys.readouterr().err
    assert microd.main(["--state-dir", directory, "--heartbeat", "0"]) == 1
    assert "Error: --heartbeat must be a positive duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        microd.main([])
    assert exited.value.code == 2 and "--state-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        microctl.main(["--state-dir", directory, "init", "mc1", "127.0.0.1:9001"])
    assert exited.value.code == 2
    assert "one of the arguments --bootstrap --token" in capsys.readouterr().err
    config = ["init", "mc1", "127.0.0.1:9001", "--bootstrap", "--config", "zone"]
    assert microctl.main(["--state-dir", directory, *config]) == 1
    assert "Error: --config 'zone' is not KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # nothing was started, nothing was made


@pytest.mark.timeout(900)
def test_bad_input_changes_nothing(daemons: Daemons) -> None:
    """Through example-microctl where the words matter, through the client elsewhere
    (the same daemon code answers both)."""
    mc1_address, mc2_address, dead = free_addresses(3)
    node1 = Node("mc1", mc1_address, daemons.microd("mc1"))
    node1.process.wait_answering()
    directory = node1.process.state_dir
    client = node1.client

    # a second daemon on the same directory
    second = daemons.microd("mc1")
    assert second.process is not None and second.process.wait(120) == 1
    assert "another daemon is running with the state directory" in second.logs()

    # init mistakes, each leaving the daemon uninitialized
    fails(
        ctl_here(directory, "init", "c/1", mc1_address, "--bootstrap"),
        "member name 'c/1' is not valid",
    )
    with pytest.raises(BadRequest, match="is not host:port"):
        client.bootstrap("mc1", "nowhere")
    with pytest.raises(BadRequest, match="must be below 63536"):
        client.bootstrap("mc1", "127.0.0.1:64000")
    with pytest.raises(BadRequest, match="not a wildcard"):
        client.bootstrap("mc1", "0.0.0.0:9001")
    with pytest.raises(BadRequest, match="exactly one of --bootstrap and --token"):
        client.request("POST", "/core/control/init", {"name": "mc1", "address": mc1_address})
    host, port = mc1_address.rsplit(":", 1)
    held = socket.socket()
    held.bind((host, int(port) + 1000))  # the database port of that address is taken
    try:
        with pytest.raises(Conflict, match="the database cannot use"):
            client.bootstrap("mc1", mc1_address)
    finally:
        held.close()
    with pytest.raises(Unavailable, match="database is uninitialized"):
        client.members()
    assert sorted(p.name for p in directory.iterdir()) == ["control.socket", "daemon.lock"]

    ok(ctl(directory, "init", "mc1", mc1_address, "--bootstrap", "--config", "zone=a"))
    # the last voter stays, even with --force
    with pytest.raises(Conflict, match="last member and its last voter"):
        client.remove_member("mc1")
    fails(ctl_here(directory, "cluster", "remove", "mc1", "--force"), "last voter")
    assert [(m["name"], m["role"]) for m in client.members()] == [("mc1", "voter")]
    fails(
        ctl_here(directory, "init", "mc1", mc1_address, "--bootstrap"),
        "already initialized as member 'mc1'",
    )
    token = ok(ctl_here(directory, "tokens", "add", "mc2")).strip()
    with pytest.raises(Conflict, match="already initialized"):
        client.join("mc2", mc2_address, token)
    fails(ctl_here(directory, "tokens", "add", "bad_name"), "token name 'bad_name' is not valid")
    with pytest.raises(BadRequest, match="is not a duration"):
        client.add_token("mc5", expire_after="soon")
    with pytest.raises(NotFound, match="no join token for 'nobody'"):
        client.revoke_token("nobody")
    with pytest.raises(NotFound, match="no member named 'nobody'"):
        client.remove_member("nobody")
    tokens = json.loads(ok(ctl_here(directory, "tokens", "list", "--format", "json")))
    assert [t["name"] for t in tokens] == ["mc2"] and tokens[0]["expires_at"].endswith("Z")

    # members unreachable during a join: every one listed is tried, in order
    node2 = Node("mc2", mc2_address, daemons.microd("mc2"))
    node2.process.wait_answering()
    real = JoinToken.decode(token)
    unreachable = dataclasses.replace(real, join_addresses=(dead,)).encode()
    message = fails(
        ctl_here(node2.process.state_dir, "init", "mc2", mc2_address, "--token", unreachable),
        "could not join through any member",
        dead,
        "nothing was changed",
    )
    assert "connection refused" in message
    assert sorted(p.name for p in node2.process.state_dir.iterdir()) == [
        "control.socket",
        "daemon.lock",
    ]
    assert [t["name"] for t in client.tokens()] == ["mc2"]  # not used up
    detour = dataclasses.replace(real, join_addresses=(dead, mc1_address)).encode()
    node2.client.join("mc2", mc2_address, detour)
    members = yaml.safe_load(
        ok(ctl_here(node2.process.state_dir, "cluster", "list", "--format", "yaml"))
    )
    assert [m["name"] for m in members] == ["mc1", "mc2"]
    assert members[0]["certificate"].startswith("-----BEGIN CERTIFICATE-----\n")
    rows = ok(ctl_here(directory, "cluster", "list", "--format", "csv")).splitlines()
    assert [row.split(",")[:3] for row in rows] == [
        ["mc1", mc1_address, "voter"],
        ["mc2", mc2_address, row_role(rows[1])],
    ]

    # SQL: errors name the problem, and a failing batch applies nothing
    fails(ctl_here(directory, "sql", "SELEC 1"), 'near "SELEC": syntax error')
    with pytest.raises(BadRequest, match="no such table: missing"):
        client.sql("SELECT * FROM missing")
    with pytest.raises(BadRequest, match="the query is empty"):
        client.sql("   ")
    with pytest.raises(BadRequest, match=r"unknown command '\.tables'"):
        client.sql(".tables")
    batch = (
        "INSERT INTO extended_table (key, value) VALUES ('a', '1');"
        "INSERT INTO extended_table (key) VALUES ('b')"
    )
    with pytest.raises(BadRequest, match=r"NOT NULL constraint failed.*\(statement 2\)"):
        client.sql(batch)
    count = node2.client.sql("SELECT count(*) FROM extended_table")
    assert count["results"][0]["rows"] == [[0]]
    client.sql("INSERT INTO extended_table (key, value) VALUES ('a', '1')")
    with pytest.raises(BadRequest, match=r"UNIQUE constraint failed: extended_table\.key"):
        client.sql("INSERT INTO extended_table (key, value) VALUES ('a', '2')")
    schema = ok(ctl_here(node2.process.state_dir, "sql", ".schema"))
    assert "CREATE TABLE core_cluster_members" in schema and "_nodehost_" not in schema
    dump = node2.client.sql(".dump")["dump"]
    assert dump.startswith("BEGIN TRANSACTION;")
    assert "INSERT INTO \"extended_table\" VALUES(1, 'a', '1');" in dump

    # the example's endpoint through the control socket, and a clean shutdown
    assert ok(ctl_here(directory, "extended")).startswith(
        f'cluster member at address "{mc2_address}"'
    )
    ok(ctl(node2.process.state_dir, "shutdown"))
    assert node2.process.process is not None and node2.process.process.wait(60) == 0
