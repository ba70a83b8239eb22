from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nodehost.rsm import CompressionType, SnapshotStore, StateMachineManager
from statemachine import StateMachineType

MakeManager = Callable[..., StateMachineManager]


@pytest.fixture
def make_manager(tmp_path: Path) -> MakeManager:
    """Managers for replicas 1, 2, ... of shard 1, each with its own snapshot store."""
    made: list[StateMachineManager] = []

    def make(
        sm: Any,
        kind: StateMachineType = StateMachineType.REGULAR,
        replica_id: int = 1,
        compression: CompressionType = CompressionType.NONE,
        ordered: bool = False,
    ) -> StateMachineManager:
        store = SnapshotStore(str(tmp_path / "snapshots"), 1, replica_id)
        m = StateMachineManager(
            1, replica_id, kind, sm, store, ordered_config_change=ordered, compression=compression
        )
        made.append(m)
        return m

    return make
