"""Benchmark 6: local orders from Postgres vs from a CSV file of the same rows.

    python -m bench.bench_local_orders_pg [--quick] [--sizes 1000000,10000000] [--runs 1]
                                          [--pg-url postgresql://...]

Without --pg-url (or ESIM_RECON_TEST_PG_URL) it starts a throwaway cluster with
`.ci/pg-cluster` and stops it at the end. For each size the parent fills `esim_orders` on the
server (generate_series: about 1 % of rows invalid, 0.5 % duplicates) and writes the same rows,
as Postgres prints them, to a CSV file. Each measured thing is the real `local_orders` asset
(`dg.materialize`) into a fresh DuckDB file, in a fresh child process: its own time from the
materialize call to the result (rows/s over the query's rows) and the child's peak RSS
(os.wait4). `--quick` is 100k rows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._measure import (
    PROJECT_ROOT,
    emit,
    figure,
    measure,
    median,
    python,
    write_results,
)

NAME = "bench_local_orders_pg"
CLUSTER = PROJECT_ROOT / ".ci" / "pg-cluster"

FILL_SQL = """
INSERT INTO esim_orders (provider, order_no, iccid, package_code, status, amount, currency,
                         created_at)
SELECT
    CASE WHEN g % 2 = 0 THEN 'esimtrade' ELSE 'pressone' END,
    CASE WHEN g % 2 = 0 THEN 'B' || lpad(g::text, 14, '0')
         ELSE '20260101-' || lpad(g::text, 8, '0') END,
    CASE WHEN g % 10 = 0 THEN NULL ELSE '8948' || lpad(g::text, 15, '0') END,
    'PKG-' || (g % 50),
    (ARRAY['active', 'ready', 'depleted', 'expired', 'cancelled'])[1 + g % 5],
    CASE WHEN g % 100 = 7 THEN -1 ELSE round((g % 2000) / 100.0 + 0.5, 2) END,
    CASE WHEN g % 100 = 13 THEN 'EUR' ELSE 'USD' END,
    timestamptz '2026-01-01 00:00:00+00' + (g % 86400) * interval '1 minute'
FROM generate_series(1, $1::bigint) AS g
"""
DUPLICATES_SQL = """
INSERT INTO esim_orders (provider, order_no, iccid, package_code, status, amount, currency,
                         created_at)
