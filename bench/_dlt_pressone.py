"""The dlt reference of benchmark 1: a dlt ``rest_api`` pipeline loading PressOne's order list
(``GET /customer/v2/orders?include=sims,status``, page-number paging up to ``meta.last_page``)
into DuckDB. Run as its own process; prints ``{"orders": N}``.

Environment: BENCH_PRESSONE_URL, BENCH_TOKEN, BENCH_DB, BENCH_PAGE_SIZE, DLT_DATA_DIR.
"""

from __future__ import annotations

import json
import os

import dlt
import duckdb
from dlt.sources.rest_api import rest_api_source


def main() -> None:
    source = rest_api_source(
        {
            "client": {
                "base_url": os.environ["BENCH_PRESSONE_URL"] + "/customer/v2/",
                "auth": {"type": "bearer", "token": os.environ["BENCH_TOKEN"]},
                "headers": {"Accept": "application/json"},
            },
            "resources": [
                {
                    "name": "orders",
                    "primary_key": "id",
                    "write_disposition": "append",
                    "endpoint": {
                        "path": "orders",
                        "params": {
                            "include": "sims,status",
                            "limit": int(os.environ["BENCH_PAGE_SIZE"]),
                        },
                        "data_selector": "data",
                        "paginator": {
                            "type": "page_number",
                            "base_page": 1,
                            "page_param": "page",
                            "total_path": "meta.last_page",
                        },
                    },
                }
            ],
        }
    )
    database = os.environ["BENCH_DB"]
    pipeline = dlt.pipeline(
        pipeline_name="bench_pressone",
        destination=dlt.destinations.duckdb(database),
        dataset_name="bench",
    )
    pipeline.run(source)
    con = duckdb.connect(database, read_only=True)
    try:
        row = con.execute("SELECT count(DISTINCT id) FROM bench.orders").fetchone()
    finally:
        con.close()
    print(json.dumps({"orders": row[0] if row else 0}))


if __name__ == "__main__":
    main()
