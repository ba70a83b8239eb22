"""Where each NodeHost listens now, by NodeHost id (address_by_node_host_id).

Memberships then name NodeHost ids, not host:port, so a host restarted on another
address (a rescheduled pod) keeps its replicas: the others learn its new address here.

Rules:
- An address is believed for an id only when this host dialled that address and the
  host there answered Identify with that id (over mutual TLS when it is on, so with
  the cluster's certificate). Everything else is a hint, believed once dialled: what a
  caller says about itself, what a peer says about other hosts, the source address of
  a batch (`look_at`: a joining replica's first messages from a peer it cannot place).
  A peer can therefore never point another host's id at an address that host does not
  answer on.
- Our own id is never recorded; a host answering with it is logged (a copied
  directory: two hosts with one id).
- Seeds (NodeHostConfig.seeds) are dialled at start and in every round; hosts already
  known and the hints about ids this host needs are dialled in the fast rounds, which
  run while an id a replica needs has no address or its address stopped answering. A
  caller that names a new address for itself, an id this host needs, is dialled back
  at once: that is how a host restarted elsewhere is found.
- Dials are bounded: hints are kept only for ids a replica here needs (a few addresses
  each) and dropped once dialled, each address is dialled at most once per
  PROBE_INTERVAL, one at a time, at most MAX_PROBES at once: a flood of hellos cannot
  become a flood of dials.
- Runs on the transport's event loop; nothing here blocks it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from protos import raft_pb2 as pb
from transport.config import is_node_host_id, split_address
from transport.frames import BIN_VERSION

log = logging.getLogger("transport.hosts")

ROUND_FAST = 0.5  # seconds between rounds while a needed host has no working address
ROUND_SLOW = 5.0
PROBE_INTERVAL = 0.5  # an address is dialled at most this often
PROBE_TIMEOUT = 3.0
MAX_PROBES = 16
MAX_HOSTS = 4096  # ids kept in the table, and entries read from one hello
MAX_HINTS = 8  # addresses kept per id to look for it at

Identify = Callable[[str, pb.HostHello, float], Awaitable[pb.HostHello]]


class HostRegistry:
    def __init__(
        self,
        node_host_id: str,
        address: str,
        deployment_id: int,
        seeds: Iterable[str],
        identify: Identify,
        on_moved: Callable[[str, str], None],
        wanted: Callable[[], set[str]],
    ) -> None:
        self.node_host_id = node_host_id
        self.address = address
        self.deployment_id = deployment_id
        self.seeds = [s for s in dict.fromkeys(seeds) if s != address]
        self._identify = identify
        self._on_moved = on_moved
        self._wanted = wanted
        self._addresses: dict[str, str] = {}  # verified: id -> address
        self._hints: dict[str, set[str]] = {}  # id -> addresses someone named for it
        self._down: set[str] = set()  # ids whose verified address stopped answering
        self._last_probe: dict[str, float] = {}
        self._probing: set[str] = set()
        self._slots = asyncio.Semaphore(MAX_PROBES)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callbacks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ reads

    def address_of(self, node_host_id: str) -> str | None:
        if node_host_id == self.node_host_id:
            return self.address
        return self._addresses.get(node_host_id)

    def host_at(self, address: str) -> str | None:
        """The id of the host found answering at `address` when this host dialled it."""
        for node_host_id, known in list(self._addresses.items()):
            if known == address and node_host_id not in self._down:
                return node_host_id
        return None

    def known(self) -> dict[str, str]:
        """Every verified host, ours included."""
        return {self.node_host_id: self.address, **self._addresses}

    def hello(self) -> pb.HostHello:
        return pb.HostHello(
            deployment_id=self.deployment_id,
            bin_ver=BIN_VERSION,
            node_host_id=self.node_host_id,
            address=self.address,
            known=[pb.HostAddress(node_host_id=i, address=a) for i, a in self._addresses.items()],
        )

    # ------------------------------------------------------------------ inputs

    def on_hello(self, hello: pb.HostHello) -> pb.HostHello:
        """Identify served (on the loop): take the caller's claims as hints, dial the
        caller back if it names a new address for itself; answer with ours."""
        if self._acceptable(hello):
            caller, where = hello.node_host_id, hello.address
            if self._hint(caller, where):
                task = asyncio.get_running_loop().create_task(self._probe(where))
                self._callbacks.add(task)
                task.add_done_callback(self._callbacks.discard)
            self._take_hints(hello.known)
        return self.hello()

    def address_down(self, address: str) -> None:
        """The transport could not reach `address`: whoever we placed there may have moved."""
        for node_host_id, known in self._addresses.items():
            if known == address:
                self._down.add(node_host_id)
                self._wake.set()

    def look_at(self, address: str) -> None:
        """Dial `address` to learn who answers there: a peer's messages came from a
        host that says it is there, and a claim is believed only once dialled. Safe
        from any thread; bounded as every dial is (PROBE_INTERVAL, MAX_PROBES)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._look_at, address)

    def _look_at(self, address: str) -> None:
        if address == self.address or len(self._probing) >= MAX_PROBES:
            return
        try:
            split_address(address)
        except ValueError:
            return
        task = asyncio.get_running_loop().create_task(self._probe(address))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    def wake(self) -> None:
        """An id may be wanted that has no address yet (a membership change). Safe from
        any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # ------------------------------------------------------------------ rounds

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            await self._round()
            delay = ROUND_FAST if self._unsettled() else ROUND_SLOW
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
                await asyncio.sleep(0.05)  # gather what else arrives with this wake-up
            except TimeoutError:
                pass
            self._wake.clear()

    def _unsettled(self) -> bool:
        wanted = self._wanted() - {self.node_host_id}
        return any(i not in self._addresses or i in self._down for i in wanted)

    async def _round(self) -> None:
        wanted = self._wanted() - {self.node_host_id}
        unsettled = {i for i in wanted if i not in self._addresses or i in self._down}
        targets = list(self.seeds)
        if unsettled:
            targets += list(self._addresses.values())
            for node_host_id in unsettled:
                targets += list(self._hints.pop(node_host_id, ()))
        targets = [t for t in dict.fromkeys(targets) if t != self.address]
        if targets:
            await asyncio.gather(*(self._probe(t) for t in targets))
        horizon = time.monotonic() - 60.0
        for address in [a for a, t in self._last_probe.items() if t < horizon]:
            del self._last_probe[address]

    async def _probe(self, address: str) -> None:
        now = time.monotonic()
        if address in self._probing or now - self._last_probe.get(address, -1e9) < PROBE_INTERVAL:
            return
        self._probing.add(address)
        self._last_probe[address] = now
        try:
            async with self._slots:
                answer = await self._identify(address, self.hello(), PROBE_TIMEOUT)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("identify %s: %s", address, exc)
            return
        finally:
            self._probing.discard(address)
        if not self._acceptable(answer):
            log.warning("%s answered Identify as another deployment or version", address)
            return
        for node_host_id, addresses in list(self._hints.items()):
            if node_host_id != answer.node_host_id:
                addresses.discard(address)  # whoever else was said to be there is not
                if not addresses:
                    del self._hints[node_host_id]
        self._verified(answer.node_host_id, address)
        self._take_hints(answer.known)

    # ------------------------------------------------------------------ table

    def _acceptable(self, hello: pb.HostHello) -> bool:
        return (
            hello.deployment_id == self.deployment_id
            and hello.bin_ver == BIN_VERSION
            and is_node_host_id(hello.node_host_id)
        )

    def _verified(self, node_host_id: str, address: str) -> None:
        if node_host_id == self.node_host_id:
            if address != self.address:
                log.error(
                    "%s answers as this NodeHost (%s): two hosts share one id (a copied "
                    "directory?)",
                    address,
                    node_host_id,
                )
            return
        old = self._addresses.get(node_host_id)
        self._down.discard(node_host_id)
        self._hints.pop(node_host_id, None)  # settled: later moves bring new hints
        if old == address:
            return
        if old is None and len(self._addresses) >= MAX_HOSTS:
            return
        self._addresses[node_host_id] = address
        if old is None:
            log.info("NodeHost %s is at %s", node_host_id, address)
        else:
            log.warning("NodeHost %s moved from %s to %s", node_host_id, old, address)
        self._on_moved(node_host_id, address)

    def _hint(self, node_host_id: str, address: str, wanted: set[str] | None = None) -> bool:
        """Keep `address` as a place to look for `node_host_id`, when a replica here
        needs that id and it is not known to be there; True when kept."""
        if node_host_id == self.node_host_id or self._addresses.get(node_host_id) == address:
            return False
        if node_host_id not in (self._wanted() if wanted is None else wanted):
            return False
        try:
            split_address(address)
        except ValueError:
            return False
        addresses = self._hints.setdefault(node_host_id, set())
        if len(addresses) >= MAX_HINTS:
            return False
        addresses.add(address)
        self._wake.set()
        return True

    def _take_hints(self, known: Iterable[pb.HostAddress]) -> None:
        wanted = self._wanted()
        for i, entry in enumerate(known):
            if i >= MAX_HOSTS:
                break
            if is_node_host_id(entry.node_host_id):
                self._hint(entry.node_host_id, entry.address, wanted)
