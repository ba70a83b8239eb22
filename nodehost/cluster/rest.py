"""Endpoints, requests and answers: the HTTP API of a member, core and user alike.

    extended = Endpoint("extended", post=extended_post)   # served at /1.0/extended

Rules:
- Every endpoint is served on the control socket and on the network listener. On the
  network, a caller is a member when the certificate it proved it holds is trusted,
  anonymous otherwise; anonymous callers reach only endpoints with `allow_untrusted`.
  Control-only endpoints (the core's /core/control/...) are not on the network at all.
- User endpoints answer only while the database is ready, unless `allowed_before_ready`.
- A handler gets (State, Request) and returns what becomes the answer's JSON metadata;
  it raises a ClusterError for an error answer. A plain function runs on a worker thread
  (it may block); a coroutine function runs on the daemon's loop.
- PEP 249 errors from the database are answered as 400 (the SQL or the data is wrong) or
  503 (the cluster could not serve: no quorum, a timeout); anything else is a 500 and
  is logged with its traceback.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nodehost.cluster.errors import BadRequest, ClusterError, Forbidden
from nodehost.cluster.state import State
from nodehost.sqlite import errors as sql_errors

log = logging.getLogger("nodehost.cluster")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
Handler = Callable[[State, "Request"], Any | Awaitable[Any]]


class CallerKind(Enum):
    CONTROL = "control"  # the control socket: the daemon's owner (or root)
    MEMBER = "member"  # a trusted member, by certificate
    ANONYMOUS = "anonymous"  # the network, without a trusted certificate


@dataclass(frozen=True, slots=True)
class Caller:
    kind: CallerKind
    member: str | None = None  # the member's name when kind is MEMBER

    @property
    def trusted(self) -> bool:
        return self.kind is not CallerKind.ANONYMOUS


@dataclass(slots=True)
class Request:
    method: str
    path: str
    parameters: dict[str, str]
    query: dict[str, str]
    body: Any
    caller: Caller
    notification: bool = False  # sent by a member on behalf of another call

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (an empty body is an empty object)."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise BadRequest("the request body must be a JSON object")
        return self.body

    def text(self, key: str, *, required: bool = True, default: str = "") -> str:
        value = self.json_object().get(key)
        if value is None and not required:
            return default
        if not isinstance(value, str):
            raise BadRequest(f"{key!r} must be a string")
        return value


@dataclass(frozen=True)
class Endpoint:
    """One path and its handlers; `path` is relative to /1.0/ for user endpoints and may
    hold {parameters}."""

    path: str
    get: Handler | None = None
    post: Handler | None = None
    put: Handler | None = None
    patch: Handler | None = None
    delete: Handler | None = None
    allow_untrusted: bool = False
    allowed_before_ready: bool = False
    control_only: bool = False
    handlers: dict[str, Handler] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        handlers = {
            method: handler
            for method, handler in zip(
                METHODS, (self.get, self.post, self.put, self.patch, self.delete), strict=True
            )
            if handler is not None
        }
        if not handlers:
            raise ValueError(f"endpoint {self.path!r} has no handler")
        if self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"endpoint path {self.path!r} must be relative, without '..'")
        object.__setattr__(self, "handlers", handlers)


def check_access(endpoint: Endpoint, caller: Caller) -> None:
    if caller.kind is CallerKind.ANONYMOUS and not endpoint.allow_untrusted:
        raise Forbidden("this endpoint needs a trusted member certificate")


async def call_handler(
    handler: Handler, state: State, request: Request, in_thread: Callable[..., Awaitable[Any]]
) -> Any:
    if inspect.iscoroutinefunction(handler):
        return await handler(state, request)
    result = await in_thread(handler, state, request)
    if inspect.isawaitable(result):
        return await result
    return result


def success(metadata: Any) -> tuple[int, bytes]:
    try:
        body = json.dumps(
            {"type": "sync", "status": "Success", "status_code": 200, "metadata": metadata}
        )
    except (TypeError, ValueError) as exc:
        return failure(ClusterError(f"the handler's answer is not JSON: {exc}"))
    return 200, body.encode()


def failure(error: BaseException) -> tuple[int, bytes]:
    """The status and body for an exception raised while serving a request."""
    if isinstance(error, ClusterError):
        status, message = error.status, str(error)
    elif isinstance(error, sql_errors.OperationalError):
        status, message = 503, f"the cluster database could not serve the request: {error}"
    elif isinstance(error, sql_errors.Error):
        status, message = 400, f"SQL error: {error}"
    else:
        log.error("internal error", exc_info=error)
        status, message = 500, f"internal error: {type(error).__name__}: {error}"
    body = json.dumps({"type": "error", "error": message, "error_code": status})
    return status, body.encode()
