"""Debian's `dqlite` shell (go-dqlite's client), typed into in a pseudo-terminal, against
three nodehost members in separate processes: SQL, .cluster, .leader, an error, and the
leader SIGKILLed mid-session. Skipped where go-dqlite is not installed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.examples.pty_terminal import CTRL_D, Terminal
from tests.sqlite.dqlite_demo import DQLITE_SHELL
from tests.sqlite.wire_clusters import NodehostCluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        DQLITE_SHELL is None,
        reason="Debian's dqlite shell is not installed (apt-get install go-dqlite): this test "
        "checks that it works against nodehost members, where it is installed",
    ),
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NodehostCluster]:
    started = NodehostCluster(tmp_path)
    yield started
    started.stop_all()


def test_the_dqlite_shell_in_a_terminal(cluster: NodehostCluster) -> None:
    assert DQLITE_SHELL is not None
    terminal = Terminal(
        [DQLITE_SHELL, "-s", ",".join(cluster.addresses), "goshell"],
        cwd=str(Path(__file__).parent),
        env={**os.environ, "TERM": "xterm"},
    )
    try:
        terminal.expect("dqlite> ", timeout=30)
        terminal.type("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        terminal.expect("dqlite> ", timeout=30)
        terminal.type("INSERT INTO notes (body) VALUES ('typed in go')")
        terminal.expect("dqlite> ", timeout=30)
        terminal.type("SELECT id, body FROM notes")
        terminal.expect(r"^1\|typed in go$", timeout=30)  # Debian's go-dqlite prints id|body
        terminal.expect("dqlite> ", timeout=30)
        leader = cluster.leader()
        terminal.type(".leader")
        terminal.expect(rf"^{leader}$", timeout=30)
        listed = terminal.mark()
        terminal.type(".cluster")
        for address in cluster.addresses:  # go prints id (hex)|address|role
            terminal.expect(rf"^[0-9a-f]+\|{address}\|voter$", timeout=30, since=listed)
        terminal.expect("dqlite> ", timeout=30)
        terminal.type("SELEC nonsense")
        terminal.expect(r"Error: .*syntax error", timeout=30)
        terminal.expect("dqlite> ", timeout=30)

        cluster.kill(leader)  # SIGKILL: go-dqlite must find the next leader by itself
        terminal.type("INSERT INTO notes (body) VALUES ('after the failover')")
        terminal.expect("dqlite> ", timeout=60)
        terminal.type("SELECT count(*) FROM notes")
        terminal.expect(r"^2$", timeout=60)
        terminal.expect("dqlite> ", timeout=30)
        terminal.press(CTRL_D)
        assert terminal.wait(30) == 0
    finally:
        terminal.close()
