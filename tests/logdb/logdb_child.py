"""A writer process for crash tests: saves crash batches and reports each on stdout.

    python logdb_child.py PATH FIRST_BATCH SHARDS [LAST_BATCH] [--file-size-limit BYTES]

Prints "ready" once the store is open, then the number of every batch whose `save`
returned, flushed before the next batch starts. With LAST_BATCH it stops there with
os._exit, leaving the store unclosed (its write-ahead log unflushed).

With --file-size-limit no file may grow past BYTES (RLIMIT_FSIZE, the unprivileged
stand-in for a full disk): at the first failed save it prints "failed B", then
"refused" if the next save is refused too, closes the store and exits.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal

from logdb_support import crash_batch

from logdb import RocksLogDB, WriteError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("first", type=int)
    parser.add_argument("shards", type=int)
    parser.add_argument("last", type=int, nargs="?")
    parser.add_argument("--file-size-limit", type=int)
    args = parser.parse_args()
    if args.file_size_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.file_size_limit, hard))
    db = RocksLogDB(args.path, write_buffer_bytes=1 << 20)
    print("ready", flush=True)
    b = args.first
    while args.last is None or b <= args.last:
        try:
            db.save(crash_batch(b, args.shards))
        except WriteError:
            print("failed", b, flush=True)
            try:
                db.save(crash_batch(b, args.shards))
            except WriteError:
                print("refused", flush=True)
            db.close()
            return
        print(b, flush=True)
        b += 1
    os._exit(0)


if __name__ == "__main__":
    main()
