"""Finding the members of a cluster: start identical nodes in any order, get one cluster.

    from nodehost import discovery
    config = discovery.load_config("etcd-kv", '{"endpoints": ["http://10.0.0.9:2379"]}', "orders")
    agent = discovery.Discovery(config, node_id=4, raft_addr=..., api_addr=..., probe=..., join=...)
    joined = await agent.find_cluster()     # False: bootstrap alone; True: start with join=True
    await agent.maintain(nh, [1])           # publish the leader / remove departed members

Modes (rqlite's names): `etcd-kv` (a key in etcd, written with check-and-set: the
bootstrap race is decided by a create-if-absent transaction, and the leader keeps its
Raft and API addresses there), `dns` (A/AAAA records of a name, e.g. a Kubernetes
headless service), `dns-srv` (SRV records) and `static` (a list of seed addresses). The
last three have no store, so a deterministic rule decides who bootstraps
(`decide.decide_by_peers`: bootstrap_expect, then the lowest id).

The package uses only the public NodeHost API; the application supplies two calls over
its own API: `probe(address) -> PeerStatus` (who is there) and `join(address)` (ask a
member to add this node).
"""

from nodehost.discovery.agent import Discovery, Joiner, Probe
from nodehost.discovery.config import (
    MODES,
    DiscoveryConfig,
    DnsConfig,
    DnsSrvConfig,
    EtcdConfig,
    Nameserver,
    StaticConfig,
    load_config,
)
from nodehost.discovery.decide import (
    Bootstrap,
    Decision,
    Join,
    Wait,
    decide_by_peers,
    decide_by_record,
)
from nodehost.discovery.errors import (
    ClusterConflict,
    DiscoveryConfigError,
    DiscoveryError,
    GaveUp,
    JoinRefused,
    PeerUnavailable,
    StoreAnswerInvalid,
    StoreUnavailable,
)
from nodehost.discovery.etcd import EtcdStore, Stored
from nodehost.discovery.records import DocumentError, LeaderRecord, PeerStatus
from nodehost.discovery.sources import AddressSource, DnsSource, DnsSrvSource, StaticSource

__all__ = [
    "MODES",
    "AddressSource",
    "Bootstrap",
    "ClusterConflict",
    "Decision",
    "Discovery",
    "DiscoveryConfig",
    "DiscoveryConfigError",
    "DiscoveryError",
    "DnsConfig",
    "DnsSource",
    "DnsSrvConfig",
    "DnsSrvSource",
    "DocumentError",
    "EtcdConfig",
    "EtcdStore",
    "GaveUp",
    "Join",
    "JoinRefused",
    "Joiner",
    "LeaderRecord",
    "Nameserver",
    "PeerStatus",
    "PeerUnavailable",
    "Probe",
    "StaticConfig",
    "StaticSource",
    "StoreAnswerInvalid",
    "StoreUnavailable",
    "Stored",
    "Wait",
    "decide_by_peers",
    "decide_by_record",
    "load_config",
]
