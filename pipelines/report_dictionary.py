"""The README's "Report dictionary", rendered from the dbt docs of the report models.

    python -m pipelines.report_dictionary            # print the section
    python -m pipelines.report_dictionary --write    # rewrite it in README.md

The texts are the models' YAML descriptions in `sql/models/reports/`; dbt stores the same texts
in the database (`persist_docs`: COMMENT ON), so the README, DESCRIBE and the Dagster UI agree.
`tests/test_readme.py` fails when the README is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pipelines.sql_project import manifest_path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION_TITLE = "## Report dictionary"
SECTION_INTRO = (
    "Generated from the dbt docs of the report models (`python -m pipelines.report_dictionary "
    "--write`).\nThe same text is stored in the database (`COMMENT ON`), so `duckdb`'s "
    "`DESCRIBE` and the\nDagster UI show it too.\n"
)
# The contract's relations lead the dictionary; the other reports follow by name.
CONTRACT_REPORTS: tuple[str, ...] = ("reconciliation", "discrepancies", "usage", "money_at_risk")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def report_models(manifest: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The manifest nodes of the models in schema `reports`, contract relations first."""
    data = manifest or json.loads(manifest_path().read_text(encoding="utf-8"))
    models = [
        node
        for node in data["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "reports"
    ]
    return sorted(
        models,
        key=lambda node: (
            CONTRACT_REPORTS.index(node["name"])
            if node["name"] in CONTRACT_REPORTS
            else len(CONTRACT_REPORTS),
            node["name"],
        ),
    )


def report_dictionary_markdown(manifest: dict[str, Any] | None = None) -> str:
    """A Markdown section per report relation: its description and a column table."""
    parts: list[str] = []
    for node in report_models(manifest):
        parts.append(f"### `{node['schema']}.{node['name']}`\n")
        parts.append(f"{_cell(node['description'])}\n")
        parts.append("| column | meaning |")
        parts.append("|---|---|")
        parts.extend(
            f"| `{name}` | {_cell(column.get('description') or '')} |"
            for name, column in node["columns"].items()
        )
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def readme_section() -> str:
    return f"{SECTION_TITLE}\n\n{SECTION_INTRO}\n{report_dictionary_markdown()}"


def rewrite_readme(readme: Path = README) -> bool:
    """Replace the section in `readme`; True when the file changed."""
    text = readme.read_text(encoding="utf-8")
    start = text.find(f"\n{SECTION_TITLE}\n")
    if start == -1:
        raise SystemExit(f"{readme}: no '{SECTION_TITLE}' section to replace")
    end = text.find("\n## ", start + 1)
    tail = text[end:] if end != -1 else ""
    updated = text[: start + 1] + readme_section() + tail
    if updated == text:
        return False
    readme.write_text(updated, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the section in README.md")
    args = parser.parse_args(argv)
    if args.write:
        changed = rewrite_readme()
        print(f"{README}: {'updated' if changed else 'already up to date'}")
    else:
        sys.stdout.write(readme_section())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
