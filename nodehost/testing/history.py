"""Client histories: what each client asked, what it was told, and when.

Rules:
- Times come from one monotonic clock read by the clients themselves: `call` before
  the request leaves, `return_time` after the answer arrived. The interval is closed,
  so two operations that touch at an instant count as concurrent.
- An operation whose outcome the client never learned (a timeout, a lost connection)
  has `return_time = math.inf` and `output = UNKNOWN`: it may have taken effect at any
  moment after its call, or never. A definite failure ("not applied") is not history
  at all and is dropped; so is a read whose answer never came (the model drops it).
- One operation outstanding per client: a client that invokes again before the last
  answer is a recorder bug, reported at once.
- The JSON form holds everything needed to replay a check: values that JSON lacks
  (tuples, bytes, sets) are tagged, and an unknown return is `null`.
"""

from __future__ import annotations

import base64
import enum
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

FORMAT: Final = "nodehost-history/1"


class _Unknown(enum.Enum):
    UNKNOWN = "unknown"

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown.UNKNOWN
"""The output of an operation whose outcome the client never learned."""


@dataclass(slots=True)
class Operation:
    """One client call. `input` and `output` are the model's (see models.py)."""

    client_id: int
    input: Any
    call: float
    output: Any
    return_time: float

    @property
    def outcome_unknown(self) -> bool:
        return self.output is UNKNOWN


def validate(history: Iterable[Operation]) -> None:
    """Raise ValueError for the first operation a check could misread."""
    for i, op in enumerate(history):
        if not isinstance(op, Operation):
            raise ValueError(f"history[{i}] is a {type(op).__name__}, not an Operation")
        if not math.isfinite(op.call):
            raise ValueError(f"history[{i}]: call time {op.call!r} is not finite")
        if math.isnan(op.return_time) or op.return_time < op.call:
            raise ValueError(f"history[{i}]: returns at {op.return_time!r}, before its call")
        # A known output with no return time, or an unknown one with a return time,
        # would let the checker place the effect where it cannot have been.
        if (op.output is UNKNOWN) != math.isinf(op.return_time):
            raise ValueError(
                f"history[{i}]: an unknown outcome needs return_time=inf and output=UNKNOWN, "
                f"got output={op.output!r}, return_time={op.return_time!r}"
            )


class HistoryRecorder:
    """Collects operations from many threads or asyncio tasks at once.

    Each call takes a lock for a few microseconds and never blocks on IO, so it is
    safe to use from an event loop. Usage per operation:

        token = recorder.invoke(client_id, ("write", 7))
        ...send it...
        recorder.complete(token, None)   # or fail(token) / unknown(token)
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        """`clock` returns nanoseconds; every recorder merged into one check must share it."""
        self._clock = clock
        self._lock = threading.Lock()
        self._next_token = 0
        self._pending: dict[int, Operation] = {}
        self._client_token: dict[int, int] = {}
        self._done: list[Operation] = []

    def invoke(self, client_id: int, input: Any) -> int:
        """Record a call about to be sent; returns the token that finishes it."""
        call = self._clock() / 1e9
        with self._lock:
            if client_id in self._client_token:
                raise ValueError(
                    f"client {client_id} already has operation {self._client_token[client_id]} "
                    "outstanding; use one client id per concurrent caller"
                )
            token = self._next_token
            self._next_token += 1
            self._pending[token] = Operation(client_id, input, call, UNKNOWN, math.inf)
            self._client_token[client_id] = token
            return token

    def complete(self, token: int, output: Any) -> None:
        """The answer arrived: the operation took effect and returned `output`."""
        now = self._clock() / 1e9
        with self._lock:
            op = self._finish(token)
            op.output = output
            op.return_time = max(now, op.call)
            self._done.append(op)

    def fail(self, token: int) -> None:
        """The operation definitely did not take effect; it leaves the history."""
        with self._lock:
            self._finish(token)

    def unknown(self, token: int) -> None:
        """No answer: the operation may take effect at any later time, or never."""
        with self._lock:
            self._done.append(self._finish(token))

    def operations(self) -> list[Operation]:
        """The history so far, by call time; still-pending operations count as unknown."""
        with self._lock:
            ops = [*self._done, *self._pending.values()]
            snapshot = [
                Operation(o.client_id, o.input, o.call, o.output, o.return_time) for o in ops
            ]
        snapshot.sort(key=lambda o: o.call)
        return snapshot

    def dump(self, path: str | os.PathLike[str]) -> None:
        dump_history(self.operations(), path)

    def _finish(self, token: int) -> Operation:
        op = self._pending.pop(token, None)
        if op is None:
            raise ValueError(f"operation {token} is not outstanding (finished twice?)")
        del self._client_token[op.client_id]
        return op


def dump_history(history: Iterable[Operation], path: str | os.PathLike[str]) -> None:
    """Write `history` as JSON that `load_history` reads back equal."""
    doc = {
        "format": FORMAT,
        "operations": [
            {
                "client": op.client_id,
                "input": _encode(op.input),
                "call": op.call,
                **({} if op.output is UNKNOWN else {"output": _encode(op.output)}),
                "return": None if math.isinf(op.return_time) else op.return_time,
            }
            for op in history
        ],
    }
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def load_history(path: str | os.PathLike[str]) -> list[Operation]:
    """Read a history written by `dump_history`; raises ValueError naming a bad record."""
    with open(path, encoding="utf-8") as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{os.fspath(path)}: not JSON: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)}: not a {FORMAT} document")
    ops: list[Operation] = []
    for i, rec in enumerate(doc.get("operations", [])):
        try:
            ret = rec["return"]
            op = Operation(
                client_id=int(rec["client"]),
                input=_decode(rec["input"]),
                call=float(rec["call"]),
                output=_decode(rec["output"]) if ret is not None else UNKNOWN,
                return_time=float(ret) if ret is not None else math.inf,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{os.fspath(path)}: operation {i} is malformed: {e!r}") from None
        ops.append(op)
    validate(ops)
    return ops


def _encode(value: Any) -> Any:
    # Tuples must come back as tuples: inputs and states are compared and hashed.
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, frozenset | set):
        return {"set": sorted((_encode(v) for v in value), key=repr)}
    raise ValueError(f"cannot write {type(value).__name__} {value!r} to a history file")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if isinstance(value, dict):
        if value.keys() == {"bytes"}:
            return base64.b64decode(value["bytes"])
        if value.keys() == {"set"}:
            return frozenset(_decode(v) for v in value["set"])
        raise ValueError(f"unknown tagged value {value!r}")
    return value
