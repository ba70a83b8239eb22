"""Transport speed between two processes on loopback, printed beside the raw ceilings.

    uv run python scripts/bench_transport.py                 # all parts, uvloop
    uv run python scripts/bench_transport.py --loop asyncio --skip-snapshot

Parts (every part runs each kind of `--transports`, gRPC and TCP by default, in turn):
0. ping-pong: one small message out and its answer back, one at a time, between two
   processes: the transport's round trip, what a sequential proposal pays per hop.
1. messages: a sender process calls the transport's `send` once per "engine pass" with
   `--pass-size` small Raft messages spread over `--shards` shards; a receiver process
   counts what its handler is given. The sender keeps at most two frames' worth of
   bytes queued (a closed loop: we measure capacity, not the drop policy).
2. raw ceiling: a plain grpc.aio stream of pre-encoded MessageBatch frames holding the
   same number of messages per frame as part 1 averaged; the receiver decodes each frame
   and touches every message. No encoding per message, no checks, no routing.
3. snapshot: `send_snapshot` of a `--snapshot-mib` file; the receiver's peak RSS shows
   whether memory stays flat. Beside it: a raw grpc.aio stream of 2 MiB byte frames
   (no files, no checksums), and writing + fsyncing the same bytes to the same disk.

Each figure is the median of `--repeat` rounds, the transport and its ceilings taken in
turn so they meet the same load; CPU per message is printed too, as it depends less on
what else runs. On a shared, noisy machine read ratios, not promises.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from multiprocessing.connection import Connection
from typing import Any

import grpc

from nodehost.bench import (
    Histogram,
    free_port,
    free_ports,
    own_cpu_seconds,
    own_peak_rss_mib,
    stop_children,
)
from nodehost.bench.ceilings import beside
from nodehost.bench.report import machine, machine_line
from protos import raft_pb2 as pb
from transport import GrpcTransport, TransportConfig, create_transport
from transport.frames import BATCH_METHOD, SERVICE

MiB = 1024 * 1024
DEPLOYMENT = 42


def run_loop(kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    # The sender outlives its receiver at the end of a run; that one failure is expected.
    logging.getLogger("transport").setLevel(logging.ERROR)
    if kind == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


class Handler:
    """The engine's side, as cheap as an engine could make it."""

    def __init__(self, hosted: set[tuple[int, int]], snapshot_root: str = "") -> None:
        self.hosted = hosted
        self.count = 0
        self.snapshot_root = snapshot_root
        self.snapshot: pb.Message | None = None
        self.status: bool | None = None

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        self.count += len(messages)

    def on_unreachable(self, shard_id: int, replica_id: int) -> None:
        pass

    def on_snapshot_status(self, shard_id: int, replica_id: int, failed: bool) -> None:
        self.status = failed

    def on_snapshot_received(self, message: pb.Message) -> None:
        self.snapshot = message

    def snapshot_dir(self, shard_id: int, replica_id: int, index: int) -> str | None:
        return os.path.join(self.snapshot_root, f"snapshot-{shard_id}-{index}")

    def is_hosted(self, shard_id: int, replica_id: int) -> bool:
        return (shard_id, replica_id) in self.hosted

    def on_connection(self, address: str, established: bool) -> None:
        pass


def messages_for(shards: int, count: int) -> list[pb.Message]:
    return [
        pb.Message(
            type=pb.REPLICATE_RESP,
            shard_id=1 + i % shards,
            to=1,
            from_id=2,
            term=5,
            log_index=1000 + i,
            commit=990 + i,
        )
        for i in range(count)
    ]


# ---------------------------------------------------------------------- part 1


def receiver_main(
    kind: str, port: int, loop: str, shards: int, warmup: float, seconds: float, out: Connection
) -> None:
    async def main() -> None:
        handler = Handler({(s, 1) for s in range(1, shards + 1)})
        t = create_transport(kind, TransportConfig(f"127.0.0.1:{port}", "", DEPLOYMENT), handler)
        await t.start()
        out.send("ready")
        while handler.count == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(warmup)
        c0, t0, cpu0 = handler.count, time.perf_counter(), own_cpu_seconds()
        await asyncio.sleep(seconds)
        c1, t1, cpu1 = handler.count, time.perf_counter(), own_cpu_seconds()
        out.send(((c1 - c0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0), dict(t.stats.rejected)))
        await t.close()

    run_loop(loop, main)


