"""One replica of shard 128 and the console that drives it.

Rules:
- Three activities, as in Dragonboat's helloworld: the console reads lines, the
  proposer runs them one at a time (each line with `sync_propose`, 3 s), and the reader
  prints a linearizable count every 10 s (nothing when there is no quorum). They are
  asyncio tasks on the main thread; the blocking NodeHost calls run on two worker
  threads, so the prompt stays responsive while a proposal waits.
- In a terminal, everything printed (state machine, results, logs) goes through
  prompt_toolkit's patched stdout, above the line being typed, never into it. Piped
  input is read line by line instead, so scripts can drive the example too.
- `exit` and Ctrl-D (end of input) finish the commands already queued; Ctrl-C and
  SIGTERM stop at once. Either way the NodeHost is closed and the process exits with 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

from prompt_toolkit import PromptSession
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.patch_stdout import patch_stdout

from examples.helloworld.commands import (
    AddReplica,
    Command,
    Exit,
    Propose,
    RemoveReplica,
    Usage,
    parse,
)
from examples.helloworld.main import Options
from examples.helloworld.statemachine import ExampleStateMachine
from nodehost import (
    Config,
    ISystemEventListener,
    NodeHost,
    NodeHostConfig,
    RaftError,
    Session,
    SnapshotInfo,
)

SHARD_ID = 128
TIMEOUT = 3.0  # seconds, for every request
READ_EVERY = 10.0  # seconds between two `count:` reads
QUEUED_COMMANDS = 16  # lines typed ahead of the proposer (Dragonboat's channel size)

log = logging.getLogger("helloworld")


class SnapshotLogger(ISystemEventListener):
    def snapshot_created(self, info: SnapshotInfo) -> None:
        log.info("snapshot captured, index %d", info.index)


def serve(options: Options) -> int:
    """Start the replica, run the console until the user quits, close. The exit code."""
    try:
        nh = NodeHost(
            NodeHostConfig(
                node_host_dir=options.data_dir,
                rtt_millisecond=200,
                raft_address=options.address,
                system_event_listener=SnapshotLogger(),
            )
        )
    except RaftError as exc:
        print(f"cannot start the NodeHost: {exc}", file=sys.stderr)
        return 1
    try:
        return _run(nh, options)
    finally:  # also after Ctrl-C (KeyboardInterrupt), which the caller turns into exit 0
        # Peers keep sending until they notice we left: their messages to a replica that
        # is stopping are expected, not worth a warning on the way out.
        if not options.verbose:
            logging.getLogger().setLevel(logging.ERROR)
        for sig in (signal.SIGINT, signal.SIGTERM):  # closing takes a moment; let it
            signal.signal(sig, signal.SIG_IGN)
        nh.close()


def _run(nh: NodeHost, options: Options) -> int:
    config = Config(
        shard_id=SHARD_ID,
        replica_id=options.replica_id,
        election_rtt=10,
        heartbeat_rtt=1,
        check_quorum=True,
        snapshot_entries=10,
        compaction_overhead=5,
    )
    try:
        nh.start_replica(options.members, options.join, ExampleStateMachine, config)
    except RaftError as exc:
        print(f"failed to add cluster, {exc}", file=sys.stderr)
        return 1
    console = Console(nh)
    try:
        asyncio.run(console.run())
    except asyncio.CancelledError:  # SIGTERM
        pass
    finally:
        console.close()
    return 0


class Console:
    def __init__(self, nh: NodeHost) -> None:
        self.nh = nh
        self.session: Session = nh.get_noop_session(SHARD_ID)
        self._workers = ThreadPoolExecutor(2, thread_name_prefix="helloworld")
        self._closing = threading.Event()

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        queued: asyncio.Queue[Command | None] = asyncio.Queue(QUEUED_COMMANDS)
        with _patched_stdout():
            proposer = asyncio.create_task(self._propose_loop(queued))
            reader = asyncio.create_task(self._read_loop())
            try:
                async for line in _lines():
                    command = parse(line)
                    if isinstance(command, Usage):
                        print(command.text, flush=True)
                    elif isinstance(command, Exit):
                        break
                    elif command is not None:
                        await queued.put(command)
                await queued.put(None)
                await proposer  # `exit` and Ctrl-D let what was typed finish
            finally:
                proposer.cancel()
                reader.cancel()

    def close(self) -> None:
        """Stop reporting failures: from here on, requests fail because we are closing."""
        self._closing.set()
        self._workers.shutdown(wait=False, cancel_futures=True)

    async def _propose_loop(self, queued: asyncio.Queue[Command | None]) -> None:
        loop = asyncio.get_running_loop()
        while (command := await queued.get()) is not None:
            await loop.run_in_executor(self._workers, self._execute, command)

    def _execute(self, command: Command) -> None:
        """Run one command on a worker thread; blocks up to the timeout."""
        nh = self.nh
        if isinstance(command, Propose):
            try:
                nh.sync_propose(self.session, command.text.encode(), TIMEOUT)
            except RaftError as exc:
                self._report(f"SyncPropose returned error {exc}")
            return
        try:
            if isinstance(command, AddReplica):
                nh.sync_request_add_replica(
                    SHARD_ID, command.replica_id, command.address, 0, TIMEOUT
                )
            elif isinstance(command, RemoveReplica):
                nh.sync_request_delete_replica(SHARD_ID, command.replica_id, 0, TIMEOUT)
        except RaftError as exc:
            self._report(f"membership change failed, {exc}")
        else:
            print("membership change completed successfully", flush=True)

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(READ_EVERY)
            try:
                data = await loop.run_in_executor(
                    self._workers, self.nh.sync_read, SHARD_ID, b"", TIMEOUT
                )
            except RaftError:
                continue  # no quorum: say nothing, as Dragonboat's helloworld does
            print(f"count: {int.from_bytes(data, 'little')}", flush=True)

    def _report(self, text: str) -> None:
        if not self._closing.is_set():
            print(text, file=sys.stderr, flush=True)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@contextlib.contextmanager
def _patched_stdout() -> Iterator[None]:
    if not _interactive():
        yield
        return
    with patch_stdout(raw=True):
        yield


async def _lines() -> AsyncIterator[str]:
    """Typed lines, with line editing and history, or piped ones; ends at Ctrl-D / EOF."""
    if _interactive():
        session: PromptSession[str] = PromptSession(history=InMemoryHistory())
        while True:
            try:
                yield await session.prompt_async("> ")
            except EOFError:
                return
    else:
        async for line in _piped_lines():
            yield line


async def _piped_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def pump() -> None:
        # A thread, because stdin cannot be read without blocking everywhere; it is a
        # daemon so that a read still pending when we quit does not hold the process.
        try:
            for raw in sys.stdin.buffer:  # bytes: a stray non-UTF-8 byte is no reason to stop
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)
        except RuntimeError:  # the loop closed first: we are quitting anyway
            pass

    threading.Thread(target=pump, name="helloworld-stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        yield line