SELECT provider, order_no, iccid, package_code, status, amount, currency, created_at
FROM esim_orders WHERE iccid IS NOT NULL AND id % 200 = 1
"""
TABLE_SQL = """
CREATE TABLE esim_orders (
    id bigserial PRIMARY KEY, provider text NOT NULL, order_no text NOT NULL, iccid text,
    package_code text, status text, amount numeric(12, 4), currency text, created_at timestamptz
)
"""
QUERY = "select * from esim_orders order by id"
CSV_QUERY = (
    "select provider, order_no, coalesce(iccid, '') as iccid, package_code, status,"
    " amount::text as amount, currency, created_at::text as created_at from esim_orders order by id"
)


# --- children -------------------------------------------------------------------------------


def _child_load(location: str, db: Path, query: str | None) -> None:
    import dagster as dg

    from assets.raw import local_orders
    from pipelines.resources import LocalOrdersResource, WarehouseResource

    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [local_orders],
            resources={
                "warehouse": WarehouseResource(database=str(db)),
                "local_orders_file": LocalOrdersResource(path=location, query=query),
            },
            instance=instance,
            raise_on_error=True,
        )
    work = time.perf_counter() - started
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    emit(
        {
            "work_s": work,
            "accepted": metadata["dagster/row_count"],
            "rejected": metadata["rejected_rows"],
            "reasons": metadata["rejected_reasons"],
        }
    )


# --- the parent ------------------------------------------------------------------------------


def _fill(admin_url: str, rows: int, csv_path: Path | None) -> int:
    import adbc_driver_postgresql.dbapi as adbc_postgres
    import pyarrow.csv as pa_csv

    with adbc_postgres.connect(admin_url, autocommit=True) as con, con.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS esim_orders")
        cursor.execute(TABLE_SQL)
        cursor.execute(FILL_SQL, parameters=(rows,))
        cursor.execute(DUPLICATES_SQL)
        cursor.execute("ANALYZE esim_orders")
        if csv_path is not None:
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.execute(CSV_QUERY)
            reader = cursor.fetch_record_batch()
            with pa_csv.CSVWriter(str(csv_path), reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
        cursor.execute("SELECT count(*) FROM esim_orders")
        (total,) = cursor.fetchone()
    return int(total)


def _start_cluster() -> tuple[str, str]:
    started = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True, check=True)
    values = dict(line.split("=", 1) for line in started.stdout.split() if "=" in line)
    return values["ESIM_RECON_TEST_PG_URL"], values["ESIM_RECON_TEST_PG_DIR"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_local_orders_pg")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--runs", type=int, default=1)
    # The CSV path holds every row in Python (about 3.5 GB per million rows): above this size
    # only the database is measured.
    parser.add_argument("--skip-csv-above", type=int, default=2_000_000)
    parser.add_argument("--pg-url", default=os.environ.get("ESIM_RECON_TEST_PG_URL"))
    parser.add_argument("--child", nargs=3, metavar=("LOCATION", "DB", "QUERY"))
    options = parser.parse_args(argv)
    if options.child:
        location, db, query = options.child
        _child_load(location, Path(db), query or None)
        return 0

    sizes = [100_000] if options.quick else [int(s) for s in options.sizes.split(",")]
    cluster_dir = None
    admin_url = options.pg_url
    if not admin_url:
        admin_url, cluster_dir = _start_cluster()
    figures: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as scratch:
            folder = Path(scratch)
            for size in sizes:
                csv_path = folder / f"local_{size}.csv"
                began = time.perf_counter()
                with_csv = size <= options.skip_csv_above
                total = _fill(admin_url, size, csv_path if with_csv else None)
                print(f"{size}: {total} rows filled in {time.perf_counter() - began:.0f} s")
                sources = [("postgres", admin_url, QUERY)]
                if with_csv:
                    sources.append(("csv", str(csv_path), ""))
                for source, location, query in sources:
                    measured_runs = []
                    for attempt in range(options.runs):
                        db = folder / f"{source}_{size}_{attempt}.duckdb"
                        load_before = os.getloadavg()
                        result = measure(
                            [
                                python(),
                                "-m",
                                "bench.bench_local_orders_pg",
                                "--child",
                                location,
                                str(db),
                                query,
                            ]
                        )
                        if result.returncode != 0:
                            print(result.stderr_tail, file=sys.stderr)
                            return 1
                        db.unlink(missing_ok=True)
                        run = {
                            "source": source,
                            "rows": total,
                            "work_s": result.report["work_s"],
                            "wall_s": result.wall_s,
                            "peak_rss_mb": result.peak_rss_mb,
                            "accepted": result.report["accepted"],
                            "rejected": result.report["rejected"],
                            "reasons": result.report["reasons"],
                            "load_before": load_before,
                            "load_after": os.getloadavg(),
                        }
                        print(run, flush=True)
                        runs.append(run)
                        measured_runs.append(run)
                    work = median([r["work_s"] for r in measured_runs])
                    rss = median([r["peak_rss_mb"] for r in measured_runs])
                    figures.append(
                        figure(f"{source} {size:,} rows: rows/s", total / work, "rows/s", "", None)
                    )
                    figures.append(figure(f"{source} {size:,} rows: peak RSS", rss, "MB", "", None))
    finally:
        if cluster_dir:
            subprocess.run([str(CLUSTER), "stop", cluster_dir], check=False)
    write_results(NAME, figures, runs, quick=options.quick, sizes=sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
