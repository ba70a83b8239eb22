"""`example-benchmark --compare-etcd / --compare-dqlite`: the library beside etcd and dqlite.

Both systems run on this machine in the same run, with the same number of requests
outstanding, alternately (a round runs the library, then the peer; the figure is the
median of the rounds), so other load on a shared machine falls on both. Every figure
carries the memory (peak RSS) and CPU of each process that produced it, the load
generators included, and the machine's raw ceilings are printed beside.

- `etcd_wire`: the few etcd v3 gRPC messages the load needs, encoded by hand.
- `etcd_cluster`: three etcd members on loopback ports, stopped by PID.
- `etcd_load`: the load generator process (Python grpc.aio, several processes).
- `dqlite`: `dqlite-demo` and `dqlite-benchmark` clusters and their sequential load.
- `run`: the rounds, the medians, the ratios and the report.
"""
