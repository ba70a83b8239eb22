"""NodeHost-id addressing with real processes: a member restarted on a new port keeps
its replica, the others find it there while clients write, and the shard then needs it
at its new address for its quorum; no acknowledged write is lost."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodehost import (
    Config,
    InvalidConfig,
    InvalidOperation,
    NodeHost,
    NodeHostConfig,
    SnapshotOption,
)
from tests.host.cluster import KV, free_ports
from tests.tools.hosts import Group, Host, run_nodehost, wait_for
from tests.tools.test_cli_online import ok, rows

pytestmark = pytest.mark.integration


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    g = Group(tmp_path)
    ids = {h.replica_id: str(uuid.uuid4()) for h in g.hosts}
    for h in g.hosts:
        h.spec.update(
            address_by_node_host_id=True,
            node_host_id=ids[h.replica_id],
            members={str(rid): nh_id for rid, nh_id in ids.items()},
            seeds=[o.address for o in g.hosts if o is not h],
        )
    try:
        yield g
    finally:
        g.stop()


class Writer:
    """A client writing distinct keys through one host until stopped."""

    def __init__(self, host: Host, prefix: str) -> None:
        self.host = host
        self.prefix = prefix
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            key = f"{self.prefix}-{i}"
            i += 1
            try:
                self.host.put(key, i, timeout=10)
                self.acknowledged.append(key)
            except (RuntimeError, AssertionError) as exc:  # a timeout: may or may not apply
                self.failures.append(f"{key}: {exc}")

    def wait_for_more(self, count: int, timeout: float = 60.0) -> None:
        goal = len(self.acknowledged) + count
        wait_for(
            f"{count} more writes through {self.host.name}",
            lambda: len(self.acknowledged) >= goal,
            timeout,
        )


def test_a_member_restarted_on_a_new_port_keeps_its_replica(group: Group) -> None:
    nh1, nh2, nh3 = group.hosts
    group.start()
    assert nh3.node_host_id == nh3.spec["node_host_id"]
    with Writer(nh1, "one") as writer:
        writer.wait_for_more(20)
        old_address = nh3.address
        assert nh3.stop() == 0
        (port,) = free_ports(1)
        nh3.spec["raft_address"] = f"127.0.0.1:{port}"
        nh3.start()  # same directory, same NodeHost id, another port
        writer.wait_for_more(20)

        def located() -> bool:
            info = json.loads(ok(nh1.nodehost("--format", "json", "info")))
            return bool(info["hosts"].get(nh3.node_host_id) == nh3.address)

        wait_for("host 1 to find host 3 at its new port", located)
        # The memberships still name hosts by id; the old address is gone from them.
        info = json.loads(ok(nh1.nodehost("--format", "json", "info")))
        (shard,) = info["shards"]
        assert shard["membership"]["voters"] == {
            str(h.replica_id): h.node_host_id for h in group.hosts
        }
        assert old_address not in json.dumps(info)
        table = ok(nh1.nodehost("info"))
        assert [nh3.node_host_id, nh3.address] in rows(table)

        with Writer(nh3, "three") as writer3:
            writer3.wait_for_more(10)
            # Now the quorum needs host 3 where it is now.
            assert nh2.stop() == 0
            writer.wait_for_more(20)
            writer3.wait_for_more(10)
    acknowledged = writer.acknowledged + writer3.acknowledged
    stored = nh3.all()
    missing = [key for key in acknowledged if key not in stored]
    assert not missing, missing[:10]
    assert len(writer.acknowledged) >= 60

    # Host 2 restarts on a new port too, after the others moved on; it finds them from
    # its seeds and catches up.
    (port,) = free_ports(1)
    nh2.spec["raft_address"] = f"127.0.0.1:{port}"
    nh2.spec["seeds"] = [nh1.address, nh3.address]
    nh2.start()
    wait_for(
        "host 2 to catch up at its new port",
        lambda: set(acknowledged) <= set(nh2.request("stale", shard=1)),
        60,
    )


def test_by_id_settings_are_checked(tmp_path: Path) -> None:
    """Members and targets name NodeHost ids; the data keeps its addressing mode."""

    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    with pytest.raises(InvalidConfig, match="seeds are used only with address_by_node_host_id"):
        NodeHostConfig(node_host_dir=str(tmp_path / "a"), raft_address=address, seeds=[address])
    with pytest.raises(InvalidConfig, match="is not a UUID"):
        NodeHostConfig(
            node_host_dir=str(tmp_path / "a"),
            raft_address=address,
            address_by_node_host_id=True,
            node_host_id="host-1",
        )
    nh_id = str(uuid.uuid4())
    config = NodeHostConfig(
        node_host_dir=str(tmp_path / "a"),
        raft_address=address,
        address_by_node_host_id=True,
        node_host_id=nh_id,
    )
    with NodeHost(config) as nh:
        assert nh.id == nh_id
        with pytest.raises(InvalidConfig, match="is not a NodeHost id"):
            nh.start_replica({1: address}, False, KV, Config(shard_id=1, replica_id=1))
        nh.start_replica({1: nh_id}, False, KV, Config(shard_id=1, replica_id=1))
        with pytest.raises(InvalidOperation, match="is not a NodeHost id"):
            nh.request_add_replica(1, 2, "127.0.0.1:1", 0, timeout=1)
    with pytest.raises(InvalidConfig, match="address_by_node_host_id is False"):
        NodeHost(NodeHostConfig(node_host_dir=str(tmp_path / "a"), raft_address=address))
    with pytest.raises(InvalidConfig, match="belongs to NodeHost"):
        NodeHost(
            NodeHostConfig(
                node_host_dir=str(tmp_path / "a"),
                raft_address=address,
                address_by_node_host_id=True,
                node_host_id=str(uuid.uuid4()),
            )
        )
    (other,) = free_ports(1)
    moved = NodeHostConfig(
        node_host_dir=str(tmp_path / "a"),
        raft_address=f"127.0.0.1:{other}",
        address_by_node_host_id=True,
    )
    with NodeHost(moved) as nh:  # another address, the same data: allowed by id
        assert nh.id == nh_id


def test_offline_commands_name_hosts_by_id(tmp_path: Path) -> None:
    """inspect, import and recover take NodeHost ids as targets for hosts addressed by id;
    a directory an import creates is one of a host addressed by id."""
    (port,) = free_ports(1)
    first, fresh, third = (str(uuid.uuid4()) for _ in range(3))
    config = NodeHostConfig(
        node_host_dir=str(tmp_path / "a"),
        raft_address=f"127.0.0.1:{port}",
        address_by_node_host_id=True,
        node_host_id=first,
    )
    with NodeHost(config) as nh:
        nh.start_replica({1: first}, False, KV, Config(shard_id=1, replica_id=1))
        wait_for("a leader", lambda: nh.get_leader_id(1)[2])
        nh.sync_propose(nh.get_noop_session(1), b'{"op": "put", "k": "k", "v": 1}', timeout=5)
        nh.sync_request_snapshot(
            1, SnapshotOption(exported=True, export_path=str(tmp_path / "export")), 10
        )
    report = json.loads(ok(run_nodehost("--format", "json", "inspect", str(tmp_path / "a"))))
    assert report["node_host_id"] == first and report["raft_address"] == ""
    assert report["replicas"][0]["membership"]["voters"] == {"1": first}

    members = f"1={first},2={fresh.upper()}"  # ids are taken in any case
    imported = json.loads(
        ok(
            run_nodehost(
                "--format",
                "json",
                "import",
                str(tmp_path / "b"),
                "--shard",
                "1",
                "--replica",
                "2",
                "--snapshot",
                str(tmp_path / "export"),
                "--members",
                members,
            )
        )
    )
    assert imported["membership"]["voters"] == {"1": first, "2": fresh}
    assert (tmp_path / "b" / "NODEHOST.ID").read_text().strip() == fresh
    assert json.loads((tmp_path / "b" / "nodehost.json").read_text())["address_by_node_host_id"]
    result = run_nodehost(
        "import", str(tmp_path / "b"), "--shard", "1", "--replica", "2", "--snapshot",
        str(tmp_path / "export"), "--members", f"1={first},2={third}",
    )  # fmt: skip
    assert result.returncode == 1 and f"is the NodeHost {fresh}" in result.stderr

    recovered = json.loads(
        ok(
            run_nodehost(
                "--format",
                "json",
                "recover",
                str(tmp_path / "a"),
                "--shard",
                "1",
                "--members",
                f"1={first},3={third}",
            )
        )
    )
    assert recovered["recovered"][0]["after"]["voters"] == {"1": first, "3": third}
