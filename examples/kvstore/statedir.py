"""The layout of STATE_DIR, and the identity a node's data was created with.

    STATE_DIR/kvstore.json   {"node_id": 1, "store": "memory", "shards": 1,
                              "raft_addr": "127.0.0.1:12000", "peers": "1@127.0.0.1:12000"}
    STATE_DIR/nodehost/      the NodeHost's log store and snapshots
    STATE_DIR/kv/shard-N/    STORE=disk: shard N's RocksDB

Rules:
- A node restarted over the same data with another id, store kind or shard count would
  misroute keys or misread its own log; with another Raft address its peers could not
  reach it; with other initial members (PEERS) it would silently go on in the cluster
  its data belongs to. `claim` refuses each with one line naming the value the data
  was made with and the fix, deleting STATE_DIR when starting over is the answer.
- `peers` is recorded for a node that founded its cluster ("" for one that joined);
  PEERS is compared only when given, since a restart may leave it out.
- Files written by earlier versions lack `raft_addr` and `peers`: those are not compared.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from examples.kvstore.settings import Settings, format_peers

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


def identity_of(settings: Settings) -> dict[str, Any]:
    return {
        "node_id": settings.node_id,
        "store": settings.store,
        "shards": settings.shards,
        "raft_addr": settings.raft_addr,
        "peers": "" if settings.wants_join else format_peers(settings.peers),
    }


def claim(settings: Settings) -> StateDir:
    """Create STATE_DIR for this node, or check it was made with the same settings."""
    state = StateDir(settings.state_dir)
    identity = identity_of(settings)
    try:
        with open(state.identity_path, encoding="utf-8") as f:
            found = json.load(f)
    except FileNotFoundError:
        found = None
    except (OSError, ValueError) as exc:
        raise StateDirError(
            f"cannot read {state.identity_path}: {exc}; {_start_over(state)}"
        ) from None
    if found is None:
        try:
            os.makedirs(state.root, exist_ok=True)
        except OSError as exc:
            raise StateDirError(f"cannot create STATE_DIR {state.root}: {exc}") from None
        if os.path.exists(state.nodehost_dir):
            raise StateDirError(
                f"{state.root} holds node data but no {IDENTITY_FILE}, so whose it is "
                f"cannot be told; {_start_over(state)}"
            )
        tmp = state.identity_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(identity, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state.identity_path)
        return state
    if not isinstance(found, dict):
        raise StateDirError(f"{state.identity_path} is not a JSON object; {_start_over(state)}")
    check(state, found, settings)
    return state


def check(state: StateDir, found: dict[str, Any], settings: Settings) -> None:
    """Raise StateDirError for the first setting that contradicts the data."""
    identity = identity_of(settings)
    root = state.root
    for name, flag in (("node_id", "--id"), ("store", "--store"), ("shards", "--shards")):
        if found.get(name) != identity[name]:
            variable = {"node_id": "NODE_ID", "store": "STORE", "shards": "SHARDS"}[name]
            raise StateDirError(
                f"{root} was created with {variable}={found.get(name)}, not {identity[name]}: "
                f"start with {flag} {found.get(name)}, or use another --dir, or "
                f"{_start_over(state)}"
            )
    recorded_peers = found.get("peers")
    if settings.peers_given and isinstance(recorded_peers, str):
        if recorded_peers == "" and not settings.wants_join:
            raise StateDirError(
                f"{root} belongs to node {settings.node_id}, which joined its cluster with "
                f"--join; it cannot be an initial member (PEERS) now: leave --peers out or "
                f"give --join again, or {_start_over(state)}"
            )
        if recorded_peers and recorded_peers != identity["peers"]:
            raise StateDirError(
                f"{root} holds a cluster first started with PEERS={recorded_peers}, not "
                f"PEERS={identity['peers']}: a node's first members cannot change (nodes "
                f"are added with --join and removed with DELETE /cluster/<id>), so use the "
                f"same --peers as then, or {_start_over(state)}"
            )
    recorded_address = found.get("raft_addr")
    if isinstance(recorded_address, str) and recorded_address != settings.raft_addr:
        raise StateDirError(
            f"{root} belongs to node {settings.node_id} at Raft address {recorded_address}, "
            f"not {settings.raft_addr}, and other nodes know it by that address: start with "
            f"--db {recorded_address}, or {_start_over(state)}"
        )


def _start_over(state: StateDir) -> str:
    return f"delete {state.root} to start this node over (its data is lost)"
