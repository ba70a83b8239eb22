"""The offline subcommands on stopped (or crashed) NodeHost processes' directories:
inspect changes nothing, recover refuses unsafe choices and then brings a shard back,
import rebuilds replicas from an exported snapshot, remove-data --dir deletes only what
the shard let go."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tools.hosts import Group, Host, run_nodehost
from tests.tools.test_cli_online import ok, one_line_error, rows

pytestmark = pytest.mark.integration


@pytest.fixture
def group(tmp_path: Path) -> Iterator[Group]:
    g = Group(tmp_path)
    try:
        yield g
    finally:
        g.stop()


def tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file and directory under `root`: mode, size, mtime, content digest."""
    out = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory) / name
            info = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            out[str(path)] = (info.st_mode, info.st_size, info.st_mtime_ns, digest)
    return out


def inspect_json(host: Host) -> dict[str, object]:
    document: dict[str, object] = json.loads(
        ok(run_nodehost("--format", "json", "inspect", str(host.dir)))
    )
    return document


def replica(document: dict[str, object], shard: int = 1) -> dict[str, object]:
    replicas = document["replicas"]
    assert isinstance(replicas, list)
    return next(r for r in replicas if r["shard_id"] == shard)


def test_inspect_reads_a_crashed_host_and_changes_nothing(group: Group) -> None:
    group.start()
    nh1 = group.hosts[0]
    for i in range(20):
        nh1.put(f"k{i}", i)
    nh1.kill()  # a crash: the store is read as RocksDB replays it, unflushed writes too
    before = tree(nh1.dir)

    text = ok(run_nodehost("inspect", str(nh1.dir)))
    document = inspect_json(nh1)
    assert tree(nh1.dir) == before

    assert document["directory"] == str(nh1.dir)
    assert document["node_host_id"] == nh1.node_host_id
    assert document["raft_address"] == nh1.address
    r = replica(document)
    assert r["replica_id"] == 1 and r["state_machine"] == "REGULAR" and r["joined"] is False
    assert r["last_index"] >= r["commit"] >= 3 + 20  # the bootstrap entries, a no-op, the puts
    assert r["last_term"] >= 2 and r["term"] >= r["last_term"]
    assert r["commit_term"] is not None and r["first_index"] == 1
    membership = r["membership"]
    assert isinstance(membership, dict)
    assert membership["voters"] == {str(h.replica_id): h.address for h in group.hosts}
    assert r["removed"] is False and r["snapshot"] is None

    assert f"node host id   {nh1.node_host_id}" in text
    header, row = rows(text)[-2:]
    assert header == [
        "SHARD", "REPLICA", "TERM", "VOTE", "COMMIT", "FIRST", "LAST", "LAST-TERM", "SNAPSHOT",
        "MEMBERS",
    ]  # fmt: skip
    assert row[:8] == [
        "1", "1", str(r["term"]), str(r["vote"] or "-"), str(r["commit"]), "1",
        str(r["last_index"]), str(r["last_term"]),
    ]  # fmt: skip

    one_line_error(run_nodehost("inspect", str(group.root)), 1, "not a NodeHost directory")
    one_line_error(run_nodehost("inspect", str(group.root / "missing")), 1, "not a directory")


