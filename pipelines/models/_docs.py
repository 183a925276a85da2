"""The report dictionary, rendered from the column lines of the `sql/reports/` model headers.

The same texts become `COMMENT ON COLUMN` in the database, so the README's dictionary and the
catalogue cannot drift apart.
"""

from __future__ import annotations

from pipelines.models._project import Project, project

# The contract's twelve discrepancy codes, fixed.
DISCREPANCY_TYPES: tuple[str, ...] = (
    "missing_at_provider",
    "missing_locally",
    "status_mismatch",
    "iccid_mismatch",
    "package_mismatch",
    "amount_mismatch",
    "usage_exceeds_volume",
    "duplicate_iccid",
    "invalid_iccid",
    "sync_failed",
    "invalid_transition",
    "usage_regression",
)
SEVERITIES: tuple[str, ...] = ("critical", "warning")

# The contract's relations lead the dictionary; the other reports follow by name.
_CONTRACT_REPORTS: tuple[str, ...] = ("reconciliation", "discrepancies", "usage", "money_at_risk")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_dictionary_markdown(project_: Project | None = None) -> str:
    """A Markdown section per report relation: its description and a column table."""
    proj = project_ or project()
    parts: list[str] = []
    reports = sorted(
        proj.in_layer("reports"),
        key=lambda m: (
            _CONTRACT_REPORTS.index(m.name)
            if m.name in _CONTRACT_REPORTS
            else len(_CONTRACT_REPORTS),
            m.name,
        ),
    )
    for model in reports:
        parts.append(f"### `{model.relation}`\n")
        parts.append(f"{model.description}\n")
        parts.append("| column | meaning |")
        parts.append("|---|---|")
        parts.extend(f"| `{name}` | {_cell(text)} |" for name, text in model.columns.items())
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
