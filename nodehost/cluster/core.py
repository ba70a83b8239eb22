"""The core API: the endpoints every member serves, and which listener serves each.

Control socket (/core/control/..., its owner only):
    GET    status                 the daemon: initialized? name, address, database status
    POST   init                   {name, address, bootstrap: true | token, config}
    GET    members                the member table with each member's status
    DELETE members/{name}?force=1 remove a member (this one included)
    POST   tokens                 {name, expire_after} -> the token
    GET    tokens                 names and expiry dates
    DELETE tokens/{name}          revoke
    POST   sql                    {query} -> results, or {dump} for .schema/.dump
    POST   shutdown               stop the daemon cleanly

Network listener (/core/internal/..., trusted members only unless said otherwise):
    POST   join                   a joiner with its token (no certificate needed)
    POST   joined                 the joiner is done: run on_new_member everywhere
    POST   heartbeat              the leader's round
    POST   hooks/new-member       {member} run on_new_member here
    POST   hooks/pre-remove       {force} run pre_remove here
    POST   hooks/post-remove      {force} run post_remove here
    POST   reset                  this member was removed: forget the cluster
    DELETE members/{name}         a removal handed over by another member
    POST   schema/upgraded        the schema changed: check again now
    GET    status                 as the control socket's
"""

from __future__ import annotations

from typing import Any, Protocol

from nodehost.cluster.errors import BadRequest
from nodehost.cluster.rest import Endpoint, Request
from nodehost.cluster.state import State


class CoreOperations(Protocol):
    """What the core endpoints ask of the daemon."""

    def status(self) -> dict[str, Any]: ...
    async def initialize(self, body: dict[str, Any]) -> dict[str, Any]: ...
    async def list_members(self) -> list[dict[str, Any]]: ...
    async def remove_member(self, name: str, force: bool, forwarded: bool) -> None: ...
    async def add_token(self, name: str, expire_after: str) -> str: ...
    async def list_tokens(self) -> list[dict[str, Any]]: ...
    async def revoke_token(self, name: str) -> None: ...
    async def run_sql(self, query: str) -> dict[str, Any]: ...
    async def shutdown(self) -> None: ...
    async def admit(self, body: dict[str, Any]) -> dict[str, Any]: ...
    async def joined(self, name: str) -> None: ...
    async def heartbeat(self, body: Any) -> dict[str, Any]: ...
    async def run_hook(self, name: str, *args: Any) -> None: ...
    async def new_member(self, body: Any) -> None: ...
    async def reset_removed(self) -> None: ...
    def schema_changed(self) -> None: ...


def _force(request: Request) -> bool:
    value = request.query.get("force", "0")
    if value not in ("0", "1", "true", "false"):
        raise BadRequest("force must be 1 or 0")
    return value in ("1", "true")


def control_endpoints(core: CoreOperations) -> list[Endpoint]:
    async def status(state: State, request: Request) -> Any:
        return core.status()

    async def init(state: State, request: Request) -> Any:
        return await core.initialize(request.json_object())

    async def members(state: State, request: Request) -> Any:
        return await core.list_members()

    async def remove(state: State, request: Request) -> Any:
        await core.remove_member(request.parameters["name"], _force(request), False)

    async def add_token(state: State, request: Request) -> Any:
        body = request.json_object()
        expire_after = body.get("expire_after", "3h")
        if not isinstance(expire_after, str):
            raise BadRequest("expire_after must be a duration such as 3h")
        return await core.add_token(request.text("name"), expire_after)

    async def tokens(state: State, request: Request) -> Any:
        return await core.list_tokens()

    async def revoke(state: State, request: Request) -> Any:
        await core.revoke_token(request.parameters["name"])

    async def sql(state: State, request: Request) -> Any:
        return await core.run_sql(request.text("query"))

    async def shutdown(state: State, request: Request) -> Any:
        await core.shutdown()

    return [
        Endpoint("status", get=status, allowed_before_ready=True, control_only=True),
        Endpoint("init", post=init, allowed_before_ready=True, control_only=True),
        Endpoint("members", get=members, allowed_before_ready=True, control_only=True),
        Endpoint("members/{name}", delete=remove, allowed_before_ready=True, control_only=True),
        Endpoint(
            "tokens", get=tokens, post=add_token, allowed_before_ready=True, control_only=True
        ),
        Endpoint("tokens/{name}", delete=revoke, allowed_before_ready=True, control_only=True),
        Endpoint("sql", post=sql, allowed_before_ready=True, control_only=True),
        Endpoint("shutdown", post=shutdown, allowed_before_ready=True, control_only=True),
    ]


def internal_endpoints(core: CoreOperations) -> list[Endpoint]:
    async def join(state: State, request: Request) -> Any:
        return await core.admit(request.json_object())

    async def joined(state: State, request: Request) -> Any:
        await core.joined(request.text("name"))

    async def heartbeat(state: State, request: Request) -> Any:
        return await core.heartbeat(request.body)

    async def new_member(state: State, request: Request) -> Any:
        await core.new_member(request.body)

    def _force_of(request: Request) -> bool:
        force = request.json_object().get("force", False)
        if not isinstance(force, bool):
            raise BadRequest("force must be true or false")
        return force

    async def pre_remove(state: State, request: Request) -> Any:
        await core.run_hook("pre_remove", _force_of(request))

    async def post_remove(state: State, request: Request) -> Any:
        await core.run_hook("post_remove", _force_of(request))

    async def reset(state: State, request: Request) -> Any:
        await core.reset_removed()

    async def remove(state: State, request: Request) -> Any:
        await core.remove_member(request.parameters["name"], _force(request), True)

    async def upgraded(state: State, request: Request) -> Any:
        core.schema_changed()

    async def status(state: State, request: Request) -> Any:
        return core.status()

    return [
        Endpoint("join", post=join, allow_untrusted=True),
        Endpoint("joined", post=joined),
        Endpoint("heartbeat", post=heartbeat, allowed_before_ready=True),
        Endpoint("hooks/new-member", post=new_member),
        Endpoint("hooks/pre-remove", post=pre_remove, allowed_before_ready=True),
        Endpoint("hooks/post-remove", post=post_remove, allowed_before_ready=True),
        Endpoint("reset", post=reset, allowed_before_ready=True),
        Endpoint("members/{name}", delete=remove),
        Endpoint("schema/upgraded", post=upgraded, allowed_before_ready=True),
        Endpoint("status", get=status, allowed_before_ready=True),
    ]
