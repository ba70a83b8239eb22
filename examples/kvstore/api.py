"""The HTTP API (aiohttp). Every answer is JSON, errors included: {"error": "..."}.

    PUT    /key/<k>             body: any JSON value             200 {"key": k, "ok": true}
    GET    /key/<k>[?stale=1]   the value; a missing key is      404 null
    DELETE /key/<k>                                              200 {"key": k, "deleted": bool}
    POST   /key/<k>?cas=<json>  body: the new value; swaps only if the current value is
                                <json> (null: missing)  200 {"key": k, "ok": true} or
                                409 {"error": ..., "current": <value>}
    GET    /cluster             members, leader, terms, this node
    POST   /join                body {"id": 4, "addr": "host:raftport"}: add a node as a
                                non-voting member; with "voting": true, make it voting
    DELETE /cluster/<id>        remove a node
    GET    /metrics             Prometheus text: the NodeHost's metrics, then the service's
    GET    /healthz             200 while every shard's replica runs here, else 503

A node removed from the cluster answers 410 to every key and membership request, 503 to
/healthz, and says so in /cluster and /metrics: it can never serve again.

Keys are taken from the raw path, percent-decoded as UTF-8, so `a/../b` is a key and
not a path to normalise. `?timeout=<seconds>` bounds any request (default --timeout).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from examples.kvstore.commands import BadInput, canonical_json, check_key
from examples.kvstore.metrics import ServiceMetrics
from examples.kvstore.service import (
    Conflict,
    Gone,
    KVService,
    NotFound,
    TooLarge,
    Unavailable,
)
from examples.kvstore.settings import Settings
from nodehost import InvalidConfig
from nodehost.config import parse_address

log = logging.getLogger("kvstore.http")

KEY_PREFIX = "/key/"
MAX_TIMEOUT = 300.0
_JSON = "application/json"
_TRUE = ("1", "true", "yes", "on")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SERVICE = web.AppKey("service", KVService)
_SETTINGS = web.AppKey("settings", Settings)
_METRICS = web.AppKey("metrics", ServiceMetrics)


def make_app(service: KVService) -> web.Application:
    settings = service.settings
    app = web.Application(
        client_max_size=settings.max_value_bytes + 1024 * 1024,
        middlewares=[_answer_in_json],
    )
    app[_SERVICE] = service
    app[_SETTINGS] = settings
    app[_METRICS] = service.metrics
    app.router.add_get("/key/{key:.+}", get_key)
    app.router.add_put("/key/{key:.+}", put_key)
    app.router.add_delete("/key/{key:.+}", delete_key)
    app.router.add_post("/key/{key:.+}", cas_key)
    app.router.add_get("/cluster", get_cluster)
    app.router.add_post("/join", join)
    app.router.add_delete("/cluster/{id}", remove_member)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body, ensure_ascii=False)
    return web.Response(text=text, status=status, content_type=_JSON, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": message}, status, headers)


@web.middleware
async def _answer_in_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error with the right status, and count it."""
    started = time.perf_counter()
    response: web.StreamResponse
    try:
        response = await handler(request)
    except BadInput as exc:
        response = _error(400, str(exc))
    except NotFound as exc:
        response = _error(404, str(exc))
    except Conflict as exc:
        response = _error(409, str(exc))
    except TooLarge as exc:
        response = _error(413, str(exc))
    except Unavailable as exc:
        response = _error(503, str(exc), {"Retry-After": "1"})
    except Gone as exc:
        response = _error(410, str(exc))
    except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method, ...
        keep = {
            k: v
            for k, v in exc.headers.items()
            if k.lower() not in ("content-type", "content-length")
        }
        response = _error(exc.status, exc.reason, keep)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        response = _error(500, f"internal error: {type(exc).__name__}: {exc}")
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    request.app[_METRICS].observe(
        request.method, route, response.status, time.perf_counter() - started
    )
    return response


def _key(request: web.Request) -> str:
    path = request.raw_path.split("?", 1)[0]
    if not path.startswith(KEY_PREFIX):
        raise BadInput(f"a key path starts with {KEY_PREFIX}")
    try:
        key = unquote(path[len(KEY_PREFIX) :], errors="strict")
    except UnicodeDecodeError:
        raise BadInput("the key is not valid percent-encoded UTF-8") from None
    check_key(key)
    return key


