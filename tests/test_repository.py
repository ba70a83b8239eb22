"""The repository stands on its own: no file refers to a path outside it.

A reader of a clone (or of a release) cannot follow a reference to the developers'
machine: no file names a home, work or mount directory or a directory beside the
checkout, and every document named by file name (`*.md`) is in the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Where a developer's machine keeps things (home and work directories, mounts), and the
# directories beside a checkout. Written in pieces so that this file does not contain
# what it looks for.
MACHINE_ROOTS = ["work", "home", "root", "Users", "mnt", "srv", "opt", "scratch"]
BESIDE = "shared"
OUTSIDE = re.compile(
    rf"(?:^|[^\w.])/(?:{'|'.join(MACHINE_ROOTS)})/"
    rf"|\.\./(?:\.\./)*{BESIDE}\b"
    rf"|\b{BESIDE}/research\b"
)
DOCUMENT = re.compile(r"\b([A-Za-z0-9_-]+\.md)\b")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = []
    for name in listed:
        if not name or name.endswith(b".lock") or name.endswith(b"_pb2.py"):
            continue
        path = ROOT / name.decode()
        try:
            path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        files.append(path)
    return files


def test_no_file_names_a_path_outside_the_repository() -> None:
    found = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "paths outside the repository:\n" + "\n".join(found)


def test_every_document_named_is_in_the_repository() -> None:
    present = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    missing = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in DOCUMENT.finditer(line):
                if match.group(1) not in present:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {match.group(1)}")
    assert not missing, "documents named but not in the repository:\n" + "\n".join(missing)


def test_the_check_sees_what_it_looks_for() -> None:
    for line in (
        "see /" + "wo" + "rk/" + BESIDE + "/research/limits.md",
        "(" + BESIDE + "/research/limits.md)",
        "../" + BESIDE + "/notes",
        "cd /" + "home/someone/nodehost",
    ):
        assert OUTSIDE.search(line), line
    for line in ("GET /key/<k>", "/var/lib/myapp/nh", "a/../b", "docs/limits.md"):
        assert not OUTSIDE.search(line), line
