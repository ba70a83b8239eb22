"""Restarting every member: after SIGTERM or SIGINT (clean) and after SIGKILL, the three
daemons come back with their identities, the member table, the roles and the data."""

from __future__ import annotations

import signal

import pytest

from tests.cluster.conftest import Daemons
from tests.cluster.forming import form, statuses
from tests.cluster.processes import wait_for


@pytest.mark.timeout(900)
def test_all_three_restart_with_membership_and_data(daemons: Daemons) -> None:
    nodes = form(3, daemons.microd)
    mc1, mc2, mc3 = nodes
    mc2.client.sql("INSERT INTO extended_table (key, value) VALUES ('k1', 'v1'), ('k2', 'v2')")
    before = {name: m["fingerprint"] for name, m in mc1.members().items()}
    expected_rows = [["k1", "v1"], ["k2", "v2"]]

    for how in ("SIGTERM", "SIGKILL"):
        for node in nodes:
            if how == "SIGTERM":  # mc2 gets Ctrl-C's SIGINT: as clean
                signal_number = signal.SIGINT if node is mc2 else signal.SIGTERM
                assert node.process.stop(how=signal_number) == 0
                assert not (node.process.state_dir / "control.socket").exists()
            else:
                node.process.kill()
        for node in nodes:
            node.process.start()
        for node in nodes:
            node.process.wait_ready()
        for node in nodes:
            status = node.client.status()
            assert (status["name"], status["address"]) == (node.name, node.address)
            assert status["database"] == "ready"
        wait_for(
            lambda: statuses(mc3) == {n.name: ("voter", "ONLINE") for n in nodes},
            60.0,
            f"three voters ONLINE after {how}",
        )
        assert {name: m["fingerprint"] for name, m in mc2.members().items()} == before
        for node in nodes:
            rows = node.client.sql("SELECT key, value FROM extended_table ORDER BY key")
            assert rows["results"][0]["rows"] == expected_rows
        token = mc1.client.add_token(f"after-{how.lower()}")  # writes work again
        assert token
        mc3.client.revoke_token(f"after-{how.lower()}")
