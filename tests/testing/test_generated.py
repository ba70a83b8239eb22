"""Generated histories with known verdicts, and a brute-force cross-check.

Simulated linearizable objects must pass; one mutated read (a value never written,
or one overwritten before the read began) must fail; on tiny arbitrary histories
the checker must agree with `brute_force`, which shares no code with it.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodehost.testing import (
    UNKNOWN,
    Operation,
    Verdict,
    check_durability,
    check_operations,
    kv_model,
    register_model,
    set_model,
    truncate,
)
from nodehost.testing.explain import explain
from nodehost.testing.search import Search

from .histories import (
    brute_force,
    kv_apply,
    mutate_never_written,
    mutate_stale,
    register_apply,
    simulate,
)

SEEDS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SEEDS
@given(
    seed=st.integers(0, 2**32),
    clients=st.integers(1, 10),
    p_unknown=st.sampled_from([0, 0.05, 0.2]),
)
def test_simulated_register_passes(seed: int, clients: int, p_unknown: float) -> None:
    history = simulate(random.Random(seed), clients=clients, ops=300, p_unknown=p_unknown)
    result = check_operations(register_model(), history)
    assert result.verdict is Verdict.OK, result.explanation


@SEEDS
@given(seed=st.integers(0, 2**32), clients=st.integers(1, 10))
def test_simulated_kv_passes(seed: int, clients: int) -> None:
    history = simulate(random.Random(seed), clients=clients, ops=400, keys=4, p_unknown=0.05)
    result = check_operations(kv_model(), history)
    assert result.verdict is Verdict.OK, result.explanation
    assert {p.key for p in result.partitions} <= {"k0", "k1", "k2", "k3"}


@SEEDS
@given(seed=st.integers(0, 2**32), clients=st.integers(2, 10), p_unknown=st.sampled_from([0, 0.05]))
def test_a_read_of_a_value_never_written_fails(seed: int, clients: int, p_unknown: float) -> None:
    rng = random.Random(seed)
    history = mutate_never_written(
        rng, simulate(rng, clients=clients, ops=300, p_unknown=p_unknown)
    )
    assert history is not None
    result = check_operations(register_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    _assert_explains_first_failure(history, result.operations[0])


@SEEDS
@given(seed=st.integers(0, 2**32), clients=st.integers(2, 10), p_unknown=st.sampled_from([0, 0.05]))
def test_a_stale_read_fails(seed: int, clients: int, p_unknown: float) -> None:
    rng = random.Random(seed)
    history = mutate_stale(rng, simulate(rng, clients=clients, ops=300, p_unknown=p_unknown))
    assert history is not None
    result = check_operations(register_model(), history)
    assert result.verdict is Verdict.ILLEGAL
    _assert_explains_first_failure(history, result.operations[0])


@SEEDS
@given(seed=st.integers(0, 2**32))
def test_a_stale_read_of_one_key_fails_on_that_key(seed: int) -> None:
    rng = random.Random(seed)
    history = simulate(rng, clients=6, ops=400, keys=5, p_unknown=0.05, p_append=0, p_delete=0)
    mutated = mutate_stale(rng, history)
    assert mutated is not None
    bad = next(m for m, o in zip(mutated, history, strict=True) if m.output != o.output)
    result = check_operations(kv_model(), mutated)
    assert result.verdict is Verdict.ILLEGAL
    assert result.key == bad.input[1]
    assert result.key in result.explanation


def _assert_explains_first_failure(history: list[Operation], culprit: Operation) -> None:
    """The culprit's return is the first moment the history stops being linearizable."""
    model = register_model()
    assert culprit in history
    at = culprit.return_time
    before = max((o.return_time for o in history if o.return_time < at), default=-math.inf)
    assert check_operations(model, truncate(model, history, at)).verdict is Verdict.ILLEGAL
    assert check_operations(model, truncate(model, history, before)).verdict is Verdict.OK


# Tiny arbitrary histories: times on a coarse grid so that ties and overlaps abound,
# values from a tiny domain so that writes repeat and reads often match.
VALUES = st.sampled_from([None, 0, 1, 2])


@st.composite
def register_ops(draw: st.DrawFn) -> tuple[tuple[object, ...], object]:
    kind = draw(st.sampled_from(["read", "write", "cas"]))
    if kind == "read":
        return ("read",), draw(VALUES)
    if kind == "write":
        return ("write", draw(st.integers(0, 2))), None
    return ("cas", draw(VALUES), draw(st.integers(0, 2))), draw(st.booleans())


