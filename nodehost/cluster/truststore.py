"""The members this member trusts: name, address and certificate of each, by fingerprint.

Rules:
- The member table in the replicated database is the truth; this is its local copy,
  so the network listener can check a caller before the database is up, and so a member
  can find the others after a restart. It is refreshed from the table, from the leader's
  heartbeats, and on join and removal, and persisted on every change.
- A caller is trusted when the fingerprint of the certificate it proved it holds (TLS) is
  here; nothing else (a CA, a name) makes it trusted.
- Listeners (the network listener's TLS) are told after each change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from nodehost.cluster.errors import BadRequest
from nodehost.cluster.identity import fingerprint
from nodehost.cluster.names import check_address, check_name
from nodehost.cluster.statedir import StateDir, StateDirError


@dataclass(frozen=True, slots=True)
class Remote:
    name: str
    address: str
    certificate: str
    fingerprint: str

    @classmethod
    def of(cls, name: str, address: str, certificate: str) -> Remote:
        return cls(name, address, certificate, fingerprint(certificate))

    @classmethod
    def from_json(cls, data: object) -> Remote:
        """A remote as another member sent it: checked field by field."""
        if not isinstance(data, dict):
            raise BadRequest("a member must be a JSON object")
        name = check_name(data.get("name"))
        address = data.get("address")
        check_address(address)
        certificate = data.get("certificate")
        if not isinstance(certificate, str):
            raise BadRequest(f"member {name}: the certificate is missing")
        return cls.of(name, str(address), certificate)

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "address": self.address, "certificate": self.certificate}


class TrustStore:
    def __init__(self, state_dir: StateDir) -> None:
        self._state_dir = state_dir
        self._lock = threading.Lock()
        self._by_fingerprint: dict[str, Remote] = {}
        self._listeners: list[Callable[[list[Remote]], None]] = []

    def subscribe(self, listener: Callable[[list[Remote]], None]) -> None:
        self._listeners.append(listener)
        listener(self.remotes())

    def load(self) -> None:
        data = self._state_dir.read_json(self._state_dir.truststore)
        remotes: list[Remote] = []
        if data is not None:
            members = data.get("members")
            if not isinstance(members, list):
                raise StateDirError(f"{self._state_dir.truststore}: expected a list of members")
            try:
                remotes = [Remote.from_json(member) for member in members]
            except BadRequest as exc:
                raise StateDirError(f"{self._state_dir.truststore}: {exc}") from None
        self._set(remotes, persist=False)

    def replace(self, remotes: Iterable[Remote]) -> bool:
        """Trust exactly `remotes`; True when that changed anything."""
        return self._set(list(remotes), persist=True)

    def add(self, remote: Remote) -> None:
        with self._lock:
            current = [r for r in self._by_fingerprint.values() if r.name != remote.name]
        self._set([*current, remote], persist=True)

    def remove(self, name: str) -> None:
        with self._lock:
            current = [r for r in self._by_fingerprint.values() if r.name != name]
        self._set(current, persist=True)

    def clear(self) -> None:
        self._set([], persist=False)

    def by_fingerprint(self, value: str) -> Remote | None:
        with self._lock:
            return self._by_fingerprint.get(value)

    def by_name(self, name: str) -> Remote | None:
        with self._lock:
            return next((r for r in self._by_fingerprint.values() if r.name == name), None)

    def remotes(self) -> list[Remote]:
        with self._lock:
            return sorted(self._by_fingerprint.values(), key=lambda r: r.name)

    def _set(self, remotes: list[Remote], *, persist: bool) -> bool:
        wanted = {r.fingerprint: r for r in remotes}
        with self._lock:
            if wanted == self._by_fingerprint:
                return False
            self._by_fingerprint = wanted
            ordered = sorted(wanted.values(), key=lambda r: r.name)
            if persist:
                self._state_dir.write_json(
                    self._state_dir.truststore, {"members": [r.to_json() for r in ordered]}
                )
        for listener in self._listeners:
            listener(ordered)
        return True

    def as_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.remotes()]
