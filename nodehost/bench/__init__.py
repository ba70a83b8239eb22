"""The project's benchmark tooling, shared by every benchmark it ships.

`example-benchmark`, the comparison with etcd and dqlite, `scripts/bench_*.py`,
`examples/kvstore/bench.py` and the test suite's own benchmarks all start, watch and
report through these modules, so a figure means the same thing in each of them:

- `ports`: free loopback ports, picked by the kernel.
- `processes`: workers started in their own session and stopped by their PID
  (politely, then SIGTERM, then SIGKILL, every wait bounded), on success, on error
  and on Ctrl-C.
- `sampling`: CPU over a window and resident memory (now and peak) of any PID.
- `histogram`: a log-bucket latency histogram, mergeable across processes.
- `disk`: the data directory's raw sync rate, measured before a run.
- `ceilings`: this machine kind's raw ceilings (docs/limits.md), printed beside figures.
- `report`: the machine's description, tables and ratios.

Rules: nothing here imports the rest of `nodehost` (a benchmark of any layer may use
it without pulling in the host), and nothing here is part of the library's API
contract: it changes with the benchmarks.
"""

from nodehost.bench.histogram import Histogram
from nodehost.bench.ports import free_port, free_port_pairs, free_ports
from nodehost.bench.processes import Workers, stop_children
from nodehost.bench.sampling import (
    CpuWindow,
    Watch,
    own_cpu_seconds,
    own_peak_rss_mib,
    peak_rss_mib,
    rss_mib,
)

__all__ = [
    "CpuWindow",
    "Histogram",
    "Watch",
    "Workers",
    "free_port",
    "free_port_pairs",
    "free_ports",
    "own_cpu_seconds",
    "own_peak_rss_mib",
    "peak_rss_mib",
    "rss_mib",
    "stop_children",
]
