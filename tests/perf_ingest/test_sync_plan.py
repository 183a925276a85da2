"""The planning queries (sql/planning) on a real DuckDB file: which eSIMs are synced again and
in which order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assets._ingest import to_json
from assets.raw import _plan
from pipelines.resources import WarehouseResource
from pipelines.warehouse import append_rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _log(run_id: str, asset: str, at: datetime) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "asset": asset,
        "provider": None,
        "started_at": at,
        "finished_at": at,
        "status": "complete",
        "rows_written": 0,
    }


def _sync(order_no: str, at: datetime, outcome: str, status: str | None) -> dict[str, Any]:
    return {
        "run_id": "syncs",
        "fetched_at": at,
        "source_endpoint": "/portal/orders",
        "provider": "esimtrade",
        "requested_order_no": order_no,
        "outcome": outcome,
        "order_no": order_no if outcome == "ok" else None,
        "esim_status": status,
        "payload": to_json({}),
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseResource:
    """Seven local eSIMTrade orders, each with a different sync history."""
    resource = WarehouseResource(database=str(tmp_path / "plan.duckdb"))
    locals_ = [
        {
            "run_id": "local",
            "loaded_at": T0,
            "source_file": "local.csv",
            "line_no": index + 2,
            "provider": "esimtrade",
            "order_no": order_no,
            "payload": to_json({}),
        }
        for index, order_no in enumerate(
            ["B-never", "B-failed", "B-active-old", "B-active-new", "B-done", "B-moved", "B-ready"]
        )
    ]
    syncs = [
        _sync("B-failed", T0 - timedelta(hours=1), "failed", None),
        _sync("B-active-old", T0 - timedelta(hours=9), "ok", "IN_USE"),
        _sync("B-active-new", T0 - timedelta(hours=2), "ok", "IN_USE"),
        # terminal when synced: settled
        _sync("B-done", T0 - timedelta(hours=20), "ok", "IN_USE"),
        _sync("B-done", T0 - timedelta(hours=10), "ok", "USED_UP"),
        # synced terminal, but the stored list now says something else: synced again
        _sync("B-moved", T0 - timedelta(hours=8), "ok", "CANCEL"),
        _sync("B-ready", T0 - timedelta(hours=5), "ok", "GOT_RESOURCE"),
    ]
    listed = {
        "run_id": "list",
        "fetched_at": T0,
        "source_endpoint": "/reseller/orders",
        "provider": "esimtrade",
        "provider_order_no": "B-moved",
        "status": "in_use",
        "payload": to_json({}),
    }
    with resource.connect() as con:
        append_rows(
            con,
            {
                "raw.ingest_log": [
                    _log("local", "local_orders", T0),
                    _log("list", "esimtrade_orders", T0),
                ],
                "raw.local_orders": locals_,
                "raw.esimtrade_order_syncs": syncs,
                "raw.esimtrade_orders": [listed],
            },
        )
    return resource


def test_incremental_plan_skips_only_what_was_synced_after_it_became_terminal(
    warehouse: WarehouseResource,
) -> None:
    plan = _plan(warehouse, "esimtrade_sync_plan", full=False)
    assert plan["order_no"].to_list() == [
        "B-never",  # never synced
        "B-failed",  # the last attempt failed
        "B-active-old",  # then by staleness, oldest sync first (9 h ago)
        "B-moved",  # 8 h
        "B-ready",  # 5 h
        "B-active-new",  # 2 h
    ]
    assert "B-done" not in plan["order_no"].to_list()


def test_full_plan_keeps_settled_orders_but_last(warehouse: WarehouseResource) -> None:
    plan = _plan(warehouse, "esimtrade_sync_plan", full=True)
    assert plan["order_no"].to_list()[-1] == "B-done"
    assert (
        plan["order_no"].to_list()[:-1]
        == _plan(warehouse, "esimtrade_sync_plan", full=False)["order_no"].to_list()
    )
    assert plan["priority"].to_list() == [0, 1, 2, 2, 2, 2, 3]