def sender_main(
    kind: str, port: int, loop: str, shards: int, pass_size: int, control: Connection
) -> None:
    async def main() -> None:
        t = create_transport(
            kind, TransportConfig(f"127.0.0.1:{free_port()}", "", DEPLOYMENT), Handler(set())
        )
        await t.start()
        target = f"127.0.0.1:{port}"
        for s in range(1, shards + 1):
            t.registry.add(s, 1, target)
        batch = messages_for(shards, pass_size)
        high_water = 2 * t.config.batch_bytes
        passes = 0
        cpu0, t0 = own_cpu_seconds(), time.perf_counter()
        while True:
            if t.queued_bytes(target) < high_water:
                t.send(batch)
                passes += 1
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.0005)
            if passes % 64 == 0 and control.poll():
                break
        cpu = (own_cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        s = t.stats
        control.send((s.messages_sent, s.batches_sent, s.dropped, cpu))
        await t.close()

    run_loop(loop, main)


# ---------------------------------------------------------------------- part 1b


class Echo(Handler):
    """Answers every message at once: the far end of a ping-pong."""

    def __init__(self, transport_box: list[Any]) -> None:
        super().__init__({(1, 2)})
        self.box = transport_box

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        self.box[0].send(
            [
                pb.Message(type=pb.HEARTBEAT_RESP, shard_id=1, to=1, from_id=2, term=m.term)
                for m in messages
            ]
        )


class Waiter(Handler):
    def __init__(self) -> None:
        super().__init__({(1, 1)})
        self.future: asyncio.Future[None] | None = None

    def on_messages(self, source_address: str, messages: Sequence[pb.Message]) -> None:
        if self.future is not None and not self.future.done():
            self.future.set_result(None)


def pong_main(kind: str, port: int, ping_port: int, loop: str, out: Connection) -> None:
    async def main() -> None:
        box: list[Any] = []
        t = create_transport(kind, TransportConfig(f"127.0.0.1:{port}", "", DEPLOYMENT), Echo(box))
        box.append(t)
        t.registry.add(1, 1, f"127.0.0.1:{ping_port}")
        await t.start()
        out.send("ready")
        while not out.poll(0.05):
            await asyncio.sleep(0.05)
        out.send((0, 0, {}))
        await t.close()

    run_loop(loop, main)


def ping_main(
    kind: str, port: int, pong_port: int, loop: str, warmup: float, seconds: float, out: Connection
) -> None:
    async def main() -> None:
        waiter = Waiter()
        t = create_transport(kind, TransportConfig(f"127.0.0.1:{port}", "", DEPLOYMENT), waiter)
        t.registry.add(1, 2, f"127.0.0.1:{pong_port}")
        await t.start()
        histogram = Histogram()
        running = asyncio.get_running_loop()
        started = time.perf_counter()
        opens, closes = started + warmup, started + warmup + seconds
        cpu0 = 0.0
        term = 1
        while (sent := time.perf_counter()) < closes:
            waiter.future = running.create_future()
            t.send([pb.Message(type=pb.HEARTBEAT, shard_id=1, to=2, from_id=1, term=term)])
            try:
                await asyncio.wait_for(waiter.future, 5.0)
            except TimeoutError:
                continue  # the first ones go out while the connection opens
            done = time.perf_counter()
            term += 1
            if sent >= opens:
                if histogram.total == 0:
                    cpu0 = own_cpu_seconds()
                histogram.record(done - sent)
        cpu = own_cpu_seconds() - cpu0
        out.send((histogram.to_json(), cpu))
        await t.close()

    run_loop(loop, main)


def bench_pingpong(args: argparse.Namespace) -> None:
    """One message out and its answer back, one at a time: the transport's round trip."""
    figures: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in args.transports}
    ctx = mp.get_context("spawn")
    for round_number in range(args.repeat):
        kinds = list(args.transports)
        if round_number % 2:
            kinds.reverse()
        for kind in kinds:
            ping_port, pong_port = free_ports(2)
            pong_out, pong_in = ctx.Pipe()
            ping_out, ping_in = ctx.Pipe(duplex=False)
            pong = ctx.Process(
                target=pong_main, args=(kind, pong_port, ping_port, args.loop, pong_in)
            )
            ping = ctx.Process(
                target=ping_main,
                args=(kind, ping_port, pong_port, args.loop, args.warmup, args.seconds, ping_in),
            )
            try:
                pong.start()
                if not pong_out.poll(30):
                    raise SystemExit("the echo process did not start")
                pong_out.recv()
                ping.start()
                if not ping_out.poll(args.warmup + args.seconds + 60):
                    raise SystemExit("the ping process did not report")
                data, cpu = ping_out.recv()
                pong_out.send("stop")
            finally:
                stop_children(
                    [p for p in (ping, pong) if p.pid is not None], polite=_no_request, grace=10
                )
            histogram = Histogram.from_json(data)
            rate = histogram.total / args.seconds
            figures[kind].append(
                (
                    rate,
                    histogram.percentile_ms(0.5),
                    histogram.percentile_ms(0.99),
                    cpu / max(1, histogram.total) * 1e6,
                )
            )
    for kind in args.transports:
        rows = figures[kind]
        rate, p50, p99, cpu_us = (statistics.median(column) for column in zip(*rows, strict=True))
        print(
            f"{kind} transport ping-pong (one message each way, one at a time): "
            f"{rate:,.0f} round trips/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms, "
            f"pinging side's CPU {cpu_us:.0f} us per round trip (median of {args.repeat})"
        )
    print("\n".join(beside("grpc_pingpong", "tcp_pingpong")))


