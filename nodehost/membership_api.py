"""Membership changes and leadership: the NodeHost methods that change who is in a shard.

A change is proposed as a CONFIG_CHANGE entry and takes effect when committed; one may
be pending per shard at a time. Removed replica ids are never accepted again.
"""

from __future__ import annotations

from nodehost import errors
from nodehost.addressing import check_target
from nodehost.hostcore import HostBase
from nodehost.info import Membership
from nodehost.request import RequestState, check_timeout
from protos import raft_pb2 as pb


class MembershipAPI(HostBase):
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
        self._check_open()
        check_timeout(timeout)
        if isinstance(replica_id, bool) or not isinstance(replica_id, int) or replica_id <= 0:
            raise errors.InvalidOperation(f"bad replica id {replica_id!r}")
        if change != pb.REMOVE_NODE:
            try:
                check_target(target, "target", self.config.address_by_node_host_id)
            except errors.InvalidConfig as exc:
                raise errors.InvalidOperation(str(exc)) from None
        node = self._serving_node(shard_id)
        rs = RequestState(next(self._keys), self._clock.monotonic() + timeout)
        node.change_membership(
            rs,
            pb.ConfigChange(
                config_change_id=config_change_index,
                type=change,
                replica_id=replica_id,
                address=target,
            ),
        )
        return rs

    def request_leader_transfer(self, shard_id: int, target_replica_id: int) -> None:
        """Ask the leader to hand leadership to `target_replica_id` (best effort)."""
        self._check_open()
        self._node(shard_id).transfer_leader(target_replica_id)

    def sync_get_shard_membership(self, shard_id: int, timeout: float) -> Membership:
        """The membership as of a linearizable read."""
        self._retrying(lambda t: self.read_index(shard_id, t), timeout).raise_for_code()
        return self._membership(shard_id)
