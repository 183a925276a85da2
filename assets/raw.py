"""Ingestion: providers and the local file → append-only raw tables.

Each asset fetches through a provider client (which knows nothing of Dagster or DuckDB), maps
the typed records to raw rows and appends them in batches (see `assets/_ingest.py`). Which
orders to sync is decided by the queries in `sql/planning/`.
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import polars as pl

from assets._ingest import Load, Row, to_json
from assets._metadata import markdown_table, stats_dict
from pipelines.local_orders import LocalOrdersError, read_local_orders
from pipelines.models import build as build_models
from pipelines.providers import (
    ESIMTradeListedOrder,
    ESIMTradeSyncResult,
    Page,
    PressOneOrder,
    PressOneUsageResult,
    ProviderError,
    deadline_in,
)
from pipelines.resources import (
    ESIMTradeResource,
    LocalOrdersResource,
    PressOneResource,
    RunOptionsResource,
    WarehouseResource,
)
from pipelines.warehouse import append_rows

PLANNING_DIR = Path(__file__).resolve().parents[1] / "sql" / "planning"
INGEST_GROUP = "ingest"
POOL = "duckdb"
_COMMON = {"group_name": INGEST_GROUP, "pool": POOL, "owners": ["team:data"]}


class _Outcome(Protocol):
    outcome: str


def _plan(warehouse: WarehouseResource, name: str, *, full: bool) -> pl.DataFrame:
    """Run a planning query from sql/planning: SQL decides what to fetch."""
    with warehouse.connect() as con:
        build_models(con, ["canonical_status_map", "canonical_states"])
        sql = (PLANNING_DIR / f"{name}.sql").read_text(encoding="utf-8")
        result = pl.from_arrow(con.sql(sql, params={"full": full}).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def _ingest_list(
    load: Load,
    open_client: Callable[[], AbstractAsyncContextManager[Any]],
    to_rows: Callable[[str, Any], list[Row]],
) -> dg.MaterializeResult:
    """Page a provider's order list into `load.table`; complete only once the walk ended."""

    async def fetch() -> Any:
        async with open_client() as client:
            listing = client.iter_orders()
            await load.drain(to_rows(load.run_id, page) async for page in listing)
            return listing.stats

    try:
        stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise load.failure(exc) from None
    load.log("complete")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": load.rows_written,
            "paging": dg.MetadataValue.json(stats_dict(stats)),
        }
    )


def _ingest_snapshots(
    load: Load,
    plan: pl.DataFrame,
    run_options: RunOptionsResource,
    *,
    key_column: str,
    open_client: Callable[[], AbstractAsyncContextManager[Any]],
    # (client, keys, start_by): the results of the keys started before start_by.
    request_many: Callable[[Any, list[str], float | None], AsyncIterator[_Outcome]],
    to_rows: Callable[[_Outcome], list[Row]],
    noun: str,
) -> dg.MaterializeResult:
    """Fetch one snapshot per planned key (most useful first, within the run's budgets: at
    most `sync_budget` keys, none started after `sync_seconds`). Keys not reached are logged
    as a partial load; the plan puts them first next time (never attempted)."""
    todo = plan if run_options.sync_budget is None else plan.head(run_options.sync_budget)
    outcomes: Counter[str] = Counter()

    async def fetch() -> Any:
        start_by = deadline_in(run_options.sync_seconds) if run_options.sync_seconds else None
        async with open_client() as client:

            async def rows() -> AsyncIterator[list[Row]]:
                async for result in request_many(client, todo[key_column].to_list(), start_by):
                    outcomes[result.outcome] += 1
                    yield to_rows(result)

            await load.drain(rows())
            return client.stats

    began = time.monotonic()
    try:
        stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise load.failure(exc) from None
    done = sum(outcomes.values())
    load.log(
        "complete" if done == plan.height else "partial",
        requests=done,
        detail=to_json(outcomes),
    )
    if done < plan.height:
        load.context.log.info(
            f"run budget reached: {plan.height - done} {noun} left for the next run "
            "(it does them first)"
        )
    if outcomes["failed"]:
        load.context.log.warning(f"{outcomes['failed']} {noun} failed after retries")
    return dg.MaterializeResult(
        metadata={
            "planned": plan.height,
            "requested": done,
            "left_for_next_run": plan.height - done,
            "outcomes": dg.MetadataValue.json(dict(outcomes)),
            "dagster/row_count": load.rows_written,
            "seconds": round(time.monotonic() - began, 2),
            "client": dg.MetadataValue.json(stats_dict(stats)),
        }
    )


# --- local orders -------------------------------------------------------------------------


