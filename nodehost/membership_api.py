"""Membership changes and leadership: the NodeHost methods that change who is in a shard.

A change is proposed as a CONFIG_CHANGE entry and takes effect when committed; one may
be pending per shard at a time. Removed replica ids are never accepted again.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from nodehost import errors
from nodehost.addressing import check_target
from nodehost.config import NodeHostConfig
from nodehost.engine import Engine
from nodehost.info import Membership
from nodehost.request import RequestResult, RequestState, check_timeout
from protos import raft_pb2 as pb

if TYPE_CHECKING:
    from nodehost.node import Node


class MembershipAPI:
    _keys: itertools.count[int]
    config: NodeHostConfig

    if TYPE_CHECKING:

        def _check_open(self) -> Engine: ...
        def _node(self, shard_id: int) -> Node: ...
        def _serving_node(self, shard_id: int) -> Node: ...
        def read_index(self, shard_id: int, timeout: float) -> RequestState: ...
        def _retrying(
            self, start: Callable[[float], RequestState], timeout: float
        ) -> RequestResult: ...

    def request_add_replica(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        """Add (or promote a non-voting replica to) a voting member at `target`."""
        return self._config_change(
            shard_id, pb.ADD_NODE, replica_id, target, config_change_index, timeout
        )

    def request_delete_replica(
        self, shard_id: int, replica_id: int, config_change_index: int, timeout: float
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.REMOVE_NODE, replica_id, "", config_change_index, timeout
        )

    def request_add_non_voting(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.ADD_NON_VOTING, replica_id, target, config_change_index, timeout
        )

    def request_add_witness(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        return self._config_change(
            shard_id, pb.ADD_WITNESS, replica_id, target, config_change_index, timeout
        )

    def sync_request_add_replica(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        self._retrying(
            lambda t: self.request_add_replica(
                shard_id, replica_id, target, config_change_index, t
            ),
            timeout,
        ).raise_for_code()

    def sync_request_delete_replica(
        self, shard_id: int, replica_id: int, config_change_index: int, timeout: float
    ) -> None:
        self._retrying(
            lambda t: self.request_delete_replica(shard_id, replica_id, config_change_index, t),
            timeout,
        ).raise_for_code()

    def sync_request_add_non_voting(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        self._retrying(
            lambda t: self.request_add_non_voting(
                shard_id, replica_id, target, config_change_index, t
            ),
            timeout,
        ).raise_for_code()

    def sync_request_add_witness(
        self,
        shard_id: int,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> None:
        self._retrying(
            lambda t: self.request_add_witness(
                shard_id, replica_id, target, config_change_index, t
            ),
            timeout,
        ).raise_for_code()

    def _config_change(
        self,
        shard_id: int,
        change: pb.ConfigChangeType,
        replica_id: int,
        target: str,
        config_change_index: int,
        timeout: float,
    ) -> RequestState:
        engine = self._check_open()
        check_timeout(timeout)
        if isinstance(replica_id, bool) or not isinstance(replica_id, int) or replica_id <= 0:
            raise errors.InvalidOperation(f"bad replica id {replica_id!r}")
        if change != pb.REMOVE_NODE:
            try:
                check_target(target, "target", self.config.address_by_node_host_id)
            except errors.InvalidConfig as exc:
                raise errors.InvalidOperation(str(exc)) from None
        node = self._serving_node(shard_id)
        key = next(self._keys)
        rs = RequestState(key, time.monotonic() + timeout)
        node.pending_config_changes.add(rs)
        cc = pb.ConfigChange(
            config_change_id=config_change_index,
            type=change,
            replica_id=replica_id,
            address=target,
        )
        node.config_changes.append((cc, key))
        engine.wake_from_thread(node)
        return rs

    def request_leader_transfer(self, shard_id: int, target_replica_id: int) -> None:
        """Ask the leader to hand leadership to `target_replica_id` (best effort)."""
        engine = self._check_open()
        node = self._node(shard_id)
        node.local_calls.append(lambda peer: peer.transfer_leader(target_replica_id))
        engine.wake_from_thread(node)

    def sync_get_shard_membership(self, shard_id: int, timeout: float) -> Membership:
        """The membership as of a linearizable read."""
        self._retrying(lambda t: self.read_index(shard_id, t), timeout).raise_for_code()
        return self._membership(shard_id)

    def _membership(self, shard_id: int) -> Membership:
        m = self._node(shard_id).rsm.membership
        return Membership(
            config_change_id=m.config_change_id,
            nodes=dict(m.addresses),
            non_votings=dict(m.non_votings),
            witnesses=dict(m.witnesses),
            removed=set(m.removed),
        )