# ---------------------------------------------------------------------- part 2


def raw_receiver_main(port: int, loop: str, warmup: float, seconds: float, out: Connection) -> None:
    async def main() -> None:
        count = 0

        async def serve(frames: Any, context: Any) -> bytes:
            nonlocal count
            async for frame in frames:
                batch = pb.MessageBatch.FromString(frame)
                for m in batch.requests:
                    m.to  # noqa: B018 - touch it, as any receiver must
                count += len(batch.requests)
            return b""

        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 128 * MiB)])
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"SendBatches": grpc.stream_unary_rpc_method_handler(serve)}
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        out.send("ready")
        while count == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(warmup)
        c0, t0, cpu0 = count, time.perf_counter(), own_cpu_seconds()
        await asyncio.sleep(seconds)
        c1, t1, cpu1 = count, time.perf_counter(), own_cpu_seconds()
        out.send(((c1 - c0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0), {}))
        await server.stop(0)

    run_loop(loop, main)


def raw_sender_main(
    port: int,
    loop: str,
    shards: int,
    per_frame: int,
    frame_bytes: int,
    encode: bool,
    control: Connection,
) -> None:
    async def main() -> None:
        messages = messages_for(shards, per_frame)
        if frame_bytes:
            frame = b"x" * frame_bytes
        else:
            frame = pb.MessageBatch(
                deployment_id=DEPLOYMENT, source_address="127.0.0.1:1", requests=messages
            ).SerializeToString()
        channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 128 * MiB)]
        )
        call = channel.stream_unary(BATCH_METHOD)()
        writes = 0
        cpu0, t0 = own_cpu_seconds(), time.perf_counter()
        try:
            while writes % 16 != 0 or not control.poll():
                if encode:  # the least any transport must do: encode what it is given
                    frame = pb.MessageBatch(
                        deployment_id=DEPLOYMENT, source_address="127.0.0.1:1", requests=messages
                    ).SerializeToString()
                await call.write(frame)
                writes += 1
        except grpc.aio.AioRpcError:
            pass  # the receiver finished first
        cpu = (own_cpu_seconds() - cpu0) / (time.perf_counter() - t0)
        call.cancel()
        await channel.close()
        control.send((writes, cpu))

    run_loop(loop, main)


