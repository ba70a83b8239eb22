"""Random schedules over the simulated network: faults, load, membership, snapshots.

Rules:
- A schedule is a pure function of its seed: `run_schedule(seed)` twice does the same.
- Per round: ticks (a replica may miss one, like a paused process), client proposals
  and reads, at most one fault or operation, snapshots, then a few engine passes that
  act on Updates (some split, so a crash can land between send and save) and deliver
  due messages in random order.
- The network checks safety after every step. At the end the faults stop, every
  replica restarts, and the shard must settle: one leader, every member caught up,
  every acknowledged proposal applied exactly once on every member, and the state
  machine layer's membership equal to the core's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from nodehost.raft import Role
from nodehost.testing.hostile import mutate
from protos import raft_pb2 as pb

from .network import Network, Node

MAX_REPLICAS = 7


@dataclass
class Outcome:
    seed: int
    rounds: int
    acked: int
    reads: int
    leaders: int
    members: int


def run_schedule(
    seed: int,
    rounds: int = 100,
    settle_rounds: int = 400,
    net: list[Network] | None = None,
    hostile: float = 0.0,
) -> Outcome:
    """Run one schedule; `net`, if given, receives the network (for traces). With
    `hostile`, that share of the messages sent is followed by a mutated copy."""
    rng = random.Random(seed)
    size = rng.choice((1, 3, 3, 3, 5))
    network = Network(
        range(1, size + 1),
        seed=seed,
        trace=net is not None,
        quiesce=rng.random() < 0.2,
        max_in_mem_log_size=rng.choice((0, 0, 2000)),
        election_rtt=rng.choice((5, 10)),
        heartbeat_rtt=rng.choice((1, 2)),
        pre_vote=rng.random() < 0.5,
        check_quorum=rng.random() < 0.5,
        ordered_config_change=rng.random() < 0.3,
        max_replicate_bytes=rng.choice((40, 400, 1 << 20)),
        max_inflight=rng.choice((1, 4, 256)),
    )
    if hostile:
        network.hostile_rate = hostile
        network.mutate = mutate
    if net is not None:
        net.append(network)
    _run(network, rng, rounds, settle_rounds)
    leader = network.leader()
    return Outcome(
        seed,
        rounds,
        len(network.acked),
        network.checker.reads_served,
        len(network.checker.leaders),
        len(_members(network, leader)),
    )


def _run(net: Network, rng: random.Random, rounds: int, settle_rounds: int) -> None:
    net.max_delay = rng.choice((0, 1, 3))
    net.drop_rate = rng.choice((0.0, 0.02, 0.1))
    net.duplicate_rate = rng.choice((0.0, 0.02, 0.05))
    overhead = rng.choice((0, 2, 10))
    for _ in range(rounds):
        _round(net, rng, overhead)
    settle(net, rng, settle_rounds)


def _round(net: Network, rng: random.Random, overhead: int) -> None:
    net.now += 1
    for node in net.alive():
        if rng.random() < 0.95:
            assert node.peer is not None
            node.peer.tick()
    alive = net.alive()
    for _ in range(rng.randint(0, 3)):
        if alive:
            net.propose(rng.choice(alive).replica_id, b"c%d" % net.next_key)
    if alive and rng.random() < 0.3:
        net.read(rng.choice(alive).replica_id)
    _fault(net, rng)
    if rng.random() < 0.1:
        node = rng.choice(list(net.nodes.values()))
        net.take_snapshot(node.replica_id, overhead)
    for _ in range(rng.randint(1, 4)):
        _pass(net, rng, split_rate=0.3)


def _pass(net: Network, rng: random.Random, split_rate: float) -> None:
    ids = [n.replica_id for n in net.alive()]
    rng.shuffle(ids)
    for rid in ids:
        net.process(rid, split=rng.random() < split_rate)
    net.deliver_due(shuffle=True)


def _fault(net: Network, rng: random.Random) -> None:
    r = rng.random()
    alive = net.alive()
    down = [n for n in net.nodes.values() if n.peer is None]
    if r < 0.03 and alive:
        net.crash(rng.choice(alive).replica_id)
    elif r < 0.08 and down:
        net.restart(rng.choice(down).replica_id)
    elif r < 0.11:
        ids = list(net.nodes)
        rng.shuffle(ids)
        cut = rng.randint(1, max(1, len(ids) - 1))
        net.partition(ids[:cut], ids[cut:])
    elif r < 0.13 and len(net.nodes) > 2:
        a, b = rng.sample(list(net.nodes), 2)
        net.cut_link(a, b)
    elif r < 0.18:
        net.heal()
    elif r < 0.22:
        _change_membership(net, rng)
    elif r < 0.25:
        _transfer(net, rng)


def _change_membership(net: Network, rng: random.Random) -> None:
    leader = net.leader()
    if not leader:
        return
    m = net.peer(leader).membership
    cc_id = m.config_change_id
    via = leader if rng.random() < 0.7 else rng.choice(net.alive()).replica_id
    choice = rng.random()
    new_id = max(net.nodes) + 1
    if choice < 0.45 and len(net.nodes) < MAX_REPLICAS:
        kind = rng.choice((pb.ADD_NODE, pb.ADD_NODE, pb.ADD_NON_VOTING, pb.ADD_WITNESS))
        net.add_node(
            new_id, is_non_voting=kind == pb.ADD_NON_VOTING, is_witness=kind == pb.ADD_WITNESS
        )
        net.propose_config_change(via, kind, new_id, cc_id)
    elif choice < 0.6 and m.non_votings:
        net.propose_config_change(via, pb.ADD_NODE, rng.choice(sorted(m.non_votings)), cc_id)
    else:
        targets = sorted([*m.addresses, *m.non_votings, *m.witnesses])
        net.propose_config_change(via, pb.REMOVE_NODE, rng.choice(targets), cc_id)


def _transfer(net: Network, rng: random.Random) -> None:
    leader = net.leader()
    if leader:
        voters = sorted(net.peer(leader).membership.addresses)
        net.peer(leader).transfer_leader(rng.choice(voters))


def _members(net: Network, leader: int) -> list[Node]:
    if not leader:
        return []
    m = net.peer(leader).membership
    return [net.nodes[r] for r in sorted({*m.addresses, *m.non_votings, *m.witnesses})]


def settle(net: Network, rng: random.Random, max_rounds: int) -> None:
    """Stop the faults, bring everyone back, and require the shard to converge."""
    net.heal()
    net.drop_rate = net.duplicate_rate = net.hostile_rate = 0.0
    net.max_delay = 0
    for node in list(net.nodes.values()):
        if node.peer is None:
            net.restart(node.replica_id)
    last_change = 0
    for round_ in range(max_rounds):
        net.now += 1
        for node in net.alive():
            assert node.peer is not None
            node.peer.tick()
        for _ in range(3):
            _pass(net, rng, split_rate=0.0)
        leader = net.leader()
        if leader and _settled(net, leader):
            if round_ - last_change > 5:
                _check_final(net, leader)
                return
        else:
            last_change = round_
    raise AssertionError(f"the shard did not settle: {net.roles()}")


def _settled(net: Network, leader: int) -> bool:
    lead = net.peer(leader)
    last = lead.raft.log.last_index()
    if lead.committed != last:
        return False
    for node in _members(net, leader):
        peer = node.peer
        if peer is None or peer.committed != last or node.sm.applied != last:
            return False
        if node.replica_id != leader and peer.leader_id != leader:
            return False
    return True


def _check_final(net: Network, leader: int) -> None:
    core = net.peer(leader).membership
    for node in _members(net, leader):
        assert node.peer is not None
        assert node.peer.role is not Role.LEADER or node.replica_id == leader
        assert node.sm.membership == core, (
            f"replica {node.replica_id}: state machine membership {node.sm.membership} "
            f"differs from the core's {core}"
        )
        if node.replica_id in core.witnesses:
            continue
        for key, index in net.acked.items():
            assert node.sm.keys.get(key) == index, (
                f"acknowledged proposal {key} (index {index}) is not applied once on "
                f"replica {node.replica_id}"
            )