@dg.asset(
    **_COMMON,
    kinds={"duckdb", "csv"},
    tags={"layer": "raw"},
    description=(
        "The reseller's own order records (ESIM_RECON_LOCAL_ORDERS), loaded whole each run into "
        "raw.local_orders; rows that fail validation go to raw.local_orders_rejected with the "
        "line number and the reason."
    ),
)
def local_orders(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    local_orders_file: LocalOrdersResource,
) -> dg.MaterializeResult:
    if not local_orders_file.path:
        raise dg.Failure(description="ESIM_RECON_LOCAL_ORDERS is not set")
    load = Load(context, warehouse, table="raw.local_orders", provider=None)
    try:
        parsed = read_local_orders(local_orders_file.path)
    except (LocalOrdersError, OSError) as exc:
        raise dg.Failure(description=f"local orders not loaded: {exc}") from None
    common = {
        "run_id": load.run_id,
        "loaded_at": load.started_at,
        "source_file": parsed.source_file,
    }
    with warehouse.connect() as con:
        # Accepted and rejected rows land together or not at all.
        append_rows(
            con,
            {
                "raw.local_orders": [common | row for row in parsed.accepted],
                "raw.local_orders_rejected": [common | row for row in parsed.rejected],
            },
        )
    load.rows_written = len(parsed.accepted)
    load.log("complete", detail=f"{len(parsed.rejected)} rejected")
    if parsed.rejected:
        context.log.warning(
            f"{len(parsed.rejected)} local row(s) rejected: {parsed.rejected_reasons}; "
            "see raw.local_orders_rejected"
        )
    preview = [(row["line_no"], row["reason"]) for row in parsed.rejected[:10]]
    return dg.MaterializeResult(
        metadata={
            "source_file": parsed.source_file,
            "dagster/row_count": len(parsed.accepted),
            "rejected_rows": len(parsed.rejected),
            "rejected_reasons": dg.MetadataValue.json(parsed.rejected_reasons),
            "extra_columns_ignored": ", ".join(parsed.extra_columns) or "none",
            "iccid_check_digit_warnings": parsed.luhn_warnings,
            "rejected_preview": dg.MetadataValue.md(
                markdown_table(["line_no", "reason"], preview) if preview else "_none_"
            ),
        }
    )


# --- eSIMTrade ----------------------------------------------------------------------------


def _esimtrade_order_rows(run_id: str, page: Page[ESIMTradeListedOrder]) -> list[Row]:
    return [
        {
            "run_id": run_id,
            "fetched_at": page.fetched_at,
            "source_endpoint": page.source_endpoint,
            "provider": "esimtrade",
            "provider_order_no": order.provider_order_no,
            "status": order.status,
            "package_code": order.package_code,
            "quantity": order.quantity,
            "cost_price": order.cost_price,
            "sell_price": order.sell_price,
            "page": page.number,
            "payload": to_json(order.raw),
        }
        for order in page.items
    ]


@dg.asset(
    **_COMMON,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "esimtrade"},
    description=(
        "eSIMTrade's stored copy of the reseller's orders (GET /reseller/orders), paged "
        "drift-safely and appended to raw.esimtrade_orders."
    ),
)
def esimtrade_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, esimtrade: ESIMTradeResource
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.esimtrade_orders", provider="esimtrade")
    if not esimtrade.enabled:
        return load.skipped("ESIMTRADE_BASE_URL")
    return _ingest_list(load, esimtrade.client, _esimtrade_order_rows)


def _sync_rows(run_id: str, result: ESIMTradeSyncResult) -> list[Row]:
    base = {
        "run_id": run_id,
        "fetched_at": result.fetched_at,
        "source_endpoint": "/portal/orders",
        "provider": "esimtrade",
        "requested_order_no": result.requested if result.requested_by == "orderno" else None,
        "requested_iccid": result.requested if result.requested_by == "iccid" else None,
        "http_status": result.http_status,
    }
    if result.outcome == "ok" and result.esims:
        return [
            base
            | {
                "outcome": "ok",
                "esim_tran_no": esim.esim_tran_no,
                "order_no": esim.order_no,
                "iccid": esim.iccid,
                "esim_status": esim.esim_status,
                "smdp_status": esim.smdp_status,
                "total_volume": esim.total_volume,
                "order_usage": esim.order_usage,
                "package_code": esim.package_code,
                "payload": to_json(esim.raw),
            }
            for esim in result.esims
        ]
    if result.outcome == "ok":  # a 200 that held no eSIM cannot be reconciled
        return [base | {"outcome": "failed", "error": "the answer held no eSIM"}]
    error_body = to_json(result.error_body) if result.error_body is not None else None
    return [base | {"outcome": result.outcome, "error": result.error, "payload": error_body}]


