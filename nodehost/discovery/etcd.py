"""The leader key in etcd, through etcd's v3 JSON gateway (POST /v3/kv/range, /v3/kv/txn).

Plain HTTP with aiohttp, the project's HTTP client already: three calls are all that
discovery needs, and the gateway is part of every etcd 3.4+ server, so no gRPC stubs of
etcd's protocol (and no client library with its own release cycle) are needed.

Rules:
- Every write is a transaction with a guard: `create` only while the key is absent
  (create_revision = 0), `swap` only while it still holds the revision last read
  (mod_revision). That is the check-and-set the bootstrap race and the leader's
  publishing rely on; a write never wins by timing.
- A request that got no answer may still have been applied: callers decide by
  reading the key again, never by assuming either outcome.
- Endpoints are tried in order, starting with the last one that answered; when none
  answers, `StoreUnavailable` names each one and why.
- An answer is hostile until parsed: anything but the documented shape is
  `StoreAnswerInvalid`, and so is a value under the key that this library did not write.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

import aiohttp

from nodehost.discovery.config import EtcdConfig
from nodehost.discovery.errors import StoreAnswerInvalid, StoreUnavailable
from nodehost.discovery.records import DocumentError, LeaderRecord

_MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stored:
    record: LeaderRecord
    mod_revision: int


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdStore:
    """One key of one etcd cluster. Open it inside the event loop that will use it."""

    def __init__(self, config: EtcdConfig, key: str) -> None:
        self.config = config
        self.path = (config.prefix + key).encode()
        self._preferred = 0
        self._session: aiohttp.ClientSession | None = None

    def describe(self) -> str:
        return f"etcd {','.join(self.config.endpoints)} key {self.path.decode()}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def read(self) -> Stored | None:
        """The record under the key with its revision; None when the key is absent."""
        answer = await self._call("/v3/kv/range", {"key": _b64(self.path)})
        return self._stored(answer.get("kvs"))

    async def create(self, record: LeaderRecord) -> bool:
        """Write `record` only if the key is absent. True when this call wrote it."""
        return await self._guarded({"target": "CREATE", "create_revision": "0"}, record)

    async def swap(self, record: LeaderRecord, mod_revision: int) -> bool:
        """Write `record` only if the key still holds revision `mod_revision`."""
        return await self._guarded({"target": "MOD", "mod_revision": str(mod_revision)}, record)

    async def delete(self) -> None:
        await self._call("/v3/kv/deleterange", {"key": _b64(self.path)})

    async def _guarded(self, compare: dict[str, str], record: LeaderRecord) -> bool:
        body = {
            "compare": [{"key": _b64(self.path), "result": "EQUAL", **compare}],
            "success": [{"request_put": {"key": _b64(self.path), "value": _b64(record.to_json())}}],
            "failure": [],
        }
        answer = await self._call("/v3/kv/txn", body)
        succeeded = answer.get("succeeded", False)  # the gateway omits false
        if not isinstance(succeeded, bool):
            raise StoreAnswerInvalid(f"{self.describe()}: txn answered succeeded={succeeded!r}")
        return succeeded

    def _stored(self, kvs: Any) -> Stored | None:
        if kvs is None:
            return None
        if not isinstance(kvs, list) or len(kvs) != 1 or not isinstance(kvs[0], dict):
            raise StoreAnswerInvalid(f"{self.describe()}: range answered kvs={kvs!r:.200}")
        kv = kvs[0]
        try:
            value = base64.b64decode(kv.get("value", ""), validate=True)
            revision = int(kv["mod_revision"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreAnswerInvalid(f"{self.describe()}: malformed range answer: {exc}") from None
        try:
            record = LeaderRecord.from_json(value)
        except DocumentError as exc:
            raise StoreAnswerInvalid(
                f"{self.describe()} holds a value that is not a discovery record ({exc}); "
                "delete it or use another key"
            ) from None
        return Stored(record, revision)

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout)
            )
        endpoints = self.config.endpoints
        problems = []
        for offset in range(len(endpoints)):
            index = (self._preferred + offset) % len(endpoints)
            url = endpoints[index] + path
            try:
                async with self._session.post(url, json=body) as response:
                    data = await response.content.read(_MAX_ANSWER_BYTES + 1)
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problems.append(f"{endpoints[index]}: {describe_failure(exc)}")
                continue
            self._preferred = index
            return self._answer(endpoints[index], status, data)
        raise StoreUnavailable(f"etcd is unreachable ({'; '.join(problems)})")

    def _answer(self, endpoint: str, status: int, data: bytes) -> dict[str, Any]:
        if len(data) > _MAX_ANSWER_BYTES:
            raise StoreAnswerInvalid(f"etcd at {endpoint} answered over {_MAX_ANSWER_BYTES} bytes")
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if status != 200:
            message = (
                answer.get("message")
                if isinstance(answer, dict)
                else data[:200].decode("utf-8", "replace")
            )
            if status >= 500 or status == 429:
                raise StoreUnavailable(f"etcd at {endpoint} answered {status}: {message}")
            raise StoreAnswerInvalid(f"etcd at {endpoint} answered {status}: {message}")
        if not isinstance(answer, dict):
            raise StoreAnswerInvalid(f"etcd at {endpoint} answered something that is not JSON")
        return answer


def describe_failure(exc: BaseException) -> str:
    """A short reason for a failed HTTP request, without the library's internals."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return f"cannot connect: {os.strerror(exc.os_error.errno).lower()}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
