"""Tables and formats for example-microctl: table (boxed, as LXD's), csv, json, yaml.

Rules: rows are sorted naturally (mc2 before mc10); json and yaml carry the full
records, the table and csv only the listed columns; values print as str(), NULL as "".
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

FORMATS = ("table", "csv", "json", "yaml")


def natural_key(row: Sequence[str]) -> list[Any]:
    return [
        [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", cell)] for cell in row
    ]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], *(len(line) for line in cell.split("\n")))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [
        rule,
        "|" + "|".join(f" {h.center(w)} " for h, w in zip(header, widths, strict=True)) + "|",
        rule,
    ]
    for row in rows:
        cells = [cell.split("\n") for cell in row]
        height = max((len(c) for c in cells), default=1)
        for line in range(height):
            parts = [
                f" {(c[line] if line < len(c) else '').ljust(w)} "
                for c, w in zip(cells, widths, strict=True)
            ]
            lines.append("|" + "|".join(parts) + "|")
    if rows:
        lines.append(rule)
    return "\n".join(lines) + "\n"


def render(
    form: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    records: Any,
    *,
    sort: bool = True,
) -> str:
    ordered = sorted(rows, key=natural_key) if sort else list(rows)
    if form == "table":
        return table(header, ordered)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(ordered)
        return buffer.getvalue()
    if form == "json":
        return json.dumps(records, indent=2) + "\n"
    if form == "yaml":
        return str(yaml.dump(records, Dumper=_BlockDumper, sort_keys=False))
    raise ValueError(f"unknown format {form!r}")


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (certificates) as literal blocks."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"blob"}:
        return f"x'{value['blob']}'"
    return str(value)
