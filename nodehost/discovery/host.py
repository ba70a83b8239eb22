"""What discovery reads from the NodeHost: who leads a shard, and this node's view of it.

Rule: public NodeHost API only (get_leader_id, get_node_host_info); a host that is
closing answers "not the leader" and "not a member", never an exception.
"""

from __future__ import annotations

from nodehost import NodeHost, NodeHostInfoOption, RaftError
from nodehost.discovery.records import PeerStatus


def leader_term(nh: NodeHost, shard_id: int, node_id: int) -> int | None:
    """The term when replica `node_id` on `nh` leads `shard_id`, else None."""
    try:
        leader_id, term, valid = nh.get_leader_id(shard_id)
    except RaftError:
        return None
    return term if valid and leader_id == node_id else None


def peer_status(nh: NodeHost | None, me: PeerStatus, shard_id: int) -> PeerStatus:
    """`me` as a member once its replica of `shard_id` runs and lists it; before that,
    or after its removal, `me` unchanged (not a member)."""
    if nh is None:
        return me
    try:
        info = nh.get_node_host_info(NodeHostInfoOption(skip_log_info=True))
    except RaftError:
        return me
    for shard in info.shard_info_list:
        if shard.shard_id == shard_id:
            return PeerStatus(
                me.key,
                me.node_id,
                me.raft_addr,
                me.api_addr,
                member=shard.failed is None and me.node_id in shard.nodes,
                leader_id=shard.leader_id,
                term=shard.term,
                members=dict(shard.nodes),
            )
    return me
