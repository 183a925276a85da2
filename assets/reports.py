"""The report exports: CSV and Parquet files of the report relations, written atomically, and
the charts (PNG and a self-contained HTML page) beside them."""

from pathlib import Path

import dagster as dg

from pipelines.charts import write_charts
from pipelines.exports import EXPORTS, write_exports
from pipelines.resources import ExportsResource, WarehouseResource


@dg.asset(
    key=dg.AssetKey("report_exports"),
    # The charts read usage_daily and discrepancy_history; discrepancies depends on the latter.
    deps=[dg.AssetKey(name) for name in EXPORTS],
    group_name="reports",
    kinds={"duckdb", "csv", "parquet"},
    pool="duckdb",
    description=(
        f"CSV and Parquet files of the reports ({', '.join(EXPORTS)}) in "
        "ESIM_RECON_EXPORT_DIR (default exports/), with the charts beside them: "
        "usage_daily.png (bytes per day per package), discrepancy_trend.png (open findings "
        "per type by run), money_trend.png (open money at risk per direction by run) and "
        "charts.html (the charts with their data)."
    ),
)
def report_exports(warehouse: WarehouseResource, exports: ExportsResource) -> dg.MaterializeResult:
    folder = Path(exports.directory)
    with warehouse.connect() as con:
        written = write_exports(con, folder)
        counts = {
            name: int(con.execute(f"select count(*) from {spec.relation}").fetchone()[0])
            for name, spec in EXPORTS.items()
        }
        charts = write_charts(con, folder)
    metadata: dict = {"export_dir": dg.MetadataValue.path(str(folder.resolve()))}
    metadata.update({f"rows/{name}": dg.MetadataValue.int(n) for name, n in counts.items()})
    metadata.update({f"file/{name}": dg.MetadataValue.path(str(p)) for name, p in written.items()})
    page = charts.html.resolve()
    metadata.update(
        {
            "charts": dg.MetadataValue.url(page.as_uri()),
            "chart/usage_daily": dg.MetadataValue.path(str(charts.usage_png.resolve())),
            "chart/discrepancy_trend": dg.MetadataValue.path(str(charts.trend_png.resolve())),
            "chart/money_trend": dg.MetadataValue.path(str(charts.money_png.resolve())),
            "charts_preview": dg.MetadataValue.md(
                "| chart | file | data points |\n|---|---|---|\n"
                f"| Data used per day, by package | `{charts.usage_png.name}` "
                f"| {charts.usage_rows} |\n"
                f"| Open findings per type, by run | `{charts.trend_png.name}` "
                f"| {charts.trend_rows} |\n"
                f"| Open money at risk per direction, by run | `{charts.money_png.name}` "
                f"| {charts.money_rows} |\n\n"
                f"Open `{page}` in a browser for the charts with their data."
            ),
        }
    )
    return dg.MaterializeResult(metadata=metadata)


report_assets = [report_exports]

__all__ = ["report_assets"]
