"""Ingestion: providers and the local file → append-only raw tables.

Each asset fetches through a provider client (which knows nothing of Dagster or DuckDB), maps
the typed records to raw rows and appends them in batches (see `assets/_ingest.py`). Which
orders to sync is decided by the queries in `sql/planning/`.
"""

import asyncio
import dataclasses
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any, Protocol

import dagster as dg
import polars as pl

from assets._ingest import Load, Row, to_json
from assets._metadata import markdown_table, stats_dict
from assets.partitions import ListWindow, esimtrade_created_minute, list_partitions, window_of
from pipelines import progress
from pipelines.local_orders import LocalOrdersError, read_local_orders
from pipelines.local_orders_db import LocalOrdersQuery, duplicate_rows, is_database_url
from pipelines.providers import (
    AuthError,
    BatchStream,
    ESIMTradeListedOrder,
    ESIMTradeSyncResult,
    NotFoundError,
    Page,
    PressOneOrder,
    PressOneUsageResult,
    ProviderError,
    RateLimitWait,
    deadline_in,
)
from pipelines.resources import (
    ESIMTradeResource,
    LocalOrdersResource,
    PressOneResource,
    RunOptionsResource,
    WarehouseResource,
)
from pipelines.runner import LIST_NOT_LOADED
from pipelines.warehouse import append_rows

PLANNING_DIR = Path(__file__).resolve().parents[1] / "sql" / "planning"
SEEDS_DIR = PLANNING_DIR.parent / "seeds"
INGEST_GROUP = "ingest"
POOL = "duckdb"
_COMMON = {"group_name": INGEST_GROUP, "pool": POOL, "owners": ["team:data"]}
# The provider feeds are expected to be refreshed hourly (the hourly_sync schedule): Dagster's
# freshness daemon warns after 2 hours without a materialization and fails after 3.
FEED_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=3), warn_window=timedelta(hours=2)
)
_FEED = {**_COMMON, "freshness_policy": FEED_FRESHNESS}
# The provider order lists: day partitions by created_at, a backfill range in one run.
# (`backfill_policy` is marked beta in Dagster 1.13; the notice would print on every command.)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
_LIST = {
    **_FEED,
    "partitions_def": list_partitions,
    "backfill_policy": dg.BackfillPolicy.single_run(),
}


# Each list asset carries this check, passed by every load that completes. A list load that
# fails leaves it failed (Dagster marks a planned check of a failed step so): a partitioned
# asset whose unpartitioned (full) load failed has no failed partition to show, and the check
# is what turns it red in the asset catalog and the lineage graph.
LIST_LOAD_CHECK = "list_load_completed"


def _list_load_check(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            LIST_LOAD_CHECK,
            asset=asset,
            description=(
                "The latest load of this list completed (a provider failure fails it; see the "
                "step's error and raw.ingest_log)."
            ),
        )
    ]


def _with_list_load_check(result: dg.MaterializeResult) -> dg.MaterializeResult:
    """Pass the list check, unless the load already judged it (a list not loaded fails it)."""
    if any(check.check_name == LIST_LOAD_CHECK for check in result.check_results or ()):
        return result
    return dg.MaterializeResult(
        metadata=result.metadata,
        data_version=result.data_version,
        tags=result.tags,
        check_results=[
            *result.check_results,
            dg.AssetCheckResult(check_name=LIST_LOAD_CHECK, passed=True),
        ],
    )


class _Outcome(Protocol):
    outcome: str


def _plan(warehouse: WarehouseResource, name: str, *, full: bool) -> pl.DataFrame:
    """Run a planning query from sql/planning: SQL decides what to fetch."""
    with warehouse.connect() as con:
        sql = (PLANNING_DIR / f"{name}.sql").read_text(encoding="utf-8")
        params = {
            "full": full,
            "canonical_status_map_csv": str(SEEDS_DIR / "canonical_status_map.csv"),
            "canonical_states_csv": str(SEEDS_DIR / "canonical_states.csv"),
        }
        result = pl.from_arrow(con.sql(sql, params=params).to_arrow_table())
    assert isinstance(result, pl.DataFrame)
    return result


