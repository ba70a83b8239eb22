"""The layout of STATE_DIR, and the identity a node's data was created with.

    STATE_DIR/kvstore.json   {"node_id": 1, "store": "memory", "shards": 1}
    STATE_DIR/nodehost/      the NodeHost's log store and snapshots
    STATE_DIR/kv/shard-N/    STORE=disk: shard N's RocksDB

A node restarted with another id, store kind or shard count over the same data would
misroute keys or misread its own log, so `claim` refuses it with a clear error instead.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from examples.kvstore.settings import Settings

IDENTITY_FILE = "kvstore.json"


class StateDirError(RuntimeError):
    """STATE_DIR holds another node's data, or data this node cannot read."""


@dataclass(frozen=True, slots=True)
class StateDir:
    root: str

    @property
    def nodehost_dir(self) -> str:
        return os.path.join(self.root, "nodehost")

    @property
    def kv_dir(self) -> str:
        return os.path.join(self.root, "kv")

    @property
    def identity_path(self) -> str:
        return os.path.join(self.root, IDENTITY_FILE)


def claim(settings: Settings) -> StateDir:
    """Create STATE_DIR for this node, or check it was made with the same settings."""
    state = StateDir(settings.state_dir)
    identity = {"node_id": settings.node_id, "store": settings.store, "shards": settings.shards}
    try:
        with open(state.identity_path, encoding="utf-8") as f:
            found = json.load(f)
    except FileNotFoundError:
        found = None
    except (OSError, ValueError) as exc:
        raise StateDirError(f"cannot read {state.identity_path}: {exc}") from None
    if found is None:
        os.makedirs(state.root, exist_ok=True)
        if os.path.exists(state.nodehost_dir):
            raise StateDirError(
                f"{state.root} holds node data but no {IDENTITY_FILE}; refusing to guess "
                "which node it belongs to"
            )
        tmp = state.identity_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(identity, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state.identity_path)
        return state
    if not isinstance(found, dict):
        raise StateDirError(f"{state.identity_path} is not a JSON object")
    for name, flag in (("node_id", "NODE_ID"), ("store", "STORE"), ("shards", "SHARDS")):
        if found.get(name) != identity[name]:
            raise StateDirError(
                f"{state.root} was created with {flag}={found.get(name)}, not "
                f"{identity[name]}; use that value or another STATE_DIR"
            )
    return state
