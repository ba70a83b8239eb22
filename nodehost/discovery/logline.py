"""Log lines that repeat while a condition lasts, said once and then at a bounded rate.

Rule: a line on a topic is logged when it differs from the last one on that topic, or
when `every` seconds have passed since; so a node waiting for minutes says why without
flooding its log.
"""

from __future__ import annotations

import logging
import time

REPEAT_SECONDS = 10.0


class Repeats:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._said: dict[str, tuple[str, float]] = {}  # topic -> (last key, when)

    def say(
        self,
        topic: str,
        level: int,
        line: str,
        *,
        key: str | None = None,
        every: float = REPEAT_SECONDS,
    ) -> None:
        """Log `line` unless the same `key` (default: the line) was said on `topic`
        less than `every` seconds ago."""
        now = time.monotonic()
        key = line if key is None else key
        last = self._said.get(topic)
        if last is not None and last[0] == key and now - last[1] < every:
            return
        self._said[topic] = (key, now)
        self.log.log(level, "%s", line)

    def forget(self, topic: str) -> None:
        """The next line on `topic` is logged whatever it is."""
        self._said.pop(topic, None)
