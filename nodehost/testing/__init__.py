"""Test tools for users of nodehost: record what clients saw, then judge it.

    from nodehost.testing import HistoryRecorder, check_operations, kv_model

    recorder = HistoryRecorder()
    token = recorder.invoke(client_id, ("put", "k", "v1"))
    ...                                   # the real call to a NodeHost
    recorder.complete(token, None)        # or recorder.unknown(token) on a timeout
    result = check_operations(kv_model(), recorder.operations(), timeout=30)
    assert result.ok, result.explanation

Three checks: `check_operations` (any model, by search, within a budget: OK, ILLEGAL
or UNKNOWN), `check_list_append` (an append-only list with unique elements, decided
exactly and fast however many appends timed out) and `check_durability` (a grow-only
set: nothing acknowledged lost, nothing invented). A test should fail on UNKNOWN: a
check that ran out of budget proved nothing.

Nothing here touches a NodeHost: histories come from any client, in any process
that shares the machine's monotonic clock.
"""

from nodehost.testing.durability import check_durability
from nodehost.testing.explain import truncate
from nodehost.testing.history import (
    UNKNOWN,
    HistoryRecorder,
    Operation,
    dump_history,
    load_history,
)
from nodehost.testing.lincheck import (
    CheckResult,
    PartitionResult,
    Verdict,
    check_operations,
)
from nodehost.testing.listappend import check_list_append
from nodehost.testing.models import (
    KVModel,
    ListAppendModel,
    Model,
    RegisterModel,
    SetModel,
    kv_model,
    list_model,
    register_model,
    set_model,
)

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "HistoryRecorder",
    "KVModel",
    "ListAppendModel",
    "Model",
    "Operation",
    "PartitionResult",
    "RegisterModel",
    "SetModel",
    "Verdict",
    "check_durability",
    "check_list_append",
    "check_operations",
    "dump_history",
    "kv_model",
    "list_model",
    "load_history",
    "register_model",
    "set_model",
    "truncate",
]
