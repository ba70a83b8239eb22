"""Porcupine's labelled histories: 102 etcd Jepsen runs (23 linearizable) and six
key-value runs. The data is not ours to commit; point LINCHECK_PORCUPINE_DATA at a
copy of porcupine's test_data directory (github.com/anishathalye/porcupine) to run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodehost.testing import Verdict, check_operations, kv_model, register_model

from .jepsen import ETCD_LINEARIZABLE, ETCD_LOGS, read_etcd_log, read_kv_log

DATA = os.environ.get("LINCHECK_PORCUPINE_DATA", "")
pytestmark = pytest.mark.skipif(
    not (DATA and Path(DATA, "jepsen").is_dir()),
    reason="LINCHECK_PORCUPINE_DATA does not name porcupine's test_data directory",
)


@pytest.mark.parametrize("number", ETCD_LOGS)
def test_etcd_jepsen_verdicts(number: int) -> None:
    history = read_etcd_log(Path(DATA, "jepsen", f"etcd_{number:03d}.log"))
    result = check_operations(register_model(), history, timeout=60)
    expected = Verdict.OK if number in ETCD_LINEARIZABLE else Verdict.ILLEGAL
    assert result.verdict is expected, result.explanation


@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"])
def test_kv_verdicts(name: str) -> None:
    history = read_kv_log(Path(DATA, "kv", f"{name}.txt"))
    result = check_operations(kv_model(), history, timeout=60)
    assert result.verdict is (Verdict.OK if name.endswith("ok") else Verdict.ILLEGAL)
