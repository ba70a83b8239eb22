"""example-microd: the example daemon. It serves its control socket in --state-dir and,
once initialized with example-microctl, its member's network listener and database.

    example-microd --state-dir /tmp/mc1 [--heartbeat 10s] [--verbose | --debug]

Rules: logs go to stderr (warnings and up; --verbose adds info, --debug everything);
SIGTERM and SIGINT stop it cleanly; bad flags or a state directory another daemon holds
are one line on stderr and exit status 1 (argparse's own errors, 2).
"""

from __future__ import annotations

import argparse
import logging
import sys

from examples.microcluster.extension import ENDPOINTS, HOOKS, SCHEMA_UPDATES
from nodehost.cluster import ClusterError, Daemon
from nodehost.cluster.tokens import parse_duration

VERSION = "0.1.0"


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="example-microd",
        description="Example clustered daemon: serves a control socket in the state "
        "directory, and the cluster member once initialized with example-microctl init.",
    )
    parser.add_argument("--state-dir", required=True, help="directory of this member's state")
    parser.add_argument(
        "--heartbeat",
        default="10s",
        help="time between the leader's heartbeats (a duration: 10s, 500ms, 1m; default 10s)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show information messages")
    parser.add_argument("-d", "--debug", action="store_true", help="show all debug messages")
    parser.add_argument("--version", action="version", version=VERSION)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    level = (
        logging.DEBUG if arguments.debug else logging.INFO if arguments.verbose else logging.WARNING
    )
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not arguments.debug:
        logging.getLogger("example-microd").setLevel(min(level, logging.INFO))
    try:
        interval = parse_duration(arguments.heartbeat)
        if interval <= 0:
            raise ClusterError("--heartbeat must be a positive duration")
        daemon = Daemon(
            arguments.state_dir,
            version=VERSION,
            schema_updates=SCHEMA_UPDATES,
            endpoints=ENDPOINTS,
            hooks=HOOKS,
            heartbeat_interval=interval,
        )
        daemon.run()
    except ClusterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
