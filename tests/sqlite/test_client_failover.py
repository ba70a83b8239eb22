"""Remote clients writing while the leader is SIGKILLed: every acknowledged write is
there, none is applied twice (writes whose answers were lost are resent under their
sessions), and the writes resume through the new leader."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from nodehost.sqlite import client
from tests.sqlite.wire_clusters import NodehostCluster

pytestmark = pytest.mark.integration

WRITERS = 4


def test_writers_through_a_leader_kill(tmp_path: Path) -> None:
    cluster = NodehostCluster(tmp_path)
    try:
        _writers_through_a_leader_kill(cluster)
    finally:
        cluster.stop_all()


def _writers_through_a_leader_kill(cluster: NodehostCluster) -> None:
    name = f"failover_{uuid.uuid4().hex[:6]}"
    with client.connect(cluster.addresses, database=name, isolation_level=None) as setup:
        setup.execute("CREATE TABLE log (key TEXT, at REAL)")  # no UNIQUE: a twice-applied
        # write would show up as a duplicate row instead of failing
    stop = threading.Event()
    acked: list[tuple[str, float]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()
    acked_more = threading.Condition(lock)  # notified on every acknowledgement

    def write(number: int) -> None:
        conn = client.connect(cluster.addresses, database=name, isolation_level=None, timeout=30)
        sequence = 0
        try:
            while not stop.is_set():
                sequence += 1
                key = f"{number}-{sequence}"
                try:
                    conn.execute("INSERT INTO log VALUES (?, ?)", (key, time.time()))
                except client.Error as error:
                    with lock:
                        failures.append(error)
                    continue
                with acked_more:
                    acked.append((key, time.monotonic()))
                    acked_more.notify_all()
        finally:
            conn.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        with acked_more:
            assert acked_more.wait_for(lambda: len(acked) >= 40, 60), (
                "the writers did not get going"
            )
        cluster.kill(cluster.leader())  # SIGKILL
        killed_at = time.monotonic()
        with acked_more:
            acked_more.wait_for(lambda: any(at > killed_at for _, at in acked), 60)
        resumed = [at for _, at in acked if at > killed_at]
        assert resumed, "no write was acknowledged after the leader was killed"
        gap = min(resumed) - killed_at
        count_after = len(acked)
        while len(acked) < count_after + 40 and time.monotonic() < killed_at + 90:
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    assert failures == [], failures[:3]  # nothing failed: lost answers were resent
    with client.connect(cluster.addresses, database=name) as check:
        duplicates = check.execute(
            "SELECT key, count(*) FROM log GROUP BY key HAVING count(*) > 1"
        ).fetchall()
        stored = {row[0] for row in check.execute("SELECT key FROM log")}
    assert duplicates == [], f"applied twice: {duplicates[:5]}"
    missing = {key for key, _ in acked} - stored
    assert not missing, f"{len(missing)} acknowledged writes lost"
    print(f"writes resumed {gap:.2f} s after the SIGKILL; {len(acked)} acknowledged")
    assert gap < 30
