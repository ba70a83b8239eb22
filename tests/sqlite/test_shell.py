"""nodehost-sql, run as a person runs it: in a pseudo-terminal (prompt_toolkit, history,
a statement continued over lines, Ctrl-D), with -c, and with a script on stdin, against
three nodehost members in separate processes (and dqlite-demo where installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost.sqlite.shell import format_table
from tests.examples.pty_terminal import CTRL_C, CTRL_D, Terminal
from tests.sqlite.wire_clusters import KINDS, WireCluster, start

pytestmark = pytest.mark.integration

UP = "\x1b[A"
SHELL = shutil.which("nodehost-sql", path=str(Path(sys.executable).parent))
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=KINDS)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WireCluster]:
    started = start(request.param, tmp_path_factory.mktemp(f"shell-{request.param}"))
    yield started
    started.stop_all()


def database() -> str:
    return f"sh_{uuid.uuid4().hex[:8]}"


def run(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    assert SHELL is not None, "the nodehost-sql console script is not installed (uv sync)"
    return subprocess.run(
        [SHELL, *args], input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


# -- output ---------------------------------------------------------------------------------


def test_tables_are_aligned_by_display_width() -> None:
    table = format_table(
        ["id", "name", "price", "data"],
        [(1, "tea", 2.5, None), (10, "日本茶", None, b"\x00\xff")],
    )
    assert table.splitlines() == [
        "id | name   | price | data",
        "---+--------+-------+--------",
        " 1 | tea    |   2.5 | NULL",
        "10 | 日本茶 |  NULL | x'00ff'",
    ]
    assert format_table(["a"], [("two\nlines",)]).splitlines()[-1] == "two\\nlines"


# -- a person at the console ------------------------------------------------------------------


def test_an_interactive_session(cluster: WireCluster, tmp_path: Path) -> None:
    assert SHELL is not None
    name = database()
    history = tmp_path / "history"
    terminal = Terminal(
        [SHELL, "-s", ",".join(cluster.addresses), name, "--history", str(history)],
        cwd=str(ROOT),
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        terminal.expect("Enter .help for help", timeout=60)
        terminal.expect("has no tables yet", timeout=10)
        terminal.wait_for_prompt(30)
        terminal.type("CREATE TABLE fruit (id INTEGER PRIMARY KEY, name TEXT, kg REAL);")
        terminal.expect(r"^OK$", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.type("INSERT INTO fruit (name, kg)")  # not complete: the statement goes on
        terminal.expect(r"\.\.\.>", timeout=10)
        terminal.type("VALUES ('apple', 1.5), ('kiwi', NULL);")
        terminal.expect(r"^Rows affected: 2$", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.type("SELECT * FROM fruit ORDER BY id;")
        terminal.expect(r"id \| name  \| kg\n---\+-------\+-----\n 1 \| apple \|  1\.5", 30)
        terminal.expect(r" 2 \| kiwi  \| NULL\n\(2 rows\)", timeout=10)
        terminal.wait_for_prompt(30)
        terminal.type(".tables")
        terminal.expect(r"^fruit$", timeout=30)
        terminal.wait_for_prompt(30)
        listed = terminal.mark()
        terminal.type(".cluster")
        for address in cluster.addresses:  # listed by id, in whatever order
            terminal.expect(rf"\| {address} \| voter", timeout=30, since=listed)
        terminal.wait_for_prompt(30)
        terminal.type(".leader")
        terminal.expect(rf"^{cluster.leader()} \(id \d+\)$", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.type("SELEC name FROM fruit;")
        terminal.expect(r'^Error: near "SELEC": syntax error$', timeout=30)
        terminal.wait_for_prompt(30)
        terminal.type("SELECT count(*) FROM fruit;")
        terminal.expect(r"\(1 row\)", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.press(UP)  # history: the last statement comes back, Enter runs it again
        terminal.press("\r")
        terminal.expect(r"\(1 row\)", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.type("SELECT 'dropped")  # Ctrl-C drops what is being typed
        terminal.press(CTRL_C)
        terminal.wait_for_prompt(30)
        terminal.type(".help")
        terminal.expect(r"\.schema \[NAME\]", timeout=30)
        terminal.wait_for_prompt(30)
        terminal.press(CTRL_D)
        assert terminal.wait(30) == 0
    finally:
        terminal.close()
    remembered = history.read_text()
    assert "CREATE TABLE fruit" in remembered and ".cluster" in remembered


# -- scripts ---------------------------------------------------------------------------------


def test_sql_from_the_command_line(cluster: WireCluster) -> None:
    servers = ",".join(cluster.addresses)
    name = database()
    done = run("-s", servers, name, "-c", "CREATE TABLE t (v); INSERT INTO t VALUES (1), (2)")
    assert (done.returncode, done.stdout, done.stderr) == (0, "OK\nRows affected: 2\n", "")
    done = run("-s", servers, name, "SELECT sum(v) AS total FROM t; .tables")  # dqlite's form
    assert done.returncode == 0, done.stderr
    assert done.stdout == "total\n-----\n    3\n(1 row)\nt\n"


def test_a_script_on_stdin_stops_at_its_first_error(cluster: WireCluster) -> None:
    servers = ",".join(cluster.addresses)
    name = database()
    script = (
        "CREATE TABLE s (v TEXT);\n"
        "CREATE TRIGGER s_log AFTER INSERT ON s BEGIN\n"
        "  INSERT INTO s VALUES ('logged');  -- not the end of the trigger\n"
        "END;\n"
        "INSERT INTO s VALUES ('x');\n"
        "INSERT INTO s VALUES ('y'\n"  # unfinished: an error
        ";\n"
        "INSERT INTO s VALUES ('never');\n"
    )
    done = run("-s", servers, name, stdin=script)
    assert done.returncode == 1
    assert done.stdout == "OK\nOK\nRows affected: 1\n"
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: ")
    check = run("-s", servers, name, "-c", "SELECT v FROM s ORDER BY rowid")
    assert check.stdout.splitlines()[2:4] == ["x", "logged"]
    assert "never" not in check.stdout


def test_clear_one_line_errors(cluster: WireCluster) -> None:
    servers = ",".join(cluster.addresses)
    done = run("-s", servers, database(), "-c", "SELECT * FROM missing")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "Error: no such table: missing\n"
    done = run("-s", servers, database(), "-c", ".frobnicate")
    assert done.stderr == "Error: unknown command .frobnicate (try .help)\n"
    if cluster.kind == "nodehost":  # dqlite accepts any name
        done = run("-s", servers, "x" * 200, "-c", "SELECT 1")
        assert done.returncode == 1
        assert done.stderr.startswith(f"Error: cannot open database '{'x' * 200}': ")
        assert done.stderr.count("\n") == 1


def test_no_reachable_member() -> None:
    done = run("-s", "127.0.0.1:1", "demo", "--timeout", "1", "-c", "SELECT 1")
    assert done.returncode == 1
    assert done.stderr == "Error: no member reachable (127.0.0.1:1: connection refused)\n"
    done = run("demo")
    assert done.returncode == 2 and "-s/--servers" in done.stderr
