"""Print the scorecard of chaos runs from their summary.json files.

    uv run python scripts/chaos_report.py RUN_DIR_OR_SUMMARY [...]

One line per run (seed, verdict, operations, faults, violations, losses, recovery),
then the totals. Directories are searched for summary.json files.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def summaries(paths: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for p in map(Path, paths):
        files = [p] if p.is_file() else sorted(p.rglob("summary.json"))
        for f in files:
            found.append((f, json.loads(f.read_text())))
    return found


def main(argv: list[str]) -> int:
    runs = summaries(argv)
    if not runs:
        print("no summary.json found", file=sys.stderr)
        return 2
    totals: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    for path, s in runs:
        ops = s["ops"]
        checker = s["checker"]
        injected = sum(s["faults_injected"].values())
        print(
            f"seed {s['seed']:>7}  {'ok  ' if s['ok'] else 'FAIL'}  "
            f"ops {ops['attempted']:>8} (ok {ops['ok']}, failed {ops['failed']}, "
            f"unknown {ops['indeterminate']})  ops/s {s['ops_per_second']}  "
            f"faults {injected:>4}  keys {checker['keys']} (unknown {checker['unknown_keys']}, "
            f"{checker['seconds']}s)  lost {s['acked_writes_lost']}  "
            f"hash mismatches {s.get('replica_hash_mismatch')}  "
            f"recovery {s.get('recovery_seconds')}s  {path}"
        )
        for v in s["violations"]:
            print("    " + v.splitlines()[0][:200])
        totals["runs"] += 1
        totals["failed runs"] += not s["ok"]
        totals["operations"] += ops["attempted"]
        totals["operations ok"] += ops["ok"]
        totals["violations"] += len(s["violations"])
        totals["acknowledged writes lost"] += s["acked_writes_lost"]
        totals["faults"] += injected
        faults.update(s["faults_injected"])
    print(", ".join(f"{k}: {v}" for k, v in totals.items()))
    print("faults: " + ", ".join(f"{k} {v}" for k, v in sorted(faults.items())))
    return 0 if totals["failed runs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