def measure(
    receiver: Callable[..., None],
    receiver_args: tuple[Any, ...],
    sender: Callable[..., None],
    sender_args: tuple[Any, ...],
) -> tuple[tuple[float, float, dict[str, int]], Any]:
    ctx = mp.get_context("spawn")
    r_out, r_in = ctx.Pipe(duplex=False)
    s_ctl, s_ctl_child = ctx.Pipe()
    rp = ctx.Process(target=receiver, args=(*receiver_args, r_in))
    sp = ctx.Process(target=sender, args=(*sender_args, s_ctl_child))
    try:
        rp.start()
        if not r_out.poll(30) or r_out.recv() != "ready":
            raise SystemExit("receiver did not start")
        sp.start()
        if not r_out.poll(120):
            raise SystemExit("receiver did not report")
        received = r_out.recv()
        s_ctl.send("stop")
        if not s_ctl.poll(30):
            raise SystemExit("sender did not report")
        sent = s_ctl.recv()
    finally:
        # Each reports and then exits by itself: the wait for that is the polite part.
        stop_children([p for p in (sp, rp) if p.pid is not None], polite=_no_request, grace=10)
    return received, sent


def _no_request(child: object) -> None:
    pass


# ---------------------------------------------------------------------- part 3


def snapshot_receiver_main(port: int, loop: str, root: str, out: Connection) -> None:
    async def main() -> None:
        handler = Handler({(1, 1)}, root)
        t = GrpcTransport(TransportConfig(f"127.0.0.1:{port}", "", DEPLOYMENT), handler)
        await t.start()
        out.send(("ready", own_peak_rss_mib()))
        while handler.snapshot is None and not t.stats.rejected:
            await asyncio.sleep(0.01)
        out.send((own_peak_rss_mib(), handler.snapshot is not None, dict(t.stats.rejected)))
        await t.close()

    run_loop(loop, main)


def snapshot_sender_main(port: int, loop: str, path: str, out: Connection) -> None:
    async def main() -> None:
        handler = Handler(set())
        t = GrpcTransport(TransportConfig(f"127.0.0.1:{free_port()}", "", DEPLOYMENT), handler)
        await t.start()
        t.registry.add(1, 1, f"127.0.0.1:{port}")
        rss0 = own_peak_rss_mib()
        start = time.perf_counter()
        t.send_snapshot(
            pb.Message(
                type=pb.INSTALL_SNAPSHOT,
                shard_id=1,
                to=1,
                from_id=2,
                term=3,
                snapshot=pb.Snapshot(shard_id=1, index=100, term=3, filepath=path),
            )
        )
        while handler.status is None:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        out.send((elapsed, handler.status, rss0, own_peak_rss_mib()))
        await t.close()

    run_loop(loop, main)


def bench_snapshot(loop: str, mib: int, workdir: str, repeat: int) -> None:
    src = os.path.join(workdir, "send")
    dst = os.path.join(workdir, "recv")
    os.makedirs(src)
    os.makedirs(dst)
    path = os.path.join(src, "snapshot.bin")
    piece = os.urandom(MiB)
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(hashlib.sha256(i.to_bytes(8, "big")).digest() + piece[32:])
        f.flush()
        os.fsync(f.fileno())  # its writeback must not compete with the transfer
    rates, disk, grpc_raw, rss = [], [], [], []
    for _ in range(repeat):
        disk.append(mib / _copy_seconds(path, os.path.join(dst, "copy.bin")))
        elapsed, receiver_rss, sender_rss = _transfer(loop, path, dst)
        rates.append(mib / elapsed)
        rss.append((receiver_rss, sender_rss))
        grpc_raw.append(raw_bytes_stream(loop, 2 * MiB))
    print(
        f"snapshot {mib} MiB: {statistics.median(rates):.0f} MiB/s (median of "
        f"{', '.join(f'{r:.0f}' for r in rates)}), every copy intact; peak RSS receiver "
        f"{max(r for r, _ in rss):.0f} MiB, sender {max(s for _, s in rss):.0f} MiB "
        f"(processes start at ~46 MiB)"
    )
    print(
        f"  ceiling: raw grpc.aio stream of 2 MiB byte frames: {statistics.median(grpc_raw):.0f} MiB/s"
    )
    print(
        f"  ceiling: read + write + fsync of the file, just before each transfer: "
        f"{statistics.median(disk):.0f} MiB/s (median of {', '.join(f'{d:.0f}' for d in disk)})"
    )


