"""The committed protobuf modules must be what protos/raft.proto generates today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from protos import raft_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent


def test_generated_modules_are_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "genproto.py"), "--check", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("raft_pb2.py", "raft_pb2.pyi"):
        fresh = (tmp_path / "protos" / name).read_text()
        committed = (ROOT / "protos" / name).read_text()
        assert fresh == committed, (
            f"protos/{name} is stale: run `uv run python scripts/genproto.py`"
        )


def test_message_has_no_python_keyword_fields() -> None:
    import keyword

    for message in pb.DESCRIPTOR.message_types_by_name.values():
        for field in message.fields:
            assert not keyword.iskeyword(field.name), f"{message.name}.{field.name}"


def test_zero_message_type_is_invalid() -> None:
    assert pb.Message().type == pb.INVALID
