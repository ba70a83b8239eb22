"""example-helloworld as a command: bad input gets one clear line and exit code 1, never
a traceback; piped input works and its end closes the NodeHost (exit code 0)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from helloworld_cluster import COMMAND, START_TIMEOUT, free_ports

pytestmark = pytest.mark.integration


def run(
    cwd: Path, *flags: str, addresses: list[str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("GRPC_VERBOSITY", None)
    if addresses is not None:
        env["HELLOWORLD_ADDRESSES"] = ",".join(addresses)
    return subprocess.run(
        [COMMAND, *flags],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def local_addresses() -> list[str]:
    return [f"127.0.0.1:{port}" for port in free_ports(3)]


def test_the_command_refuses_an_unknown_id_without_address(tmp_path: Path) -> None:
    done = run(tmp_path, "-replicaid", "5")
    assert done.returncode == 1
    assert done.stderr == "node id must be 1, 2 or 3 when address is not specified\n"
    assert not (tmp_path / "example-data").exists()


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        done = run(tmp_path, "-replicaid", "1", addresses=[address, *local_addresses()[1:]])
    assert done.returncode == 1
    assert done.stdout == f"node address: {address}\n"
    assert done.stderr.startswith(
        f"cannot start replica 1: listen_address: cannot listen on {address}"
    )
    assert done.stderr.count("\n") == 1  # gRPC's own copy of the error stays quiet


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("node1 is a file", "node_host_dir"),
        ("nodehost.json is not JSON", "nodehost.json is damaged"),
        ("the log store is garbage", "node_host_dir: store at"),
    ],
)
def test_an_unknown_state_in_the_data_directory_is_one_clear_line(
    tmp_path: Path, damage: str, message: str
) -> None:
    node1 = tmp_path / "example-data" / "helloworld-data" / "node1"
    node1.parent.mkdir(parents=True)
    if damage == "node1 is a file":
        node1.write_text("not a directory\n")
    elif damage == "nodehost.json is not JSON":
        node1.mkdir()
        (node1 / "nodehost.json").write_text("{ garbage\n")
    else:
        (node1 / "logdb").mkdir(parents=True)
        for name in ("CURRENT", "MANIFEST-000001"):
            (node1 / "logdb" / name).write_text("junk\n")
    done = run(tmp_path, "-replicaid", "1", addresses=local_addresses())
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("cannot start replica 1: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_piped_lines_are_proposed_and_the_end_of_input_closes(tmp_path: Path) -> None:
    addresses = local_addresses()
    # Replica 1 alone has no quorum: the line is tried, fails after the timeout, and
    # the end of the input then closes the NodeHost cleanly.
    done = run(tmp_path, "-replicaid", "1", addresses=addresses, stdin="hello\nadd x\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"node address: {addresses[0]}\n")
    assert "usage: add <host:port> <replica id>" in done.stdout
    assert "SyncPropose returned error " in done.stderr
    assert "Traceback" not in done.stderr

    # Its data now belongs to that address: moved elsewhere, it refuses to start.
    moved = [f"127.0.0.1:{port}" for port in free_ports(3)]
    done = run(tmp_path, "-replicaid", "1", addresses=moved)
    assert done.returncode == 1
    assert "raft_address" in done.stderr and addresses[0] in done.stderr
