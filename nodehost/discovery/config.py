"""Discovery settings, rqlite's way: a mode, a config (a JSON object, inline or in a
file) and a key naming the cluster.

    etcd-kv  {"endpoints": ["http://10.0.0.9:2379"], "prefix": "/nodehost/discovery/"}
    dns      {"name": "kvstore.default.svc", "port": 11000, "bootstrap_expect": 3}
    dns-srv  {"name": "kvstore.default.svc", "service": "http", "bootstrap_expect": 3}
    static   {"peers": ["10.0.0.1:11000", "10.0.0.2:11000"], "bootstrap_expect": 2}

Rules:
- Everything is checked here, before a node touches its disk or the network: an unknown
  mode, an unknown or misspelt field, a wrong type or range is a DiscoveryConfigError
  whose one-line message names the field.
- The addresses a dns, dns-srv or static config yields are the peers' *API* addresses
  (where the application answers probes and join requests), not their Raft addresses.
- `remove_after` (dns, dns-srv) makes the leader remove members that have been missing
  from discovery that long; 0, the default, never removes anyone. A static list says
  nothing about who left, so it has no `remove_after`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nodehost.discovery.errors import DiscoveryConfigError

MODES = ("etcd-kv", "dns", "dns-srv", "static")
DEFAULT_PREFIX = "/nodehost/discovery/"
DEFAULT_PATIENCE = 300.0
DEFAULT_TIMEOUT = 2.0
_KEY = re.compile(r"[A-Za-z0-9._-]{1,128}")
_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?)*\.?")
_MAX_CONFIG_BYTES = 64 * 1024
_DNS_FIELDS = {"name", "bootstrap_expect", "remove_after", "nameservers", "timeout"}
FIELDS = {
    "etcd-kv": {"endpoints", "prefix", "timeout", "patience"},
    "dns": _DNS_FIELDS | {"port", "patience"},
    "dns-srv": _DNS_FIELDS | {"service", "patience"},
    "static": {"peers", "bootstrap_expect", "patience"},
}


@dataclass(frozen=True, slots=True)
class EtcdConfig:
    endpoints: tuple[str, ...]  # base URLs, "http://host:port"
    prefix: str = DEFAULT_PREFIX
    timeout: float = DEFAULT_TIMEOUT  # seconds per request


@dataclass(frozen=True, slots=True)
class Nameserver:
    host: str
    port: int = 53


@dataclass(frozen=True, slots=True)
class DnsConfig:
    name: str
    port: int  # the peers' API port: A/AAAA records carry no port
    bootstrap_expect: int
    remove_after: float = 0.0
    nameservers: tuple[Nameserver, ...] = ()  # () = the system's resolver configuration
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class DnsSrvConfig:
    name: str
    service: str  # queried as _<service>._tcp.<name>
    bootstrap_expect: int
    remove_after: float = 0.0
    nameservers: tuple[Nameserver, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    @property
    def query(self) -> str:
        return f"_{self.service}._tcp.{self.name}"


@dataclass(frozen=True, slots=True)
class StaticConfig:
    peers: tuple[str, ...]
    bootstrap_expect: int


BackendConfig = EtcdConfig | DnsConfig | DnsSrvConfig | StaticConfig


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    mode: str
    key: str  # names the cluster: clusters sharing one store use different keys
    backend: BackendConfig
    patience: float = DEFAULT_PATIENCE  # seconds a new node looks for its cluster

    @property
    def uses_store(self) -> bool:
        """True when the bootstrap race is decided in a store (etcd), not by a rule."""
        return isinstance(self.backend, EtcdConfig)

    @property
    def remove_after(self) -> float:
        backend = self.backend
        return backend.remove_after if isinstance(backend, DnsConfig | DnsSrvConfig) else 0.0

    @property
    def bootstrap_expect(self) -> int:
        """Nodes that must be seen before one bootstraps (1 with a store: it decides)."""
        backend = self.backend
        return 1 if isinstance(backend, EtcdConfig) else backend.bootstrap_expect

    def describe(self) -> str:
        backend = self.backend
        if isinstance(backend, EtcdConfig):
            where = f"etcd {','.join(backend.endpoints)} key {backend.prefix}{self.key}"
        elif isinstance(backend, DnsConfig):
            where = f"DNS {backend.name} port {backend.port}"
        elif isinstance(backend, DnsSrvConfig):
            where = f"DNS SRV {backend.query}"
        else:
            where = f"peers {','.join(backend.peers)}"
        return f"{self.mode} ({where})"


def load_config(mode: str, config: str, key: str) -> DiscoveryConfig:
    """The checked settings; `config` is a JSON object or the path of a file holding one."""
    mode = mode.strip().lower()
    if mode not in MODES:
        raise DiscoveryConfigError(f"mode {mode!r} is unknown; use one of {', '.join(MODES)}")
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise DiscoveryConfigError(
            f"key {key!r} must be 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    raw = _read_object(config)
    unknown = sorted(set(raw) - FIELDS[mode])
    if unknown:
        raise DiscoveryConfigError(
            f"unknown field(s) {', '.join(map(repr, unknown))} for mode {mode}; "
            f"known: {', '.join(sorted(FIELDS[mode]))}"
        )
    fields = Fields(raw)
    patience = fields.seconds("patience", DEFAULT_PATIENCE, low=0.1)
    backend: BackendConfig
    if mode == "etcd-kv":
        backend = _etcd(fields)
    elif mode == "dns":
        backend = DnsConfig(
            name=fields.dns_name("name"),
            port=fields.port("port"),
            bootstrap_expect=fields.integer("bootstrap_expect", None, 1, 1000),
            remove_after=fields.seconds("remove_after", 0.0, low=0.0),
            nameservers=fields.nameservers(),
            timeout=fields.seconds("timeout", DEFAULT_TIMEOUT, low=0.05),
        )
    elif mode == "dns-srv":
        service = fields.text("service")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", service):
            raise DiscoveryConfigError(f'"service" {service!r} is not a service name like "http"')
        backend = DnsSrvConfig(
            name=fields.dns_name("name"),
            service=service,
            bootstrap_expect=fields.integer("bootstrap_expect", None, 1, 1000),
            remove_after=fields.seconds("remove_after", 0.0, low=0.0),
            nameservers=fields.nameservers(),
            timeout=fields.seconds("timeout", DEFAULT_TIMEOUT, low=0.05),
        )
    else:
        peers = tuple(fields.addresses("peers"))
        backend = StaticConfig(
            peers=peers,
            bootstrap_expect=fields.integer("bootstrap_expect", len(peers), 1, 1000),
        )
    return DiscoveryConfig(mode=mode, key=key, backend=backend, patience=patience)


def _etcd(fields: Fields) -> EtcdConfig:
    endpoints = []
    for raw in fields.string_list("endpoints"):
        url = raw if "://" in raw else "http://" + raw
        scheme, _, rest = url.partition("://")
        if scheme not in ("http", "https"):
            raise DiscoveryConfigError(f'"endpoints": {raw!r} is not an http(s) URL')
        hostport = rest.rstrip("/")
        if "/" in hostport:
            raise DiscoveryConfigError(f'"endpoints": {raw!r} has a path; give scheme://host:port')
        _check_address(hostport, '"endpoints"')
        endpoints.append(f"{scheme}://{hostport}")
    prefix = fields.text("prefix", DEFAULT_PREFIX)
    if not prefix or any(ord(c) < 32 for c in prefix):
        raise DiscoveryConfigError('"prefix" must be a non-empty printable string')
    return EtcdConfig(
        endpoints=tuple(endpoints),
        prefix=prefix,
        timeout=fields.seconds("timeout", DEFAULT_TIMEOUT, low=0.05),
    )


def _read_object(config: str) -> dict[str, Any]:
    text = config.strip()
    if not text:
        raise DiscoveryConfigError("config is empty: give a JSON object or the path of a file")
    if not text.startswith(("{", "[")):
        try:
            if os.path.getsize(text) > _MAX_CONFIG_BYTES:
                raise DiscoveryConfigError(f"config file {text} is over {_MAX_CONFIG_BYTES} bytes")
            with open(text, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DiscoveryConfigError(
                f"config {config.strip()!r} is neither a JSON object nor a readable file ({reason})"
            ) from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DiscoveryConfigError(f"config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DiscoveryConfigError(f"config must be a JSON object, not {type(value).__name__}")
    return value


def _check_address(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DiscoveryConfigError(f"{what}: {text!r} is not host:port")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if host.startswith("[") or not _NAME.fullmatch(host):
            raise DiscoveryConfigError(f"{what}: {host!r} is not a host name or address") from None
    return host, int(port)


class Fields:
    """A config object read field by field, each checked as it is read."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    def _get(self, name: str) -> Any:
        return self.raw.get(name)

    def text(self, name: str, default: str | None = None) -> str:
        value = self._get(name)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise DiscoveryConfigError(f'"{name}" must be a non-empty string, got {value!r}')
        return value.strip()

    def dns_name(self, name: str) -> str:
        value = self.text(name)
        if len(value) > 253 or not _NAME.fullmatch(value):
            raise DiscoveryConfigError(f'"{name}": {value!r} is not a DNS name')
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        value = self._get(name)
        if value is None:
            if default is None:
                raise DiscoveryConfigError(f'"{name}" is required (an integer {low}..{high})')
            value = default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DiscoveryConfigError(f'"{name}" must be an integer {low}..{high}, got {value!r}')
        return value

    def port(self, name: str) -> int:
        return self.integer(name, None, 1, 65535)

    def seconds(self, name: str, default: float, low: float) -> float:
        value = self._get(name)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low <= value <= 86400
        ):
            raise DiscoveryConfigError(
                f'"{name}" must be a number of seconds in {low:g}..86400, got {value!r}'
            )
        return float(value)

    def string_list(self, name: str) -> list[str]:
        value = self._get(name)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise DiscoveryConfigError(
                f'"{name}" must be a non-empty list of strings, got {value!r}'
            )
        if len(value) > 1000:
            raise DiscoveryConfigError(f'"{name}" lists more than 1000 entries')
        return [v.strip() for v in value]

    def addresses(self, name: str) -> list[str]:
        out: list[str] = []
        for item in self.string_list(name):
            _check_address(item, f'"{name}"')
            if item in out:
                raise DiscoveryConfigError(f'"{name}" lists {item} twice')
            out.append(item)
        return out

    def nameservers(self) -> tuple[Nameserver, ...]:
        """ "10.0.0.2", "10.0.0.2:5353", "::1" or "[::1]:5353"; port 53 unless given."""
        if self.raw.get("nameservers") is None:
            return ()
        servers = []
        for item in self.string_list("nameservers"):
            host, port = item, 53
            if item.startswith("["):
                host, _, rest = item[1:].partition("]")
                if rest:
                    if not rest.startswith(":") or not rest[1:].isdigit():
                        raise DiscoveryConfigError(f'"nameservers": {item!r} is not [address]:port')
                    port = int(rest[1:])
            elif item.count(":") == 1:
                host, _, text = item.partition(":")
                port = int(text) if text.isdigit() else -1
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise DiscoveryConfigError(
                    f'"nameservers": {item!r} is not an IP address (with an optional :port)'
                ) from None
            if not 1 <= port <= 65535:
                raise DiscoveryConfigError(f'"nameservers": {item!r} has no valid port')
            servers.append(Nameserver(host, port))
        return tuple(servers)
