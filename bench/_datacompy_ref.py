"""The datacompy reference: `PolarsCompare` of the models benchmark's two tables.

Runs in its own environment (datacompy 1.1 needs polars < 1.45, the project uses polars 2), so
it imports nothing from the project: `python _datacompy_ref.py DB LOCAL_SQL PROVIDER_SQL`.
Prints one `BENCH-RESULT {json}` line like every benchmark child.
"""

from __future__ import annotations

import json
import sys
import time

import datacompy
import duckdb
import polars as pl


def main() -> None:
    db, local_sql, provider_sql = sys.argv[1:4]
    started = time.perf_counter()
    con = duckdb.connect(db, read_only=True)
    local = con.sql(local_sql).pl()
    provider = con.sql(provider_sql).pl()
    con.close()
    loaded = time.perf_counter()
    compare = datacompy.PolarsCompare(
        local,
        provider,
        join_columns=["provider", "order_no"],
        abs_tol=0.01,
        df1_name="local",
        df2_name="provider",
    )
    mismatches = {
        stats["column"]: int(stats["unequal_cnt"])
        for stats in compare.column_stats
        if stats["column"] not in ("provider", "order_no")
    }
    finished = time.perf_counter()
    report = {
        "work_s": finished - started,
        "load_s": loaded - started,
        "compare_s": finished - loaded,
        "datacompy": datacompy.__version__,
        "polars": pl.__version__,
        "local_only": compare.df1_unq_rows.height,
        "provider_only": compare.df2_unq_rows.height,
        "column_mismatches": mismatches,
    }
    print("BENCH-RESULT " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
