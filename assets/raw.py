"""Ingestion: providers and the local file → append-only raw tables.

Each asset fetches through a provider client (which knows nothing of Dagster or DuckDB), turns
records into Arrow-backed polars batches and appends them in one transaction per batch. A load
is marked `complete` in `raw.ingest_log` only after its last batch landed, so staging never
trusts a list that a crash cut short.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl

from pipelines.local_orders import LocalOrdersError, read_local_orders
from pipelines.models import build as build_models
from pipelines.providers import (
    AuthError,
    ESIMTradeListedOrder,
    ESIMTradeSyncResult,
    Page,
    PressOneOrder,
    PressOneUsageResult,
    ProviderError,
)
from pipelines.resources import (
    ESIMTradeResource,
    LocalOrdersResource,
    PressOneResource,
    RunOptionsResource,
    WarehouseResource,
)
from pipelines.warehouse import append_frames

PLANNING_DIR = Path(__file__).resolve().parents[1] / "sql" / "planning"
BATCH_ROWS = 5_000
INGEST_GROUP = "ingest"
POOL = "duckdb"

# Column types of each raw table, so an all-null batch column still lands with the right type.
_ESIMTRADE_ORDERS = {
    "run_id": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
    "source_endpoint": pl.String(),
    "provider": pl.String(),
    "provider_order_no": pl.String(),
    "status": pl.String(),
    "package_code": pl.String(),
    "quantity": pl.Int32(),
    "cost_price": pl.Decimal(18, 4),
    "sell_price": pl.Decimal(18, 4),
    "page": pl.Int32(),
    "payload": pl.String(),
}
_ESIMTRADE_SYNCS = {
    "run_id": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
    "source_endpoint": pl.String(),
    "provider": pl.String(),
    "requested_order_no": pl.String(),
    "requested_iccid": pl.String(),
    "outcome": pl.String(),
    "http_status": pl.Int32(),
    "error": pl.String(),
    "esim_tran_no": pl.String(),
    "order_no": pl.String(),
    "iccid": pl.String(),
    "esim_status": pl.String(),
    "smdp_status": pl.String(),
    "total_volume": pl.Int64(),
    "order_usage": pl.Int64(),
    "package_code": pl.String(),
    "payload": pl.String(),
}
_PRESSONE_ORDERS = {
    "run_id": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
    "source_endpoint": pl.String(),
    "provider": pl.String(),
    "order_id": pl.Int64(),
    "order_code": pl.String(),
    "order_type": pl.String(),
    "order_status": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "package_id": pl.String(),
    "quantity": pl.Int32(),
    "price": pl.Decimal(18, 4),
    "currency": pl.String(),
    "sim_id": pl.Int64(),
    "sim_index": pl.Int32(),
    "iccid": pl.String(),
    "payload": pl.String(),
}
_PRESSONE_USAGE = {
    "run_id": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
    "source_endpoint": pl.String(),
    "provider": pl.String(),
    "iccid": pl.String(),
    "order_code": pl.String(),
    "outcome": pl.String(),
    "http_status": pl.Int32(),
    "error": pl.String(),
    "usage_status": pl.String(),
    "total_mb": pl.Float64(),
    "remaining_mb": pl.Float64(),
    "is_unlimited": pl.Boolean(),
    "expired_at": pl.Datetime("us", "UTC"),
    "payload": pl.String(),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str, ensure_ascii=False)


def _frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def _log_ingest(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    asset: str,
    provider: str | None,
    started_at: datetime,
    status: str,
    rows_written: int,
    requests: int | None = None,
    detail: str | None = None,
) -> None:
    con.execute(
        "INSERT INTO raw.ingest_log (run_id, asset, provider, started_at, finished_at, status,"
        " rows_written, requests, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, asset, provider, started_at, _now(), status, rows_written, requests, detail],
    )


def _plan(con: duckdb.DuckDBPyConnection, name: str, *, full: bool) -> pl.DataFrame:
    """Run a planning query from sql/planning: SQL decides what to fetch."""
    build_models(con, ["canonical_status_map", "canonical_states"])
    sql = (PLANNING_DIR / f"{name}.sql").read_text(encoding="utf-8")
    result = pl.from_arrow(con.sql(sql, params={"full": full}).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def _markdown_preview(frame: pl.DataFrame, limit: int = 10) -> str:
    if frame.height == 0:
        return "_no rows_"
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        cells = ["" if cell is None else str(cell).replace("|", "\\|")[:60] for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _skipped(
    warehouse: WarehouseResource, context: dg.AssetExecutionContext, provider: str, variable: str
) -> dg.MaterializeResult:
    started_at = _now()
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset=context.asset_key.to_user_string(),
            provider=provider,
            started_at=started_at,
            status="skipped",
            rows_written=0,
            detail=f"{variable} not set",
        )
    context.log.info(f"{provider} is not configured ({variable} not set); nothing fetched")
    return dg.MaterializeResult(metadata={"skipped": f"{variable} not set", "rows": 0})


async def _write_batches(
    batches: AsyncIterator[list[dict[str, Any]]],
    write: Callable[[list[dict[str, Any]]], int],
) -> int:
    """Collect rows into batches of about BATCH_ROWS and hand each to `write`."""
    pending: list[dict[str, Any]] = []
    total = 0
    async for rows in batches:
        pending.extend(rows)
        if len(pending) >= BATCH_ROWS:
            total += write(pending)
            pending = []
    if pending:
        total += write(pending)
    return total


def _fail(
    warehouse: WarehouseResource,
    context: dg.AssetExecutionContext,
    provider: str,
    started_at: datetime,
    rows_written: int,
    exc: ProviderError,
) -> dg.Failure:
    asset = context.asset_key.to_user_string()
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset=asset,
            provider=provider,
            started_at=started_at,
            status="failed",
            rows_written=rows_written,
            detail=str(exc)[:500],
        )
    kind = "rejected the credentials" if isinstance(exc, AuthError) else "could not be reached"
    return dg.Failure(
        description=f"{provider} {kind} while running {asset}: {exc}",
        metadata={"provider": provider, "rows_written_before_failure": rows_written},
    )


# --- local orders -------------------------------------------------------------------------


@dg.asset(
    group_name=INGEST_GROUP,
    kinds={"duckdb", "csv"},
    pool=POOL,
    owners=["team:data"],
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
    started_at = _now()
    try:
        load = read_local_orders(local_orders_file.path)
    except (LocalOrdersError, OSError) as exc:
        raise dg.Failure(description=f"local orders not loaded: {exc}") from None
    common = {
        "run_id": context.run.run_id,
        "loaded_at": started_at,
        "source_file": load.source_file,
    }
    accepted = load.accepted.with_columns(
        *(pl.lit(value).alias(name) for name, value in common.items())
    )
    rejected = load.rejected.with_columns(
        *(pl.lit(value).alias(name) for name, value in common.items())
    )
    with warehouse.connect() as con:
        append_frames(con, {"raw.local_orders": accepted, "raw.local_orders_rejected": rejected})
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset="local_orders",
            provider=None,
            started_at=started_at,
            status="complete",
            rows_written=accepted.height,
            detail=f"{rejected.height} rejected",
        )
    if rejected.height:
        context.log.warning(
            f"{rejected.height} local row(s) rejected: {load.rejected_reasons}; "
            "see raw.local_orders_rejected"
        )
    return dg.MaterializeResult(
        metadata={
            "source_file": load.source_file,
            "rows": accepted.height,
            "rejected_rows": rejected.height,
            "rejected_reasons": dg.MetadataValue.json(load.rejected_reasons),
            "extra_columns_ignored": ", ".join(load.extra_columns) or "none",
            "iccid_check_digit_warnings": load.luhn_warnings,
            "rejected_preview": dg.MetadataValue.md(
                _markdown_preview(load.rejected.select("line_no", "reason"))
            ),
        }
    )


# --- eSIMTrade ----------------------------------------------------------------------------


def _esimtrade_order_rows(run_id: str, page: Page[ESIMTradeListedOrder]) -> list[dict[str, Any]]:
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
            "payload": _json(order.raw),
        }
        for order in page.items
    ]


@dg.asset(
    group_name=INGEST_GROUP,
    kinds={"duckdb", "api"},
    pool=POOL,
    owners=["team:data"],
    tags={"layer": "raw", "provider": "esimtrade"},
    description=(
        "eSIMTrade's stored copy of the reseller's orders (GET /reseller/orders), paged "
        "drift-safely and appended to raw.esimtrade_orders."
    ),
)
def esimtrade_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, esimtrade: ESIMTradeResource
) -> dg.MaterializeResult:
    if not esimtrade.enabled:
        return _skipped(warehouse, context, "esimtrade", "ESIMTRADE_BASE_URL")
    started_at = _now()
    written = 0

    def write(rows: list[dict[str, Any]]) -> int:
        with warehouse.connect() as con:
            append_frames(con, {"raw.esimtrade_orders": _frame(rows, _ESIMTRADE_ORDERS)})
        return len(rows)

    async def fetch() -> tuple[int, Any]:
        async with esimtrade.client() as client:
            pages = client.iter_orders()

            async def rows() -> AsyncIterator[list[dict[str, Any]]]:
                async for page in pages:
                    yield _esimtrade_order_rows(context.run.run_id, page)

            count = await _write_batches(rows(), write)
            return count, getattr(pages, "stats", None) or client.stats

    try:
        written, stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise _fail(warehouse, context, "esimtrade", started_at, written, exc) from None
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset="esimtrade_orders",
            provider="esimtrade",
            started_at=started_at,
            status="complete",
            rows_written=written,
        )
    return dg.MaterializeResult(
        metadata={"rows": written, "paging": dg.MetadataValue.json(_stats_dict(stats))}
    )


def _sync_rows(run_id: str, result: ESIMTradeSyncResult) -> list[dict[str, Any]]:
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
                "error": None,
                "esim_tran_no": esim.esim_tran_no,
                "order_no": esim.order_no,
                "iccid": esim.iccid,
                "esim_status": esim.esim_status,
                "smdp_status": esim.smdp_status,
                "total_volume": esim.total_volume,
                "order_usage": esim.order_usage,
                "package_code": esim.package_code,
                "payload": _json(esim.raw),
            }
            for esim in result.esims
        ]
    outcome = result.outcome if result.outcome != "ok" else "failed"
    error = result.error if result.outcome != "ok" else "the answer held no eSIM"
    return [
        base
        | {
            "outcome": outcome,
            "error": error,
            "payload": _json(result.error_body) if result.error_body is not None else None,
        }
    ]


@dg.asset(
    group_name=INGEST_GROUP,
    kinds={"duckdb", "api"},
    pool=POOL,
    owners=["team:data"],
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
    if not esimtrade.enabled:
        return _skipped(warehouse, context, "esimtrade", "ESIMTRADE_BASE_URL")
    started_at = _now()
    with warehouse.connect() as con:
        plan = _plan(con, "esimtrade_sync_plan", full=run_options.full_sync)
    planned = plan.height
    order_nos = plan["order_no"].to_list()
    if run_options.sync_budget is not None:
        order_nos = order_nos[: run_options.sync_budget]
    outcomes: dict[str, int] = {"ok": 0, "not_found": 0, "failed": 0}

    def write(rows: list[dict[str, Any]]) -> int:
        with warehouse.connect() as con:
            append_frames(con, {"raw.esimtrade_order_syncs": _frame(rows, _ESIMTRADE_SYNCS)})
        return len(rows)

    async def fetch() -> tuple[int, Any]:
        async with esimtrade.client() as client:

            async def rows() -> AsyncIterator[list[dict[str, Any]]]:
                async for result in client.sync_many(order_nos):
                    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                    yield _sync_rows(context.run.run_id, result)

            return await _write_batches(rows(), write), client.stats

    began = time.monotonic()
    try:
        written, stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise _fail(warehouse, context, "esimtrade", started_at, 0, exc) from None
    elapsed = time.monotonic() - began
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset="esimtrade_order_syncs",
            provider="esimtrade",
            started_at=started_at,
            status="complete" if len(order_nos) == planned else "partial",
            rows_written=written,
            requests=len(order_nos),
            detail=_json(outcomes),
        )
    if outcomes.get("failed"):
        context.log.warning(f"{outcomes['failed']} eSIMTrade sync(s) failed after retries")
    return dg.MaterializeResult(
        metadata={
            "orders_planned": planned,
            "orders_synced": len(order_nos),
            "outcomes": dg.MetadataValue.json(outcomes),
            "rows": written,
            "seconds": round(elapsed, 2),
            "client": dg.MetadataValue.json(_stats_dict(stats)),
        }
    )


# --- PressOne -----------------------------------------------------------------------------


def _pressone_order_rows(run_id: str, page: Page[PressOneOrder]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
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
            "payload": _json(order.raw),
        }
        if not order.sims:
            rows.append(base | {"sim_id": None, "sim_index": None, "iccid": None})
            continue
        for index, sim in enumerate(order.sims):
            rows.append(base | {"sim_id": sim.id, "sim_index": index, "iccid": sim.iccid})
    return rows


@dg.asset(
    group_name=INGEST_GROUP,
    kinds={"duckdb", "api"},
    pool=POOL,
    owners=["team:data"],
    tags={"layer": "raw", "provider": "pressone"},
    description=(
        "PressOne's order list (GET /customer/v2/orders?include=sims,status), paged drift-safely; "
        "sims flattened to one row per eSIM in raw.pressone_orders."
    ),
)
def pressone_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, pressone: PressOneResource
) -> dg.MaterializeResult:
    if not pressone.enabled:
        return _skipped(warehouse, context, "pressone", "PRESSONE_BASE_URL")
    started_at = _now()
    orders_seen = 0

    def write(rows: list[dict[str, Any]]) -> int:
        with warehouse.connect() as con:
            append_frames(con, {"raw.pressone_orders": _frame(rows, _PRESSONE_ORDERS)})
        return len(rows)

    async def fetch() -> tuple[int, Any]:
        nonlocal orders_seen
        async with pressone.client() as client:
            pages = client.iter_orders()

            async def rows() -> AsyncIterator[list[dict[str, Any]]]:
                nonlocal orders_seen
                async for page in pages:
                    orders_seen += len(page.items)
                    yield _pressone_order_rows(context.run.run_id, page)

            count = await _write_batches(rows(), write)
            return count, getattr(pages, "stats", None) or client.stats

    try:
        written, stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise _fail(warehouse, context, "pressone", started_at, 0, exc) from None
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset="pressone_orders",
            provider="pressone",
            started_at=started_at,
            status="complete",
            rows_written=written,
        )
    return dg.MaterializeResult(
        metadata={
            "orders": orders_seen,
            "rows": written,
            "paging": dg.MetadataValue.json(_stats_dict(stats)),
        }
    )


def _usage_row(run_id: str, order_code: str | None, result: PressOneUsageResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "run_id": run_id,
        "fetched_at": result.fetched_at,
        "source_endpoint": "/customer/v2/sims/{iccid}/usage",
        "provider": "pressone",
        "iccid": result.iccid,
        "order_code": order_code,
        "outcome": result.outcome,
        "http_status": result.http_status,
        "error": result.error,
        "usage_status": usage.status if usage else None,
        "total_mb": usage.total if usage else None,
        "remaining_mb": usage.remaining if usage else None,
        "is_unlimited": usage.is_unlimited if usage else None,
        "expired_at": usage.expired_at if usage else None,
        "payload": _json(usage.raw) if usage else None,
    }


@dg.asset(
    group_name=INGEST_GROUP,
    kinds={"duckdb", "api"},
    pool=POOL,
    owners=["team:data"],
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
    if not pressone.enabled:
        return _skipped(warehouse, context, "pressone", "PRESSONE_BASE_URL")
    started_at = _now()
    with warehouse.connect() as con:
        plan = _plan(con, "pressone_usage_plan", full=run_options.full_sync)
    planned = plan.height
    if run_options.sync_budget is not None:
        plan = plan.head(run_options.sync_budget)
    order_code_of = dict(zip(plan["iccid"].to_list(), plan["order_code"].to_list(), strict=True))
    outcomes: dict[str, int] = {"ok": 0, "not_found": 0, "failed": 0}

    def write(rows: list[dict[str, Any]]) -> int:
        with warehouse.connect() as con:
            append_frames(con, {"raw.pressone_usage": _frame(rows, _PRESSONE_USAGE)})
        return len(rows)

    async def fetch() -> tuple[int, Any]:
        async with pressone.client() as client:

            async def rows() -> AsyncIterator[list[dict[str, Any]]]:
                async for result in client.usage_many(list(order_code_of)):
                    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                    yield [_usage_row(context.run.run_id, order_code_of.get(result.iccid), result)]

            return await _write_batches(rows(), write), client.stats

    began = time.monotonic()
    try:
        written, stats = asyncio.run(fetch())
    except ProviderError as exc:
        raise _fail(warehouse, context, "pressone", started_at, 0, exc) from None
    with warehouse.connect() as con:
        _log_ingest(
            con,
            run_id=context.run.run_id,
            asset="pressone_usage",
            provider="pressone",
            started_at=started_at,
            status="complete" if plan.height == planned else "partial",
            rows_written=written,
            requests=plan.height,
            detail=_json(outcomes),
        )
    if outcomes.get("failed"):
        context.log.warning(f"{outcomes['failed']} PressOne usage request(s) failed after retries")
    return dg.MaterializeResult(
        metadata={
            "iccids_planned": planned,
            "iccids_fetched": plan.height,
            "outcomes": dg.MetadataValue.json(outcomes),
            "rows": written,
            "seconds": round(time.monotonic() - began, 2),
            "client": dg.MetadataValue.json(_stats_dict(stats)),
        }
    )


def _stats_dict(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    if isinstance(stats, dict):
        return {str(key): value for key, value in stats.items()}
    fields: Iterable[str] = getattr(stats, "__dataclass_fields__", None) or vars(stats)
    return {name: getattr(stats, name) for name in fields if not name.startswith("_")}


raw_assets = [
    local_orders,
    esimtrade_orders,
    esimtrade_order_syncs,
    pressone_orders,
    pressone_usage,
]
