"""An order batch resolves what only the whole data can tell: a PressOne usage row without an
order code belongs to the newest order holding its ICCID, and a build of the touched orders
finds it there as a whole build does."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import duckdb

from pipelines.sql_project import build

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


def _usage_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "select provider, order_no, iccid, used_bytes from reports.usage order by all"
        ).fetchall()
    finally:
        con.close()


def _differing_relations(db: Path, whole: Path) -> list[str]:
    """The reports and maintained models (those with a batch copy) whose rows differ between
    `db` and `whole` (EXCEPT ALL both ways)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("attach $path as whole (read_only)", {"path": str(whole)})
        relations = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() "
            "where database_name = current_database() and (schema_name = 'reports' "
            "  or (schema_name <> 'order_batches' and table_name in ("
            "    select table_name from duckdb_tables() where schema_name = 'order_batches')))"
        ).fetchall()
        assert len(relations) > 8
        differing = []
        for (relation,) in relations:
            mine, theirs = f"{db.stem}.{relation}", f"whole.{relation}"
            (count,) = con.execute(
                f"select count(*) from ((select * from {mine} except all select * from {theirs})"
                f" union all (select * from {theirs} except all select * from {mine}))"
            ).fetchone() or (0,)
            if count:
                differing.append(relation)
        return differing
    finally:
        con.close()


def test_usage_without_an_order_code_is_found_on_an_order_batch(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.pressone_orders(
        [
            {"order_id": 1, "order_code": "P-1", "sim_id": 1, "iccid": ICCID_1},
            {"order_id": 2, "order_code": "P-2", "sim_id": 2, "iccid": ICCID_2},
        ]
    )
    raw.pressone_usage([_usage(ICCID_1, 1000.0), _usage(ICCID_2, 900.0)])
    con.close()
    build(db, run_at=T0 + timedelta(minutes=5), incremental=True)

    later = T0 + timedelta(hours=1)
    con = duckdb.connect(str(db))
    RawLayer(con).pressone_usage([_usage(ICCID_1, 500.0)], run_id="run-2", at=later)
    con.close()
    build(db, run_at=later + timedelta(minutes=5), incremental=True)
    con = duckdb.connect(str(db), read_only=True)
    try:
        touched = con.execute(
            "select order_no, is_all from reconciliation.int_touched_orders"
        ).fetchall()
    finally:
        con.close()
    # an order batch, of the order holding ICCID_1 (and of the rows no order holds)
    assert ("P-1", False) in touched and not any(is_all for _order, is_all in touched)
    assert ("P-2", False) not in touched

    whole = tmp_path / "whole.duckdb"
    shutil.copy(db, whole)
    build(whole, run_at=later + timedelta(minutes=5), full_refresh=True)
    assert _usage_rows(db) == _usage_rows(whole)
    assert ("pressone", "P-1", ICCID_1, 524 * 1_048_576) in _usage_rows(db)


def test_usage_naming_a_touched_order_stays_with_the_order_holding_its_iccid(
    tmp_path: Path,
) -> None:
    # P-2 holds ICCID_2; a row of ICCID_2 that names P-1 belongs to P-2 (here a failed fetch:
    # sync_failed on P-2's eSIM). When only P-1 is touched, the batch reads that row (it names
    # P-1) and must still leave it to P-2.
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.pressone_orders(
        [
            {"order_id": 1, "order_code": "P-1", "sim_id": 1, "iccid": ICCID_1},
            {"order_id": 2, "order_code": "P-2", "sim_id": 2, "iccid": ICCID_2},
        ]
    )
    misnamed = {
        **_usage(ICCID_2, 900.0),
        "order_code": "P-1",
        "outcome": "failed",
        "http_status": 503,
        "error": "upstream unavailable",
    }
    raw.pressone_usage([_usage(ICCID_1, 1000.0), misnamed])
    con.close()
    build(db, run_at=T0 + timedelta(minutes=5), incremental=True)

    later = T0 + timedelta(hours=1)
    con = duckdb.connect(str(db))
    RawLayer(con).pressone_usage(
        [{**_usage(ICCID_1, 500.0), "order_code": "P-1"}], run_id="run-2", at=later
    )
    con.close()
    build(db, run_at=later + timedelta(minutes=5), incremental=True)
    con = duckdb.connect(str(db), read_only=True)
    try:
        touched = con.execute(
            "select order_no from reconciliation.int_touched_orders where not is_all"
        ).fetchall()
    finally:
        con.close()
    assert ("P-1",) in touched and ("P-2",) not in touched

    whole = tmp_path / "whole.duckdb"
    shutil.copy(db, whole)
    build(whole, run_at=later + timedelta(minutes=5), full_refresh=True)
    assert _differing_relations(db, whole) == []
    con = duckdb.connect(str(db), read_only=True)
    try:
        failed = con.execute(
            "select order_no from reports.discrepancies where discrepancy_type = 'sync_failed'"
        ).fetchall()
    finally:
        con.close()
    assert failed == [("P-2",)]
