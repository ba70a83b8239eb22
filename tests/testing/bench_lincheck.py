"""How fast the linearizability checker decides, on passing and failing histories.

    uv run python -m tests.testing.bench_lincheck [--quick] [--seed N]

It lives beside the test suite because its histories come from the suite's
simulator (`histories.py` here): clients that
keep one operation outstanding each, overlapping heavily, with unique written values;
"stale" and "never" mutate one read to an overwritten or a never-written value.
`search s` is the time to the verdict; `total s` adds narrowing the explanation of a
failure. The raw ceiling beside the figures is plain Python inserting (int, int, int)
tuples into a set: no search can memoize states faster than that on this machine.
Append-only lists (unique elements, many timed-out appends, as the chaos suite's
appended strings) are decided by check_list_append and, for comparison, by the search
with a 10 s budget. With LINCHECK_PORCUPINE_DATA set, porcupine's labelled histories
are timed too.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path
from typing import Any

from nodehost.bench.report import machine, machine_line
from nodehost.testing import (
    Model,
    Operation,
    Verdict,
    check_list_append,
    check_operations,
    kv_model,
    list_model,
    register_model,
)

from .histories import mutate_never_written, mutate_stale, simulate, simulate_list


def raw_memo_ceiling() -> float:
    """Tuple inserts per second into a set, the floor cost of one explored state."""
    seen: set[tuple[int, int, int]] = set()
    n = 1_000_000
    started = time.perf_counter()
    for i in range(n):
        seen.add((i, i & 1023, i >> 3))
    return n / (time.perf_counter() - started)


def row(case: str, history: list[Operation], model: Model[Any], clients: int) -> None:
    result = check_operations(model, history)
    search = sum(p.seconds for p in result.partitions)
    rate = result.explored / search if search else 0.0
    print(
        f"{case:<24} {len(history):>7} {clients:>7} {len(result.partitions):>5} "
        f"{result.verdict.value:>8} {search:>9.2f} {result.seconds:>8.2f} "
        f"{result.explored:>9} {rate:>10,.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000-op histories only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10_000]

    print(machine_line(machine()))
    ceiling = raw_memo_ceiling()
    print(f"raw ceiling: {ceiling:,.0f} memo inserts/s (plain Python set of int tuples)\n")
    print(
        f"{'history':<24} {'ops':>7} {'clients':>7} {'keys':>5} {'verdict':>8} "
        f"{'search s':>9} {'total s':>8} {'states':>9} {'states/s':>10}"
    )
    rng = random.Random(args.seed)
    for n in sizes:
        for p_unknown in (0.0, 0.01):
            tag = f"register {n // 1000}k" + (f" {p_unknown:.0%} unk" if p_unknown else "")
            history = simulate(rng, clients=10, ops=n, p_unknown=p_unknown)
            row(f"{tag} pass", history, register_model(), 10)
            stale = mutate_stale(rng, history)
            assert stale is not None
            row(f"{tag} stale", stale, register_model(), 10)
            never = mutate_never_written(rng, history)
            assert never is not None
            row(f"{tag} never", never, register_model(), 10)
        history = simulate(rng, clients=10, ops=n, keys=100, p_unknown=0.01)
        row(f"kv {n // 1000}k 100 keys pass", history, kv_model(), 10)
        never = mutate_never_written(rng, history)
        assert never is not None
        row(f"kv {n // 1000}k 100 keys never", never, kv_model(), 10)

    print(
        f"\n{'append-only list':<24} {'ops':>7} {'timed out':>9} {'list-append':>16} "
        f"{'search (10 s budget)':>24}"
    )
    for n in sizes:
        for p_unknown in (0.05, 0.3):
            history = simulate_list(rng, clients=10, ops=n, p_unknown=p_unknown)
            timed_out = sum(o.return_time == float("inf") for o in history)
            started = time.perf_counter()
            fast = check_list_append(history)
            fast_s = time.perf_counter() - started
            slow = check_operations(list_model(), history, timeout=10.0)
            print(
                f"{f'list {n // 1000}k {p_unknown:.0%} timed out':<24} {len(history):>7} "
                f"{timed_out:>9} {fast.verdict.value:>8} {fast_s:>6.3f} s "
                f"{slow.verdict.value:>14} {slow.seconds:>6.2f} s"
            )

    data = os.environ.get("LINCHECK_PORCUPINE_DATA", "")
    if data:
        from .jepsen import ETCD_LINEARIZABLE, ETCD_LOGS, read_etcd_log, read_kv_log

        started, agree = time.perf_counter(), 0
        for number in ETCD_LOGS:
            history = read_etcd_log(Path(data, "jepsen", f"etcd_{number:03d}.log"))
            verdict = check_operations(register_model(), history).verdict
            agree += verdict is (Verdict.OK if number in ETCD_LINEARIZABLE else Verdict.ILLEGAL)
        print(
            f"\nporcupine etcd Jepsen logs: {agree}/{len(ETCD_LOGS)} verdicts as labelled, "
            f"{time.perf_counter() - started:.2f} s for all"
        )
        for name in ("c50-ok", "c50-bad"):
            history = read_kv_log(Path(data, "kv", f"{name}.txt"))
            row(f"porcupine kv {name}", history, kv_model(), 50)


if __name__ == "__main__":
    main()