def _ingest_list(
    load: Load,
    listing_of: Callable[[Any], Any],
    to_rows: Callable[[str, Any], list[Row]],
    *,
    open_client: Callable[[], AbstractAsyncContextManager[Any]],
    window: ListWindow | None,
    created_at: Callable[[Any], datetime | None],
    stop_early: bool = False,
) -> dg.MaterializeResult:
    """Page a provider's order list into `load.table`; complete only once the walk ended.

    With a window, only orders created on its days are written, and with `stop_early` the
    newest-first walk ends once it is safely past the window (see `_EarlyStop`).
    """
    load.window = (window.first, window.last) if window else None
    early = _EarlyStop(window) if window is not None and stop_early else None

    async def fetch() -> Any:
        async with open_client() as client:
            client.on_rate_limit_wait(_RateLimitNotes(load))
            load.quarantine = client.quarantine
            listing = listing_of(client)

            async def rows() -> AsyncIterator[list[Row]]:
                with progress.track(load.asset, unit="pages") as task:
                    async for page in listing:
                        task.step(page, items=len(page.items))
                        kept = page
                        if window is not None:
                            items = tuple(i for i in page.items if window.contains(created_at(i)))
                            kept = dataclasses.replace(page, items=items)
                        yield to_rows(load.run_id, kept)
                        if early is not None and early.past_window(page, listing.stats, created_at):
                            return

            try:
                await load.drain(rows())
            finally:
                await listing.aclose()
            return listing.stats

    try:
        stats = asyncio.run(fetch())
    except (AuthError, NotFoundError) as exc:
        # Misconfiguration (credentials, a base URL without its API path): no later run can do
        # better on its own.
        raise load.failure(exc) from None
    except ProviderError as exc:
        return _list_not_loaded(load, exc)
    if stats.limit_reached is not None:
        raise load.walk_stopped(stats.limit_reached)
    detail = f"window {window}" if window else None
    if stats.pages_unread and not stats.complete:
        # Pages whose answers were refused to the end: not a snapshot of the whole list.
        unread = f"pages never read: {stats.pages_unread[:20]}"
        load.log("partial", detail=f"{detail}; {unread}" if detail else unread)
        load.context.log.warning(
            f"{load.asset}: {unread} (answers refused, see raw.provider_quarantine)"
        )
    else:
        load.log("complete", detail=detail)
    metadata: dict[str, Any] = {
        "dagster/row_count": load.rows_written,
        "window": str(window) if window else "full list",
        "paging": dg.MetadataValue.json(stats_dict(stats)),
        **load.quarantine_metadata(),
    }
    if early is not None:
        metadata["stopped_early"] = early.stopped
    return dg.MaterializeResult(metadata=metadata)


def _list_failed_this_run(load: Load) -> bool:
    """Whether this run's load of the provider's order list failed (see `_list_not_loaded`)."""
    with load.warehouse.connect() as con:
        row = con.execute(
            "SELECT count(*) FROM raw.ingest_log WHERE run_id = ? AND provider = ? "
            "AND asset = ? AND status = 'failed'",
            [load.run_id, load.provider, f"{load.provider}_orders"],
        ).fetchone()
    return bool(row and row[0])


class _RateLimitNotes:
    """Turns a client's rate-limit waits into an occasional log line (at most one per
    `EVERY` seconds: a throttled run waits often)."""

    EVERY = 10.0

    def __init__(self, load: Load) -> None:
        self._load = load
        self._last = float("-inf")
        self._waits = 0

    def __call__(self, wait: RateLimitWait) -> None:
        self._waits += 1
        now = time.monotonic()
        if now - self._last < self.EVERY:
            return
        self._last = now
        pace = (
            f"pacing at {wait.requests_per_minute:.0f} requests/min"
            if wait.requests_per_minute
            else "unpaced"
        )
        self._load.context.log.info(
            f"{wait.provider} is rate limiting: waiting {wait.seconds:.1f} s before asking again "
            f"({pace}; {self._waits} wait(s) so far)"
        )


