"""The README's remote-client commands run as a user runs them, against three nodehost
members in separate processes (on free ports instead of 9001 and 9002): the console
typed into in a pseudo-terminal, its -c and script forms, and the SQLAlchemy example."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.pty_terminal import CTRL_D, Terminal
from tests.sqlite.wire_clusters import NodehostCluster

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def remote_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("### Remote clients")
    return text[start : text.index("\n### ", start + 1)]


def blocks(kind: str) -> list[str]:
    """The code blocks of the section whose fence says `kind` ("" for a bare fence)."""
    found: list[str] = []
    fence: str | None = None  # the kind of the block we are in, None between blocks
    lines: list[str] = []
    for line in remote_section().splitlines():
        if not line.startswith("```"):
            lines.append(line)
        elif fence is None:
            fence, lines = line[3:].strip(), []
        else:
            if fence == kind:
                found.append("\n".join(lines) + "\n")
            fence = None
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodehostCluster]:
    started = NodehostCluster(tmp_path_factory.mktemp("readme"))
    yield started
    started.stop_all()


def localise(text: str, cluster: NodehostCluster) -> str:
    for documented, real in zip(
        ["127.0.0.1:9001", "127.0.0.1:9002"], cluster.addresses[:2], strict=True
    ):
        text = text.replace(documented, real)
    return text


def test_the_console_session_as_shown(cluster: NodehostCluster, tmp_path: Path) -> None:
    session = localise(next(b for b in blocks("") if "demo> " in b), cluster).splitlines()
    command = shlex.split(session[0])
    assert command[0] == "nodehost-sql"
    terminal = Terminal(
        [str(BIN / "nodehost-sql"), *command[1:], "--history", str(tmp_path / "history")],
        cwd=str(tmp_path),
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        for line in session[1:]:
            terminal.wait_for_prompt(60)
            typed = line.removeprefix("demo> ")
            terminal.type(typed)
            if typed == "SELECT * FROM fruit;":
                terminal.expect(r"apple \| +1\.5", timeout=30)
            if typed == ".leader":
                terminal.expect(rf"^{re.escape(cluster.leader())} \(id \d+\)$", timeout=30)
        terminal.wait_for_prompt(60)
        terminal.press(CTRL_D)
        assert terminal.wait(30) == 0
    finally:
        terminal.close()
    assert "Error" not in terminal.text


def test_the_script_forms_as_shown(cluster: NodehostCluster, tmp_path: Path) -> None:
    (tmp_path / "fruit.sql").write_text(
        "CREATE TABLE IF NOT EXISTS fruit (name TEXT, kg REAL);\n"
        "INSERT INTO fruit VALUES ('pear', 2);\n"
    )
    script = next(b for b in blocks("") if " -c " in b)
    lines = localise(script, cluster).splitlines()
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    for line in reversed(lines):  # the script first: it creates the table
        done = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert done.stderr == ""
    assert re.search(r"^ +\d+$", done.stdout, re.M), done.stdout  # the count


def test_the_sqlalchemy_example_runs(cluster: NodehostCluster, tmp_path: Path) -> None:
    code = localise(next(b for b in blocks("python") if "sqlalchemy" in b), cluster)
    (tmp_path / "orm.py").write_text(code)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "orm.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "['hello', 'world']"
