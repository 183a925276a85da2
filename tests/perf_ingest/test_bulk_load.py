"""Batched writes of a load into the real DuckDB file (assets/_ingest.Load.drain)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from assets._ingest import BATCH_ROWS, Load, Row, to_json
from pipelines.resources import WarehouseResource
from tests.pipeline.helpers import query


def _load(tmp_path: Path) -> Load:
    context = SimpleNamespace(
        run=SimpleNamespace(run_id="run-1"),
        asset_key=dg.AssetKey("esimtrade_orders"),
        log=logging.getLogger("test"),
    )
    warehouse = WarehouseResource(database=str(tmp_path / "load.duckdb"))
    return Load(context, warehouse, table="raw.esimtrade_orders", provider="esimtrade")  # type: ignore[arg-type]


def _page(start: int, size: int) -> list[Row]:
    now = datetime.now(UTC)
    return [
        {
            "run_id": "run-1",
            "fetched_at": now,
            "source_endpoint": "/reseller/orders",
            "provider": "esimtrade",
            "provider_order_no": f"B{number:012d}",
            "status": "in_use",
            "payload": to_json({"providerOrderNo": f"B{number:012d}"}),
        }
        for number in range(start, start + size)
    ]


async def _pages(count: int, size: int, fail_after: int | None = None) -> AsyncIterator[list[Row]]:
    for index in range(count):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("the provider went away")
        yield _page(index * size, size)


async def test_drain_writes_every_row_once_in_batches(tmp_path: Path) -> None:
    load = _load(tmp_path)
    await load.drain(_pages(count=23, size=1_000))
    assert load.rows_written == 23_000
    rows = query(
        tmp_path / "load.duckdb",
        "SELECT count(*), count(DISTINCT provider_order_no) FROM raw.esimtrade_orders",
    )
    assert rows == [(23_000, 23_000)]


async def test_batches_written_before_a_failure_stay(tmp_path: Path) -> None:
    load = _load(tmp_path)
    with pytest.raises(RuntimeError, match="went away"):
        await load.drain(_pages(count=20, size=1_000, fail_after=12))
    landed = query(tmp_path / "load.duckdb", "SELECT count(*) FROM raw.esimtrade_orders")[0][0]
    # Whole batches land; the rows still gathering for the next batch do not.
    assert landed == load.rows_written == (12_000 // BATCH_ROWS) * BATCH_ROWS