def _list_not_loaded(load: Load, exc: ProviderError) -> dg.MaterializeResult:
    """A list page that outlasted the list's patience: this load is logged `failed` (so no
    model ever reads it as the list), the latest complete load stays in force, and the run goes
    on; one line says so."""
    load.write([])  # what was quarantined before the failure is kept
    load.log("failed", detail=str(exc)[:500])
    with load.warehouse.connect() as con:
        previous = con.execute(
            "SELECT max(finished_at) FROM raw.ingest_log "
            "WHERE asset = ? AND status = 'complete' AND window_from IS NULL",
            [load.asset],
        ).fetchone()
    finished = previous[0].astimezone(UTC) if previous and previous[0] else None
    kept = (
        f"the complete load of {finished:%Y-%m-%d %H:%M} UTC stays in force"
        if finished is not None
        else "no complete load yet, so its orders stay unchecked"
    )
    line = (
        f"{load.provider} order list not loaded this run ({kept}; its syncs wait for the next "
        f"run): {exc}"
    )
    load.context.log.warning(line)
    return dg.MaterializeResult(
        # The list check fails so the asset shows red in the catalog and the lineage graph.
        check_results=[
            dg.AssetCheckResult(
                check_name=LIST_LOAD_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=line,
            )
        ],
        metadata={
            LIST_NOT_LOADED: line,
            "dagster/row_count": load.rows_written,
            "previous_complete_load": str(finished) if finished is not None else "none",
            **load.quarantine_metadata(),
        },
    )


@dataclasses.dataclass
class _EarlyStop:
    """When a newest-first walk for a past window may stop before the end of the list.

    Only once pages 1..k of the first pass have all arrived, page k's oldest order is older
    than the window's first day by more than `_MARGIN` (slack for a list that is not strictly
    in creation order), and the list's total has not changed during the walk. New orders only
    arrive at the head and push rows to later pages; with an unchanged total no row can have
    slipped past a page already read, so every order of the window was on pages 1..k. When the
    total did change, the walk goes on to the end, where the listing's completeness passes
    recover rows that moved (see `pipelines.providers._paging`).
    """

    window: ListWindow
    seen_pages: set[int] = dataclasses.field(default_factory=set)
    oldest_on_page: dict[int, datetime | None] = dataclasses.field(default_factory=dict)
    stopped: bool = False

    _MARGIN = timedelta(days=1)

    def past_window(
        self, page: Any, stats: Any, created_at: Callable[[Any], datetime | None]
    ) -> bool:
        if page.pass_number != 1:
            return False
        moments = [m for m in (created_at(item) for item in page.items) if m is not None]
        self.seen_pages.add(page.number)
        self.oldest_on_page[page.number] = min(moments) if moments else None
        prefix = 0
        while prefix + 1 in self.seen_pages:
            prefix += 1
        oldest = self.oldest_on_page.get(prefix)
        limit = datetime.combine(self.window.first, day_time.min, UTC) - self._MARGIN
        stable = stats.first_total is not None and stats.first_total == stats.final_total
        self.stopped = prefix > 0 and oldest is not None and oldest < limit and stable
        return self.stopped


