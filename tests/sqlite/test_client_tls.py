"""The remote client, the console and the SQLAlchemy dialect against members that use
mutual TLS: a certificate from the cluster's CA gets in; no certificate, or one from
another CA, is a clean OperationalError."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from nodehost.sqlite import App, TLSOptions, client
from nodehost.sqlite.sqlalchemy_dialect import create_engine, make_url
from tests.sqlite.certificates import make_ca
from tests.sqlite.support import free_addresses

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    directory = tmp_path_factory.mktemp("pki")
    issued = make_ca(directory / "ours", "cluster-ca", ["m0", "m1", "m2", "client"])
    issued.update(make_ca(directory / "theirs", "other-ca", ["stranger"]))
    return issued


@pytest.fixture(scope="module")
def cluster(
    pki: dict[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[App]]:
    root = tmp_path_factory.mktemp("tls")
    addresses = free_addresses(3)
    apps = [
        App(
            root / f"m{n}",
            address=address,
            cluster=addresses,
            rtt_millisecond=20,
            tls=TLSOptions(**pki[f"m{n}"]),
        )
        for n, address in enumerate(addresses)
    ]
    try:
        for app in apps:
            app.ready(60)
        yield apps
    finally:
        for app in apps:
            app.close()


def tls_for(pki: dict[str, dict[str, str]], name: str) -> client.ssl.SSLContext:
    files = pki[name]
    return client.client_tls(files["ca_file"], files["cert_file"], files["key_file"])


def test_a_client_with_the_cluster_certificate_gets_in(
    cluster: list[App], pki: dict[str, dict[str, str]]
) -> None:
    addresses = [app.address for app in cluster]
    with client.connect(addresses, database="tls", tls=tls_for(pki, "client")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (v)")
        conn.execute("INSERT INTO t VALUES ('over TLS')")
        conn.commit()
        assert conn.execute("SELECT v FROM t").fetchall() == [("over TLS",)]
    with client.ClusterClient(addresses, tls=tls_for(pki, "client")) as admin:
        assert len(admin.cluster()) == 3


def test_no_certificate_or_a_foreign_one_is_refused_cleanly(
    cluster: list[App], pki: dict[str, dict[str, str]]
) -> None:
    address = cluster[0].address
    with pytest.raises(client.OperationalError, match=r"\(does the cluster use TLS\?\)"):
        client.connect(address, database="tls", timeout=2)  # plain TCP to a TLS port
    with pytest.raises(client.OperationalError, match="TLS"):
        client.connect(address, database="tls", timeout=2, tls=tls_for(pki, "stranger"))


def test_the_console_and_sqlalchemy_over_tls(
    cluster: list[App], pki: dict[str, dict[str, str]]
) -> None:
    files = pki["client"]
    addresses = ",".join(app.address for app in cluster)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "nodehost.sqlite.shell",
            "-s",
            addresses,
            "tls",
            "--ca",
            files["ca_file"],
            "--cert",
            files["cert_file"],
            "--key",
            files["key_file"],
            "-c",
            "SELECT count(*) AS n FROM sqlite_master WHERE name = 't'",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].strip() == "1"
    engine = create_engine(
        make_url(
            addresses,
            "tls",
            ca=files["ca_file"],
            cert=files["cert_file"],
            key=files["key_file"],
        )
    )
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()
