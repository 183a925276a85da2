"""The report exports: CSV and Parquet files of the report relations, written atomically."""

from pathlib import Path

import dagster as dg

from pipelines.exports import EXPORTS, write_exports
from pipelines.resources import ExportsResource, WarehouseResource


@dg.asset(
    key=dg.AssetKey("report_exports"),
    deps=[dg.AssetKey(name) for name in EXPORTS],
    group_name="reports",
    kinds={"duckdb", "csv", "parquet"},
    pool="duckdb",
    description=(
        f"CSV and Parquet files of the reports ({', '.join(EXPORTS)}) in "
        "ESIM_RECON_EXPORT_DIR (default exports/)."
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
    metadata: dict = {"export_dir": dg.MetadataValue.path(str(folder.resolve()))}
    metadata.update({f"rows/{name}": dg.MetadataValue.int(n) for name, n in counts.items()})
    metadata.update({f"file/{name}": dg.MetadataValue.path(str(p)) for name, p in written.items()})
    return dg.MaterializeResult(metadata=metadata)


report_assets = [report_exports]

__all__ = ["report_assets"]
