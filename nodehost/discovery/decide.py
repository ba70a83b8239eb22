"""Whether a new node bootstraps a cluster, joins one, or waits: pure decisions.

Nothing here does IO or reads a clock; the agent feeds in what it read and acts on
the answer, so every rule is tested without a network.

The rules (the README's "Discovery" section states them for users):

- etcd (a store decides). The node that creates the key, in a transaction that
  succeeds only while the key is absent, bootstraps a one-node cluster; everyone else
  joins through the node the key names. A record naming this node that is still
  `bootstrapped: false` is this node's own earlier claim (an answer lost on the way):
  it bootstraps. Nothing else ever leads to a bootstrap; an unreachable store leads to
  waiting, never to "the key must be absent".
- dns, dns-srv, static (no store: a deterministic rule, rqlite's bootstrap-expect).
  A peer that is a member of a cluster with this key is joined (its leader first).
  With no member in sight, a node bootstraps only when every discovered address
  answered, at least `bootstrap_expect` distinct nodes (itself included) are seen, and
  none of them knows of a cluster, and then only the node with the lowest id does; the
  others wait and join it. With exactly `bootstrap_expect` nodes started, every node
  that is allowed to decide sees all of them, so they all name the same node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nodehost.discovery.errors import ClusterConflict
from nodehost.discovery.records import LeaderRecord, PeerStatus


@dataclass(frozen=True, slots=True)
class Bootstrap:
    reason: str


@dataclass(frozen=True, slots=True)
class Join:
    via: str  # the API address of a member to ask
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    reason: str


Decision = Bootstrap | Join | Wait


def decide_by_record(me: PeerStatus, record: LeaderRecord, where: str) -> Decision:
    """What to do when the key holds `record` (and this node did not just create it)."""
    if record.node_id == me.node_id:
        if record.raft_addr != me.raft_addr:
            raise ClusterConflict(
                f"{where} names node {record.node_id} at {record.raft_addr}, but this node "
                f"has the same id at {me.raft_addr}: two nodes share an id"
            )
        if not record.bootstrapped:
            return Bootstrap(f"this node's earlier claim on {where} stands")
        raise ClusterConflict(
            f"{where} names this node (node {me.node_id}) as the leader of a running "
            "cluster, but this node has no data; start it with its data, or remove the "
            "node from the cluster and start it with a new id"
        )
    state = (
        f"leads in term {record.term}"
        if record.bootstrapped
        else "is creating the cluster (if that node is gone for good, delete the key)"
    )
    return Join(record.api_addr, f"{where} says node {record.node_id} {state}")


def decide_by_peers(
    me: PeerStatus, answers: Mapping[str, PeerStatus | str], bootstrap_expect: int
) -> Decision:
    """What to do given each discovered address's probe answer (or why it gave none)."""
    silent = {address: why for address, why in answers.items() if isinstance(why, str)}
    others: dict[str, PeerStatus] = {}
    for address, peer in sorted(answers.items()):
        if isinstance(peer, str) or peer.key != me.key:
            continue
        if peer.node_id == me.node_id:
            if peer.raft_addr != me.raft_addr:
                raise ClusterConflict(
                    f"the node at {address} has this node's id {me.node_id} (at "
                    f"{peer.raft_addr}, this node is at {me.raft_addr}): two nodes share an id"
                )
            continue  # this node itself, listed among the peers
        others[address] = peer
    members = {a: p for a, p in others.items() if p.member}
    if members:
        address, peer = min(members.items(), key=lambda ap: (not ap[1].is_leader, ap[1].node_id))
        role = "the leader" if peer.is_leader else "a member"
        return Join(address, f"node {peer.node_id} at {address} is {role} of the cluster")
    if silent:
        _, why = next(iter(sorted(silent.items())))
        return Wait(
            f"{len(silent)} of {len(answers)} discovered peer(s) did not answer "
            f"({why}); a cluster is bootstrapped only when every peer answers"
        )
    knowing = [p for p in others.values() if p.members]
    if knowing:
        peer = knowing[0]
        return Wait(
            f"node {peer.node_id} knows a cluster ({len(peer.members)} member(s)) but is "
            "not serving as its member yet"
        )
    seen = {me.node_id} | {p.node_id for p in others.values()}
    if len(seen) < bootstrap_expect:
        return Wait(
            f"{len(seen)} of the {bootstrap_expect} expected node(s) seen "
            f"(bootstrap_expect); waiting for the rest"
        )
    first = min(seen)
    if first == me.node_id:
        return Bootstrap(
            f"{len(seen)} nodes seen, none in a cluster, and this node has the lowest id"
        )
    return Wait(f"node {first} has the lowest id of the {len(seen)} seen and bootstraps")