def _copy_seconds(path: str, copy: str) -> float:
    start = time.perf_counter()
    with open(path, "rb") as f, open(copy, "wb") as g:
        while data := f.read(2 * MiB):
            g.write(data)
        g.flush()
        os.fsync(g.fileno())
    elapsed = time.perf_counter() - start
    os.remove(copy)
    return elapsed


def _transfer(loop: str, path: str, dst: str) -> tuple[float, float, float]:
    """One send_snapshot between two processes: (seconds, peak RSS receiver, sender)."""
    ctx = mp.get_context("spawn")
    port = free_port()
    r_out, r_in = ctx.Pipe(duplex=False)
    s_out, s_in = ctx.Pipe(duplex=False)
    rp = ctx.Process(target=snapshot_receiver_main, args=(port, loop, dst, r_in))
    sp = ctx.Process(target=snapshot_sender_main, args=(port, loop, path, s_in))
    try:
        rp.start()
        if not r_out.poll(30):
            raise SystemExit("snapshot receiver did not start")
        r_out.recv()
        sp.start()
        if not s_out.poll(600):
            raise SystemExit("snapshot sender did not report within 600 s")
        elapsed, failed, _, sender_rss = s_out.recv()
        if not r_out.poll(60):
            raise SystemExit("snapshot receiver did not report")
        receiver_rss, ok, rejected = r_out.recv()
    finally:
        stop_children([p for p in (sp, rp) if p.pid is not None], polite=_no_request, grace=10)
    received = os.path.join(dst, "snapshot-1-100")
    if not (ok and not failed and _same_file(path, os.path.join(received, "snapshot.bin"))):
        raise SystemExit(f"snapshot transfer failed: {rejected}")
    shutil.rmtree(received)
    return elapsed, receiver_rss, sender_rss


def _same_file(a: str, b: str) -> bool:
    def digest(p: str) -> bytes:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while data := f.read(4 * MiB):
                h.update(data)
        return h.digest()

    return os.path.exists(b) and digest(a) == digest(b)


def raw_bytes_stream(loop: str, frame_bytes: int) -> float:
    port = free_port()
    (rate, _, _), _ = measure(
        raw_receiver_bytes_main,
        (port, loop, 1.0, 3.0),
        raw_sender_main,
        (port, loop, 0, 0, frame_bytes, False),
    )
    return rate * frame_bytes / MiB


def raw_receiver_bytes_main(
    port: int, loop: str, warmup: float, seconds: float, out: Connection
) -> None:
    async def main() -> None:
        count = 0

        async def serve(frames: Any, context: Any) -> bytes:
            nonlocal count
            async for _ in frames:
                count += 1
            return b""

        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 128 * MiB)])
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"SendBatches": grpc.stream_unary_rpc_method_handler(serve)}
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        out.send("ready")
        while count == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(warmup)
        c0, t0 = count, time.perf_counter()
        await asyncio.sleep(seconds)
        out.send(((count - c0) / (time.perf_counter() - t0), 0.0, {}))
        await server.stop(0)

    run_loop(loop, main)


# ---------------------------------------------------------------------- main


