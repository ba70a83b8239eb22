"""example-microctl: control an example-microd through its state directory.

    example-microctl --state-dir DIR init NAME ADDRESS (--bootstrap | --token TOKEN)
    example-microctl --state-dir DIR cluster list [--format table|csv|json|yaml]
    example-microctl --state-dir DIR cluster remove NAME [--force]
    example-microctl --state-dir DIR tokens add NAME [--expire-after 3h]
    example-microctl --state-dir DIR tokens list [--format ...]
    example-microctl --state-dir DIR tokens remove NAME
    example-microctl --state-dir DIR sql QUERY
    example-microctl --state-dir DIR extended [ADDRESS]
    example-microctl --state-dir DIR waitready [--timeout SECONDS]
    example-microctl --state-dir DIR shutdown

Rules: every command talks to the daemon's control socket, except `extended ADDRESS`,
which calls the member at ADDRESS with this member's certificate. A failure prints
"Error: <why>" on stderr and exits 1 (argparse's own usage errors exit 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from examples.microcluster.render import FORMATS, cell, render
from nodehost.cluster import Client, ClusterError
from nodehost.cluster.errors import BadRequest

VERSION = "0.1.0"


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="example-microctl", description="Control an example-microd cluster member."
    )
    main.add_argument("--state-dir", required=True, help="the daemon's state directory")
    main.add_argument("--version", action="version", version=VERSION)
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="bootstrap a new cluster or join one with a token",
        description="Initialize the member: its name, its network address, and either "
        "--bootstrap (a new cluster) or --token (join the cluster the token is from).",
    )
    init.add_argument("name", help="this member's name (a DNS name)")
    init.add_argument("address", help="this member's network address, host:port")
    how = init.add_mutually_exclusive_group(required=True)
    how.add_argument("--bootstrap", action="store_true", help="found a new cluster")
    how.add_argument("--token", help="join with this token (from tokens add on a member)")
    init.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra configuration handed to the bootstrap/join hooks (repeatable)",
    )

    cluster = commands.add_parser("cluster", help="list or remove members").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = cluster.add_parser("list", help="list the members with their role and status")
    listing.add_argument("-f", "--format", choices=FORMATS, default="table", help="output format")
    remove = cluster.add_parser("remove", help="remove a member (this one included)")
    remove.add_argument("name", help="the member to remove")
    remove.add_argument(
        "--force", action="store_true", help="remove a member that is gone for good"
    )

    tokens = commands.add_parser("tokens", help="manage join tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = tokens.add_parser("add", help="issue a join token for a new member's name")
    add.add_argument("name", help="the name the new member will have")
    add.add_argument(
        "-e", "--expire-after", default="3h", help="lifetime (3h, 90m, 1h30m, 0 for never)"
    )
    token_list = tokens.add_parser("list", help="list the tokens not yet used")
    token_list.add_argument(
        "-f", "--format", choices=FORMATS, default="table", help="output format"
    )
    revoke = tokens.add_parser("remove", aliases=["revoke"], help="revoke a token")
    revoke.add_argument("name", help="the name the token was issued for")

    sql = commands.add_parser("sql", help="run SQL on the cluster database")
    sql.add_argument("query", help="SQL statements, or .schema or .dump")

    extended = commands.add_parser(
        "extended", help="the example's extended endpoint: message every other member"
    )
    extended.add_argument(
        "address", nargs="?", help="the member to ask (default: this daemon, locally)"
    )

    ready = commands.add_parser("waitready", help="wait until the daemon is ready")
    ready.add_argument("-t", "--timeout", type=float, default=30.0, help="seconds (default 30)")

    commands.add_parser("shutdown", help="stop the daemon")
    return main


def run(arguments: argparse.Namespace) -> str:
    state_dir = arguments.state_dir
    command = arguments.command
    if command == "extended" and arguments.address:
        answer = Client.remote(state_dir, arguments.address).request("POST", "/1.0/extended")
        return str(answer)
    client = Client.local(state_dir)
    if command == "init":
        config = {}
        for setting in arguments.config:
            key, sep, value = setting.partition("=")
            if not sep or not key:
                raise BadRequest(f"--config {setting!r} is not KEY=VALUE")
            config[key] = value
        if arguments.bootstrap:
            client.bootstrap(arguments.name, arguments.address, config)
        else:
            client.join(arguments.name, arguments.address, arguments.token, config)
        return ""
    if command == "cluster":
        if arguments.action == "remove":
            client.remove_member(arguments.name, arguments.force)
            return ""
        members = client.members()
        rows = [
            [cell(m.get(k)) for k in ("name", "address", "role", "fingerprint", "status")]
            for m in members
        ]
        return render(
            arguments.format, ["NAME", "ADDRESS", "ROLE", "FINGERPRINT", "STATUS"], rows, members
        )
    if command == "tokens":
        if arguments.action == "add":
            return client.add_token(arguments.name, arguments.expire_after) + "\n"
        if arguments.action in ("remove", "revoke"):
            client.revoke_token(arguments.name)
            return ""
        records = client.tokens()
        rows = [[cell(r.get("name")), cell(r.get("expires_at") or "never")] for r in records]
        return render(arguments.format, ["NAME", "EXPIRES AT"], rows, records)
    if command == "sql":
        return sql_output(client.sql(arguments.query))
    if command == "extended":
        return str(client.request("POST", "/1.0/extended"))
    if command == "waitready":
        client.wait_ready(arguments.timeout)
        return ""
    if command == "shutdown":
        client.shutdown()
        return ""
    raise BadRequest(f"unknown command {command}")


def sql_output(answer: dict[str, Any]) -> str:
    if "dump" in answer:
        return str(answer["dump"])
    results = answer.get("results") or []
    parts = []
    for number, result in enumerate(results):
        text = ""
        if len(results) > 1:
            text += f"=> Query {number}:\n\n"
        if result.get("type") == "select":
            rows = [[cell(v) for v in row] for row in result.get("rows", [])]
            text += render("table", result.get("columns", []), rows, None, sort=False)
        else:
            text += f"Rows affected: {result.get('rows_affected', 0)}\n"
        parts.append(text)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        output = run(arguments)
    except ClusterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
