"""Operator tools: the Python API behind the `nodehost` command.

Online, against a running NodeHost that serves its admin service
(NodeHostConfig.admin_address):

    from nodehost.tools import AdminClient
    with AdminClient("unix:/var/lib/myapp/admin.sock") as admin:
        admin.info()                            # HostInfo: id, address, replicas
        admin.members(1)                        # MembershipView (linearizable)
        admin.leader(1)                         # LeaderView
        admin.add(1, 4, "10.0.0.4:63001")       # role="non-voting" / "witness"
        admin.remove(1, 4)
        admin.transfer(1, 2)                    # returns once replica 2 leads
        admin.snapshot(1, export_path="/backup/shard1")
        admin.stop(1); admin.remove_data(1, 3)

Offline, on a stopped host's directory (a directory a running NodeHost holds is
refused with HostInUse):

    from nodehost import tools
    report = tools.inspect("data/nh1")                         # reads only
    tools.recover("data/nh1", [1], {1: "10.0.0.1:63001"})       # quorum-loss recovery
    tools.import_snapshot("data/nh4", 1, 4, "/backup/shard1/snapshot-0000000000000078",
                          {1: "10.0.0.1:63001", 4: "10.0.0.4:63001"})
    tools.remove_data("data/nh3", 1, 3)

Every failure is a ToolError whose message is one line saying why; an operation that
could lose acknowledged data is refused with UnsafeOperation unless `force=True`.
"""

from nodehost.admin.values import (
    HostInfo,
    LeaderView,
    MembershipView,
    ShardStatus,
    SnapshotView,
)
from nodehost.tools.client import AdminClient
from nodehost.tools.errors import (
    AdminError,
    ConnectionFailed,
    HostInUse,
    ToolError,
    UnsafeOperation,
)
from nodehost.tools.importing import ImportResult, import_snapshot
from nodehost.tools.inspection import HostReport, ReplicaReport, SnapshotReport, inspect
from nodehost.tools.members import parse_members
from nodehost.tools.recovery import RecoveryResult, recover
from nodehost.tools.removal import RemovalResult, remove_data

__all__ = [
    "AdminClient",
    "AdminError",
    "ConnectionFailed",
    "HostInUse",
    "HostInfo",
    "HostReport",
    "ImportResult",
    "LeaderView",
    "MembershipView",
    "RecoveryResult",
    "RemovalResult",
    "ReplicaReport",
    "ShardStatus",
    "SnapshotReport",
    "SnapshotView",
    "ToolError",
    "UnsafeOperation",
    "import_snapshot",
    "inspect",
    "parse_members",
    "recover",
    "remove_data",
]
