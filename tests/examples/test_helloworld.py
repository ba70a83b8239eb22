"""example-helloworld end to end, driven through pseudo-terminals as a person drives it.

Three (then four) real processes in one working directory, on ports picked free: type in
one and see it on all, stop one and go on, stop two and see the timeout, restart and see
the replay from the latest snapshot, add and remove replica 4, quit every way there is.

The README walk (test_readme.py) takes every one of these steps in CI, through `uv run`
as the README writes them; this variant runs the installed command directly, and only
with --run-slow, to keep CI within its time.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helloworld_cluster import (
    STEP_TIMEOUT,
    Cluster,
    applied,
    updates_since_last_snapshot,
)
from pty_terminal import CTRL_C, CTRL_D, Terminal

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def seen_everywhere(terminals: list[Terminal], text: str, count: int) -> None:
    for t in terminals:
        t.expect(rf"msg: {re.escape(text)}, count:{count}$", STEP_TIMEOUT, since=0)


def stop_with_history(
    cluster: Cluster, terminal: Terminal, others: list[Terminal], keys: str
) -> list[tuple[str, int]]:
    """Quit `terminal` with `keys` once its log holds entries after its latest snapshot
    (so a restart has something to replay); what it had applied."""
    n = 0
    while updates_since_last_snapshot(terminal) < 2:
        n += 1
        count = cluster.propose(others[0], f"filler {n} before stopping")
        seen_everywhere([terminal], f"filler {n} before stopping", count)
    history = applied(terminal)
    terminal.wait_for_prompt(STEP_TIMEOUT)
    terminal.press(keys)
    assert terminal.wait(STEP_TIMEOUT) == 0
    return history


def expect_replay(terminal: Terminal, history: list[tuple[str, int]]) -> None:
    """The restarted replica restored its count from a snapshot, then applied the entries
    after it again, printing the same lines in the same order."""
    restored = int(terminal.expect(r"snapshot recovered, count:(\d+)$", STEP_TIMEOUT).group(1))
    assert 1 <= restored < history[-1][1], (restored, history[-1])
    later = [line for line in history if line[1] > restored]
    message, count = later[-1]
    terminal.expect(rf"msg: {re.escape(message)}, count:{count}$", STEP_TIMEOUT)
    assert applied(terminal)[: len(later)] == later


def test_three_replicas_then_four_as_a_person_uses_them(cluster: Cluster) -> None:
    one, two, three = (cluster.start("-replicaid", str(i)) for i in (1, 2, 3))
    everyone = [one, two, three]

    # Type in one, see it on all three (the first try may come before a leader exists).
    seen_everywhere(everyone, "hello world", cluster.propose(one, "hello world", timeout=90))
    for i in range(2, 13):
        typed_in = everyone[i % 3]
        seen_everywhere(everyone, f"message {i}", cluster.propose(typed_in, f"message {i}"))
    for t in everyone:
        t.expect(r"snapshot captured, index \d+$", STEP_TIMEOUT, since=0)

    # Malformed membership commands print a usage line and are never proposed.
    before = applied(three)[-1][1]
    three.type("add x")
    three.expect(r"usage: add <host:port> <replica id>", STEP_TIMEOUT)
    three.type("remove abc")
    three.expect(r"usage: remove <replica id>", STEP_TIMEOUT)
    three.type("add 127.0.0.1:1 four")
    three.expect(r"usage: add <host:port> <replica id>", STEP_TIMEOUT)
    assert cluster.propose(three, "after the typos") == before + 1

    # Stop three with `exit`: two of three still replicate.
    three_history = stop_with_history(cluster, three, [one], "exit\r")
    seen_everywhere([one, two], "two of three", cluster.propose(one, "two of three"))

    # Stop two with Ctrl-D: one alone cannot commit, and says so after the timeout.
    two_history = stop_with_history(cluster, two, [one], CTRL_D)
    one.wait_for_prompt(STEP_TIMEOUT)
    one.type("nobody hears this")
    one.expect(r"SyncPropose returned error request timed out", STEP_TIMEOUT)
    one.wait_for_prompt(STEP_TIMEOUT)
    assert one.process.poll() is None
    alone = one.mark()
    count_alone = applied(one)[-1][1]

    # Restart both with the same commands: each replays from its latest snapshot.
    two = cluster.start("-replicaid", "2")
    three = cluster.start("-replicaid", "3")
    expect_replay(two, two_history)
    expect_replay(three, three_history)
    everyone = [one, two, three]
    seen_everywhere(everyone, "all back", cluster.propose(two, "all back"))
    # Every 10 s a linearizable read prints the count (nothing while there is no quorum).
    count = int(one.expect(r"^\s*count: (\d+)$", STEP_TIMEOUT, since=alone).group(1))
    assert count >= count_alone

    # Add replica 4, start it with -join: it catches up and sees later messages.
    four_address = cluster.addresses[4]
    cluster.change_membership(one, f"add {four_address} 4")
    four = cluster.start("-replicaid", "4", "-addr", four_address, "-join")
    seen_everywhere([*everyone, four], "hello four", cluster.propose(one, "hello four"))

    # Remove it: it stops receiving; its id can never come back.
    cluster.change_membership(two, "remove 4")
    count = cluster.propose(one, "four is gone")
    seen_everywhere(everyone, "four is gone", count)
    time.sleep(2.0)  # ten heartbeats: a member would have received it by now
    assert "four is gone" not in four.text
    line = cluster.change_membership(three, f"add {four_address} 4", expect_failure="removed")
    assert line.startswith("membership change failed, ")

    # Quit every other way: Ctrl-C, SIGTERM; each closes its NodeHost and exits 0.
    one.press(CTRL_C)
    two.signal(signal.SIGTERM)
    four.signal(signal.SIGTERM)
    three.type("exit")
    for t in (one, two, three, four):
        assert t.wait(STEP_TIMEOUT) == 0
    for t in cluster.terminals:
        assert "Traceback" not in t.text, t.tail()
    data = cluster.workdir / "example-data" / "helloworld-data"
    assert sorted(p.name for p in data.iterdir()) == ["node1", "node2", "node3", "node4"]
