"""The README's "Clustered daemons" section, followed as a newcomer follows it.

The tutorial's sh blocks run in order in one bash session, as pasted (three
example-microd processes in the background, example-microctl for every step), and each
transcript the README shows is found in what its step printed; then "Your own daemon":
notesd.py started as the README starts it, and the client code run against it.

The only changes to what the README says: the state directories are the test's instead
of /tmp/mcN, and the addresses 127.0.0.1:9001-9003 are free ports of the same length
(their +1000 and +2000 free too), so that the tables keep their widths. cluster_walk.py
says which blocks are walked, and how a transcript is matched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from cluster_walk import ClusterSection, missing_lines, take_section
from readme_walk import Ports, Readme, Shell

from tests.cluster.processes import free_addresses

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BIN = Path(sys.executable).parent
MARK = "### "  # the shell's trace line before each command: "### <block> <command>"


@pytest.fixture(scope="module")
def section() -> ClusterSection:
    return take_section(Readme())


def newcomer_shell(cwd: Path, readme: str) -> Shell:
    """A terminal where `source .venv/bin/activate` was run, as the tutorial asks."""
    ports = Ports(readme)
    for number, address in enumerate(free_addresses(3, digits=4), start=1):
        ports.map[9000 + number] = int(address.rpartition(":")[2])
    shell = Shell(cwd, ports)
    shell.env["PATH"] = f"{BIN}{os.pathsep}{shell.env['PATH']}"
    shell.env["VIRTUAL_ENV"] = str(BIN.parent)
    shell.substitutions = {f"/tmp/mc{n}": str(cwd / f"mc{n}") for n in (1, 2, 3)}
    return shell


def session_script(section: ClusterSection, shell: Shell, pids: Path) -> str:
    """The tutorial's blocks as one bash script, each command traced on stdout."""
    lines = [
        "set -euo pipefail",
        f"trap 'echo; echo \"{MARK}${{README_BLOCK:-0}} $BASH_COMMAND\"' DEBUG",
    ]
    for number, step in enumerate(section.tutorial, start=1):
        lines.append(f"README_BLOCK={number}")
        lines.append(shell.script(step.commands.body.rstrip("\n")))
        if number == 1:  # the walk's own line: which processes to stop if the test fails
            lines.append(f'echo "$proc1 $proc2 $proc3" > {pids}')
    lines.append("trap - DEBUG")
    lines.append(
        'for pid in $proc1 $proc2 $proc3; do status=0; wait "$pid" || status=$?; '
        'echo "exit $status"; done'
    )
    return "\n".join(lines) + "\n"


def outputs(stdout: str) -> list[tuple[int, str, str]]:
    """(step, command, what it printed) in order, from the trace lines."""
    found = []
    for piece in stdout.split("\n" + MARK)[1:]:
        head, _, body = piece.partition("\n")
        step, _, command = head.partition(" ")
        if command.startswith("README_BLOCK="):
            continue
        found.append((int(step), command, body.strip("\n")))
    return found


def printed_by(found: list[tuple[int, str, str]], fragment: str) -> str:
    bodies = [body for _, command, body in found if fragment in command]
    assert bodies, f"no command with {fragment!r} ran: {[c for _, c, _ in found]}"
    return bodies[0]


