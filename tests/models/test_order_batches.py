"""An order batch resolves what only the whole data can tell: a PressOne usage row belongs to
the order holding its ICCID (the newest one when it names none, and even when it names another
order), and a build of the touched orders finds it there as a whole build does."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb

from pipelines.sql_project import build
from tests.pipeline.helpers import differences, query

from .helpers import T0, RawLayer

ICCID_1 = "8944000000000000011"
ICCID_2 = "8944000000000000022"


def _usage(iccid: str, remaining_mb: float) -> dict:
    # no order code: the order is the one holding the ICCID
    return {
        "iccid": iccid,
        "order_code": None,
        "usage_status": "ACTIVE",
        "total_mb": 1024.0,
        "remaining_mb": remaining_mb,
    }


LATER = T0 + timedelta(hours=1)


def _usage_rows(db: Path) -> list[tuple]:
    return query(db, "select provider, order_no, iccid, used_bytes from reports.usage order by all")


def _built_twice(tmp_path: Path, first_usage: list[dict], second_usage: list[dict]) -> Path:
    """A warehouse of orders P-1 (ICCID_1) and P-2 (ICCID_2) built after `first_usage`, then
    built incrementally after a second run fetched `second_usage`."""
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.pressone_orders(
        [
            {"order_id": 1, "order_code": "P-1", "sim_id": 1, "iccid": ICCID_1},
            {"order_id": 2, "order_code": "P-2", "sim_id": 2, "iccid": ICCID_2},
        ]
    )
    raw.pressone_usage(first_usage)
    con.close()
    build(db, run_at=T0 + timedelta(minutes=5), incremental=True)

    con = duckdb.connect(str(db))
    RawLayer(con).pressone_usage(second_usage, run_id="run-2", at=LATER)
    con.close()
    build(db, run_at=LATER + timedelta(minutes=5), incremental=True)
    return db


def _full_refresh_of(db: Path) -> Path:
    """A copy of `db` rebuilt by a full refresh, as of the same run."""
    whole = db.parent / "whole.duckdb"
    shutil.copy(db, whole)
    build(whole, run_at=LATER + timedelta(minutes=5), full_refresh=True)
    return whole


def test_usage_without_an_order_code_is_found_on_an_order_batch(tmp_path: Path) -> None:
    db = _built_twice(
        tmp_path,
        [_usage(ICCID_1, 1000.0), _usage(ICCID_2, 900.0)],
        [_usage(ICCID_1, 500.0)],
    )
    touched = query(db, "select order_no, is_all from reconciliation.int_touched_orders")
    # an order batch, of the order holding ICCID_1 (and of the rows no order holds)
    assert ("P-1", False) in touched and not any(is_all for _order, is_all in touched)
    assert ("P-2", False) not in touched

    whole = _full_refresh_of(db)
    assert _usage_rows(db) == _usage_rows(whole)
    assert ("pressone", "P-1", ICCID_1, 524 * 1_048_576) in _usage_rows(db)


def test_usage_naming_a_touched_order_stays_with_the_order_holding_its_iccid(
    tmp_path: Path,
) -> None:
    # P-2 holds ICCID_2; a row of ICCID_2 that names P-1 belongs to P-2 (here a failed fetch:
    # sync_failed on P-2's eSIM). When only P-1 is touched, the batch reads that row (it names
    # P-1) and must still leave it to P-2.
    misnamed = {
        **_usage(ICCID_2, 900.0),
        "order_code": "P-1",
        "outcome": "failed",
        "http_status": 503,
        "error": "upstream unavailable",
    }
    db = _built_twice(
        tmp_path,
        [_usage(ICCID_1, 1000.0), misnamed],
        [{**_usage(ICCID_1, 500.0), "order_code": "P-1"}],
    )
    touched = query(db, "select order_no from reconciliation.int_touched_orders where not is_all")
    assert ("P-1",) in touched and ("P-2",) not in touched

    assert differences(db, _full_refresh_of(db)) == {}
    failed = query(
        db, "select order_no from reports.discrepancies where discrepancy_type = 'sync_failed'"
    )
    assert failed == [("P-2",)]