def test_recover_refuses_unsafe_choices_then_brings_two_members_back(
    group: Group, tmp_path: Path
) -> None:
    nh1, nh2, nh3 = group.hosts
    group.start()
    for i in range(10):
        nh1.put(f"early-{i}", i)
    nh3.stop()  # its log stops here: older than the others'
    for i in range(10):
        nh1.put(f"late-{i}", i)
    nh1.stop()
    nh2.stop()
    # nh2 is lost for good; the shard must go on with replicas 1 and 3.
    members = f"1={nh1.address},3={nh3.address}"
    report1, report3 = tmp_path / "nh1.json", tmp_path / "nh3.json"
    report1.write_text(json.dumps(inspect_json(nh1)))
    report3.write_text(json.dumps(inspect_json(nh3)))

    # The member with the older log is the wrong choice, and is said to be.
    one_line_error(
        run_nodehost(
            "recover",
            str(nh3.dir),
            "--shard",
            "1",
            "--members",
            members,
            "--inspected",
            str(report1),
        ),
        3,
        "replica 1 has a newer log",
        "recover on replica 1 instead",
    )
    # A member kept in the membership whose log nobody looked at could be newer.
    one_line_error(
        run_nodehost("recover", str(nh1.dir), "--shard", "1", "--members", members),
        3,
        "replica 3 is in the new membership",
        "not inspected",
    )
    one_line_error(
        run_nodehost("recover", str(nh1.dir), "--shard", "7", "--members", members),
        1,
        "shard 7 has no replica",
    )
    one_line_error(
        run_nodehost("recover", str(nh1.dir), "--shard", "1", "--members", f"3={nh3.address}"),
        1,
        "replica 1 is not in the new membership",
    )
    one_line_error(
        run_nodehost("recover", str(nh1.dir), "--shard", "1", "--members", f"1={nh3.address}"),
        1,
        f"replica 1 is at {nh1.address} in the membership",
        "address cannot change",
    )
    one_line_error(
        run_nodehost(
            "recover", str(nh1.dir), "--shard", "1", "--members", f"1={nh1.address},4={nh3.address}"
        ),
        1,
        f"{nh3.address} is the address of replica 3",
    )
    one_line_error(
        run_nodehost(
            "recover",
            str(nh1.dir),
            "--shard",
            "1",
            "--members",
            members,
            "--inspected",
            str(tmp_path / "missing.json"),
        ),
        1,
        "cannot read an inspect report",
    )
    assert inspect_json(nh1) == json.loads(report1.read_text())  # refusals changed nothing

    text = ok(
        run_nodehost(
            "recover",
            str(nh1.dir),
            "--shard",
            "1",
            "--members",
            members,
            "--inspected",
            str(report3),
        )
    )
    old = ",".join(f"{h.replica_id}={h.address}" for h in group.hosts)
    assert text.startswith(f"shard 1 replica 1: members {old} -> {members} (term ")
    again = json.loads(
        ok(
            run_nodehost(
                "--format",
                "json",
                "recover",
                str(nh1.dir),
                "--shard",
                "all",
                "--members",
                members,
                "--inspected",
                str(report3),
            )
        )
    )
    (result,) = again["recovered"]
    assert result["changed"] is False and result["after"]["voters"] == {
        "1": nh1.address,
        "3": nh3.address,
    }
    r = replica(inspect_json(nh1))
    assert r["commit"] == r["last_index"]
    assert r["membership"]["voters"] == {"1": nh1.address, "3": nh3.address}  # type: ignore[index]
    assert r["membership"]["removed"] == [2]  # type: ignore[index]

    nh1.start()
    nh3.start()
    expected = {f"early-{i}": i for i in range(10)} | {f"late-{i}": i for i in range(10)}
    assert nh1.all() == expected
    assert nh3.all() == expected  # caught up from replica 1
    nh3.put("after", True)
    assert nh1.all() == expected | {"after": True}
    document = json.loads(ok(nh3.nodehost("--format", "json", "members", "1")))
    assert document["voters"] == {"1": nh1.address, "3": nh3.address}
    assert document["removed"] == [2]

    # The lost member's data, if its disk ever comes back: its own log still lists it,
    # so deleting it is refused unless forced; the shard removed it long ago.
    one_line_error(
        run_nodehost("remove-data", "1", "2", "--dir", str(nh2.dir)),
        3,
        "still a member (voter) as far as its log knows",
    )
    text = ok(run_nodehost("remove-data", "1", "2", "--dir", str(nh2.dir), "--force"))
    assert text.strip() == "shard 1 replica 2: data removed"
    assert replica_count(nh2) == 0
    one_line_error(
        run_nodehost("remove-data", "1", "2", "--dir", str(nh2.dir), "--force"),
        1,
        "already removed",
    )
    one_line_error(
        run_nodehost("remove-data", "1", "1", "--dir", str(nh1.dir)),
        1,
        "in use by a running NodeHost",
    )


def replica_count(host: Host) -> int:
    replicas = inspect_json(host)["replicas"]
    assert isinstance(replicas, list)
    return len(replicas)


