"""Discovery settings: each mode's config parses, and every malformed one is refused
with one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodehost.discovery import (
    DiscoveryConfigError,
    DnsConfig,
    DnsSrvConfig,
    EtcdConfig,
    Nameserver,
    StaticConfig,
    load_config,
)


def test_etcd_config_normalises_endpoints() -> None:
    config = load_config("etcd-kv", '{"endpoints": ["127.0.0.1:2379", "https://e2:2379/"]}', "a")
    assert config.backend == EtcdConfig(("http://127.0.0.1:2379", "https://e2:2379"))
    assert config.uses_store and config.bootstrap_expect == 1 and config.remove_after == 0
    assert "etcd" in config.describe() and "/nodehost/discovery/a" in config.describe()


def test_dns_and_srv_configs() -> None:
    dns = load_config(
        "DNS",
        json.dumps(
            {
                "name": "kvstore.default.svc",
                "port": 11000,
                "bootstrap_expect": 3,
                "remove_after": 60,
                "nameservers": ["127.0.0.1:5353", "::1", "[::1]:53", "10.0.0.2"],
            }
        ),
        "kvstore",
    )
    assert dns.mode == "dns"
    assert isinstance(dns.backend, DnsConfig) and dns.backend.port == 11000
    assert dns.backend.nameservers == (
        Nameserver("127.0.0.1", 5353),
        Nameserver("::1", 53),
        Nameserver("::1", 53),
        Nameserver("10.0.0.2", 53),
    )
    assert dns.remove_after == 60 and dns.bootstrap_expect == 3
    srv = load_config(
        "dns-srv", '{"name": "kvstore", "service": "http", "bootstrap_expect": 1}', "k"
    )
    assert isinstance(srv.backend, DnsSrvConfig) and srv.backend.query == "_http._tcp.kvstore"


def test_static_config_expects_every_peer_by_default() -> None:
    config = load_config("static", '{"peers": ["10.0.0.1:11000", "h2:11000"]}', "k")
    assert config.backend == StaticConfig(("10.0.0.1:11000", "h2:11000"), 2)


def test_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "disco.json"
    path.write_text('{"endpoints": ["http://127.0.0.1:2379"]}')
    assert load_config("etcd-kv", str(path), "k").backend == EtcdConfig(("http://127.0.0.1:2379",))


@pytest.mark.parametrize(
    ("mode", "config", "key", "message"),
    [
        ("zookeeper", "{}", "k", "mode 'zookeeper' is unknown; use one of etcd-kv, dns"),
        ("etcd-kv", '{"endpoints": [', "k", "config is not valid JSON"),
        ("etcd-kv", "[1]", "k", "config must be a JSON object, not list"),
        ("etcd-kv", "", "k", "config is empty"),
        ("etcd-kv", "no/such/file.json", "k", "neither a JSON object nor a readable file"),
        ("etcd-kv", "{}", "k", '"endpoints" must be a non-empty list'),
        ("etcd-kv", '{"endpoints": ["ftp://x:1"]}', "k", "is not an http(s) URL"),
        ("etcd-kv", '{"endpoints": ["x"]}', "k", "is not host:port"),
        (
            "etcd-kv",
            '{"endpoint": ["x:1"]}',
            "k",
            "unknown field(s) 'endpoint' for mode etcd-kv; known: endpoints, patience, prefix, "
            "timeout",
        ),
        ("etcd-kv", '{"endpoints": ["x:1"]}', "a b", "key 'a b' must be 1-128 characters"),
        ("etcd-kv", '{"endpoints": ["x:1"], "timeout": -1}', "k", '"timeout" must be a number'),
        ("dns", '{"name": "svc", "port": 1}', "k", '"bootstrap_expect" is required'),
        ("dns", '{"name": "svc", "port": 0, "bootstrap_expect": 1}', "k", '"port" must be'),
        ("dns", '{"name": "a b", "port": 1, "bootstrap_expect": 1}', "k", "is not a DNS name"),
        (
            "dns",
            '{"name": "s", "port": 1, "bootstrap_expect": 1, "nameservers": ["ns1"]}',
            "k",
            "is not an IP address",
        ),
        ("dns-srv", '{"name": "s", "bootstrap_expect": 1}', "k", '"service" must be'),
        ("static", '{"peers": ["a:1", "a:1"]}', "k", "lists a:1 twice"),
        ("static", '{"peers": ["a:1"], "remove_after": 5}', "k", "unknown field(s) 'remove_after'"),
        ("static", '{"peers": ["a:1"], "bootstrap_expect": true}', "k", "must be an integer"),
    ],
)
def test_bad_config_is_one_clear_line(mode: str, config: str, key: str, message: str) -> None:
    with pytest.raises(DiscoveryConfigError) as caught:
        load_config(mode, config, key)
    text = str(caught.value)
    assert message in text and "\n" not in text