def _ingest_snapshots(
    load: Load,
    plan: pl.DataFrame,
    run_options: RunOptionsResource,
    *,
    key_column: str,
    open_client: Callable[[], AbstractAsyncContextManager[Any]],
    # (client, keys, start_by): the results of the keys started before start_by.
    request_many: Callable[[Any, list[str], float | None], BatchStream[Any]],
    to_rows: Callable[[_Outcome], list[Row]],
    noun: str,
) -> dg.MaterializeResult:
    """Fetch one snapshot per planned key (most useful first, within the run's budgets: at
    most `sync_budget` keys, none started after `sync_seconds`). Keys not reached are logged
    as a partial load; the plan puts them first next time (never attempted)."""
    if _list_failed_this_run(load):
        # The provider did not answer its list through all the list's patience: asking it
        # for every order would only turn its outage into a `sync_failed` per order. The last
        # good state stands; the next run syncs them.
        load.log("skipped", detail="the order list could not be loaded this run")
        load.context.log.warning(
            f"{plan.height} {noun} left for the next run: {load.provider}'s order list could "
            "not be loaded this run"
        )
        return dg.MaterializeResult(
            metadata={"planned": plan.height, "requested": 0, "left_for_next_run": plan.height}
        )
    todo = plan if run_options.sync_budget is None else plan.head(run_options.sync_budget)
    outcomes: Counter[str] = Counter()
    deferred: list[str] = []

    async def fetch() -> Any:
        start_by = deadline_in(run_options.sync_seconds) if run_options.sync_seconds else None
        async with open_client() as client:
            client.on_rate_limit_wait(_RateLimitNotes(load))
            load.quarantine = client.quarantine

            async def rows(task: progress.Task) -> AsyncIterator[list[Row]]:
                stream = request_many(client, todo[key_column].to_list(), start_by)
                async for result in stream:
                    outcomes[result.outcome] += 1
                    task.advance()
                    yield to_rows(result)
                # Still rate limited when the time was up: no row, so not a failure; the
                # next run's plan takes them first (never attempted) or by age.
                deferred.extend(stream.stats.deferred)

            with progress.track(load.asset, unit="requests", total=todo.height) as task:
                await load.drain(rows(task))
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
        waiting = f", {len(deferred)} of them still rate limited" if deferred else ""
        load.context.log.info(
            f"run budget reached: {plan.height - done} {noun} left for the next run "
            f"(it does them first){waiting}"
        )
    if outcomes["failed"]:
        load.context.log.warning(f"{outcomes['failed']} {noun} failed after retries")
    if load.quarantined:
        load.context.log.warning(
            f"{sum(load.quarantined.values())} refused answer(s) quarantined "
            f"({dict(load.quarantined)}); see raw.provider_quarantine"
        )
    return dg.MaterializeResult(
        metadata={
            "planned": plan.height,
            "requested": done,
            "left_for_next_run": plan.height - done,
            "left_rate_limited": len(deferred),
            "outcomes": dg.MetadataValue.json(dict(outcomes)),
            "dagster/row_count": load.rows_written,
            "seconds": round(time.monotonic() - began, 2),
            "client": dg.MetadataValue.json(stats_dict(stats)),
            **load.quarantine_metadata(),
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
    if is_database_url(local_orders_file.path):
        return _local_orders_from_database(context, load, warehouse, local_orders_file)
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


def _insert_frame(con: Any, table: str, frame: pl.DataFrame) -> None:
    """Append a frame inside the caller's transaction (`table` is one of the names below)."""
    if frame.height == 0:
        return
    con.register("_local_batch", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _local_batch")
    finally:
        con.unregister("_local_batch")


# Rows loaded earlier in this load whose identity hash one of the batch's rows shares.
_EARLIER_SAME_HASH = """
    SELECT DISTINCT s.line_no, s.identity_hash
    FROM _local_identities AS s
    JOIN _batch_identities AS b USING (identity_hash)
"""
_PAYLOADS_OF_LINES = """
    SELECT o.line_no, o.payload::VARCHAR AS payload
    FROM raw.local_orders AS o
    WHERE o.run_id = ? AND o.line_no IN (SELECT line_no FROM _earlier_lines)
"""


def _duplicates_in_batch(con: Any, run_id: str, batch: Any) -> pl.DataFrame:
    """The batch's rows identical (in every required field, as read) to an earlier row of this
    load that has an ICCID: the same eSIM written twice. Hashes pick the candidates; the
    comparison itself is on the fields (`duplicate_rows`)."""
    identities: pl.DataFrame = batch.identities
    if identities.height == 0:
        return duplicate_rows(pl.DataFrame(schema={"line_no": pl.Int32, "payload": pl.String}))
    con.register("_batch_identities", identities.to_arrow())
    try:
        earlier = con.sql(_EARLIER_SAME_HASH).pl()
    finally:
        con.unregister("_batch_identities")
    repeated = identities.filter(
        pl.col("identity_hash").is_duplicated()
        | pl.col("identity_hash").is_in(earlier.get_column("identity_hash").implode())
    )
    if repeated.height == 0:
        return duplicate_rows(pl.DataFrame(schema={"line_no": pl.Int32, "payload": pl.String}))
    earlier_payloads = pl.DataFrame(schema={"line_no": pl.Int32, "payload": pl.String})
    if earlier.height:
        con.register("_earlier_lines", earlier.select("line_no").to_arrow())
        try:
            earlier_payloads = (
                con.sql(_PAYLOADS_OF_LINES, params=[run_id]).pl().cast({"line_no": pl.Int32})
            )
        finally:
            con.unregister("_earlier_lines")
    batch_payloads = batch.accepted.join(repeated.select("line_no"), on="line_no", how="semi")
    candidates = pl.concat([earlier_payloads, batch_payloads.select("line_no", "payload")])
    found = duplicate_rows(candidates)
    return found.join(repeated.select("line_no"), on="line_no", how="semi")


def _local_orders_from_database(
    context: dg.AssetExecutionContext,
    load: Load,
    warehouse: WarehouseResource,
    local_orders_file: LocalOrdersResource,
) -> dg.MaterializeResult:
    """Stream the order database's rows into raw.local_orders, a batch at a time.

    The rows are read as Arrow batches from one Postgres snapshot; each batch's accepted and
    rejected rows (duplicates of earlier rows included) are written in one DuckDB transaction,
    so memory holds a batch, not the table. As for every load, only a load logged `complete`
    counts: a load that fails half way leaves rows nobody reads.
    """
    assert local_orders_file.path is not None
    luhn_warnings = 0
    try:
        with (
            LocalOrdersQuery(local_orders_file.path, local_orders_file.query) as source,
            warehouse.connect() as con,
        ):
            common = [
                pl.lit(load.run_id).alias("run_id"),
                pl.lit(load.started_at).dt.convert_time_zone("UTC").alias("loaded_at"),
                pl.lit(source.source).alias("source_file"),
            ]
            # Identity hashes of the rows loaded so far (12 bytes a row, spilled by DuckDB).
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _local_identities "
                "(line_no INTEGER, identity_hash UBIGINT)"
            )
            for batch in source.batches():
                duplicates = _duplicates_in_batch(con, load.run_id, batch)
                accepted_rows = batch.accepted.join(
                    duplicates.select("line_no"), on="line_no", how="anti"
                )
                new_identities = batch.identities.join(
                    duplicates.select("line_no"), on="line_no", how="anti"
                )
                con.execute("BEGIN TRANSACTION")
                try:
                    _insert_frame(con, "raw.local_orders", accepted_rows.with_columns(common))
                    _insert_frame(
                        con,
                        "raw.local_orders_rejected",
                        pl.concat([batch.rejected, duplicates]).with_columns(common),
                    )
                    _insert_frame(con, "_local_identities", new_identities)
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                luhn_warnings += batch.luhn_warnings
            con.execute("DROP TABLE _local_identities")
            accepted = con.execute(
                "SELECT count(*)::BIGINT FROM raw.local_orders WHERE run_id = ?", [load.run_id]
            ).fetchone()
            reasons = dict(
                con.execute(
                    "SELECT split_part(reason, ':', 1) AS kind, count(*)::BIGINT "
                    "FROM raw.local_orders_rejected WHERE run_id = ? GROUP BY kind ORDER BY kind",
                    [load.run_id],
                ).fetchall()
            )
            preview = con.execute(
                "SELECT line_no, row_key, reason FROM raw.local_orders_rejected "
                "WHERE run_id = ? ORDER BY line_no LIMIT 10",
                [load.run_id],
            ).fetchall()
            extra_columns = source.extra_columns
            source_name, query = source.source, source.sql
    except LocalOrdersError as exc:
        raise dg.Failure(description=f"local orders not loaded: {exc}") from None
    rejected = sum(reasons.values())
    load.rows_written = int(accepted[0]) if accepted else 0
    load.log("complete", detail=f"{rejected} rejected")
    if rejected:
        context.log.warning(
            f"{rejected} local row(s) rejected: {reasons}; see raw.local_orders_rejected"
        )
    return dg.MaterializeResult(
        metadata={
            "source_file": source_name,
            "query": " ".join(query.split()),
            "dagster/row_count": load.rows_written,
            "rejected_rows": rejected,
            "rejected_reasons": dg.MetadataValue.json(reasons),
            "extra_columns_ignored": ", ".join(extra_columns) or "none",
            "iccid_check_digit_warnings": luhn_warnings,
            "rejected_preview": dg.MetadataValue.md(
                markdown_table(["row", "row_key", "reason"], [tuple(row) for row in preview])
                if preview
                else "_none_"
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
    **_LIST,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "esimtrade"},
    check_specs=_list_load_check("esimtrade_orders"),
    description=(
        "eSIMTrade's stored copy of the reseller's orders (GET /reseller/orders), paged "
        "drift-safely and appended to raw.esimtrade_orders. Unpartitioned runs walk the whole "
        "list; a day-partition range keeps the orders whose number encodes a creation minute "
        "on those days (the list has no date filter: the newest-first walk stops once past "
        "the range)."
    ),
)
def esimtrade_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, esimtrade: ESIMTradeResource
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.esimtrade_orders", provider="esimtrade")
    if not esimtrade.enabled:
        return _with_list_load_check(load.skipped("ESIMTRADE_BASE_URL"))
    return _with_list_load_check(
        _ingest_list(
            load,
            lambda client: client.iter_orders(),
            _esimtrade_order_rows,
            open_client=esimtrade.client,
            window=window_of(context),
            created_at=lambda order: esimtrade_created_minute(order.provider_order_no),
            stop_early=True,
        )
    )


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
    **_FEED,
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
    **_LIST,
    kinds={"duckdb", "api"},
    tags={"layer": "raw", "provider": "pressone"},
    check_specs=_list_load_check("pressone_orders"),
    description=(
        "PressOne's order list (GET /customer/v2/orders?include=sims,status), paged drift-safely; "
        "sims flattened to one row per eSIM in raw.pressone_orders. Unpartitioned runs walk the "
        "whole list; a day-partition range asks filter[created_at] (a day wider on each side, "
        "the provider's time zone being unknown) and keeps the orders created on those UTC days."
    ),
)
def pressone_orders(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, pressone: PressOneResource
) -> dg.MaterializeResult:
    load = Load(context, warehouse, table="raw.pressone_orders", provider="pressone")
    if not pressone.enabled:
        return _with_list_load_check(load.skipped("PRESSONE_BASE_URL"))
    window = window_of(context)
    loaded = _ingest_list(
        load,
        lambda client: (
            client.iter_orders(
                created_from=window.first - timedelta(days=1),
                created_to=window.last + timedelta(days=1),
            )
            if window
            else client.iter_orders()
        ),
        _pressone_order_rows,
        open_client=pressone.client,
        window=window,
        created_at=lambda order: order.created_at,
    )
    return _with_list_load_check(loaded)


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
    **_FEED,
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
