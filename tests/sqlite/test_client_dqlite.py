"""What the remote client does against the real dqlite that it cannot do against nodehost:
a server without sessions loses a write's answer. (Everything else runs against both,
in test_client_cluster.py.) Skipped where dqlite-demo is not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from nodehost.sqlite import client
from nodehost.sqlite.client import connect
from nodehost.sqlite.wire import codec
from tests.sqlite.dqlite_demo import DqliteDemoCluster, needs_dqlite_demo, start_dqlite_demo
from tests.sqlite.wireproxy import WireProxy

pytestmark = [needs_dqlite_demo, pytest.mark.integration]


@pytest.fixture(scope="module")
def dqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DqliteDemoCluster]:
    cluster = start_dqlite_demo(tmp_path_factory.mktemp("dqlite"))
    yield cluster
    cluster.stop_all()


def database() -> str:
    return f"db-{uuid.uuid4().hex[:8]}"


def test_a_lost_write_answer_from_a_server_without_sessions_is_an_unknown_outcome(
    dqlite: DqliteDemoCluster,
) -> None:
    proxy = WireProxy(dqlite.addresses)
    try:
        conn = connect(proxy.addresses, database=database(), timeout=10, isolation_level=None)
        conn.execute("CREATE TABLE w (v INTEGER)")
        fault = proxy.lose_answer(
            lambda r: isinstance(r, codec.ExecSqlRequest) and r.sql.startswith("INSERT")
        )
        with pytest.raises(client.OperationalError, match="may or may not have been applied"):
            conn.execute("INSERT INTO w VALUES (1)")
        assert fault.hits == 1
        # never resent: dqlite would have applied it twice
        assert conn.execute("SELECT count(*) FROM w").fetchone() == (1,)
        conn.close()
    finally:
        proxy.close()
