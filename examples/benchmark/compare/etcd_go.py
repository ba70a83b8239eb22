"""etcd's own Go client as the comparison's load generator, built where it can be.

etcdload/main.go speaks etcd_load.py's contract (a JSON LoadConfig in, one JSON report
out) on etcd's clientv3, so etcd is measured with the client its users run, not with a
Python one that spends more CPU per request than etcd does. It is built once per source
version, offline, in Go's GOPATH mode against Debian's golang-etcd-server-dev (the same
etcd version as the etcd-server it loads), and cached; where Go or that source is
missing, or the build fails, the comparison says so and uses the Python generator.

Rules: nothing is fetched from the network (GOPROXY=off, GOFLAGS cleared); the build
is bounded in time; the binary lives in the user's cache directory, named by the
source's hash, so an edited source is built again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("etcdload") / "main.go"
DEBIAN_GOPATH = Path("/usr/share/gocode")
BUILD_TIMEOUT = 600.0


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nodehost"


def go_loader() -> tuple[str | None, str]:
    """(path of the built generator, "") or (None, why it cannot be had)."""
    go = shutil.which("go")
    if go is None:
        return None, "go is not installed"
    if not (DEBIAN_GOPATH / "src" / "go.etcd.io" / "etcd" / "clientv3").is_dir():
        return None, "etcd's Go client source is not installed (golang-etcd-server-dev)"
    source = SOURCE.read_bytes()
    binary = cache_directory() / f"etcdload-{hashlib.sha256(source).hexdigest()[:16]}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return str(binary), ""
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="etcdload-build-") as gopath:
        package = Path(gopath) / "src" / "etcdload"
        package.mkdir(parents=True)
        (package / "main.go").write_bytes(source)
        partial = binary.with_suffix(".partial")
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{gopath}{os.pathsep}{DEBIAN_GOPATH}",
            "GOFLAGS": "",
            "GOPROXY": "off",
        }
        try:
            done = subprocess.run(
                [go, "build", "-o", str(partial), "."],
                cwd=package,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            return None, f"building the Go load generator took over {BUILD_TIMEOUT:.0f} s"
        if done.returncode:
            tail = " ".join(done.stderr.strip().splitlines()[-3:])
            return None, f"building the Go load generator failed: {tail}"
        partial.replace(binary)
    return str(binary), ""
