"""How the `nodehost` command prints what it got: aligned tables, or one JSON document.

Rules: a table is for people (columns aligned, a line per replica, notes under it); JSON
is for programs: exactly one document on stdout, the `as_json()` of the values, keys
stable. Nothing here decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from nodehost.admin.values import HostInfo, LeaderView, MembershipView, SnapshotView
from nodehost.tools.importing import ImportResult
from nodehost.tools.inspection import HostReport
from nodehost.tools.members import format_members
from nodehost.tools.recovery import RecoveryResult
from nodehost.tools.removal import RemovalResult


def as_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=False)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def pairs(rows: Sequence[tuple[str, object]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def members_cell(m: MembershipView) -> str:
    parts = [format_members(m.voters)]
    if m.non_votings:
        parts.append("non-voting " + format_members(m.non_votings))
    if m.witnesses:
        parts.append("witness " + format_members(m.witnesses))
    return "; ".join(p for p in parts if p) or "-"


def host_info(info: HostInfo) -> str:
    out = [pairs([("node host id", info.node_host_id), ("raft address", info.raft_address)])]
    rows = [
        (
            s.shard_id,
            s.replica_id,
            s.role,
            s.leader_id or "-",
            s.term,
            s.applied_index,
            members_cell(s.membership),
        )
        for s in info.shards
    ]
    out.append("")
    if rows:
        out.append(
            table(("SHARD", "REPLICA", "ROLE", "LEADER", "TERM", "APPLIED", "MEMBERS"), rows)
        )
    else:
        out.append("no replica runs on this host")
    for s in info.shards:
        if s.failed:
            out.append(f"shard {s.shard_id}: failed: {s.failed}")
    if info.stopped:
        held = ", ".join(f"shard {s} replica {r}" for s, r in info.stopped)
        out.append(f"stopped (data kept, not running): {held}")
    if info.hosts:
        out += ["", table(("NODE HOST ID", "ADDRESS"), sorted(info.hosts.items()))]
    return "\n".join(out)


def membership(shard_id: int, m: MembershipView) -> str:
    rows: list[tuple[object, ...]] = []
    for role, group in (
        ("voter", m.voters),
        ("non-voting", m.non_votings),
        ("witness", m.witnesses),
    ):
        rows += [(rid, role, target) for rid, target in sorted(group.items())]
    out = [table(("REPLICA", "ROLE", "TARGET"), rows)]
    removed = ", ".join(map(str, m.removed)) or "none"
    out.append(f"shard {shard_id}: config change id {m.config_change_id}; removed: {removed}")
    return "\n".join(out)


def leader(view: LeaderView) -> str:
    if not view.known:
        return f"shard {view.shard_id}: no leader known (term {view.term})"
    where = f" at {view.target}" if view.target else ""
    return f"shard {view.shard_id}: replica {view.leader_id}{where} leads (term {view.term})"


def snapshot(view: SnapshotView) -> str:
    text = f"shard {view.shard_id}: snapshot at index {view.index}"
    return text + (f", exported to {view.path}" if view.path else "")


def inspect_report(report: HostReport) -> str:
    out = [
        pairs(
            [
                ("directory", report.directory),
                ("node host id", report.node_host_id or "-"),
                ("raft address", report.raft_address or "-"),
                ("deployment id", report.deployment_id),
            ]
        ),
        "",
    ]
    if not report.replicas:
        out.append("no replica data")
        return "\n".join(out)
    rows = []
    notes = []
    for r in report.replicas:
        snap = "-" if r.snapshot is None else f"{r.snapshot.index}/t{r.snapshot.term}"
        rows.append(
            (
                r.shard_id,
                r.replica_id,
                r.term,
                r.vote or "-",
                r.commit,
                r.first_index,
                r.last_index,
                r.last_term,
                snap,
                members_cell(r.membership),
            )
        )
        name = f"shard {r.shard_id} replica {r.replica_id}"
        if r.removed:
            notes.append(f"{name}: removed from the shard")
        for change in r.pending_changes:
            notes.append(f"{name}: config change past commit at {change}")
        if r.snapshot is not None and r.snapshot.damaged:
            notes.append(f"{name}: snapshot {r.snapshot.index} damaged: {r.snapshot.damaged}")
        if r.snapshot is not None and r.snapshot.imported:
            notes.append(f"{name}: snapshot {r.snapshot.index} was imported")
    header = ("SHARD", "REPLICA", "TERM", "VOTE", "COMMIT", "FIRST", "LAST", "LAST-TERM")
    out.append(table((*header, "SNAPSHOT", "MEMBERS"), rows))
    out += notes
    return "\n".join(out)


def recovery(results: Sequence[RecoveryResult]) -> str:
    lines = []
    for r in results:
        name = f"shard {r.shard_id} replica {r.replica_id}"
        if not r.changed:
            lines.append(f"{name}: already has members {members_cell(r.after)}; nothing changed")
            continue
        forced = f", {r.forced_entries} entries past the old commit now committed"
        lines.append(
            f"{name}: members {members_cell(r.before)} -> {members_cell(r.after)} "
            f"(term {r.term}, entries {r.first_index}-{r.last_index} appended and "
            f"committed{forced if r.forced_entries else ''})"
        )
    return "\n".join(lines)


def imported(result: ImportResult) -> str:
    replaced = "; its earlier data here was replaced" if result.replaced else ""
    return (
        f"shard {result.shard_id} replica {result.replica_id}: imported the snapshot at index "
        f"{result.index} (term {result.term}) into {result.snapshot_path}; members "
        f"{members_cell(result.membership)}{replaced}"
    )


def removed(result: RemovalResult) -> str:
    return f"shard {result.shard_id} replica {result.replica_id}: data removed"
