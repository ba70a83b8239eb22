"""A daemon the tests build on nodehost.cluster, as a user would build theirs.

    python -m tests.cluster.program --state-dir DIR [--updates N] [--voters V]
        [--standbys S] [--heartbeat SECONDS]

- `--updates N` runs the first N of UPDATES: "old code" and "new code" of a rolling
  upgrade are this program with two values of N.
- Each hook appends "<hook> <member> <detail>" to DIR.hooks beside the state directory
  (which a removal wipes), so tests can see which hooks ran where.
- Endpoints: GET /1.0/whoami (trusted callers) answers who called; GET /1.0/open
  (anyone) answers "open"; POST /1.0/rows inserts into t1 and answers the row count.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from nodehost.cluster import (
    Daemon,
    DatabaseOptions,
    Endpoint,
    Hooks,
    Remote,
    Request,
    RoleChange,
    SchemaUpdate,
    State,
)
from nodehost.cluster.members import Cursor


def add_t3(cursor: Cursor) -> None:
    cursor.execute("CREATE TABLE t3 (id INTEGER PRIMARY KEY, note TEXT)")
    cursor.execute("INSERT INTO t3 (note) VALUES ('made by update 3')")


UPDATES: list[SchemaUpdate] = [
    "CREATE TABLE t1 (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE t2 (id INTEGER PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE INDEX t2_value ON t2 (value);",
    add_t3,
]


def whoami(state: State, request: Request) -> Any:
    return {
        "member": state.name,
        "caller": request.caller.kind.value,
        "caller_member": request.caller.member,
        "notification": request.notification,
    }


def opened(state: State, request: Request) -> Any:
    return "open"


def add_row(state: State, request: Request) -> Any:
    value = request.text("value")

    def work(cursor: Cursor) -> int:
        cursor.execute("INSERT INTO t1 (value) VALUES (?)", (value,))
        cursor.execute("SELECT count(*) FROM t1")
        return int(cursor.fetchone()[0])

    return state.database.transaction(work)


def hooks(record: Path) -> Hooks:
    def write(line: str) -> None:
        with open(record, "a") as file:
            file.write(line + "\n")

    def on_bootstrap(state: State, config: dict[str, str]) -> None:
        write(f"on_bootstrap {state.name} {sorted(config.items())}")

    def on_join(state: State, config: dict[str, str]) -> None:
        write(f"on_join {state.name} {sorted(config.items())}")

    def on_start(state: State) -> None:
        write(f"on_start {state.name}")

    async def on_new_member(state: State, member: Remote) -> None:
        write(f"on_new_member {state.name} {member.name}")

    def pre_remove(state: State, force: bool) -> None:
        write(f"pre_remove {state.name} {force}")

    def post_remove(state: State, force: bool) -> None:
        write(f"post_remove {state.name} {force}")

    def on_heartbeat(state: State, roles: dict[str, RoleChange]) -> None:
        for name, change in sorted(roles.items()):
            if change.changed:
                write(f"on_heartbeat {state.name} {name} {change.old}->{change.new}")

    return Hooks(
        on_bootstrap=on_bootstrap,
        on_join=on_join,
        on_start=on_start,
        on_new_member=on_new_member,
        pre_remove=pre_remove,
        post_remove=post_remove,
        on_heartbeat=on_heartbeat,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--updates", type=int, default=len(UPDATES))
    parser.add_argument("--voters", type=int, default=3)
    parser.add_argument("--standbys", type=int, default=3)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    arguments = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state_dir = Path(arguments.state_dir)
    Daemon(
        str(state_dir),
        version=f"test-{arguments.updates}",
        schema_updates=UPDATES[: arguments.updates],
        endpoints=[
            Endpoint("whoami", get=whoami),
            Endpoint("open", get=opened, allow_untrusted=True),
            Endpoint("rows", post=add_row),
        ],
        hooks=hooks(state_dir.parent / f"{state_dir.name}.hooks"),
        heartbeat_interval=arguments.heartbeat,
        database=DatabaseOptions(voters=arguments.voters, standbys=arguments.standbys),
    ).run()


if __name__ == "__main__":
    sys.exit(main())
