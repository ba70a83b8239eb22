"""Sequential specifications the checker replays histories against.

Rules:
- A model is pure: `step` never mutates its arguments and states are immutable and
  hashable, because the checker memoizes (linearized set, state) pairs (Lowe 2017).
- `step` accepts any operation whose output is UNKNOWN (its effect is applied, its
  answer is not checked): that is what lets a timed-out write take effect late.
- `partition` checks every input once, groups operations by key (Horn & Kroening's
  P-compositionality: a map is linearizable iff each key is), and drops operations
  that carry no information: reads whose answer never came.
- Per key, written values that no read returns and no compare-and-set names are
  indistinguishable to every operation of the key, so they are wrapped to compare
  equal (`Unobserved`): their states merge in the memo, and timed-out writes of them
  become interchangeable. Not with appends, which build new values from old ones.
- Inputs are tuples naming the operation first, so histories stay plain JSON:
  register  ("read",) -> value | ("write", v) -> None | ("cas", old, new) -> bool
  kv        ("get", k) -> value | ("put", k, v) | ("append", k, v) | ("delete", k)
            | ("cas", k, old, new) -> bool        (an absent key reads as None)
  set       ("add", x) -> None | ("read",) -> the whole set
  list      ("append", x) -> None | ("read",) -> the whole list, oldest first
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from nodehost.testing.history import UNKNOWN, Operation

S = TypeVar("S")


class Model(Protocol[S]):
    """A sequential object: the behaviour every legal history must explain."""

    def init(self) -> S:
        """The state of every key before any operation."""

    def step(self, state: S, input: Any, output: Any) -> tuple[bool, S]:
        """Could `input` have returned `output` in `state`, and what state follows?"""

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        """Validated, per-key sub-histories, each checked on its own."""

    def read_only(self, input: Any, output: Any) -> bool:
        """True if the operation, with this output, leaves every state it is legal in
        unchanged (a read, a failed compare-and-set). The checker then linearizes it
        as soon as it fits instead of branching; False is always safe."""

    def describe_operation(self, input: Any, output: Any) -> str:
        """One line for explanations, like "cas(1, 2) -> ok"."""


def _value_step(state: Any, kind: str, args: tuple[Any, ...], output: Any) -> tuple[bool, Any]:
    """One register (or one key of a map); `args` excludes the key."""
    if kind == "read" or kind == "get":
        return output is UNKNOWN or output == state, state
    if kind == "write" or kind == "put":
        return True, args[0]
    if kind == "cas":
        if state == args[0]:
            return output is not False, args[1]
        return output is not True, state
    if kind == "append":
        return True, args[0] if state is None else state + args[0]
    if kind == "delete":
        return True, None
    raise ValueError(f"unknown operation {kind!r}")


class Unobserved:
    """A written value nothing in the key's history could tell from another such value."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unobserved)

    def __hash__(self) -> int:
        return 0x0B5E

    def __repr__(self) -> str:
        return repr(self.value)


def _merge_unobserved(ops: list[Operation], initial: Any, key_args: int) -> list[Operation]:
    """Wrap the values written by `ops` (one key) that nothing observes; `key_args` is
    how many input fields precede the operation's own arguments (1 for a map key)."""
    at = 1 + key_args  # where a write's value, or a cas's expected value, sits
    try:
        observed = {initial}
        for op in ops:
            kind = op.input[0]
            if kind == "append":
                return ops
            if kind in ("read", "get") and op.output is not UNKNOWN:
                observed.add(op.output)
            elif kind == "cas":
                observed.add(op.input[at])
        merged = []
        for op in ops:
            kind, inp = op.input[0], op.input
            i = at if kind in ("write", "put") else at + 1 if kind == "cas" else None
            if i is not None and inp[i] not in observed:
                inp = (*inp[:i], Unobserved(inp[i]), *inp[i + 1 :])
                op = Operation(op.client_id, inp, op.call, op.output, op.return_time)
            merged.append(op)
        return merged
    except TypeError:  # unhashable values: check them as they are
        return ops


def _read_only(kind: str, output: Any) -> bool:
    return kind in ("read", "get") or (kind == "cas" and output is False)


def _show(value: Any) -> str:
    return "?" if value is UNKNOWN else repr(value)


def _check_output(op: Operation, kind: str) -> None:
    out = op.output
    if kind == "cas" and not (out is True or out is False or out is UNKNOWN):
        raise ValueError(f"cas returns True or False, got {op.output!r} in {op}")
    if kind in ("write", "put", "append", "delete") and not (out is None or out is UNKNOWN):
        raise ValueError(f"{kind} returns None, got {op.output!r} in {op}")


def _is_dropped_read(op: Operation, kind: str) -> bool:
    return op.output is UNKNOWN and kind in ("read", "get")


@dataclass(frozen=True, slots=True)
class RegisterModel:
    """One register with read, write and compare-and-set."""

    initial: Any = None

    def init(self) -> Any:
        return self.initial

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        return _value_step(state, input[0], input[1:], output)

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        arity = {"read": 1, "write": 2, "cas": 3}
        kept: list[Operation] = []
        for op in history:
            if not (
                isinstance(op.input, tuple) and op.input and arity.get(op.input[0]) == len(op.input)
            ):
                raise ValueError(f"not a register operation: {op.input!r} (see models.py)")
            _check_output(op, op.input[0])
            if not _is_dropped_read(op, op.input[0]):
                kept.append(op)
        return {None: _merge_unobserved(kept, self.initial, 0)}

    def read_only(self, input: Any, output: Any) -> bool:
        return _read_only(input[0], output)

    def describe_operation(self, input: Any, output: Any) -> str:
        kind = input[0]
        if kind == "read":
            return f"read() -> {_show(output)}"
        if kind == "write":
            return f"write({input[1]!r})"
        ok = {True: "ok", False: "fail"}.get(output, "?")
        return f"cas({input[1]!r}, {input[2]!r}) -> {ok}"


