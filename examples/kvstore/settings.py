"""Settings of one kvstore node, from flags, environment variables and defaults.

Rules:
- Every setting has a flag and an environment variable; a flag wins over the variable,
  the variable over the default. `OPTIONS` is the one table of all three, so the help
  text, the README and the deploy files cannot drift from the code.
- The defaults start one node with no configuration at all: node 1, alone, HTTP on
  127.0.0.1:11000, Raft on 127.0.0.1:12000, data in ./kvstore-data/1.
- Every value is checked here, and a bad one is a SettingsError naming both the flag
  and the variable, before anything is created on disk.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from nodehost import InvalidConfig
from nodehost.config import parse_address
from nodehost.discovery import DiscoveryConfig, DiscoveryConfigError, load_config

MiB = 1024 * 1024
STORES = ("memory", "disk")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(ValueError):
    """A setting is missing, malformed or contradicts another; the message says which."""


@dataclass(frozen=True, slots=True)
class Option:
    dest: str
    flags: tuple[str, ...]
    env: str
    default: str
    help: str

    @property
    def name(self) -> str:
        return f"{self.flags[0]}/{self.env}"


OPTIONS = (
    Option(
        "node_id",
        ("--id", "--node-id"),
        "NODE_ID",
        "1",
        "this node's id, a positive integer; auto (with DISCO_MODE): a random one, kept",
    ),
    Option(
        "state_dir",
        ("--dir", "--state-dir"),
        "STATE_DIR",
        "./kvstore-data/<NODE_ID>",
        "where this node keeps its data",
    ),
    Option(
        "http_addr",
        ("--api", "--http-addr"),
        "HTTP_ADDR",
        "127.0.0.1:11000",
        "host:port the HTTP API listens on",
    ),
    Option(
        "raft_addr",
        ("--db", "--raft-addr"),
        "RAFT_ADDR",
        "127.0.0.1:12000, or this node's entry in PEERS",
        "host:port other nodes reach this node's Raft transport at",
    ),
    Option(
        "raft_listen",
        ("--raft-listen",),
        "RAFT_LISTEN",
        "RAFT_ADDR",
        "host:port the Raft transport binds, e.g. 0.0.0.0:12000 behind NAT or in a pod",
    ),
    Option(
        "peers",
        ("--peers",),
        "PEERS",
        "this node alone",
        "the initial members, as 1@host:port,2@host:port,3@host:port",
    ),
    Option("store", ("--store",), "STORE", "memory", "state machine kind: memory or disk"),
    Option(
        "join",
        ("--join",),
        "JOIN",
        "",
        "HTTP address of any member; a node not among PEERS asks it to add this node",
    ),
    Option("shards", ("--shards",), "SHARDS", "1", "number of shards keys are spread over"),
    Option(
        "timeout",
        ("--timeout",),
        "REQUEST_TIMEOUT",
        "3",
        "seconds a request may take before it is answered 503",
    ),
    Option(
        "rtt_ms",
        ("--rtt-ms",),
        "RTT_MS",
        "100",
        "the Raft tick in milliseconds; elections start after 10 ticks without a leader",
    ),
    Option(
        "snapshot_entries",
        ("--snapshot-entries",),
        "SNAPSHOT_ENTRIES",
        "10000",
        "take a snapshot (and compact the log) every this many entries; 0 never",
    ),
    Option(
        "max_value_bytes",
        ("--max-value-bytes",),
        "MAX_VALUE_BYTES",
        str(4 * MiB),
        "largest value accepted, in bytes of canonical JSON",
    ),
    Option("log_level", ("--log-level",), "LOG_LEVEL", "info", "debug, info, warning or error"),
    Option(
        "disco_mode",
        ("--disco-mode",),
        "DISCO_MODE",
        "",
        "find the cluster automatically: etcd-kv, dns, dns-srv or static (instead of PEERS)",
    ),
    Option(
        "disco_config",
        ("--disco-config",),
        "DISCO_CONFIG",
        "",
        "the discovery config: a JSON object, or the path of a file holding one",
    ),
    Option(
        "disco_key",
        ("--disco-key",),
        "DISCO_KEY",
        "kvstore",
        "names this cluster in the discovery store; clusters sharing one use different keys",
    ),
    Option(
        "admin",
        ("--admin",),
        "ADMIN_ADDRESS",
        "",
        "unix:PATH of an admin socket for the `nodehost` operator command; none if empty",
    ),
)


@dataclass(frozen=True, slots=True)
class Settings:
    node_id: int = 1
    state_dir: str = "./kvstore-data/1"
    http_addr: str = "127.0.0.1:11000"
    raft_addr: str = "127.0.0.1:12000"
    raft_listen: str = "127.0.0.1:12000"
    peers: dict[int, str] = field(default_factory=lambda: {1: "127.0.0.1:12000"})
    peers_given: bool = False  # PEERS was set (a node outside it must join)
    store: str = "memory"
    join: str = ""  # base URL of the member to ask, "" for none
    shards: int = 1
    timeout: float = 3.0
    rtt_ms: int = 100
    snapshot_entries: int = 10000
    max_value_bytes: int = 4 * MiB
    log_level: str = "info"
    discovery: DiscoveryConfig | None = None  # DISCO_MODE: the members are found, not listed
    admin_address: str = ""  # "unix:PATH", or "" for no admin service

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, port = parse_address(self.http_addr, "HTTP_ADDR")
        return host.strip("[]"), port

    @property
    def wants_join(self) -> bool:
        """True when this node is not an initial member and has somewhere to ask."""
        return bool(self.join) and not (self.peers_given and self.node_id in self.peers)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="example-kvstore",
        description="A replicated JSON key-value store over HTTP (one Raft shard, or N).",
        epilog="Every flag can also be set by the environment variable shown in brackets.",
    )
    for option in OPTIONS:
        default = f"; default {option.default}" if option.default else ""
        p.add_argument(
            *option.flags,
            dest=option.dest,
            default=None,
            help=f"{option.help} [{option.env}{default}]",
        )
    return p


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `argv` and `environ`; SettingsError when one is wrong."""
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    given: dict[str, str] = {}
    for option in OPTIONS:
        value = getattr(args, option.dest)
        if value is None:
            value = env.get(option.env)
        if value is not None and value.strip() != "":
            given[option.dest] = value.strip()
    by_dest = {o.dest: o for o in OPTIONS}

    def text(dest: str) -> str:
        return given.get(dest, by_dest[dest].default)

    def number(dest: str, low: int, high: int) -> int:
        raw = text(dest)
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{by_dest[dest].name}: {raw!r} is not an integer") from None
        if not low <= value <= high:
            raise SettingsError(f"{by_dest[dest].name}: {value} is not in {low}..{high}")
        return value

    def address(dest: str, raw: str) -> str:
        try:
            parse_address(raw, by_dest[dest].name)
        except InvalidConfig as exc:
            raise SettingsError(str(exc)) from None
        return raw

    auto_id = text("node_id").lower() == "auto"  # 0 until examples.kvstore.discovery picks
    node_id = 0 if auto_id else number("node_id", 1, 2**64 - 1)
    discovery = _discovery(given, text)
    if auto_id and discovery is None:
        raise SettingsError(
            "--id/NODE_ID=auto needs --disco-mode/DISCO_MODE: without discovery a node must "
            "be told its id"
        )
    if discovery is not None and ("peers" in given or "join" in given):
        raise SettingsError(
            "--disco-mode/DISCO_MODE finds the members itself: set neither --peers/PEERS "
            "nor --join/JOIN with it"
        )
    peers = parse_peers(given["peers"]) if "peers" in given else {}
    raft_addr = given.get("raft_addr", "")
    if raft_addr:
        address("raft_addr", raft_addr)
        if node_id in peers and peers[node_id] != raft_addr:
            raise SettingsError(
                f"RAFT_ADDR {raft_addr} differs from node {node_id}'s entry in PEERS "
                f"({peers[node_id]}); set one of them"
            )
    else:
        raft_addr = peers.get(node_id, "127.0.0.1:12000")
    join = given.get("join", "")
    if peers and node_id not in peers and not join:
        raise SettingsError(
            f"node {node_id} is not in PEERS {format_peers(peers)}: an initial member must "
            "be listed there, and a new node needs --join/JOIN <HTTP address of a member>"
        )
    if join:
        join = join.rstrip("/")
        if "://" not in join:
            join = "http://" + join
        if not join.startswith(("http://", "https://")):
            raise SettingsError(f"--join/JOIN: {join!r} is not an http(s) address")
        address("join", join.split("://", 1)[1].split("/", 1)[0])
        if join.split("://", 1)[1].split("/", 1)[0] == text("http_addr"):
            raise SettingsError(
                f"--join/JOIN: {join} is this node's own HTTP address; give the HTTP "
                "address of a running member"
            )
    store = text("store").lower()
    if store not in STORES:
        raise SettingsError(f"--store/STORE: {store!r} is not one of {', '.join(STORES)}")
    log_level = text("log_level").lower()
    if log_level not in LOG_LEVELS:
        raise SettingsError(f"--log-level/LOG_LEVEL: {log_level!r} is not one of {LOG_LEVELS}")
    admin = given.get("admin", "")
    if admin and not (admin.startswith("unix:") or "/" in admin):
        raise SettingsError(
            f"--admin/ADMIN_ADDRESS: {admin!r} is not unix:PATH; this service offers the admin "
            "service on a local socket only (a TCP one needs the transport's mutual TLS)"
        )
    if admin and not admin.startswith("unix:"):
        admin = "unix:" + admin
    try:
        timeout = float(text("timeout"))
    except ValueError:
        raise SettingsError(
            f"--timeout/REQUEST_TIMEOUT: {text('timeout')!r} is not a number"
        ) from None
    if not (math.isfinite(timeout) and 0 < timeout <= 300):
        raise SettingsError(f"--timeout/REQUEST_TIMEOUT: {timeout} is not in (0, 300] seconds")
    return Settings(
        node_id=node_id,
        state_dir=given.get(
            "state_dir", os.path.join(".", "kvstore-data", "auto" if auto_id else str(node_id))
        ),
        http_addr=address("http_addr", text("http_addr")),
        raft_addr=raft_addr,
        raft_listen=address("raft_listen", given.get("raft_listen", raft_addr)),
        peers=peers or {node_id: raft_addr},
        peers_given=bool(peers),
        store=store,
        join=join,
        shards=number("shards", 1, 1024),
        timeout=timeout,
        rtt_ms=number("rtt_ms", 1, 10_000),
        snapshot_entries=number("snapshot_entries", 0, 2**32),
        max_value_bytes=number("max_value_bytes", 16, 64 * MiB),
        log_level=log_level,
        discovery=discovery,
        admin_address=admin,
    )


