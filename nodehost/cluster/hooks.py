"""Hooks: the user's code at the moments of a member's life.

    Hooks(on_bootstrap=..., on_start=..., on_new_member=..., pre_remove=..., post_remove=...)

When each runs (each may be a function or a coroutine function; a function runs on a
worker thread so it may block, on the database for one):
- on_bootstrap(state, config): on the member that founded the cluster, once, after its
  database is ready; `config` is the `--config key=value` pairs of init.
- on_join(state, config): on a member that joined, once, after every other member ran
  on_new_member.
- on_start(state): each time the member's database becomes ready: after bootstrap or
  join, and at every daemon start of an initialized member (after any schema upgrade).
- on_new_member(state, member): on every other member, when `member` (a Remote: name,
  address, certificate, fingerprint) has joined.
- pre_remove(state, force): on the member being removed, before anything changes
  (with --force, only if it can still be reached; its failure then does not stop it).
- post_remove(state, force): on every remaining member after a removal.
- on_heartbeat(state, roles): on the leader after each heartbeat round; `roles` maps
  each member's name to its RoleChange (old and new role).

A hook that raises is logged; for on_bootstrap, on_join and pre_remove (without force)
the error is also returned to whoever ran the command.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nodehost.cluster.state import State

Hook = Callable[..., Any | Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RoleChange:
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new


@dataclass(frozen=True, slots=True)
class Hooks:
    on_bootstrap: Callable[[State, dict[str, str]], Any] | None = None
    on_join: Callable[[State, dict[str, str]], Any] | None = None
    on_start: Callable[[State], Any] | None = None
    on_new_member: Callable[..., Any] | None = None
    pre_remove: Callable[[State, bool], Any] | None = None
    post_remove: Callable[[State, bool], Any] | None = None
    on_heartbeat: Callable[[State, dict[str, RoleChange]], Any] | None = None
