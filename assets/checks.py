"""Asset checks beyond the SQL models' own.

- `report_exports:files_match_reports`: every CSV export exists and holds exactly the rows of
  its report relation.

Freshness of the provider feeds is not a check here: the four provider ingestion assets carry a
`FreshnessPolicy` (see `assets.raw.FEED_FRESHNESS`), evaluated by Dagster's freshness daemon.

Every report relation (`reports.*`) also carries the dbt tests declared beside its model
(`sql/models/reports/_reports.yml`, `sql/tests/`), which dagster-dbt turns into asset checks.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from assets._metadata import markdown_table
from pipelines.exports import EXPORTS
from pipelines.resources import ExportsResource, WarehouseResource


def _csv_rows(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Data rows of a CSV export, read as CSV (a quoted cell may hold a line break)."""
    row = con.execute(
        "select count(*) from read_csv($path, header = true, all_varchar = true)",
        {"path": str(path)},
    ).fetchone()
    return int(row[0]) if row else 0


@dg.asset_check(
    asset=dg.AssetKey("report_exports"),
    name="files_match_reports",
    description="Every CSV export exists and holds exactly as many rows as its report relation.",
)
def exports_match_reports(
    warehouse: WarehouseResource, exports: ExportsResource
) -> dg.AssetCheckResult:
    folder = Path(exports.directory)
    problems: list[tuple[str, str, int | str]] = []
    with warehouse.connect() as con:
        for name, spec in EXPORTS.items():
            row = con.execute(f"select count(*) from {spec.relation}").fetchone()
            expected = int(row[0]) if row else 0
            path = folder / f"{name}.csv"
            if not path.exists():
                problems.append((f"{name}.csv", "missing", expected))
                continue
            found = _csv_rows(con, path)
            if found != expected:
                problems.append((f"{name}.csv", f"{found} rows", expected))
    passed = not problems
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=None if passed else "exports out of step with the reports",
        metadata={}
        if passed
        else {
            "problems": dg.MetadataValue.md(
                markdown_table(["file", "found", "expected rows"], problems)
            )
        },
    )


report_checks = [exports_match_reports]
