"""The README's SQL example runs as a user would run it (a script, its own process),
on free ports instead of 9001-9003 so that it cannot collide with anything."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.sqlite.support import free_addresses

REPO = Path(__file__).resolve().parents[2]


def _sql_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Replicated SQL") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "the SQL section has a Python example"
    return match.group(1)


def test_the_readme_sql_example_runs(tmp_path: Path) -> None:
    code = _sql_example()
    for old, new in zip(
        ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"], free_addresses(3), strict=True
    ):
        assert old in code
        code = code.replace(old, new)
    script = tmp_path / "demo.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "(2,)"
    assert "'hello'" in lines[1] and "'world'" in lines[1]
    assert "role=<Role.VOTER: 0>" in lines[2]
