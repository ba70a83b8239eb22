"""Regenerate protos/*_pb2.py and *_pb2.pyi from protos/*.proto.

Run from anywhere: `uv run python scripts/genproto.py`. With `--check DIR` the
modules are written to DIR instead, which is how tests/test_protos.py compares
the committed modules with what the current .proto files produce.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").glob("*.proto"))
    for proto in protos:
        code = protoc.main(
            [
                "protoc",
                f"-I{ROOT}",
                f"--python_out={out_dir}",
                f"--pyi_out={out_dir}",
                proto,
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {proto} (exit {code})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", type=Path, help="write into this directory instead")
    args = parser.parse_args()
    if args.check is not None:
        generate(args.check)
    else:
        generate(ROOT)
    print("generated", file=sys.stderr)


if __name__ == "__main__":
    main()