def table_rows(text: str) -> dict[str, list[str]]:
    """The rows of a boxed table by their first cell (the header row left out)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return {
        cells[0]: cells
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[1:])
    }


def stop_left_over(pids: Path, root: Path) -> None:
    """SIGKILL, by PID, a daemon of the tutorial still running (its command line names
    the test's directory, so a reused PID is left alone)."""
    if not pids.exists():
        return
    for text in pids.read_text().split():
        try:
            process = psutil.Process(int(text))
            if str(root) in " ".join(process.cmdline()):
                process.send_signal(signal.SIGKILL)
                process.wait(30)
        except psutil.NoSuchProcess:
            continue


@pytest.fixture(scope="module")
def tutorial(
    section: ClusterSection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Shell, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("tutorial")
    shell = newcomer_shell(root, Readme().text)
    pids = root / "daemons.pids"
    script = session_script(section, shell, pids)
    assert "/tmp/mc" not in script and "127.0.0.1:900" not in script
    bash = subprocess.Popen(
        ["bash", "-c", script],
        cwd=root,
        env=shell.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = bash.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        bash.kill()
        stdout, stderr = bash.communicate()
    finally:
        stop_left_over(pids, root)
    yield shell, subprocess.CompletedProcess(bash.args, bash.returncode, stdout, stderr)


def test_the_tutorial_runs_as_pasted(
    section: ClusterSection, tutorial: tuple[Shell, subprocess.CompletedProcess[str]]
) -> None:
    shell, done = tutorial
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n{done.stdout[-4000:]}"
    found = outputs(done.stdout)
    root = shell.cwd

    # every transcript the README shows is what its step printed
    for number, step in enumerate(section.tutorial, start=1):
        if step.shows is None:
            continue
        printed = "\n".join(body for at, _, body in found if at == number)
        expected = [shell.ports.sub(line) for line in step.shows.lines()]
        missing = missing_lines(expected, printed)
        assert not missing, (
            f"README line {step.shows.line}: step {number} did not print {missing}; "
            f"it printed:\n{printed}"
        )

    # 1. three daemons, each warning that it is not in a cluster yet
    assert done.stderr.count("database is uninitialized: initialize this member") == 3
    addresses = [f"127.0.0.1:{shell.ports[9000 + n]}" for n in (1, 2, 3)]

    # 2. bootstrapped: mc1 alone, a voter, ONLINE, under its own fingerprint
    listings = [body for _, command, body in found if command.endswith("cluster list")]
    header = next(line for line in listings[0].splitlines() if line.startswith("| NAME"))
    assert header.replace(" ", "") == "|NAME|ADDRESS|ROLE|FINGERPRINT|STATUS|"
    first = table_rows(listings[0])
    assert list(first) == ["mc1"]
    assert first["mc1"][1:3] == [addresses[0], "voter"] and first["mc1"][4] == "ONLINE"

    # 3. joined: three members ONLINE, listed alike by mc1 (table) and mc2 (json)
    rows = table_rows(listings[1])
    assert sorted(rows) == ["mc1", "mc2", "mc3"]
    assert [rows[n][1] for n in ("mc1", "mc2", "mc3")] == addresses
    assert all(row[4] == "ONLINE" and row[2] in ("voter", "PENDING") for row in rows.values())
    members = json.loads(printed_by(found, "cluster list --format json"))
    assert {m["name"]: m["fingerprint"] for m in members} == {n: rows[n][3] for n in rows}
    assert all(m["certificate"].startswith("-----BEGIN CERTIFICATE-----") for m in members)

    # 4. mc3 removed, from mc1: uninitialized again
    assert not (root / "mc3" / "daemon.json").exists()

    # 5. the core tables and the example's, the two members left, the row replicated
    tables = table_rows(printed_by(found, "sqlite_master"))
    assert {
        "core_cluster_members",
        "core_token_records",
        "schemas",
        "extended_table",
        "some_other_table",
    } <= set(tables)
    heartbeats = table_rows(printed_by(found, "core_cluster_members"))
    assert sorted(heartbeats) == ["mc1", "mc2"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", heartbeats["mc1"][2])

    # 6. the extended endpoint: mc1 messaged mc2, the only other member left
    assert printed_by(found, "extended 127.0.0.1").splitlines() == [
        f'cluster member at address "{addresses[1]}" received message "Testing 1 2 3..." '
        f'from cluster member at address "{addresses[0]}"'
    ]

    # 7. the token listed, then revoked; the daemons stopped cleanly by kill (SIGTERM)
    assert list(table_rows(printed_by(found, "tokens list"))) == ["mc4"]
    assert done.stdout.rstrip().endswith("exit 0\nexit 0\nexit 0"), done.stdout[-500:]
    for number in (1, 2, 3):
        assert not (root / f"mc{number}" / "control.socket").exists()
    assert (root / "mc1" / "daemon.json").exists()


def test_your_own_daemon(section: ClusterSection, tmp_path: Path) -> None:
    """notesd.py as the README starts it (`python notesd.py /tmp/notes1`), the client
    code run against it; both from the newcomer's shell."""
    (tmp_path / "notesd.py").write_text(section.daemon_code.body)
    state_dir = tmp_path / "notes1"
    (address,) = free_addresses(1)
    shell = newcomer_shell(tmp_path, "")
    environment = shell.environment()
    with open(tmp_path / "notesd.log", "wb") as log:
        notesd = subprocess.Popen(
            ["python", "notesd.py", str(state_dir)],
            cwd=tmp_path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        client_code = section.client_code.body.replace("/tmp/notes1", str(state_dir))
        client = subprocess.run(
            ["python", "-c", client_code.replace("127.0.0.1:9101", address)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        notes_log = (tmp_path / "notesd.log").read_text(errors="replace")
        assert client.returncode == 0, client.stderr[-3000:] + notes_log[-3000:]
        assert client.stdout.splitlines() == ["1", "ONLINE"]  # what its comments say
        notesd.send_signal(signal.SIGTERM)
        assert notesd.wait(60) == 0
    finally:
        if notesd.poll() is None:
            notesd.kill()
            notesd.wait(30)
    assert not (state_dir / "control.socket").exists()
