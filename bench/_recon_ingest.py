"""esim-recon's client and ingest as a process of its own, for benchmark 1: the body of the
``pressone_orders`` asset (``assets.raw._ingest_list`` with the asset's row mapping, batched
writes through ``assets._ingest.Load``) against a fresh DuckDB file, without the Dagster run
around it. Prints ``{"orders": N}``.

Environment: PRESSONE_BASE_URL, PRESSONE_CLIENT_ID, PRESSONE_CLIENT_SECRET, ESIM_RECON_DB.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from types import SimpleNamespace

import dagster as dg
import duckdb

from assets._ingest import Load
from assets.raw import _ingest_list, _pressone_order_rows
from pipelines.resources import PressOneResource, WarehouseResource


def main() -> None:
    database = os.environ["ESIM_RECON_DB"]
    warehouse = WarehouseResource(database=database)
    pressone = PressOneResource(
        base_url=os.environ["PRESSONE_BASE_URL"],
        client_id=os.environ["PRESSONE_CLIENT_ID"],
        client_secret=os.environ["PRESSONE_CLIENT_SECRET"],
    )
    # What Load reads of an asset's context: the run id, the asset key, a logger.
    context = SimpleNamespace(
        run=SimpleNamespace(run_id=f"bench-{uuid.uuid4()}"),
        asset_key=dg.AssetKey("pressone_orders"),
        log=logging.getLogger("bench"),
    )
    load = Load(context, warehouse, table="raw.pressone_orders", provider="pressone")  # type: ignore[arg-type]
    # The asset body of a run without a partition: the whole list, no window.
    _ingest_list(
        load,
        lambda client: client.iter_orders(),
        _pressone_order_rows,
        open_client=pressone.client,
        window=None,
        created_at=lambda order: order.created_at,
    )
    con = duckdb.connect(database, read_only=True)
    try:
        row = con.execute("SELECT count(DISTINCT order_id) FROM raw.pressone_orders").fetchone()
    finally:
        con.close()
    print(json.dumps({"orders": row[0] if row else 0}))


if __name__ == "__main__":
    main()