def test_recover_with_force_skips_the_checks(group: Group) -> None:
    nh1, nh2, nh3 = group.hosts
    group.start()
    nh1.put("x", 1)
    group.stop()
    members = f"2={nh2.address},3={nh3.address}"
    one_line_error(
        run_nodehost("recover", str(nh2.dir), "--shard", "1", "--members", members), 3, "--force"
    )
    document = json.loads(
        ok(
            run_nodehost(
                "--format",
                "json",
                "recover",
                str(nh2.dir),
                "--shard",
                "1",
                "--members",
                members,
                "--force",
            )
        )
    )
    (result,) = document["recovered"]
    assert result["changed"] is True
    assert result["after"]["voters"] == {"2": nh2.address, "3": nh3.address}
    assert result["after"]["removed"] == [1]
    nh2.start()
    nh3.start()
    assert nh3.all() == {"x": 1}
    nh2.put("y", 2)
    assert nh3.all() == {"x": 1, "y": 2}


def test_import_an_exported_snapshot_into_a_fresh_directory(group: Group, tmp_path: Path) -> None:
    nh1 = group.hosts[0]
    group.start()
    for i in range(10):
        nh1.put(f"a{i}", i)
    export = tmp_path / "export"
    text = ok(nh1.nodehost("snapshot", "1", "--export", str(export)))
    snapshot_dir = Path(text.strip().rsplit(" exported to ", 1)[1])
    for i in range(5):
        nh1.put(f"b{i}", i)  # after the snapshot: lost by the import
    group.stop()

    nh4 = Host(group.root, "nh4", 4, join=True)
    group.hosts.append(nh4)
    members = f"1={nh1.address},4={nh4.address}"

    def importing(host: Host, *extra: str, snapshot: Path = export) -> list[str]:
        return [
            "import", str(host.dir), "--shard", "1", "--replica", str(host.replica_id),
            "--snapshot", str(snapshot), "--members", members, *extra,
        ]  # fmt: skip

    # Refusals first; none of them changes anything.
    one_line_error(run_nodehost(*importing(nh1)), 3, "past the snapshot's index", "--force")
    damaged = tmp_path / "damaged"
    shutil.copytree(snapshot_dir, damaged / snapshot_dir.name)
    data = next((damaged / snapshot_dir.name).glob("*.snap"))
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    one_line_error(run_nodehost(*importing(nh4, snapshot=damaged)), 1, "damaged or incomplete")
    one_line_error(
        run_nodehost(*[a if a != "1" else "2" for a in importing(nh4)]), 1, "is of shard 1"
    )
    one_line_error(
        run_nodehost(*importing(nh4)[:-2], "--members", f"1={nh1.address}"),
        1,
        "replica 4 is not among the members",
    )
    one_line_error(
        run_nodehost(*importing(nh4)[:-2], "--members", f"1={nh1.address},4={nh1.address}"),
        1,
        "share the target",
    )
    one_line_error(
        run_nodehost(*importing(nh4, snapshot=tmp_path)), 1, "holds no exported snapshot"
    )
    assert not nh4.dir.exists()

    text = ok(run_nodehost(*importing(nh4)))
    assert text.startswith("shard 1 replica 4: imported the snapshot at index ")
    assert f"members {members}" in text
    document = json.loads(ok(run_nodehost("--format", "json", *importing(nh4))))  # again: fine
    assert document["replaced"] is True and document["membership"]["removed"] == [2, 3]
    ok(run_nodehost(*importing(nh1, "--force")))
    for host in (nh1, nh4):
        r = replica(inspect_json(host))
        assert r["snapshot"]["imported"] is True  # type: ignore[index]
        assert r["commit"] == r["last_index"] == document["index"]

    nh1.start()
    nh4.start()
    expected = {f"a{i}": i for i in range(10)}
    assert nh1.all() == expected
    assert nh4.all() == expected
    nh4.put("c", 1)
    assert nh1.all() == expected | {"c": 1}
    document = json.loads(ok(nh1.nodehost("--format", "json", "members", "1")))
    assert document["voters"] == {"1": nh1.address, "4": nh4.address}
    assert document["removed"] == [2, 3]
