"""Hand-made raw layers in real DuckDB files, and helpers to build the models and read reports."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from pipelines import sql_project
from pipelines.warehouse import Warehouse, append_frames, table_schema

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
MB = 1_048_576


def _frame(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Test rows typed by the raw table's own columns (decimals may be written as strings)."""
    types = table_schema(con, table)
    columns = sorted({key for row in rows for key in row})
    unknown = [c for c in columns if c not in types]
    assert not unknown, f"test rows name unknown columns {unknown} of {table}"
    data = {
        c: [
            Decimal(row[c])
            if isinstance(types[c], pl.Decimal) and row.get(c) is not None
            else row.get(c)
            for row in rows
        ]
        for c in columns
    }
    return pl.DataFrame(data, schema={c: types[c] for c in columns})


def _answered(row: dict[str, Any]) -> dict[str, Any]:
    """A successful eSIMTrade sync answers for the order requested, with HTTP 200."""
    if row.get("outcome", "ok") != "ok":
        return row
    return {"order_no": row.get("requested_order_no"), "http_status": 200, **row}


def _provider_writer(
    asset: str,
    endpoint: str,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    **defaults: Any,
) -> Callable[..., None]:
    """A RawLayer method writing rows of one provider ingestion asset (named like its table)."""
    provider = asset.split("_", 1)[0]

    def write(
        self: RawLayer,
        rows: list[dict[str, Any]],
        *,
        run_id: str = "run-1",
        at: datetime = T0,
        status: str | None = "complete",
    ) -> None:
        base = {
            "run_id": run_id,
            "fetched_at": at,
            "source_endpoint": endpoint,
            "provider": provider,
            "payload": "{}",
            **defaults,
        }
        full = [{**base, **(prepare(row) if prepare else row)} for row in rows]
        self._write(f"raw.{asset}", asset, provider, full, run_id, at, status)

    return write


class RawLayer:
    """Writes raw rows the way ingestion would, one call per ingestion asset execution.

    `status=None` writes the rows but no ingest_log row: a run that crashed half-way.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        Warehouse(":memory:").ensure_raw_schema(con)

    def _write(
        self,
        table: str,
        asset: str,
        provider: str | None,
        rows: list[dict[str, Any]],
        run_id: str,
        at: datetime,
        status: str | None,
    ) -> None:
        frames = {table: _frame(self.con, table, rows)} if rows else {}
        if status is not None:
            frames["raw.ingest_log"] = _frame(
                self.con,
                "raw.ingest_log",
                [
                    {
                        "run_id": run_id,
                        "asset": asset,
                        "provider": provider,
                        "started_at": at - timedelta(seconds=30),
                        "finished_at": at,
                        "status": status,
                        "rows_written": len(rows),
                    }
                ],
            )
        append_frames(self.con, frames)

    def local_orders(
        self,
        rows: list[dict[str, Any]],
        *,
        run_id: str = "run-1",
        at: datetime = T0,
        status: str | None = "complete",
    ) -> None:
        full = []
        for line_no, row in enumerate(rows, start=2):
            item = {
                "run_id": run_id,
                "loaded_at": at,
                "source_file": "orders.csv",
                "line_no": line_no,
                "currency": "USD",
                "status": "active",
                **row,
            }
            item["payload"] = json.dumps({k: str(v) for k, v in row.items()})
            full.append(item)
        self._write("raw.local_orders", "local_orders", None, full, run_id, at, status)

    # One method per provider ingestion asset, writing rows over that asset's defaults.
    esimtrade_orders = _provider_writer("esimtrade_orders", "/reseller/orders", quantity=1, page=1)
    esimtrade_syncs = _provider_writer(
        "esimtrade_order_syncs", "/portal/orders", prepare=_answered, outcome="ok"
    )
    pressone_orders = _provider_writer(
        "pressone_orders",
        "/customer/v2/orders",
        order_type="sim",
        order_status="completed",
        quantity=1,
        currency="USD",
        created_at=T0 - timedelta(days=1),
    )
    pressone_usage = _provider_writer(
        "pressone_usage", "/customer/v2/sims/usage", outcome="ok", is_unlimited=False
    )


def database_path(con: duckdb.DuckDBPyConnection) -> str:
    row = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    assert row and row[0], "the connection is not to a database file"
    return str(row[0])


def build(
    con: duckdb.DuckDBPyConnection,
    select: str | list[str] | None = None,
    *,
    run_at: datetime | None = None,
    environ: dict[str, str] | None = None,
    full_refresh: bool = False,
    with_tests: bool = True,
) -> sql_project.BuildOutcome:
    """`dbt build` of the project on the file `con` is connected to (`con` stays open)."""
    return sql_project.build(
        database_path(con),
        select,
        run_at=run_at,
        environ=environ,
        full_refresh=full_refresh,
        with_tests=with_tests,
    )


def build_all(con: duckdb.DuckDBPyConnection, at: datetime = T0) -> None:
    """Seeds and models (their dbt tests run in tests/models/test_assets.py)."""
    build(con, run_at=at + timedelta(minutes=5), with_tests=False)


def query(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def findings(con: duckdb.DuckDBPyConnection, discrepancy_type: str | None = None) -> list[dict]:
    where = "where discrepancy_type = ?" if discrepancy_type else ""
    return query(
        con,
        f"select * from reports.discrepancies {where} "
        "order by provider, order_no, iccid, discrepancy_type",
        [discrepancy_type] if discrepancy_type else [],
    )


def finding_keys(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str, str, str]]:
    return {
        (f["provider"], f["order_no"], f["iccid"], f["discrepancy_type"]) for f in findings(con)
    }


def verdicts(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {
        r["row_id"]: r["match_verdict"]
        for r in query(con, "select row_id, match_verdict from reports.reconciliation")
    }


# eSIMTrade rows as most tests plant them: package PK1, 1.0000 USD, in use. Keyword arguments
# override or add columns.
def local_row(order_no: str, iccid: str | None = None, **extra: Any) -> dict[str, Any]:
    """A local orders file row of an eSIMTrade order."""
    return {
        "provider": "esimtrade",
        "order_no": order_no,
        "iccid": iccid,
        "package_code": "PK1",
        "amount": "1.0000",
        **extra,
    }


def list_row(order_no: str, **extra: Any) -> dict[str, Any]:
    """An eSIMTrade stored-list (/reseller/orders) row."""
    return {
        "provider_order_no": order_no,
        "status": "in_use",
        "package_code": "PK1",
        "cost_price": "1.0000",
        **extra,
    }


def sync_row(order_no: str, esim_tran_no: str, iccid: str | None, **extra: Any) -> dict[str, Any]:
    """A successful eSIMTrade sync (/portal/orders) of one eSIM of an order."""
    return {
        "requested_order_no": order_no,
        "esim_tran_no": esim_tran_no,
        "iccid": iccid,
        "esim_status": "IN_USE",
        **extra,
    }
