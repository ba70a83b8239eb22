"""kvstore settings: flags beat environment variables beat defaults; bad ones say why."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from examples.kvstore.main import run
from examples.kvstore.service import shard_for
from examples.kvstore.settings import OPTIONS, SettingsError, load_settings, parse_peers
from examples.kvstore.statedir import StateDirError, claim

PEERS = "1@10.0.0.1:12000,2@10.0.0.2:12000,3@10.0.0.3:12000"


def test_no_configuration_starts_one_node() -> None:
    s = load_settings([], {})
    assert (s.node_id, s.http_addr, s.raft_addr, s.raft_listen) == (
        1,
        "127.0.0.1:11000",
        "127.0.0.1:12000",
        "127.0.0.1:12000",
    )
    assert s.peers == {1: "127.0.0.1:12000"} and not s.peers_given
    assert s.state_dir == os.path.join(".", "kvstore-data", "1")
    assert (s.store, s.shards, s.join, s.wants_join) == ("memory", 1, "", False)


def test_environment_variables_set_everything() -> None:
    s = load_settings(
        [],
        {
            "NODE_ID": "2",
            "STATE_DIR": "/data",
            "HTTP_ADDR": "0.0.0.0:8080",
            "PEERS": PEERS,
            "RAFT_LISTEN": "0.0.0.0:12000",
            "STORE": "disk",
            "SHARDS": "4",
            "REQUEST_TIMEOUT": "1.5",
            "RTT_MS": "50",
            "SNAPSHOT_ENTRIES": "0",
            "MAX_VALUE_BYTES": "1024",
            "LOG_LEVEL": "WARNING",
        },
    )
    assert s.node_id == 2 and s.state_dir == "/data" and s.http_addr == "0.0.0.0:8080"
    assert s.raft_addr == "10.0.0.2:12000", "taken from this node's entry in PEERS"
    assert s.raft_listen == "0.0.0.0:12000" and s.peers_given and len(s.peers) == 3
    assert (s.store, s.shards, s.timeout, s.rtt_ms) == ("disk", 4, 1.5, 50)
    assert (s.snapshot_entries, s.max_value_bytes, s.log_level) == (0, 1024, "warning")


def test_flags_win_over_environment_variables() -> None:
    env = {"NODE_ID": "2", "HTTP_ADDR": "127.0.0.1:1", "STORE": "disk"}
    s = load_settings(["--id", "3", "--api", "127.0.0.1:2", "--store", "memory"], env)
    assert (s.node_id, s.http_addr, s.store) == (3, "127.0.0.1:2", "memory")
    assert load_settings(["--node-id", "4", "--http-addr", "127.0.0.1:3"], env).node_id == 4


def test_dqlite_style_flags() -> None:
    s = load_settings(
        [
            "--api",
            "127.0.0.1:8001",
            "--db",
            "127.0.0.1:9001",
            "--join",
            "127.0.0.1:8000",
            "--id",
            "4",
        ],
        {},
    )
    assert (s.http_addr, s.raft_addr) == ("127.0.0.1:8001", "127.0.0.1:9001")
    assert s.join == "http://127.0.0.1:8000" and s.wants_join


def test_an_initial_member_ignores_join() -> None:
    # One manifest for every pod: those listed in PEERS bootstrap, later ones join.
    env = {"PEERS": PEERS, "JOIN": "10.0.0.1:11000"}
    assert not load_settings(["--id", "1"], env).wants_join
    assert load_settings(["--id", "4", "--db", "10.0.0.4:12000"], env).wants_join


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--id", "0"], {}, "NODE_ID: 0 is not in 1"),
        (["--id", "x"], {}, "NODE_ID: 'x' is not an integer"),
        (["--api", "nohost"], {}, "is not host:port"),
        (["--db", "h:99999"], {}, "out of range"),
        (["--store", "redis"], {}, "not one of memory, disk"),
        (["--shards", "0"], {}, "SHARDS: 0"),
        (["--timeout", "nan"], {}, "REQUEST_TIMEOUT"),
        (["--timeout", "-1"], {}, "REQUEST_TIMEOUT"),
        (["--peers", "1@a:1,1@b:2"], {}, "listed twice"),
        (["--peers", "1@a:1,2@a:1"], {}, "share the address"),
        (["--peers", "one@a:1"], {}, "is not <id>@<host:port>"),
        (["--peers", ","], {}, "lists no node"),
        (["--id", "4", "--peers", PEERS], {}, "node 4 is not in PEERS"),
        (["--id", "1", "--db", "10.0.0.9:1", "--peers", PEERS], {}, "differs from node 1's entry"),
        (["--join", "ftp://x:1"], {}, "not an http"),
        (["--log-level", "loud"], {}, "LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_flag_and_variable(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(argv, env)


def test_every_option_has_a_flag_and_a_variable() -> None:
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)
    flags = [f for o in OPTIONS for f in o.flags]
    assert len(set(flags)) == len(flags)


def test_peers_round_trip() -> None:
    assert parse_peers(" 1@h1:1 , 2@[::1]:2 ") == {1: "h1:1", 2: "[::1]:2"}


def test_keys_spread_over_shards_the_same_way_everywhere() -> None:
    counts = Counter(shard_for(f"key-{i}", 4) for i in range(4000))
    assert set(counts) == {1, 2, 3, 4}
    assert min(counts.values()) > 800
    assert shard_for("ключ", 7) == shard_for("ключ", 7)
    assert shard_for("anything", 1) == 1


def test_state_dir_remembers_whose_it_is(tmp_path: Path) -> None:
    env = {"STATE_DIR": str(tmp_path / "n1")}
    state = claim(load_settings([], env))
    assert Path(state.identity_path).is_file()
    claim(load_settings([], env))  # a restart with the same settings
    for argv, flag in (
        (["--id", "2"], "NODE_ID=1"),
        (["--store", "disk"], "STORE=memory"),
        (["--shards", "2"], "SHARDS=1"),
    ):
        with pytest.raises(StateDirError, match=f"{flag}, not .*: start with --"):
            claim(load_settings(argv, env))


def test_state_dir_with_foreign_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "n1" / "nodehost").mkdir(parents=True)
    with pytest.raises(StateDirError, match=r"whose it is cannot be told; delete .*n1 to start"):
        claim(load_settings([], {"STATE_DIR": str(tmp_path / "n1")}))


def test_the_one_node_data_refuses_a_three_node_start_and_says_to_delete_it(
    tmp_path: Path,
) -> None:
    """The README's first two steps: `example-kvstore` alone, then node 1 of three over
    the same ./kvstore-data/1. The data belongs to another cluster; the fix is named."""
    env = {"STATE_DIR": str(tmp_path / "kvstore-data" / "1")}
    claim(load_settings([], env))
    three = [
        "--id", "1", "--api", "127.0.0.1:11001", "--db", "127.0.0.1:12001",
        "--peers", "1@127.0.0.1:12001,2@127.0.0.1:12002,3@127.0.0.1:12003",
    ]  # fmt: skip
    with pytest.raises(StateDirError) as refused:
        claim(load_settings(three, env))
    message = str(refused.value)
    assert "first started with PEERS=1@127.0.0.1:12000, not PEERS=1@127.0.0.1:12001," in message
    assert f"delete {tmp_path / 'kvstore-data' / '1'} to start this node over" in message


def test_a_changed_raft_address_or_role_is_refused_with_the_fix(tmp_path: Path) -> None:
    env = {"STATE_DIR": str(tmp_path / "n4")}
    joiner = ["--id", "4", "--db", "127.0.0.1:12004", "--join", "127.0.0.1:11001"]
    claim(load_settings(joiner, env))
    claim(load_settings(joiner, env))  # the same again: fine
    moved = ["--id", "4", "--db", "127.0.0.1:12999", "--join", "127.0.0.1:11001"]
    with pytest.raises(StateDirError, match=r"at Raft address 127.0.0.1:12004, not .*--db 127"):
        claim(load_settings(moved, env))
    founder = ["--id", "4", "--peers", "4@127.0.0.1:12004,5@127.0.0.1:12005"]
    with pytest.raises(StateDirError, match="joined its cluster with --join"):
        claim(load_settings(founder, env))
    restart = ["--id", "4", "--db", "127.0.0.1:12004"]  # no --peers, no --join: the log knows
    claim(load_settings(restart, env))


def test_an_identity_file_of_an_earlier_version_is_still_accepted(tmp_path: Path) -> None:
    (tmp_path / "n1").mkdir()
    (tmp_path / "n1" / "kvstore.json").write_text('{"node_id": 1, "store": "memory", "shards": 1}')
    claim(load_settings(["--db", "127.0.0.1:12345"], {"STATE_DIR": str(tmp_path / "n1")}))


def test_join_must_name_another_node() -> None:
    with pytest.raises(SettingsError, match="own HTTP address"):
        load_settings(["--id", "4", "--api", "127.0.0.1:11004", "--join", "127.0.0.1:11004"], {})


def test_bad_settings_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--store", "redis"], {}) == 2
    assert "not one of memory, disk" in capsys.readouterr().err


@pytest.mark.parametrize("max_value", ["16", "4194304", str(64 * 1024 * 1024)])
def test_the_largest_value_fits_in_one_message_and_the_bounds(
    max_value: str, tmp_path: Path
) -> None:
    """A compare-and-set of two MAX_VALUE_BYTES values is one command: the NodeHost
    must accept it (max_entry_size), carry it in one frame (max_message_size) and let
    two of them wait (the replica's bounds), or a large value would wedge its shard."""
    from examples.kvstore.main import max_entry_size, nodehost_config, replica_config
    from nodehost import NodeHost
    from nodehost.limits import largest_entry
    from tests.host.cluster import free_ports

    address = f"127.0.0.1:{free_ports(1)[0]}"
    s = load_settings(["--max-value-bytes", max_value, "--db", address], {})
    entry = max_entry_size(s)
    assert entry >= 2 * int(max_value)
    config = nodehost_config(s, str(tmp_path / "nh"))  # validates: InvalidConfig otherwise
    assert config.max_entry_size == entry
    assert largest_entry(config.max_message_size, "x" * 1024 + ":65535", 0) >= entry
    replica = replica_config(s, 1)
    assert replica.max_in_mem_log_size >= 2 * entry
    assert replica.max_pending_proposal_bytes >= 2 * entry
    NodeHost(config).close()  # the transport takes the limit