@st.composite
def kv_ops(draw: st.DrawFn) -> tuple[tuple[object, ...], object]:
    key = draw(st.sampled_from(["a", "b"]))
    kind = draw(st.sampled_from(["get", "put", "append", "delete", "cas"]))
    small = st.sampled_from(["x", "y", "xy"])
    if kind == "get":
        return ("get", key), draw(st.sampled_from([None, "x", "y", "xy", "yx"]))
    if kind == "put":
        return ("put", key, draw(small)), None
    if kind == "append":
        return ("append", key, draw(st.sampled_from(["x", "y"]))), None
    if kind == "delete":
        return ("delete", key), None
    return ("cas", key, draw(st.sampled_from([None, "x", "y"])), draw(small)), draw(st.booleans())


@st.composite
def histories(
    draw: st.DrawFn, ops: st.SearchStrategy[tuple[tuple[object, ...], object]]
) -> list[Operation]:
    out = []
    for client in range(draw(st.integers(1, 6))):
        call, inp_out = draw(st.integers(0, 6)), draw(ops)
        inp, output = inp_out
        if draw(st.integers(0, 5)) == 0 and inp[0] not in ("read", "get"):
            out.append(Operation(client, inp, call, UNKNOWN, math.inf))
        else:
            out.append(Operation(client, inp, call, output, call + draw(st.integers(0, 4))))
    return out


@settings(max_examples=400, deadline=None)
@given(histories(register_ops()))
def test_register_agrees_with_brute_force(history: list[Operation]) -> None:
    expected = brute_force(history, register_apply, None)
    assert check_operations(register_model(), history).ok == expected


@settings(max_examples=300, deadline=None)
@given(histories(kv_ops()))
def test_kv_agrees_with_brute_force_over_the_whole_map(history: list[Operation]) -> None:
    expected = brute_force(history, kv_apply, ())
    assert check_operations(kv_model(), history).ok == expected


@st.composite
def set_ops(draw: st.DrawFn) -> tuple[tuple[object, ...], object]:
    if draw(st.booleans()):
        return ("add", draw(st.integers(0, 3))), None
    return ("read",), draw(st.frozensets(st.integers(0, 3), max_size=3))


def set_apply(state: frozenset[int], inp: tuple[object, ...]) -> tuple[object, object]:
    if inp[0] == "add":
        return None, state | {inp[1]}
    return state, state


@settings(max_examples=250, deadline=None)
@given(histories(set_ops()))
def test_set_agrees_with_brute_force_and_implies_durability(history: list[Operation]) -> None:
    expected = brute_force(history, set_apply, frozenset())
    assert check_operations(set_model(), history).ok == expected
    if expected:
        assert check_durability(history).ok


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_search_resumed_batch_by_batch_reaches_the_same_verdict(seed: int) -> None:
    rng = random.Random(seed)
    history = simulate(rng, clients=8, ops=200, p_unknown=0.1)
    if rng.random() < 0.5:
        history = mutate_stale(rng, history) or history
    ops = register_model().partition(history)[None]
    whole = Search(register_model(), ops).run(math.inf)
    search = Search(register_model(), ops)
    for _ in range(100_000):
        verdict = search.run(-math.inf)  # past the deadline: one batch per call
        if verdict is not None:
            break
    assert verdict is whole


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(histories(register_ops()), histories(kv_ops()))
def test_many_more_tiny_histories(register: list[Operation], kv: list[Operation]) -> None:
    assert check_operations(register_model(), register).ok == brute_force(
        register, register_apply, None
    )
    assert check_operations(kv_model(), kv).ok == brute_force(kv, kv_apply, ())


def test_narrowing_out_of_budget_still_names_a_real_culprit_and_says_so() -> None:
    rng = random.Random(3)
    history = mutate_stale(rng, simulate(rng, clients=10, ops=2000, p_unknown=0))
    assert history is not None
    model = register_model()
    search = Search(model, model.partition(history)[None])
    assert search.run(math.inf) is Verdict.ILLEGAL
    text, culprits = explain(model, None, search, deadline=-math.inf)  # one batch per probe
    assert "the budget ran out while narrowing" in text
    assert "everything that returned before it" not in text
    assert culprits[0] in history
