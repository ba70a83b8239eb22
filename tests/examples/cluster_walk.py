"""The README's "Clustered daemons" section as a walk: which blocks, in which order.

test_readme_cluster.py runs them; test_readme.py's every-block check takes them through
`take_section` too, so a block added to the section without a step of the walk that
follows it fails that check, as in every other section.

Rules:
- The tutorial is one shell session (its commands share `$proc1` and `$token`): its sh
  blocks run in order in one bash, and each text block is what the sh block before it
  prints: its lines must appear, in order, in that block's output.
- In a transcript, the fingerprint of a certificate (64 hex digits) varies from run to
  run and matches any fingerprint; everything else is matched as readme_walk.py says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from readme_walk import Block, Readme, line_pattern

SECTION = "Clustered daemons: nodehost.cluster"
TUTORIAL = f"{SECTION} / Tutorial: three members"
OWN_DAEMON = f"{SECTION} / Your own daemon"
SHOWN = (2, 5, 6)  # the steps whose output the README shows
_FINGERPRINT = re.compile(r"\b[0-9a-f]{64}\b")


@dataclass
class Step:
    commands: Block  # sh
    shows: Block | None  # text: what the commands print, if the README shows it


@dataclass
class ClusterSection:
    tutorial: list[Step]
    daemon_code: Block  # python: notesd.py
    client_code: Block  # python: the client driving it


def take_section(readme: Readme) -> ClusterSection:
    """Take every block of the section, in the README's order."""
    steps = []
    for number in range(1, 8):  # the tutorial's numbered steps
        commands = readme.take("sh", TUTORIAL)
        shows = readme.take("text", TUTORIAL) if number in SHOWN else None
        steps.append(Step(commands, shows))
    daemon_code = readme.take("python", OWN_DAEMON)
    client_code = readme.take("python", OWN_DAEMON)
    left = readme.untaken(SECTION)
    assert not left, f"README blocks of {SECTION!r} the walk does not follow: {left}"
    return ClusterSection(steps, daemon_code, client_code)


def transcript_pattern(line: str) -> str:
    """The regex a transcript line of this section stands for."""
    return "[0-9a-f]{64}".join(line_pattern(part) for part in _FINGERPRINT.split(line))


def missing_lines(transcript: list[str], output: str) -> list[str]:
    """The transcript's lines that do not appear, in order, among the output's lines
    (a line that is only `...` stands for any lines)."""
    printed = output.splitlines()
    at = 0
    missing = []
    for line in transcript:
        if line.strip() == "...":
            continue
        pattern = re.compile(transcript_pattern(line))
        found = next((i for i in range(at, len(printed)) if pattern.fullmatch(printed[i])), None)
        if found is None:
            missing.append(line)
        else:
            at = found + 1
    return missing
