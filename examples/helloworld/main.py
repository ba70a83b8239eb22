"""example-helloworld: three replicas of one shard, typed into by hand.

Run it three times, each in its own terminal, from the same directory:

    example-helloworld -replicaid 1
    example-helloworld -replicaid 2
    example-helloworld -replicaid 3

Each line typed in any of them is proposed to shard 128, and every replica's
`ExampleStateMachine.update` prints it. `add <host:port> <id>` and `remove <id>` change
the membership; `exit`, Ctrl-D or Ctrl-C quit. Each replica keeps its data in
example-data/helloworld-data/node<N> under the working directory: the same command
restarts it where it stopped, and deleting example-data starts over.

This module reads the flags; replica.py holds every call to the library, console.py
the prompt and what is printed when, advice.py what to tell a person who is stuck.

Rules:
- Built on the public API only (`nodehost`, `statemachine`), as a user's program is.
- Replicas 1, 2 and 3 live at localhost:63001, :63002 and :63003. The environment
  variable HELLOWORLD_ADDRESSES="HOST:PORT,HOST:PORT,HOST:PORT" replaces those three
  addresses (tests run on ports they picked free); users never need it, so --help
  does not mention it.
- Library logs show warnings and up (-v: info too); the example's own lines (a
  snapshot captured or recovered) always show.
- Flags that cannot run (an id without an address, ...) print one line to stderr and
  exit 1 before anything starts; argparse's own errors (`-replicaid x`) exit 2, as Go's
  flag package does.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass

SHARD_ID = 128
DEFAULT_ADDRESSES = {1: "localhost:63001", 2: "localhost:63002", 3: "localhost:63003"}
ADDRESSES_VARIABLE = "HELLOWORLD_ADDRESSES"


class FlagError(Exception):
    """The flags or the environment ask for something that cannot run."""


@dataclass(frozen=True)
class Options:
    replica_id: int
    address: str  # this replica's own address
    join: bool
    members: dict[int, str]  # the initial members: empty when joining
    verbose: bool
    builtin: dict[int, str]  # replicas 1, 2 and 3 and their addresses

    @property
    def data_dir(self) -> str:
        return os.path.join("example-data", "helloworld-data", f"node{self.replica_id}")


def parse_flags(argv: list[str]) -> argparse.Namespace:
    # Go's flag package takes -name and --name alike; argparse needs both spelled out.
    parser = argparse.ArgumentParser(
        prog="example-helloworld",
        description="One replica of shard 128. Start replicas 1, 2 and 3 in three "
        "terminals, then type a line in any of them: every replica prints it.",
        epilog="At the prompt: a line of text is replicated; `add <host:port> <id>` adds "
        "a replica, `remove <id>` removes one; `exit`, Ctrl-D or Ctrl-C quit. Data lives in "
        "example-data/helloworld-data/node<N>; delete example-data to start over.",
    )
    parser.add_argument(
        "-replicaid",
        "--replicaid",
        type=int,
        default=1,
        metavar="N",
        help="ReplicaID to use (default 1); 1, 2 and 3 have built-in addresses",
    )
    parser.add_argument(
        "-addr",
        "--addr",
        default="",
        metavar="HOST:PORT",
        help="Nodehost address; required for a replica id other than 1, 2 or 3",
    )
    parser.add_argument(
        "-join",
        "--join",
        action="store_true",
        help="Joining a new node: start a replica that was added with `add <host:port> <id>`",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the library's info logs too"
    )
    return parser.parse_args(argv)


def options_from(argv: list[str], environ: Mapping[str, str]) -> Options:
    args = parse_flags(argv)
    addresses = _builtin_addresses(environ)
    replica_id: int = args.replicaid
    if not args.addr and replica_id not in addresses:
        raise FlagError("node id must be 1, 2 or 3 when address is not specified")
    if replica_id < 1:
        raise FlagError(f"replica id must be a positive number, not {replica_id}")
    if not args.join and replica_id not in addresses:
        raise FlagError(
            f"replica {replica_id} is not an initial member (1, 2 or 3): type "
            f"`add {args.addr} {replica_id}` in a running replica, then start this one with -join"
        )
    if not args.join and args.addr and args.addr != addresses[replica_id]:
        raise FlagError(
            f"replica {replica_id} is an initial member at {addresses[replica_id]}; "
            f"the others would not find it at {args.addr}: leave -addr out"
        )
    return Options(
        replica_id=replica_id,
        address=args.addr or addresses[replica_id],
        join=args.join,
        members={} if args.join else addresses,
        verbose=args.verbose,
        builtin=addresses,
    )


def _builtin_addresses(environ: Mapping[str, str]) -> dict[int, str]:
    value = environ.get(ADDRESSES_VARIABLE, "")
    if not value:
        return dict(DEFAULT_ADDRESSES)
    addresses = [a.strip() for a in value.split(",")]
    if len(addresses) != 3 or not all(addresses) or len(set(addresses)) != 3:
        raise FlagError(
            f"{ADDRESSES_VARIABLE} must hold three different HOST:PORT addresses "
            f"separated by commas, not {value!r}"
        )
    return dict(enumerate(addresses, start=1))


class _CurrentStderr(logging.Handler):
    """Writes to sys.stderr as it is at each record, not as it was at start: while the
    prompt runs that is prompt_toolkit's proxy, which prints above the line being typed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("helloworld").setLevel(logging.INFO)


def run(argv: list[str]) -> int:
    try:
        options = options_from(argv, os.environ)
    except FlagError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"node address: {options.address}", flush=True)  # before the slow imports
    configure_logging(options.verbose)
    # gRPC's C core reads GRPC_VERBOSITY once, when grpc is first imported, and would
    # repeat on stderr what the NodeHost already reports (a port in use): quiet it first.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    # SIGTERM stops the program as Ctrl-C does (the console handles both itself while
    # it runs): the NodeHost is closed and the exit code is 0, whenever it arrives.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from examples.helloworld.console import serve

        return serve(options)
    except KeyboardInterrupt:
        return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
