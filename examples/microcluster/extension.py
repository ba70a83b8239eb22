"""What the example adds to the core: two schema updates, one endpoint, hooks that log.

Rules:
- `SCHEMA_UPDATES` is ordered and only grows: a released update is never edited or
  removed, since every cluster that applied it recorded its number.
- POST /1.0/extended, called by a user (control socket, or another member's certificate
  from `example-microctl extended ADDRESS`), sends "Testing 1 2 3..." to every other
  member as a notification and answers their replies, one per line; called as a
  notification, it answers who received what from whom.
"""

from __future__ import annotations

import logging
from typing import Any

from nodehost.cluster import (
    BadRequest,
    Endpoint,
    Hooks,
    Remote,
    Request,
    RoleChange,
    SchemaUpdate,
    State,
)
from nodehost.cluster.members import Cursor

log = logging.getLogger("example-microd")

MESSAGE = "Testing 1 2 3..."


def add_extended_table(cursor: Cursor) -> None:
    cursor.execute(
        """
        CREATE TABLE extended_table (
          id     INTEGER  PRIMARY KEY AUTOINCREMENT NOT NULL,
          key    TEXT     NOT NULL,
          value  TEXT     NOT NULL,
          UNIQUE (key)
        )
        """
    )


ADD_SOME_OTHER_TABLE = """
CREATE TABLE some_other_table (
  id         INTEGER  PRIMARY KEY AUTOINCREMENT NOT NULL,
  field_one  TEXT     NOT NULL,
  field_two  TEXT     NOT NULL,
  UNIQUE (field_one),
  UNIQUE (field_two)
);
"""

SCHEMA_UPDATES: list[SchemaUpdate] = [add_extended_table, ADD_SOME_OTHER_TABLE]


async def extended_post(state: State, request: Request) -> Any:
    if not request.notification:
        answers = await state.broadcast(
            "POST", "/1.0/extended", {"sender": state.address, "message": MESSAGE}
        )
        return "".join(f"{answers[name]}\n" for name in sorted(answers))
    body = request.json_object()
    sender, message = body.get("sender"), body.get("message")
    if not isinstance(sender, str) or not isinstance(message, str):
        raise BadRequest("expected {sender, message}")
    return (
        f'cluster member at address "{state.address}" received message "{message}" '
        f'from cluster member at address "{sender}"'
    )


ENDPOINTS = [Endpoint("extended", post=extended_post)]


def on_bootstrap(state: State, config: dict[str, str]) -> None:
    log.info("on_bootstrap: %s founded the cluster (config %s)", state.name, config)


def on_join(state: State, config: dict[str, str]) -> None:
    log.info("on_join: %s joined the cluster (config %s)", state.name, config)


def on_start(state: State) -> None:
    log.info("on_start: %s is ready", state.name)


def on_new_member(state: State, member: Remote) -> None:
    log.info("on_new_member: %s sees %s (%s) join", state.name, member.name, member.address)


def pre_remove(state: State, force: bool) -> None:
    log.info("pre_remove: %s is about to be removed (force=%s)", state.name, force)


def post_remove(state: State, force: bool) -> None:
    log.info("post_remove: %s saw a member leave (force=%s)", state.name, force)


def on_heartbeat(state: State, roles: dict[str, RoleChange]) -> None:
    for name, change in sorted(roles.items()):
        if change.changed:
            log.info("on_heartbeat: %s is now %s (was %s)", name, change.new, change.old)


HOOKS = Hooks(
    on_bootstrap=on_bootstrap,
    on_join=on_join,
    on_start=on_start,
    on_new_member=on_new_member,
    pre_remove=pre_remove,
    post_remove=post_remove,
    on_heartbeat=on_heartbeat,
)