@dg.asset(
    **_COMMON,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "esimtrade"},
    deps=[local_orders, esimtrade_orders],
    description=(
        "Live per-order syncs (GET /portal/orders?orderno=) of every eSIMTrade order known "
        "locally or from the stored list, as planned by sql/planning/esimtrade_sync_plan.sql. "
        "Every answer is kept as a snapshot in raw.esimtrade_order_syncs: 404s as not_found, "
        "requests that failed after retries as failed."
    ),
)
def esimtrade_order_syncs(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    esimtrade: ESIMTradeResource,
    run_options: RunOptionsResource,
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.esimtrade_order_syncs", provider="esimtrade")
    if not esimtrade.enabled:
        return load.skipped("ESIMTRADE_BASE_URL")
    plan = _plan(warehouse, "esimtrade_sync_plan", full=run_options.full_sync)
    return _ingest_snapshots(
        load,
        plan,
        run_options,
        key_column="order_no",
        open_client=esimtrade.client,
        request_many=lambda client, order_nos, start_by: client.sync_many(
            order_nos, start_by=start_by
        ),
        to_rows=lambda result: _sync_rows(load.run_id, result),
        noun="eSIMTrade sync(s)",
    )


# --- PressOne -----------------------------------------------------------------------------


def _pressone_order_rows(run_id: str, page: Page[PressOneOrder]) -> list[Row]:
    rows: list[Row] = []
    for order in page.items:
        base = {
            "run_id": run_id,
            "fetched_at": page.fetched_at,
            "source_endpoint": page.source_endpoint,
            "provider": "pressone",
            "order_id": order.id,
            "order_code": order.code,
            "order_type": order.type,
            "order_status": order.status_slug,
            "created_at": order.created_at,
            "package_id": order.package_id,
            "quantity": order.quantity,
            "price": order.price,
            "currency": order.currency,
            "payload": to_json(order.raw),
        }
        # An order without sims (e.g. failed) is still one row, so it is known to exist.
        rows.extend(
            base | {"sim_id": sim.id, "sim_index": index, "iccid": sim.iccid}
            for index, sim in enumerate(order.sims)
        )
        if not order.sims:
            rows.append(base)
    return rows


@dg.asset(
    **_COMMON,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "pressone"},
    description=(
        "PressOne's order list (GET /customer/v2/orders?include=sims,status), paged drift-safely; "
        "sims flattened to one row per eSIM in raw.pressone_orders."
    ),
)
def pressone_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, pressone: PressOneResource
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.pressone_orders", provider="pressone")
    if not pressone.enabled:
        return load.skipped("PRESSONE_BASE_URL")
    return _ingest_list(load, pressone.client, _pressone_order_rows)


def _usage_rows(
    run_id: str, order_code_of: dict[str, str], result: PressOneUsageResult
) -> list[Row]:
    usage = result.usage
    row = {
        "run_id": run_id,
        "fetched_at": result.fetched_at,
        "source_endpoint": "/customer/v2/sims/{iccid}/usage",
        "provider": "pressone",
        "iccid": result.iccid,
        "order_code": order_code_of.get(result.iccid),
        "outcome": result.outcome,
        "http_status": result.http_status,
        "error": result.error,
    }
    if usage is not None:
        row |= {
            "usage_status": usage.status,
            "total_mb": usage.total,
            "remaining_mb": usage.remaining,
            "is_unlimited": usage.is_unlimited,
            "expired_at": usage.expired_at,
            "payload": to_json(usage.raw),
        }
    return [row]


@dg.asset(
    **_COMMON,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "pressone"},
    deps=[pressone_orders],
    description=(
        "Usage of every PressOne eSIM (GET /customer/v2/sims/{iccid}/usage), planned by "
        "sql/planning/pressone_usage_plan.sql; every answer kept as a snapshot in "
        "raw.pressone_usage (megabytes as sent)."
    ),
)
def pressone_usage(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    pressone: PressOneResource,
    run_options: RunOptionsResource,
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.pressone_usage", provider="pressone")
    if not pressone.enabled:
        return load.skipped("PRESSONE_BASE_URL")
    plan = _plan(warehouse, "pressone_usage_plan", full=run_options.full_sync)
    # Usage is asked per ICCID; the plan says which order each ICCID was asked for.
    order_code_of = dict(zip(plan["iccid"].to_list(), plan["order_code"].to_list(), strict=True))
    return _ingest_snapshots(
        load,
        plan,
        run_options,
        key_column="iccid",
        open_client=pressone.client,
        request_many=lambda client, iccids, start_by: client.usage_many(iccids, start_by=start_by),
        to_rows=lambda result: _usage_rows(load.run_id, order_code_of, result),
        noun="PressOne usage request(s)",
    )


raw_assets = [
    local_orders,
    esimtrade_orders,
    esimtrade_order_syncs,
    pressone_orders,
    pressone_usage,
]
