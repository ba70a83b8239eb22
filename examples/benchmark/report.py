"""The benchmark's figures as text, and the project's targets beside them.

The targets were set for this machine kind (2 cores, Python 3.11): 3 processes, fsync
on, 16-byte payloads, 48 shards. A run with other settings still shows them, marked so.
"""

from __future__ import annotations

import argparse
from typing import Any

from examples.benchmark import profile
from nodehost.bench.report import machine_line

TARGET_SETTINGS = {"processes": 3, "fsync": True, "payload": 16}


def _target(name: str, goal: str, measured: float, met: bool, unit: str) -> dict[str, Any]:
    return {"name": name, "target": goal, "measured": measured, "unit": unit, "met": met}


def targets(args: argparse.Namespace, result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    if args.sequential:
        lat = result["proposal_latency_ms"]
        if lat["count"]:
            out.append(_target("sequential p50", "<= 2 ms", lat["p50"], lat["p50"] <= 2.0, "ms"))
            out.append(_target("sequential p99", "<= 10 ms", lat["p99"], lat["p99"] <= 10.0, "ms"))
    else:
        if args.read_ratio < 1:
            rate = result["proposals_per_second"]
            out.append(_target("applied proposals/s", ">= 50,000", rate, rate >= 50_000, "/s"))
        if args.read_ratio > 0:
            rate = result["reads_per_second"]
            out.append(_target("linearizable reads/s", ">= 100,000", rate, rate >= 100_000, "/s"))
    differs = [k for k, v in TARGET_SETTINGS.items() if getattr(args, k) != v]
    if not args.sequential and args.shards != 48:
        differs.append("shards")
    for target in out:
        target["settings_differ"] = differs
    return out


def _ms(lat: dict[str, float]) -> str:
    return (
        f"p50 {lat['p50']:8.3f} ms   p99 {lat['p99']:8.3f} ms   p99.9 {lat['p99.9']:8.3f} ms"
        f"   max {lat['max']:8.3f} ms"
    )


def text(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["machine"]
    mode = (
        "sequential (1 client, 1 shard, sync_propose)"
        if s["sequential"]
        else (f"{s['clients']} asyncio clients per process")
    )
    lines = [
        f"example-benchmark: {s['processes']} processes, {s['shards']} "
        f"shard{'s' if s['shards'] != 1 else ''}, {mode}",
        f"  sm {s['sm']}, payload {s['payload']} B, read ratio {s['read_ratio']:g}, "
        f"fsync {'ON' if s['fsync'] else 'OFF (not durable)'}, rtt {s['rtt_ms']} ms, {s['transport']} transport, "
        f"{s['warmup']:g}s warm-up, {s['duration']:g}s measured",
        f"  {machine_line(m)}",
        "",
        f"applied proposals/s   {r['proposals_per_second']:>12,.0f}",
        f"linearizable reads/s  {r['reads_per_second']:>12,.0f}",
    ]
    if r["proposal_latency_ms"]["count"]:
        lines.append(f"proposal latency      {_ms(r['proposal_latency_ms'])}")
    if r["read_latency_ms"]["count"]:
        lines.append(f"read latency          {_ms(r['read_latency_ms'])}")
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r["errors"].items())) or "none"
    lines += [f"elections in window   {r['elections']}", f"errors                {errors}", ""]
    lines.append("process  pid      leaders(start/end)  proposals/s   reads/s    CPU%   peak RSS")
    for p in r["processes"]:
        lines.append(
            f"{p['process']:>7}  {p['pid']:<8} {p['leaders_at_start']:>7} / {p['leaders_at_end']:<8}"
            f"  {p['proposals_per_second']:>11,.0f} {p['reads_per_second']:>9,.0f}"
            f"  {p['cpu_percent']:>5.0f}%  {p['peak_rss_mb']:6.0f} MB"
        )
    if any("log_writes_per_second" in p for p in r["processes"]):
        lines += [
            "",
            f"process  log writes/s {'(1 fsync each)' if s['fsync'] else '(no fsync)    '}"
            "  mean write   gRPC batches/s  messages/s",
        ]
        for p in r["processes"]:
            lines.append(
                f"{p['process']:>7}  {p['log_writes_per_second']:>26,.0f}  {p['log_write_ms']:7.3f} ms"
                f"  {p['batches_sent_per_second']:>14,.0f}  {p['messages_sent_per_second']:>10,.0f}"
            )
    disk = r["disk"]
    if disk:
        f, k = disk["fsync"], disk["rocksdict_sync_put"]
        lines += [
            "",
            "disk ceiling (data directory, one writer, measured before the run):",
            f"  write+fdatasync      {f['per_second']:>9,.0f}/s  p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms",
            f"  rocksdict sync put   {k['per_second']:>9,.0f}/s  p50 {k['p50_ms']:.3f} ms  p99 {k['p99_ms']:.3f} ms",
        ]
    if r["targets"]:
        lines += ["", "targets (2 cores, 3 processes, fsync on, 16 B, 48 shards):"]
        for t in r["targets"]:
            value = (
                f"{t['measured']:,.0f}{t['unit']}"
                if t["unit"] == "/s"
                else f"{t['measured']:.3f} ms"
            )
            verdict = "met" if t["met"] else "MISSED"
            note = (
                f"  (this run differs: {', '.join(t['settings_differ'])})"
                if t["settings_differ"]
                else ""
            )
            lines.append(
                f"  {t['name']:<22} {t['target']:<11} measured {value:<14} {verdict}{note}"
            )
    if "profile" in r:
        lines += ["", *profile.text(r["profile"])]
    return "\n".join(lines)
