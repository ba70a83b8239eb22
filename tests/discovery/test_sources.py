"""DNS A/AAAA and SRV discovery against a real DNS server on loopback, and static lists."""

from __future__ import annotations

import asyncio
import socket

import pytest

from nodehost.discovery import (
    DnsSource,
    DnsSrvSource,
    StaticSource,
    StoreUnavailable,
    load_config,
)
from tests.discovery.dns_server import LoopbackDns

pytestmark = pytest.mark.integration


def test_a_and_aaaa_records_with_the_configured_port(dns_server: LoopbackDns) -> None:
    dns_server.set_addresses("kv.test", ["127.0.0.3", "127.0.0.2", "::1", "127.0.0.2"])
    config = load_config(
        "dns",
        f'{{"name": "kv.test", "port": 11000, "bootstrap_expect": 3, '
        f'"nameservers": ["{dns_server.nameserver}"]}}',
        "k",
    )
    source = DnsSource(config.backend)  # type: ignore[arg-type]
    found = asyncio.run(source.addresses())
    assert found == ["127.0.0.2:11000", "127.0.0.3:11000", "[::1]:11000"]
    assert dns_server.queries[("kv.test.", "A")] >= 1
    assert dns_server.queries[("kv.test.", "AAAA")] >= 1


def test_a_name_without_records_is_an_empty_list(dns_server: LoopbackDns) -> None:
    config = load_config(
        "dns",
        f'{{"name": "nothing.test", "port": 1, "bootstrap_expect": 1, '
        f'"nameservers": ["{dns_server.nameserver}"]}}',
        "k",
    )
    assert asyncio.run(DnsSource(config.backend).addresses()) == []  # type: ignore[arg-type]


def test_srv_records_give_each_peer_its_port(dns_server: LoopbackDns) -> None:
    dns_server.set_srv("_http._tcp.kv.test", [("n1.kv.test", 11001), ("n2.kv.test", 11002)])
    dns_server.set_addresses("n1.kv.test", ["127.0.0.1"])
    dns_server.set_addresses("n2.kv.test", ["127.0.0.2"])
    config = load_config(
        "dns-srv",
        f'{{"name": "kv.test", "service": "http", "bootstrap_expect": 2, '
        f'"nameservers": ["{dns_server.nameserver}"]}}',
        "k",
    )
    source = DnsSrvSource(config.backend)  # type: ignore[arg-type]
    assert asyncio.run(source.addresses()) == ["127.0.0.1:11001", "127.0.0.2:11002"]


def test_a_dns_server_that_does_not_answer_is_unavailable_not_empty() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound, never read: queries time out
    try:
        port = silent.getsockname()[1]
        config = load_config(
            "dns",
            f'{{"name": "kv.test", "port": 1, "bootstrap_expect": 1, "timeout": 0.3, '
            f'"nameservers": ["127.0.0.1:{port}"]}}',
            "k",
        )
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}") as caught:
            asyncio.run(DnsSource(config.backend).addresses())  # type: ignore[arg-type]
        assert "\n" not in str(caught.value)
    finally:
        silent.close()


def test_static_peers() -> None:
    config = load_config("static", '{"peers": ["b:2", "a:1"]}', "k")
    assert asyncio.run(StaticSource(config.backend).addresses()) == ["a:1", "b:2"]  # type: ignore[arg-type]
