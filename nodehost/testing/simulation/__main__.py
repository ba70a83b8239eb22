"""Replay one seed of a scenario, or run a range of seeds.

    uv run python -m nodehost.testing.simulation --seed 17
    uv run python -m nodehost.testing.simulation tests.test_counter:COUNTER --seed 17 --trace
    uv run python -m nodehost.testing.simulation --seeds 0:200 --processes 2

Prints each run's report (its digest identifies the run byte for byte); exit status 1
when a run failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from nodehost.testing.simulation.scenario import load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nodehost.testing.simulation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "scenario",
        nargs="?",
        default="nodehost.testing.simulation:KV",
        help="module:attribute of a Scenario (default: the built-in key-value one)",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="replay this seed")
    which.add_argument("--seeds", help="run seeds A:B (B excluded)")
    parser.add_argument("--processes", type=int, default=1, help="for --seeds")
    parser.add_argument("--trace", action="store_true", help="print the run's trace")
    parser.add_argument("-v", "--verbose", action="store_true", help="library warnings too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    try:
        scenario = load(args.scenario)
    except (ImportError, ValueError) as exc:
        parser.error(str(exc))
    if args.seed is not None:
        result = scenario.run(args.seed, keep_trace=args.trace)
        if args.trace:
            print("\n".join(result.trace))
        print(result.report())
        return 0 if result.ok else 1
    low, _, high = args.seeds.partition(":")
    try:
        seeds = range(int(low), int(high))
    except ValueError:
        parser.error(f"--seeds takes A:B, not {args.seeds!r}")
    started = time.perf_counter()
    results = scenario.run_many(seeds, processes=args.processes)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(r.report())
    took = time.perf_counter() - started
    print(
        f"{len(results)} seeds, {len(failed)} failed, {took:.1f} s "
        f"({len(results) / took:.1f} seeds/s with {args.processes} process(es))"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
