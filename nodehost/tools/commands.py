"""The `nodehost` command line: every subcommand, its arguments and its help.

Rules: every usage error is one line (and exit code 2); ids and durations are checked
here, as argparse types, so a mistyped argument never reaches an operation.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NoReturn

from nodehost.tools.errors import ToolError
from nodehost.tools.members import parse_id

EXIT_USAGE = 2
PROG = "nodehost"


class Parser(argparse.ArgumentParser):
    """argparse, with every usage error on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _id(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return parse_id(text, what)
        except ToolError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in some messages
    return parse


_shard_id = _id("shard")
_replica_id = _id("replica")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 3600] seconds")
    return value


def _shards(text: str) -> list[int] | None:
    """ "all", or a comma-separated list of shard ids."""
    if text.strip() == "all":
        return None
    try:
        return [parse_id(part.strip(), "shard") for part in text.split(",")]
    except ToolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _online_options(parser: Parser, *, suppress: bool) -> None:
    """The options that reach a NodeHost, before the command or after it: after it, a
    value given wins; before it, it is the default."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("reaching the NodeHost (its admin service)")
    group.add_argument(
        "--admin",
        metavar="ADDRESS",
        default=default(os.environ.get("NODEHOST_ADMIN", "")),
        help="unix:PATH of its admin socket, or host:port (mutual TLS); default $NODEHOST_ADMIN",
    )
    for name, variable, what in (
        ("ca-file", "NODEHOST_CA_FILE", "the CA that signed the cluster's certificates"),
        ("cert-file", "NODEHOST_CERT_FILE", "a certificate that CA signed"),
        ("key-file", "NODEHOST_KEY_FILE", "that certificate's private key"),
    ):
        group.add_argument(
            f"--{name}",
            metavar="PATH",
            default=default(os.environ.get(variable, "")),
            help=f"TCP: {what} (default ${variable})",
        )
    group.add_argument(
        "--tls-server-name",
        metavar="NAME",
        default=default(""),
        help="the name the host's certificate holds, when not the host of --admin",
    )
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=default(10.0),
        metavar="SECONDS",
        help="how long the operation may take (default 10)",
    )


def parser() -> Parser:
    formats = Parser(add_help=False)
    formats.add_argument(
        "--format",
        choices=("table", "json"),
        default=argparse.SUPPRESS,
        help="table for people (the default), json for programs",
    )
    online = Parser(add_help=False)
    _online_options(online, suppress=True)
    offline = Parser(add_help=False)
    offline.add_argument(
        "--wal-dir",
        default="",
        metavar="DIR",
        help="the host's wal_dir, if it keeps its log store outside its directory",
    )

    parser = Parser(
        prog=PROG,
        description="Operate nodehost clusters: look at running hosts, change membership, "
        "take snapshots; and, on a stopped host's directory, inspect it, recover a shard "
        "that lost its quorum, or import an exported snapshot.",
        epilog="Exit codes: 0 done, 1 failed, 2 bad usage, 3 refused as unsafe (see --force).",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output form")
    _online_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, *parents: Parser, **kw: Any) -> Any:
        return commands.add_parser(
            name,
            help=summary,
            description=kw.pop("description", summary),
            parents=[formats, *parents],
            **kw,
        )

    command("info", "a running host: its id, address and every replica it runs", online)

    p = command(
        "members",
        "a shard's membership (a linearizable read)",
        online,
        description="The shard's members by role. A linearizable read, which needs the "
        "shard's quorum; --local shows this host's replica's view without one.",
    )
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("--local", action="store_true", help="this replica's view, no quorum needed")

    p = command("leader", "who leads a shard, as the host's replica knows it", online)
    p.add_argument("shard", type=_shard_id, metavar="SHARD")

    p = command(
        "add",
        "add a replica to a shard",
        online,
        description="Add REPLICA to SHARD at TARGET (host:port, or a NodeHost id where hosts "
        "are addressed by id), as a voter unless told otherwise. Then start it on that "
        "host with join=True. A removed replica id can never be added back.",
    )
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("replica", type=_replica_id, metavar="REPLICA")
    p.add_argument("target", metavar="TARGET")
    role = p.add_mutually_exclusive_group()
    role.add_argument("--non-voting", action="store_true", help="a non-voting member")
    role.add_argument("--witness", action="store_true", help="a witness (votes, holds no state)")
    p.add_argument(
        "--config-change-index", type=int, default=0, metavar="N", help=argparse.SUPPRESS
    )

    p = command(
        "remove",
        "remove a replica from a shard (its id can never return)",
        online,
    )
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("replica", type=_replica_id, metavar="REPLICA")
    p.add_argument(
        "--config-change-index", type=int, default=0, metavar="N", help=argparse.SUPPRESS
    )

    p = command("transfer", "move a shard's leadership to a replica, and wait for it", online)
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("replica", type=_replica_id, metavar="REPLICA")

    p = command(
        "snapshot",
        "snapshot a shard now, or export one",
        online,
        description="Snapshot SHARD now. With --export DIR the snapshot is written to DIR "
        "on the host's machine (made absolute from here) for backups and `import`.",
    )
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("--export", metavar="DIR", default="", help="export the snapshot into DIR")

    p = command("stop", "stop the host's replica of a shard (not a membership change)", online)
    p.add_argument("shard", type=_shard_id, metavar="SHARD")

    p = command(
        "remove-data",
        "delete a stopped replica's data (online, or offline with --dir)",
        online,
        offline,
        description="Delete the log and snapshots of REPLICA of SHARD, which must not be "
        "running; its id can never start on that host again. Only for a replica already "
        "removed from its shard. Online through the admin service, or with --dir on a "
        "stopped host's directory, where a replica its own log still lists as a member is "
        "refused unless --force.",
    )
    p.add_argument("shard", type=_shard_id, metavar="SHARD")
    p.add_argument("replica", type=_replica_id, metavar="REPLICA")
    p.add_argument("--dir", metavar="DIR", default="", help="a stopped host's directory")
    p.add_argument("--force", action="store_true", help="offline: even if it is still a member")

    p = command(
        "inspect",
        "offline: what a stopped host's directory holds (reads only)",
        offline,
        description="Every replica in DIR: term, vote, commit, first and last index and the "
        "last entry's term (choose the member with the highest last term, then index, when "
        "recovering a shard), snapshot and membership. Changes nothing. Save the JSON form "
        "(--format json) of the other members to give `recover --inspected`.",
    )
    p.add_argument("dir", metavar="DIR", help="the stopped host's node_host_dir")

    p = command(
        "recover",
        "offline: force a new membership on a member after quorum loss",
        offline,
        description="Force MEMBERS (voters, ID=TARGET,...) on this host's replica of each "
        "SHARD, after the shard lost its quorum for good. Its whole log is taken as "
        "committed. Stop every member first; choose the one with the newest log (inspect); "
        "start it, then add new members. Refused (exit 3) when the choice looks unsafe: "
        "pass the inspect JSON of other surviving members with --inspected.",
    )
    p.add_argument("dir", metavar="DIR", help="the stopped host's node_host_dir")
    p.add_argument(
        "--shard",
        type=_shards,
        action="append",
        required=True,
        metavar="ID",
        help="shard id, comma-separated ids, or all; may be repeated",
    )
    p.add_argument("--members", required=True, metavar="ID=TARGET,...", help="the new voters")
    p.add_argument(
        "--inspected",
        action="append",
        default=[],
        metavar="FILE",
        help="`inspect --format json` output of another member's directory; may be repeated",
    )
    p.add_argument("--force", action="store_true", help="skip the safety checks")

    p = command(
        "import",
        "offline: rebuild a replica from an exported snapshot",
        offline,
        description="Make REPLICA of SHARD in DIR (created if missing) own the snapshot "
        "exported in SNAPSHOT, with MEMBERS as the shard's membership. Run it with the "
        "same snapshot and members on every member's stopped host, then start them all. "
        "Writes after the snapshot are lost.",
    )
    p.add_argument("dir", metavar="DIR", help="the stopped host's node_host_dir")
    p.add_argument("--shard", type=_shard_id, required=True, metavar="ID")
    p.add_argument("--replica", type=_replica_id, required=True, metavar="ID", help="this host's")
    p.add_argument("--snapshot", required=True, metavar="EXPORTED_DIR")
    p.add_argument("--members", required=True, metavar="ID=TARGET,...", help="the new voters")
    p.add_argument(
        "--deployment-id",
        type=int,
        default=None,
        metavar="N",
        help="for a directory created here: the hosts' deployment_id (default 0)",
    )
    p.add_argument("--force", action="store_true", help="even if the replica's log is newer")
    return parser
