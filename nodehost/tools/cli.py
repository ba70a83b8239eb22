"""The `nodehost` operator command: one tool for any application built on nodehost.

Online commands talk to a running NodeHost's admin service (NodeHostConfig.admin_address):
`--admin unix:PATH` (or NODEHOST_ADMIN), or `--admin host:port` with the cluster's TLS
files. Offline commands work on a stopped host's directory and refuse one a NodeHost
holds. Every command has `--help`; `--format json` prints one JSON document.

Exit codes: 0 done; 1 failed (one line on stderr says why); 2 bad usage; 3 refused as
unsafe (`--force` overrides, after reading the message).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nodehost.tools import render
from nodehost.tools.client import AdminClient
from nodehost.tools.commands import EXIT_USAGE, PROG, parser
from nodehost.tools.errors import AdminError, ToolError, UnsafeOperation
from nodehost.tools.importing import import_snapshot
from nodehost.tools.inspection import inspect, load_reports
from nodehost.tools.members import parse_members
from nodehost.tools.recovery import recover
from nodehost.tools.removal import remove_data

EXIT_FAILED = 1
EXIT_UNSAFE = 3


def _client(args: argparse.Namespace) -> AdminClient:
    if not args.admin:
        raise ToolError("no admin address: give --admin unix:PATH or host:port (or NODEHOST_ADMIN)")
    return AdminClient(
        args.admin,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        server_name=args.tls_server_name,
        timeout=args.timeout,
    )


Outcome = tuple[Any, str]  # (the JSON document, the table text)


def _online(args: argparse.Namespace) -> Outcome:
    with _client(args) as admin:
        c = args.command
        if c == "info":
            info = admin.info()
            return info.as_json(), render.host_info(info)
        if c == "members":
            m = admin.members(args.shard, local=args.local)
            return {"shard_id": args.shard, **m.as_json()}, render.membership(args.shard, m)
        if c == "leader":
            view = admin.leader(args.shard)
            return view.as_json(), render.leader(view)
        if c == "add":
            role = "non-voting" if args.non_voting else "witness" if args.witness else "voter"
            m = admin.add(
                args.shard,
                args.replica,
                args.target,
                role=role,
                config_change_index=args.config_change_index,
            )
            text = f"shard {args.shard}: replica {args.replica} added as {role} at {args.target}"
            return {"shard_id": args.shard, **m.as_json()}, text + "\n" + render.membership(
                args.shard, m
            )
        if c == "remove":
            m = admin.remove(args.shard, args.replica, config_change_index=args.config_change_index)
            text = f"shard {args.shard}: replica {args.replica} removed"
            return {"shard_id": args.shard, **m.as_json()}, text + "\n" + render.membership(
                args.shard, m
            )
        if c == "transfer":
            view = admin.transfer(args.shard, args.replica)
            return view.as_json(), render.leader(view)
        if c == "snapshot":
            export = os.path.abspath(args.export) if args.export else None
            snap = admin.snapshot(args.shard, export)
            return snap.as_json(), render.snapshot(snap)
        if c == "stop":
            done = admin.stop(args.shard)
            return done, f"shard {args.shard}: replica {done.get('replica_id')} stopped"
        if c == "remove-data":
            done = admin.remove_data(args.shard, args.replica)
            return done, f"shard {args.shard} replica {args.replica}: data removed"
    raise AssertionError(args.command)


def _offline(args: argparse.Namespace) -> Outcome:
    c = args.command
    if c == "inspect":
        report = inspect(args.dir, args.wal_dir)
        return report.as_json(), render.inspect_report(report)
    if c == "recover":
        chosen: list[int] | None = []
        for group in args.shard:
            if group is None:
                chosen = None
                break
            assert chosen is not None
            chosen += [s for s in group if s not in chosen]
        reports = [r for path in args.inspected for r in load_reports(path)]
        results = recover(
            args.dir,
            chosen,
            parse_members(args.members),
            inspected=reports,
            force=args.force,
            wal_dir=args.wal_dir,
        )
        return {"recovered": [r.as_json() for r in results]}, render.recovery(results)
    if c == "import":
        result = import_snapshot(
            args.dir,
            args.shard,
            args.replica,
            args.snapshot,
            parse_members(args.members),
            force=args.force,
            wal_dir=args.wal_dir,
            deployment_id=args.deployment_id,
        )
        return result.as_json(), render.imported(result)
    if c == "remove-data":
        removal = remove_data(
            args.dir, args.shard, args.replica, force=args.force, wal_dir=args.wal_dir
        )
        return removal.as_json(), render.removed(removal)
    raise AssertionError(c)


OFFLINE = ("inspect", "recover", "import")


def run(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handle: Callable[[argparse.Namespace], Outcome]
    if args.command == "remove-data" and args.force and not args.dir:
        print(f"{PROG}: error: --force goes with --dir (the offline removal)", file=sys.stderr)
        return EXIT_USAGE
    offline = args.command in OFFLINE or (args.command == "remove-data" and args.dir)
    handle = _offline if offline else _online
    try:
        document, text = handle(args)
    except UnsafeOperation as exc:
        print(f"{PROG}: refused: {exc}", file=sys.stderr)
        return EXIT_UNSAFE
    except AdminError as exc:
        print(f"{PROG}: error: {exc} ({exc.kind})", file=sys.stderr)
        return EXIT_FAILED
    except ToolError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.format == "json":
        print(render.as_json(document))
    else:
        print(text)
    return 0


def main() -> None:
    sys.exit(run())
