"""Simulated clients: coroutines on each process's loop that call its NodeHost as a user
program would (`aio_propose`, `aio_read`, client sessions), and record what they saw.

Rules:
- A client lives in its process: a crash kills it with the operation it had
  outstanding, which the history keeps as of unknown outcome.
- A write's outcome is known only when it completed. A timeout, or a replica that
  stopped under it, leaves it unknown (it may still be applied). Refused for sure
  (dropped before any attempt may have been applied, SystemBusy, Rejected): not in
  the history at all. With a client session, a timed-out write is sent again under the
  same session until its deadline, as the README tells users to: applied exactly once.
  A client that gives up on a write registers a new session before its next one.
- A read is in the history only with its answer.
- Times are the scheduler's: every recorder of a run shares its clock.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Protocol

from nodehost import (
    Closed,
    NodeHost,
    RaftError,
    Rejected,
    ShardNotReady,
    SystemBusy,
    Timeout,
)
from nodehost.rsm import Session
from nodehost.testing.history import HistoryRecorder
from nodehost.testing.simulation.config import SimulationConfig
from nodehost.testing.simulation.hosts import SimulatedHost
from nodehost.testing.simulation.loop import Scheduler
from nodehost.testing.simulation.workload import Read, Workload, Write


class World(Protocol):
    """What clients need of the run they are part of (simulation.Simulation)."""

    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> SimulationConfig: ...
    @property
    def scheduler(self) -> Scheduler: ...
    @property
    def workload(self) -> Workload: ...
    @property
    def has_clients(self) -> bool: ...

    def trace(self, text: str) -> None: ...


_KNOWN, _FAILED, _UNKNOWN = "known", "failed", "unknown"


class Clients:
    def __init__(self, sim: World) -> None:
        self._sim = sim
        scheduler = sim.scheduler
        self.recorder = HistoryRecorder(clock=lambda: int(scheduler.now * 1e9))
        self.until = 0.0  # no operation starts after this simulated time
        self._serial = 0
        self.completed = 0
        self.unknown = 0
        self.failed = 0

    def start(self, host: SimulatedHost) -> None:
        """Start this process's clients, if the run still makes operations."""
        sim = self._sim
        if not sim.has_clients or host.loop is None or host.nh is None:
            return
        if sim.scheduler.now >= self.until:
            return
        for shard_id in sorted(host.plans):
            for _ in range(sim.config.clients_per_host):
                self._serial += 1
                client_id = self._serial
                rng = random.Random(f"client/{sim.seed}/{client_id}")
                host.loop.create_task(
                    self._run(host.nh, shard_id, client_id, rng), name=f"client-{client_id}"
                )

    def stopped(self, host: SimulatedHost) -> None:
        """The process is gone; its clients went with it (their loop never runs again)."""

    async def _run(self, nh: NodeHost, shard_id: int, client_id: int, rng: random.Random) -> None:
        sim = self._sim
        config = sim.config
        workload = sim.workload
        scheduler = sim.scheduler
        session: Session | None = None
        try:
            while scheduler.now < self.until:
                if workload.sessions and session is None:
                    try:
                        session = await nh.aio_get_session(shard_id, config.op_timeout)
                    except Closed:
                        return
                    except RaftError:
                        await asyncio.sleep(config.op_timeout / 4)
                        continue
                op = workload.next(rng, client_id)
                token = self.recorder.invoke(client_id, op.input)
                if isinstance(op, Write):
                    how, output = await self._write(nh, shard_id, session, op)
                else:
                    how, output = await self._read(nh, shard_id, op)
                if how == _KNOWN:
                    self.recorder.complete(token, output)
                    self.completed += 1
                    sim.trace(f"client {client_id} {op.input!r} -> {output!r}")
                elif how == _FAILED:
                    self.recorder.fail(token)
                    self.failed += 1
                else:
                    self.recorder.unknown(token)
                    self.unknown += 1
                    sim.trace(f"client {client_id} {op.input!r} -> ?")
                    if isinstance(op, Write):
                        # Its series may still be applied: a new command under the same
                        # session would be taken for a retry of it and answered with its
                        # result. A client that gives up on a command starts a session.
                        session = None
                low, high = config.think
                await asyncio.sleep(rng.uniform(low, high))
        except Closed:
            return

    async def _write(
        self, nh: NodeHost, shard_id: int, session: Session | None, op: Write
    ) -> tuple[str, Any]:
        sim = self._sim
        config = sim.config
        scheduler = sim.scheduler
        workload = sim.workload
        if session is None:
            try:
                result = await nh.aio_propose(
                    nh.get_noop_session(shard_id), op.command, config.op_timeout
                )
            except (ShardNotReady, SystemBusy, Rejected):
                return _FAILED, None
            except Closed:
                raise
            except RaftError:
                return _UNKNOWN, None
            return _KNOWN, workload.write_output(op, result)
        deadline = scheduler.now + config.op_timeout
        maybe_applied = False
        while True:
            attempt = min(config.session_attempt, max(deadline - scheduler.now, 0.001))
            try:
                result = await nh.aio_propose(session, op.command, attempt)
            except Timeout:
                maybe_applied = True
            except (ShardNotReady, SystemBusy):
                if not maybe_applied:
                    return _FAILED, None
            except Rejected:
                return (_UNKNOWN if maybe_applied else _FAILED), None
            except Closed:
                raise
            except RaftError:
                return _UNKNOWN, None
            else:
                return _KNOWN, workload.write_output(op, result)
            if scheduler.now >= deadline:
                return (_UNKNOWN if maybe_applied else _FAILED), None
            await asyncio.sleep(config.rtt_ms / 1000.0)

    async def _read(self, nh: NodeHost, shard_id: int, op: Read) -> tuple[str, Any]:
        try:
            value = await nh.aio_read(shard_id, op.query, self._sim.config.op_timeout)
        except Closed:
            raise
        except RaftError:
            return _FAILED, None
        return _KNOWN, self._sim.workload.read_output(op, value)