def _timeout(request: web.Request) -> float:
    default = request.app[_SETTINGS].timeout
    raw = request.query.get("timeout")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"timeout={raw!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:
        raise BadInput(f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds, got {raw}")
    return value


async def _value(request: web.Request) -> bytes:
    """The body as canonical JSON, within MAX_VALUE_BYTES."""
    limit = request.app[_SETTINGS].max_value_bytes
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the body is larger than MAX_VALUE_BYTES ({limit} bytes)") from None
    value = canonical_json(body)
    if len(value) > limit:
        raise TooLarge(f"the value is {len(value)} bytes; MAX_VALUE_BYTES is {limit}")
    return value


async def get_key(request: web.Request) -> web.Response:
    key = _key(request)
    stale = request.query.get("stale", "").lower() in _TRUE
    value = await request.app[_SERVICE].get(key, stale=stale, timeout=_timeout(request))
    if value is None:
        return web.Response(body=b"null", status=404, content_type=_JSON)
    return web.Response(body=value, content_type=_JSON)


async def put_key(request: web.Request) -> web.Response:
    key = _key(request)
    value = await _value(request)
    await request.app[_SERVICE].put(key, value, _timeout(request))
    return _json({"key": key, "ok": True})


async def delete_key(request: web.Request) -> web.Response:
    key = _key(request)
    deleted = await request.app[_SERVICE].delete(key, _timeout(request))
    return _json({"key": key, "deleted": deleted})


async def cas_key(request: web.Request) -> web.Response:
    key = _key(request)
    if "cas" not in request.query:
        raise BadInput("POST /key/<k> is compare-and-set: add ?cas=<expected JSON value>")
    try:
        expected = canonical_json(request.query["cas"])
    except BadInput as exc:
        raise BadInput(f"cas: {exc}") from None
    value = await _value(request)
    swapped, current = await request.app[_SERVICE].cas(key, expected, value, _timeout(request))
    if swapped:
        return _json({"key": key, "ok": True})
    head = json.dumps({"error": "compare failed: the current value differs", "key": key})
    # `current` is canonical JSON already: splice it in rather than parse it again.
    body = head[:-1].encode() + b', "current": ' + (current or b"null") + b"}"
    return web.Response(body=body, status=409, content_type=_JSON)


async def get_cluster(request: web.Request) -> web.Response:
    return _json(await asyncio.to_thread(request.app[_SERVICE].cluster))


async def join(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    settings = request.app[_SETTINGS]
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise BadInput(
            'the body must be JSON: {"id": <node id>, "addr": "<host:raft port>"}'
        ) from None
    if not isinstance(body, dict):
        raise BadInput('the body must be a JSON object: {"id": 4, "addr": "host:port"}')
    node_id, addr, voting = body.get("id"), body.get("addr"), body.get("voting", False)
    if not isinstance(voting, bool):
        raise BadInput(f"voting must be true or false, got {voting!r}")
    if isinstance(node_id, bool) or not isinstance(node_id, int) or node_id < 1:
        raise BadInput(f"id must be a positive integer, got {node_id!r}")
    if not isinstance(addr, str):
        raise BadInput(f"addr must be the node's Raft host:port, got {addr!r}")
    try:
        parse_address(addr, "addr")
    except InvalidConfig as exc:
        raise BadInput(str(exc)) from None
    for name, ours in (("store", settings.store), ("shards", settings.shards)):
        if name in body and body[name] != ours:
            raise Conflict(
                f"this cluster runs {name}={ours}; start node {node_id} with that setting"
            )
    if service.removed():
        raise Gone(service.removed_text())
    added = await service.add_member(node_id, addr, _timeout(request), voting=voting)
    return _json(
        {
            "id": node_id,
            "addr": addr,
            "voting": voting,
            "added": added,
            "store": settings.store,
            "shards": settings.shards,
        }
    )


async def remove_member(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not raw.isdigit() or int(raw) < 1:
        raise BadInput(f"{raw!r} is not a node id")
    service = request.app[_SERVICE]
    if service.removed():
        raise Gone(service.removed_text())
    await service.remove_member(int(raw), _timeout(request))
    return _json({"id": int(raw), "removed": True})


async def metrics(request: web.Request) -> web.Response:
    service = request.app[_SERVICE]
    service.metrics.removed.set(1 if service.removed() else 0)
    body = service.nh.write_health_metrics() + service.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    ok, body = request.app[_SERVICE].health()
    return _json(body, 200 if ok else 503)
