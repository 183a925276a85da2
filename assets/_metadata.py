"""Small helpers for what assets show in the Dagster UI."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table for metadata previews; pipes and line breaks in cells are escaped."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines.extend("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)
    return "\n".join(lines)


def stats_dict(stats: object) -> dict[str, Any]:
    """A client's or listing's counters (a dataclass) as JSON-ready metadata."""
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return {}
