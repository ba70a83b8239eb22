"""Where peers' API addresses come from when there is no store: DNS A/AAAA records, DNS
SRV records, or a static list.

Rules:
- A name with no records yet (NXDOMAIN, no answer) is an empty list, not an error: in
  Kubernetes the headless service has no address until its first pod exists.
- A DNS server that cannot be asked (timeout, refusal, no configuration) is
  `StoreUnavailable`, so the caller retries instead of deciding on an empty list.
- dnspython resolves, with the system's configuration unless the config names
  nameservers (tests run their own server on loopback); nothing is cached here.
- The answer is sorted and free of duplicates, so every node sees the same list for
  the same records.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from nodehost.discovery.config import (
    DnsConfig,
    DnsSrvConfig,
    Nameserver,
    StaticConfig,
)
from nodehost.discovery.errors import StoreUnavailable


class AddressSource(Protocol):
    """Yields the API addresses ("host:port") of the nodes that may form the cluster."""

    def describe(self) -> str: ...

    async def addresses(self) -> list[str]: ...


def join_host_port(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


class StaticSource:
    def __init__(self, config: StaticConfig) -> None:
        self.config = config

    def describe(self) -> str:
        return f"peers {','.join(self.config.peers)}"

    async def addresses(self) -> list[str]:
        return sorted(self.config.peers)


def _resolver(nameservers: tuple[Nameserver, ...], timeout: float) -> dns.asyncresolver.Resolver:
    try:
        resolver = dns.asyncresolver.Resolver(configure=not nameservers)
    except dns.resolver.NoResolverConfiguration as exc:
        raise StoreUnavailable(f"no DNS resolver is configured on this host: {exc}") from None
    if nameservers:
        resolver.nameservers = [dns.nameserver.Do53Nameserver(n.host, n.port) for n in nameservers]
    resolver.timeout = timeout
    resolver.lifetime = timeout
    resolver.cache = None
    return resolver


class _Dns:
    def __init__(self, nameservers: tuple[Nameserver, ...], timeout: float) -> None:
        self.nameservers = nameservers
        self.timeout = timeout

    def where(self) -> str:
        if not self.nameservers:
            return "the system resolver"
        return ",".join(join_host_port(n.host, n.port) for n in self.nameservers)

    async def query(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, or None when the name or this record type does not exist."""
        resolver = _resolver(self.nameservers, self.timeout)
        try:
            return await resolver.resolve(name, rdtype, search=True, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise StoreUnavailable(
                f"DNS {rdtype} query for {name} via {self.where()} failed: {text}"
            ) from None

    async def hosts(self, name: str) -> list[str]:
        """The A and AAAA addresses of `name`."""
        found: list[str] = []
        for answer in await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA")):
            if answer is not None and answer.rrset is not None:
                found.extend(r.to_text() for r in answer.rrset)
        return found


class DnsSource:
    """The A/AAAA records of a name (a Kubernetes headless service), with a fixed port."""

    def __init__(self, config: DnsConfig) -> None:
        self.config = config
        self._dns = _Dns(config.nameservers, config.timeout)

    def describe(self) -> str:
        return f"DNS {self.config.name} (port {self.config.port}) via {self._dns.where()}"

    async def addresses(self) -> list[str]:
        hosts = await self._dns.hosts(self.config.name)
        return _sorted(join_host_port(h, self.config.port) for h in hosts)


class DnsSrvSource:
    """The SRV records of _<service>._tcp.<name>: a host and a port per peer."""

    def __init__(self, config: DnsSrvConfig) -> None:
        self.config = config
        self._dns = _Dns(config.nameservers, config.timeout)

    def describe(self) -> str:
        return f"DNS SRV {self.config.query} via {self._dns.where()}"

    async def addresses(self) -> list[str]:
        answer = await self._dns.query(self.config.query, "SRV")
        if answer is None or answer.rrset is None:
            return []
        glue = _glue(answer.response)
        found: list[str] = []
        for record in answer.rrset:
            target: dns.name.Name = record.target
            port: int = record.port
            hosts = glue.get(target)
            if hosts is None:
                hosts = await self._dns.hosts(target.to_text())
            found.extend(join_host_port(h, port) for h in hosts)
        return _sorted(found)


def _glue(response: dns.message.Message) -> dict[dns.name.Name, list[str]]:
    """Addresses the server sent along in the additional section."""
    glue: dict[dns.name.Name, list[str]] = {}
    for rrset in response.additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            glue.setdefault(rrset.name, []).extend(r.to_text() for r in rrset)
    return glue


def _sorted(addresses: Iterable[str]) -> list[str]:
    return sorted(set(addresses))


def source_for(config: DnsConfig | DnsSrvConfig | StaticConfig) -> AddressSource:
    if isinstance(config, DnsConfig):
        return DnsSource(config)
    if isinstance(config, DnsSrvConfig):
        return DnsSrvSource(config)
    return StaticSource(config)
