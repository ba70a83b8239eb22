"""The README's cluster tutorial, run as a newcomer pastes it: its bash blocks in one
shell, three example-microd processes, every example-microctl step; then the "Your own
daemon" example. State directories are the test's and addresses free ports instead of
/tmp/mcN and 9001-9003; nothing else is changed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.conftest import Daemons
from tests.cluster.processes import BIN, ROOT, DaemonProcess, free_addresses

README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## Clustered daemons") : README.index("## example-kvstore")]


def blocks(start: str, end: str, language: str) -> list[str]:
    part = SECTION[SECTION.index(start) : SECTION.index(end)]
    return re.findall(rf"```{language}\n(.*?)```", part, re.S)


def steps(output: str) -> list[tuple[str, str]]:
    """(command, its output) in order, from the shell's DEBUG-trap markers."""
    found = []
    for piece in output.split("\n### ")[1:]:
        head, _, body = piece.partition("\n")
        found.append((head.split(" ", 1)[1], body))
    return found


def output_of(found: list[tuple[str, str]], fragment: str) -> str:
    """The output of the first command whose text contains `fragment`."""
    matches = [body for head, body in found if fragment in head]
    assert matches, f"no command with {fragment!r} ran:\n{[h for h, _ in found]}"
    return matches[0]


def _kill_if_ours(pid: int, tmp_path: Path) -> None:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # gone
    if str(tmp_path).encode() in command:
        os.kill(pid, signal.SIGKILL)


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of a boxed table by their first cell (the header line left out)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


@pytest.mark.timeout(900)
def test_the_readme_tutorial(tmp_path: Path) -> None:
    script = "\n".join(blocks("### Tutorial: three members", "### Your own daemon", "bash"))
    addresses = free_addresses(3)
    for number, address in enumerate(addresses, start=1):
        script = script.replace(f"127.0.0.1:900{number}", address)
        script = script.replace(f"/tmp/mc{number}", str(tmp_path / f"mc{number}"))
    assert "/tmp/mc" not in script and "127.0.0.1:900" not in script
    wrapper = (
        "set -euo pipefail\n"
        "trap 'echo; echo \"### ${!:-0} $BASH_COMMAND\"' DEBUG\n" + script + "\ntrap - DEBUG\n"
        'for pid in $proc1 $proc2 $proc3; do status=0; wait $pid || status=$?; echo "exit $pid $status"; done\n'
    )
    environment = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    shell = subprocess.Popen(
        ["bash", "-c", wrapper],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )
    try:
        stdout, stderr = shell.communicate(timeout=840)
    finally:
        if shell.poll() is None:
            shell.kill()
            stdout, stderr = shell.communicate()
        for pid in {int(p) for p in re.findall(r"### (\d+) ", stdout or "")} - {0}:
            _kill_if_ours(pid, tmp_path)  # a daemon the tutorial left running
    assert shell.returncode == 0, f"{stderr[-4000:]}\n{stdout[-4000:]}"
    found = steps(stdout)

    # 1. three daemons, each uninitialized
    assert stderr.count("database is uninitialized") >= 3

    # 2. bootstrap: mc1 alone, a voter, ONLINE
    listing = [body for head, body in found if head.endswith("cluster list")]
    header = next(line for line in listing[0].splitlines() if line.startswith("| NAME"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "NAME",
        "ADDRESS",
        "ROLE",
        "FINGERPRINT",
        "STATUS",
    ]
    first = table_rows(listing[0])
    assert list(first) == ["mc1"]
    assert first["mc1"][1:3] == [addresses[0], "voter"] and first["mc1"][4] == "ONLINE"
    assert re.fullmatch(r"[0-9a-f]{64}", first["mc1"][3])

    # 3. joined: three members, ONLINE, listed alike from mc1 (table) and mc2 (json)
    rows = table_rows(listing[1])
    assert sorted(rows) == ["mc1", "mc2", "mc3"]
    assert [rows[n][1] for n in ("mc1", "mc2", "mc3")] == addresses
    assert all(row[4] == "ONLINE" for row in rows.values())
    assert all(row[2] in ("voter", "PENDING") for row in rows.values())
    members = json.loads(
        output_of(
            found,
            "example-microctl --state-dir " + str(tmp_path / "mc2") + " cluster list --format json",
        )
    )
    assert {m["name"]: m["fingerprint"] for m in members} == {n: rows[n][3] for n in rows}
    assert all(m["certificate"].startswith("-----BEGIN CERTIFICATE-----") for m in members)

    # 5. SQL: the core and the example's tables, the members, one row replicated
    tables = output_of(found, "sqlite_master")
    for table in (
        "core_cluster_members",
        "core_token_records",
        "schemas",
        "extended_table",
        "some_other_table",
    ):
        assert f"| {table}" in tables
    heartbeats = table_rows(output_of(found, "core_cluster_members"))
    assert sorted(heartbeats) == ["mc1", "mc2"]  # mc3 was removed in step 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", heartbeats["mc1"][2])
    assert output_of(found, "insert into extended_table").strip() == "Rows affected: 1"
    replicated = table_rows(output_of(found, "select key, value"))
    assert replicated["some_key"] == ["some_key", "some_value"]

    # 6. the extended endpoint
    extended = output_of(found, f"extended {addresses[0]}")
    assert extended.strip() == (
        f'cluster member at address "{addresses[1]}" received message "Testing 1 2 3..." '
        f'from cluster member at address "{addresses[0]}"'
    )

    # 7. tokens listed, then revoked; the daemons exit cleanly on SIGTERM
    token_list = table_rows(output_of(found, "tokens list"))
    assert list(token_list) == ["mc4"]
    assert re.search(r"exit \d+ 0\nexit \d+ 0\nexit \d+ 0", stdout), stdout[-500:]
    for number in (1, 2, 3):
        assert not (tmp_path / f"mc{number}" / "control.socket").exists()
    assert not (tmp_path / "mc3" / "daemon.json").exists()  # removed: uninitialized
    assert (tmp_path / "mc1" / "daemon.json").exists()


@pytest.mark.timeout(600)
def test_the_readme_own_daemon(tmp_path: Path, daemons: Daemons) -> None:
    daemon_code, client_code = blocks("### Your own daemon", "### How it works", "python")
    (tmp_path / "notesd.py").write_text(daemon_code)
    state_dir = tmp_path / "notes1"
    (address,) = free_addresses(1)
    notesd = DaemonProcess(
        state_dir, [sys.executable, str(tmp_path / "notesd.py")], tmp_path / "notesd.log"
    )
    notesd.command = [sys.executable, str(tmp_path / "notesd.py"), str(state_dir)]
    daemons.started.append(notesd)
    # notesd takes its directory as its argument, not --state-dir
    with open(notesd.log, "wb") as log:
        notesd.process = subprocess.Popen(
            notesd.command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path
        )
    client_code = client_code.replace("/tmp/notes1", str(state_dir)).replace(
        "127.0.0.1:9101", address
    )
    done = subprocess.run(
        [sys.executable, "-c", client_code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:] + notesd.logs()
    assert done.stdout.splitlines() == ["1", "ONLINE"]
    assert notesd.stop() == 0