@dataclass(frozen=True, slots=True)
class KVModel:
    """A map, checked one key at a time; each key behaves like a register."""

    def init(self) -> Any:
        return None

    def step(self, state: Any, input: Any, output: Any) -> tuple[bool, Any]:
        return _value_step(state, input[0], input[2:], output)

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        arity = {"get": 2, "put": 3, "append": 3, "delete": 2, "cas": 4}
        keys: dict[Hashable, list[Operation]] = {}
        for op in history:
            if not (
                isinstance(op.input, tuple) and op.input and arity.get(op.input[0]) == len(op.input)
            ):
                raise ValueError(f"not a kv operation: {op.input!r} (see models.py)")
            kind, key = op.input[0], op.input[1]
            _check_output(op, kind)
            if kind == "append" and not isinstance(op.input[2], str | bytes):
                raise ValueError(f"append takes str or bytes, got {op.input!r}")
            ops = keys.setdefault(key, [])
            if not _is_dropped_read(op, kind):
                ops.append(op)
        return {key: _merge_unobserved(ops, None, 1) for key, ops in keys.items()}

    def read_only(self, input: Any, output: Any) -> bool:
        return _read_only(input[0], output)

    def describe_operation(self, input: Any, output: Any) -> str:
        kind, key = input[0], input[1]
        if kind == "get":
            return f"get({key!r}) -> {_show(output)}"
        if kind == "delete":
            return f"delete({key!r})"
        if kind == "cas":
            ok = {True: "ok", False: "fail"}.get(output, "?")
            return f"cas({key!r}, {input[2]!r}, {input[3]!r}) -> {ok}"
        return f"{kind}({key!r}, {input[2]!r})"


@dataclass(frozen=True, slots=True)
class SetModel:
    """A grow-only set read whole. For long histories with many timed-out adds prefer
    `check_durability`: here every subset of them is a state to explore."""

    def init(self) -> frozenset[Any]:
        return frozenset()

    def step(self, state: frozenset[Any], input: Any, output: Any) -> tuple[bool, frozenset[Any]]:
        if input[0] == "add":
            return True, state | {input[1]}
        return output is UNKNOWN or output == state, state

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        return {None: normalize_set_history(history)}

    def read_only(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "read")

    def describe_operation(self, input: Any, output: Any) -> str:
        if input[0] == "add":
            return f"add({input[1]!r})"
        if output is UNKNOWN:
            return "read() -> ?"
        return f"read() -> {{{', '.join(sorted(map(repr, output)))}}}"


def normalize_set_history(history: Sequence[Operation]) -> list[Operation]:
    """Validate set operations; reads answer frozensets; unanswered reads are dropped."""
    kept: list[Operation] = []
    for op in history:
        inp = op.input
        if isinstance(inp, tuple) and len(inp) == 2 and inp[0] == "add":
            _check_output(op, "append")  # like append: returns None
            kept.append(op)
        elif inp == ("read",):
            if op.output is UNKNOWN:
                continue
            if not isinstance(op.output, list | tuple | set | frozenset):
                raise ValueError(f"a set read returns a collection, got {op.output!r}")
            out = frozenset(op.output)
            kept.append(Operation(op.client_id, inp, op.call, out, op.return_time))
        else:
            raise ValueError(f"not a set operation: {inp!r} (see models.py)")
    return kept


@dataclass(frozen=True, slots=True)
class ListAppendModel:
    """A list that only grows at its end, read whole. With unique elements prefer
    `check_list_append`, which decides in O(n log n) what this model makes the search
    explore (each subset and order of the timed-out appends is a state)."""

    def init(self) -> tuple[Any, ...]:
        return ()

    def step(self, state: tuple[Any, ...], input: Any, output: Any) -> tuple[bool, tuple[Any, ...]]:
        if input[0] == "append":
            return True, (*state, input[1])
        return output is UNKNOWN or output == state, state

    def partition(self, history: Sequence[Operation]) -> dict[Hashable, list[Operation]]:
        return {None: normalize_list_history(history)}

    def read_only(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "read")

    def describe_operation(self, input: Any, output: Any) -> str:
        if input[0] == "append":
            return f"append({input[1]!r})"
        if output is UNKNOWN:
            return "read() -> ?"
        return f"read() -> [{', '.join(map(repr, output))}]"


def normalize_list_history(history: Sequence[Operation]) -> list[Operation]:
    """Validate list operations; reads answer tuples; unanswered reads are dropped."""
    kept: list[Operation] = []
    for op in history:
        inp = op.input
        if isinstance(inp, tuple) and len(inp) == 2 and inp[0] == "append":
            _check_output(op, "append")
            kept.append(op)
        elif inp == ("read",):
            if op.output is UNKNOWN:
                continue
            if not isinstance(op.output, list | tuple):
                raise ValueError(f"a list read returns a list or tuple, got {op.output!r}")
            out = tuple(op.output)
            kept.append(Operation(op.client_id, inp, op.call, out, op.return_time))
        else:
            raise ValueError(f"not a list operation: {inp!r} (see models.py)")
    return kept


def register_model(initial: Any = None) -> RegisterModel:
    return RegisterModel(initial)


def kv_model() -> KVModel:
    return KVModel()


def set_model() -> SetModel:
    return SetModel()


def list_model() -> ListAppendModel:
    return ListAppendModel()