def _discovery(given: Mapping[str, str], text: Callable[[str], str]) -> DiscoveryConfig | None:
    if "disco_mode" not in given:
        if "disco_config" in given:
            raise SettingsError(
                "--disco-config/DISCO_CONFIG is set but --disco-mode/DISCO_MODE is not"
            )
        return None
    try:
        return load_config(given["disco_mode"], given.get("disco_config", ""), text("disco_key"))
    except DiscoveryConfigError as exc:
        message = str(exc)
        if message.startswith("mode "):
            name = "--disco-mode/DISCO_MODE"
        elif message.startswith("key "):
            name = "--disco-key/DISCO_KEY"
        else:
            name = "--disco-config/DISCO_CONFIG"
        raise SettingsError(f"{name}: {message}") from None


def parse_peers(text: str) -> dict[int, str]:
    """`1@host:port,2@host:port` as {1: "host:port", 2: ...}; SettingsError if malformed."""
    peers: dict[int, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        node, sep, addr = item.partition("@")
        if not sep or not node.strip().isdigit() or int(node) < 1:
            raise SettingsError(
                f"--peers/PEERS: {item!r} is not <id>@<host:port>, e.g. 1@10.0.0.1:12000"
            )
        node_id = int(node)
        try:
            parse_address(addr.strip(), "--peers/PEERS")
        except InvalidConfig as exc:
            raise SettingsError(str(exc)) from None
        if node_id in peers:
            raise SettingsError(f"--peers/PEERS: node {node_id} is listed twice")
        if addr.strip() in peers.values():
            raise SettingsError(f"--peers/PEERS: two nodes share the address {addr.strip()}")
        peers[node_id] = addr.strip()
    if not peers:
        raise SettingsError("--peers/PEERS is set but lists no node")
    return peers


def format_peers(peers: Mapping[int, str]) -> str:
    return ",".join(f"{node}@{addr}" for node, addr in sorted(peers.items()))
