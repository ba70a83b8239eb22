"""One replica's Raft log: the saved part behind a `LogReader`, the recent part in memory.

Rules:
- `mem` holds entries [mem_offset, last_index()] in order, entry i at mem[i - mem_offset].
  Entries above `saved_to` exist only here and go out in the next Update. Entries at or
  below both `saved_to` and `applied` are trimmed from memory; reads of them go to the
  reader. So a leader usually serves its followers from memory.
- `committed` never decreases and never passes `last_index()`; `processed` (handed out
  for applying) <= `committed`. Overwriting a committed entry raises: that would break
  state machine safety (thesis 3.6.3), and a corrupt replica must stop, not guess.
- `snapshot` is a restored snapshot not yet saved; while it is set the log starts
  after it and the reader is not consulted.
- Sizes are `len(cmd) + ENTRY_OVERHEAD`, kept as running totals (`cum`) for a prefix
  of `mem`, so that a byte-bounded slice is a bisection, not a loop over entries. They
  are computed only when asked for (a leader slicing what it sends, the rate limiter):
  a follower that never leads never pays for them.
- `config_changes` lists the indices of CONFIG_CHANGE entries in the log that the
  protocol has not yet taken as committed; `mem_config_changes` those in `mem`.
  Truncation, trimming and restore keep both exact.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate, islice
from operator import add, attrgetter

from protos import raft_pb2 as pb

from .logreader import CompactedError, LogReader, UnavailableError
from .messages import ENTRY_OVERHEAD

CONFIG_CHANGE = pb.CONFIG_CHANGE
_CMD = attrgetter("cmd")
_TYPE = attrgetter("type")


class RaftLog:
    __slots__ = (
        "applied",
        "bytes_before",
        "committed",
        "config_changes",
        "cum",
        "mem",
        "mem_config_changes",
        "mem_offset",
        "processed",
        "reader",
        "saved_to",
        "snapshot",
    )

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self.snapshot: pb.Snapshot | None = None
        last = reader.last_index()
        self.mem: list[pb.Entry] = []
        self.cum: list[int] = []
        self.bytes_before = 0
        self.mem_offset = last + 1
        self.saved_to = last
        first = reader.snapshot().index
        self.committed = max(min(reader.state().commit, last), first)
        self.processed = first
        self.applied = first
        self.config_changes: list[int] = []
        self.mem_config_changes: list[int] = []
        # Entries at or below the snapshot are part of its membership already.
        index = max(reader.first_index(), first + 1)
        while index <= last:
            batch = reader.entries(index, last + 1, 8 * 1024 * 1024)
            self.config_changes.extend(e.index for e in batch if e.type == pb.CONFIG_CHANGE)
            index = batch[-1].index + 1

    # ------------------------------------------------------------------ reading

    def last_index(self) -> int:
        return self.mem_offset + len(self.mem) - 1

    def last_term(self) -> int:
        return self.term(self.mem_offset + len(self.mem) - 1)

    def first_index(self) -> int:
        """The first index whose entry can still be read."""
        if self.snapshot is not None:
            return self.snapshot.index + 1
        return min(self.mem_offset, self.reader.first_index())

    def term(self, index: int) -> int:
        k = index - self.mem_offset
        if k >= 0:
            if k < len(self.mem):
                return self.mem[k].term
            raise UnavailableError(index)
        ss = self.snapshot
        if ss is not None:
            if index == ss.index:
                return ss.term
            raise CompactedError(index)
        return self.reader.term(index)

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (CompactedError, UnavailableError):
            return False

    def entries(self, low: int, high: int, max_bytes: int) -> list[pb.Entry]:
        """Entries [low, high), at least one if any, stopping before max_bytes is passed."""
        if low >= high:
            return []
        off = self.mem_offset
        if high > off + len(self.mem):
            raise UnavailableError(high - 1)
        if low >= off:
            k0, k1 = low - off, high - off
            self._sized(k1)
            cum = self.cum
            base = cum[k0 - 1] if k0 > 0 else self.bytes_before
            k = bisect_right(cum, base + max_bytes, k0, k1)
            return self.mem[k0 : max(k, k0 + 1)]
        if self.snapshot is not None:
            raise CompactedError(low)
        stable = self.reader.entries(low, min(high, off), max_bytes)
        if high <= off or stable[-1].index < off - 1:
            return stable
        used = sum(len(e.cmd) + ENTRY_OVERHEAD for e in stable)
        self._sized(high - off)
        k = bisect_right(self.cum, self.bytes_before + max_bytes - used, 0, high - off)
        return stable + self.mem[:k]

    def _sized(self, k: int) -> None:
        """Make the running sizes cover mem[:k] (C iterators: this runs per entry)."""
        cum = self.cum
        n = len(cum)
        if n < k:
            base = cum[-1] if cum else self.bytes_before
            step = ENTRY_OVERHEAD
            cum.extend(
                map(
                    add,
                    accumulate(map(len, map(_CMD, islice(self.mem, n, k)))),
                    range(base + step, base + step * (k - n + 1), step),
                )
            )

    def may_have_config_change(self, low: int, high: int) -> bool:
        """Whether entries [low, high] might include a CONFIG_CHANGE (False: surely not)."""
        if low < self.mem_offset:
            return True
        changes = self.mem_config_changes
        k = bisect_left(changes, low)
        return k < len(changes) and changes[k] <= high

    def unsaved(self) -> list[pb.Entry]:
        return self.mem[self.saved_to + 1 - self.mem_offset :]

    def in_mem_bytes(self) -> int:
        if not self.mem:
            return 0
        self._sized(len(self.mem))
        return self.cum[-1] - self.bytes_before

    def up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (last_index, last_term) is at least as up to date as
        this one (thesis 3.6.1): the later last term wins, then the longer log."""
        term = self.last_term()
        return last_term > term or (last_term == term and last_index >= self.last_index())

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """(j, term of j) for the largest j <= index whose term is <= term; (j, 0) when
        the search reaches compacted entries.

        Both sides of a rejected REPLICATE use it to skip a whole run of entries of a
        term the other side does not have, instead of one entry per round trip.
        """
        index = min(index, self.last_index())
        while index > 0:
            try:
                found = self.term(index)
            except CompactedError:
                return index, 0
            if found <= term:
                return index, found
            index -= 1
        return 0, 0

    # ------------------------------------------------------------------ writing

    def append(self, entries: Sequence[pb.Entry], config_changes: bool | None = None) -> None:
        """Append entries that follow last_index() (already numbered).

        `config_changes` says whether any entry is a CONFIG_CHANGE, when the caller
        knows; otherwise the entries are scanned."""
        if config_changes is None:
            config_changes = CONFIG_CHANGE in map(_TYPE, entries)
        if config_changes:
            found = [e.index for e in entries if e.type == CONFIG_CHANGE]
            self.config_changes.extend(found)
            self.mem_config_changes.extend(found)
        self.mem.extend(entries)

    def append_after(
        self, prev_index: int, entries: list[pb.Entry], config_changes: bool | None = None
    ) -> int:
        """Append a leader's entries that follow prev_index (whose term matched).

        Entries already present are kept; the first conflicting one and everything
        after it are replaced (thesis 3.5). Returns the index of the last new entry.
        """
        if not entries:
            return prev_index
        last = self.last_index()
        if prev_index == last:
            self.append(entries, config_changes)
            return last + len(entries)
        for k, e in enumerate(entries):
            index = e.index
            if index > last:
                self.append(entries[k:], config_changes)
                break
            if self.term(index) != e.term:
                self._truncate(index)
                self.append(entries[k:], config_changes)
                break
        return prev_index + len(entries)

    def _truncate(self, index: int) -> None:
        """Drop entries from index on: a new leader's entries replace them."""
        if index <= self.committed:
            raise RuntimeError(
                f"log conflict at index {index} at or below the commit index {self.committed}: "
                "a committed entry would be overwritten"
            )
        k = index - self.mem_offset
        if k >= 0:
            del self.mem[k:]
            del self.cum[k:]
        else:
            # The conflict is in the saved part: memory restarts there. The reader
            # still holds the stale suffix until the new entries overwrite it.
            self.mem.clear()
            self.cum.clear()
            self.mem_offset = index
        self.saved_to = min(self.saved_to, index - 1)
        for changes in (self.config_changes, self.mem_config_changes):
            while changes and changes[-1] >= index:
                changes.pop()

    def commit_to(self, index: int) -> bool:
        if index <= self.committed:
            return False
        last = self.last_index()
        if index > last:
            raise RuntimeError(f"commit index {index} is past the last index {last}")
        self.committed = index
        return True

    def restore(self, snapshot: pb.Snapshot) -> None:
        """Restart the log after a snapshot received from the leader."""
        self.snapshot = snapshot
        self.mem.clear()
        self.cum.clear()
        self.config_changes.clear()
        self.mem_config_changes.clear()
        index = snapshot.index
        self.mem_offset = index + 1
        self.saved_to = index
        self.committed = index
        self.processed = index
        self.applied = index

    def committed_entries(self, max_bytes: int) -> list[pb.Entry]:
        """The next committed entries to apply, marked as handed out.

        Entries still in memory go out all at once (they are in memory already, and
        sizing them would cost a pass over each); only reads from the saved log, after
        a restart or a long lag, are cut at max_bytes."""
        low, high = self.processed + 1, self.committed + 1
        if low >= high:
            return []
        off = self.mem_offset
        if low >= off:
            out = self.mem[low - off : high - off]
        else:
            out = self.entries(low, high, max_bytes)
        self.processed = out[-1].index
        return out

    def saved(self, entries: list[pb.Entry]) -> int:
        """Record that `entries` (from one Update) are durable; returns the new saved_to.

        The log may have changed since the Update was made (a conflict truncated it): an
        entry counts as saved only if the log still holds it, same index, same term.
        """
        if not entries:
            return self.saved_to
        last = entries[-1]
        index = last.index
        if index > self.saved_to:
            k = index - self.mem_offset
            if 0 <= k < len(self.mem) and self.mem[k] is last:
                self.saved_to = index  # the same object: nothing replaced it
            else:
                for e in reversed(entries):
                    index = e.index
                    if index <= self.saved_to:
                        break
                    if self.match_term(index, e.term):
                        self.saved_to = index
                        break
        self.trim()
        return self.saved_to

    def snapshot_saved(self, snapshot: pb.Snapshot) -> None:
        if self.snapshot is snapshot:
            self.snapshot = None

    def applied_to(self, index: int) -> None:
        if index > self.applied:
            self.applied = index if index < self.processed else self.processed
            self.trim()

    def trim(self) -> None:
        upto = self.applied if self.applied < self.saved_to else self.saved_to
        k = upto - self.mem_offset + 1
        if k > 0:
            cum = self.cum
            if len(cum) >= k:
                self.bytes_before = cum[k - 1]
                del cum[:k]
            else:
                cum.clear()  # sizes are differences: any base will do
            del self.mem[:k]
            self.mem_offset += k
            changes = self.mem_config_changes
            while changes and changes[0] <= upto:
                changes.pop(0)
