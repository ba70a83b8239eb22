"""Random walks of valid and invalid writes, checked against a plain model after each step.

The model is written independently of logdb/view.py: a dict of entries per replica,
with first/last derived from it, so a shared mistake in the store's bookkeeping shows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from logdb_support import Record, Store

from logdb import InvalidRequestError
from protos import raft_pb2 as pb
from tests.conftest import IN_CI

REPLICAS = [(1, 1), (1, 2), (300, 1)]


@dataclass
class Model:
    log: dict[int, pb.Entry] = field(default_factory=dict)
    snapshot: pb.Snapshot | None = None
    state: pb.State | None = None
    bootstrap: pb.Bootstrap | None = None

    @property
    def snap_index(self) -> int:
        return self.snapshot.index if self.snapshot else 0

    @property
    def first(self) -> int:
        return min(self.log) if self.log else self.snap_index + 1

    @property
    def last(self) -> int:
        return max(self.log) if self.log else self.snap_index

    def term_at(self, index: int) -> int:
        if index in self.log:
            return self.log[index].term
        assert self.snapshot is None or index == self.snapshot.index or index == 0
        return self.snapshot.term if self.snapshot else 0

    @property
    def commit(self) -> int:
        return self.state.commit if self.state else 0

    @property
    def term(self) -> int:
        return self.state.term if self.state else 0

    def copy(self) -> Model:
        return Model(dict(self.log), self.snapshot, self.state, self.bootstrap)


class Walk:
    def __init__(self, rng: random.Random, store: Store) -> None:
        self.rng = rng
        self.store = store
        self.models: dict[tuple[int, int], Model] = {}

    def model(self, key: tuple[int, int], scratch: dict[tuple[int, int], Model]) -> Model:
        if key not in scratch:
            scratch[key] = self.models[key].copy() if key in self.models else Model()
        return scratch[key]

    def record(self, key: tuple[int, int], m: Model) -> Record:
        """A valid record for the replica, applied to the model `m`."""
        rng = self.rng
        rec = Record(*key)
        if rng.random() < 0.15:
            index = max(m.last, m.commit) + rng.randint(0, 5) or 1
            term = max(m.term, m.term_at(m.last) if index == m.last else 0) + rng.randint(0, 1)
            rec.snapshot = pb.Snapshot(shard_id=key[0], index=index, term=term, filepath="s")
            m.log, m.snapshot = {}, rec.snapshot
        if rng.random() < 0.8:
            low = max(m.snap_index, m.commit) + 1
            first = rng.randint(low, max(low, m.last + 1))
            term = max(m.term_at(first - 1), m.term) + rng.randint(0, 1)
            count = rng.randint(1, 8)
            rec.entries = []
            for i in range(first, first + count):
                term += rng.random() < 0.1
                cmd = rng.randbytes(rng.randint(0, 40))
                rec.entries.append(pb.Entry(index=i, term=term, cmd=cmd))
            for i in [i for i in m.log if i >= first]:
                del m.log[i]
            m.log.update((e.index, e) for e in rec.entries)
        if rng.random() < 0.8 or (m.state and m.state.commit > m.last):
            term = max(m.term, m.term_at(m.last)) + (rng.random() < 0.2)
            vote = m.state.vote if m.state and m.state.term == term and m.state.vote else 0
            vote = vote or rng.choice([0, 1, 2])
            commit = rng.randint(min(m.commit, m.last), m.last)
            rec.state = pb.State(term=term, vote=vote, commit=commit)
            m.state = rec.state
        return rec

    def step(self) -> None:
        rng, db = self.rng, self.store.db
        action = rng.random()
        if action < 0.5:
            scratch: dict[tuple[int, int], Model] = {}
            records = []
            for _ in range(rng.randint(1, 4)):
                key = rng.choice(REPLICAS)
                records.append(self.record(key, self.model(key, scratch)))
            db.save(records)
            self.models.update(scratch)
        elif action < 0.6:
            key = rng.choice(REPLICAS)
            m = self.models.get(key)
            if m and m.commit > m.snap_index and m.commit >= m.first:
                index = rng.randint(m.snap_index + 1, m.commit)
                snap = pb.Snapshot(shard_id=key[0], index=index, term=m.term_at(index))
                db.save_snapshot(*key, snap)
                m.snapshot = snap
        elif action < 0.7:
            key = rng.choice(REPLICAS)
            m = self.models.get(key)
            if m and m.snapshot:
                index = rng.randint(max(0, m.first - 2), m.snap_index)
                db.remove_entries_to(*key, index)
                for i in [i for i in m.log if i <= index]:
                    del m.log[i]
        elif action < 0.75:
            key = rng.choice(REPLICAS)
            boot = pb.Bootstrap(addresses={1: f"x:{rng.randint(1, 9)}"}, join=rng.random() < 0.5)
            db.save_bootstrap(*key, boot)
            self.models.setdefault(key, Model()).bootstrap = boot
        elif action < 0.78:
            key = rng.choice(REPLICAS)
            db.remove_node_data(*key)
            self.models.pop(key, None)
        elif action < 0.88:
            self.invalid()
        else:
            self.store.reopen()

    def invalid(self) -> None:
        """A save with a bad record among good ones must change nothing."""
        key = self.rng.choice(REPLICAS)
        m = self.models.get(key)
        if m is None or not m.log:
            return
        bad = Record(*key, [pb.Entry(index=m.last + 2, term=m.term_at(m.last))])
        good_key = self.rng.choice([k for k in REPLICAS if k != key])
        good = self.record(good_key, self.model(good_key, {}))
        with pytest.raises(InvalidRequestError):
            self.store.db.save([good, bad])

    def check(self) -> None:
        db = self.store.db
        booted = sorted(k for k, m in self.models.items() if m.bootstrap is not None)
        assert db.list_node_info() == booted
        for key in REPLICAS:
            m = self.models.get(key)
            rs = db.read_state(*key)
            if m is None or (m.state is None and m.snapshot is None and not m.log):
                assert rs is None
                continue
            assert rs is not None
            assert (rs.first_index, rs.last_index) == (m.first, m.last), key
            assert rs.snapshot == m.snapshot
            assert rs.state == (m.state or pb.State())
            assert db.get_bootstrap(*key) == m.bootstrap
            got = db.entries(*key, m.first, m.last + 1, 1 << 30)
            assert got == [m.log[i] for i in range(m.first, m.last + 1)], key
            for index in {m.first, m.last, m.snap_index}:
                if index >= m.first - 1 and (index in m.log or index == m.snap_index):
                    assert db.term(*key, index) == m.term_at(index)


SEEDS = range(4) if IN_CI else range(12)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_walk_matches_the_model(store: Store, seed: int) -> None:
    walk = Walk(random.Random(seed), store)
    for _ in range(150):
        walk.step()
        walk.check()
    walk.store.reopen()
    walk.check()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 120))
def test_long_random_walk_matches_the_model(store: Store, seed: int) -> None:
    walk = Walk(random.Random(seed), store)
    for _ in range(3000):
        walk.step()
        walk.check()
