"""Print the scorecard of chaos runs from their summary.json files.

    uv run python scripts/chaos_report.py RUN_DIR_OR_SUMMARY [...]

One line per run (profile, seed, verdict, fault minutes, operations, faults injected of
attempted, the checks, the violations by kind), then per profile (runs with a known
bug switched on apart, by bug): runs, distinct seeds, fault minutes, failed runs; then every fault kind, injected of attempted, with
the reasons the others did not happen; then the violations by kind. Directories are
searched for summary.json files. Exit status 1 if any run failed.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any


def summaries(paths: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for p in map(Path, paths):
        if not p.exists():
            raise SystemExit(f"{p}: no such file or directory")
        files = [p] if p.is_file() else sorted(p.rglob("summary.json"))
        for f in files:
            try:
                found.append((f, json.loads(f.read_text())))
            except ValueError as exc:
                raise SystemExit(f"{f}: not a summary ({exc})") from None
    return found


def line(path: Path, s: dict[str, Any]) -> str:
    ops = s["ops"]
    checker = s["checker"]
    injected = sum(s["faults_injected"].values())
    attempted = sum(s["faults_attempted"].values())
    mutations = s.get("options", {}).get("mutations") or []
    bug = f"  bug {','.join(mutations)}" if mutations else ""
    return (
        f"{s.get('profile', '?'):<8} seed {s['seed']:>7}  {'ok  ' if s['ok'] else 'FAIL'}  "
        f"{s.get('fault_minutes', 0):6.2f} min  ops {ops['attempted']:>7} (ok {ops['ok']}, "
        f"failed {ops['failed']}, unknown {ops['indeterminate']})  "
        f"faults {injected}/{attempted}  check {checker['linearizable']} "
        f"({checker['keys']} keys, {checker['unknown_keys']} undecided, {checker['seconds']} s)"
        f"  recovery {s.get('recovery_seconds')} s{bug}  {path}"
    )


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    runs = summaries(argv)
    if not runs:
        print("no summary.json found", file=sys.stderr)
        return 2
    profiles: dict[str, Counter[str]] = defaultdict(Counter)
    seeds: dict[str, set[int]] = defaultdict(set)
    minutes: dict[str, float] = defaultdict(float)
    attempted: Counter[str] = Counter()
    injected: Counter[str] = Counter()
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    kinds: Counter[str] = Counter()
    failed = 0
    for path, s in runs:
        print(line(path, s))
        for v in s["violations"]:
            print(f"    {v['kind']}: {v['detail'].splitlines()[0][:200]}")
        mutations = s.get("options", {}).get("mutations") or []
        profile = s.get("profile", "?") + (f" with bug {','.join(mutations)}" if mutations else "")
        profiles[profile]["runs"] += 1
        profiles[profile]["failed"] += not s["ok"]
        seeds[profile].add(s["seed"])
        minutes[profile] += s.get("fault_minutes", 0.0)
        attempted.update(s["faults_attempted"])
        injected.update(s["faults_injected"])
        for miss in s.get("faults_not_injected", []):
            reasons[miss["kind"]][miss["reason"]] += 1
        kinds.update(v["kind"] for v in s["violations"])
        failed += not s["ok"]
    print()
    for profile, c in sorted(profiles.items()):
        print(
            f"profile {profile}: {c['runs']} runs, {len(seeds[profile])} seeds, "
            f"{minutes[profile]:.2f} fault minutes, {c['failed']} failed"
        )
    print("faults (injected/attempted):")
    for kind in sorted(attempted):
        print(f"  {kind:<22} {injected[kind]}/{attempted[kind]}")
        for reason, n in reasons[kind].most_common():
            print(f"      not injected x{n}: {reason}")
    if kinds:
        print("violations: " + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()))
    else:
        print("violations: none")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