def bench_messages(args: argparse.Namespace, pass_size: int) -> None:
    """`--repeat` rounds of (each transport kind, both ceilings), interleaved so that
    each figure meets the same neighbours on a shared machine; medians are printed."""
    ours: dict[str, list[tuple[float, float, float]]] = {k: [] for k in args.transports}
    frames: dict[str, list[float]] = {k: [] for k in args.transports}
    ceilings: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    per_frame = 0
    problems = 0
    for round_number in range(args.repeat):
        kinds = list(args.transports)
        if round_number % 2:
            kinds.reverse()
        for kind in kinds:
            port = free_port()
            (rate, rcpu, rejected), (sent, batches, dropped, scpu) = measure(
                receiver_main,
                (kind, port, args.loop, args.shards, args.warmup, args.seconds),
                sender_main,
                (kind, port, args.loop, args.shards, pass_size),
            )
            ours[kind].append((rate, scpu / rate * 1e6, rcpu / rate * 1e6))
            frames[kind].append(sent / max(1, batches))
            problems += dropped + sum(rejected.values())
            per_frame = per_frame or max(1, round(sent / max(1, batches)))
        if args.skip_ceilings:
            continue
        for encode in (False, True):
            port = free_port()
            (raw, raw_rcpu, _), (_, raw_scpu) = measure(
                raw_receiver_main,
                (port, args.loop, args.warmup, args.seconds),
                raw_sender_main,
                (port, args.loop, args.shards, per_frame, 0, encode),
            )
            ceilings[encode].append((raw, raw_scpu / raw * 1e6, raw_rcpu / raw * 1e6))
    size = len(messages_for(args.shards, 1)[0].SerializeToString())
    for kind in args.transports:
        rate, scpu_us, rcpu_us = _medians(ours[kind])
        print(
            f"{kind} transport, {pass_size} messages per send(): {rate:,.0f} msgs/s one way "
            f"(median of {args.repeat}: {', '.join(f'{r:,.0f}' for r, _, _ in ours[kind])}; "
            f"{size} byte messages, {statistics.median(frames[kind]):,.1f} per frame, "
            f"{problems} dropped or rejected); "
            f"CPU per message: sender {scpu_us:.2f} us, receiver {rcpu_us:.2f} us"
        )
    if args.skip_ceilings:
        return
    rate = _medians(ours[args.transports[0]])[0]
    for encode, what in ((False, "pre-encoded frames"), (True, "a MessageBatch encoded per frame")):
        raw, raw_scpu_us, raw_rcpu_us = _medians(ceilings[encode])
        print(
            f"  ceiling: raw grpc.aio stream, {what} of {per_frame} messages, decoded and "
            f"walked: {raw:,.0f} msgs/s (CPU per message: sender {raw_scpu_us:.2f} us, "
            f"receiver {raw_rcpu_us:.2f} us); {args.transports[0]}/ceiling = {rate / raw:.2f}"
        )


def _medians(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    a, b, c = (statistics.median(column) for column in zip(*rows, strict=True))
    return a, b, c


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--pass-size",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[64, 1024],
        help="messages per send() call (comma-separated: one run each)",
    )
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument(
        "--transports",
        type=lambda text: [kind.strip() for kind in text.split(",")],
        default=["grpc", "tcp"],
        help="transport kinds, comma-separated, measured in turn (default grpc,tcp)",
    )
    parser.add_argument("--skip-ceilings", action="store_true", help="no raw gRPC runs")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--snapshot-mib", type=int, default=256)
    parser.add_argument("--skip-snapshot", action="store_true")
    parser.add_argument("--skip-messages", action="store_true")
    parser.add_argument("--skip-pingpong", action="store_true")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where snapshot files go")
    args = parser.parse_args()
    print(machine_line(machine()))
    print(f"loop={args.loop} shards={args.shards}")
    print("\n".join(beside("grpc_stream", "grpc_stream_64", "tcp_frames")))
    if not args.skip_pingpong:
        bench_pingpong(args)
    if not args.skip_messages:
        for pass_size in args.pass_size:
            bench_messages(args, pass_size)
    if not args.skip_snapshot:
        workdir = tempfile.mkdtemp(prefix="bench-transport-", dir=args.dir)
        try:
            bench_snapshot(args.loop, args.snapshot_mib, workdir, args.repeat)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
