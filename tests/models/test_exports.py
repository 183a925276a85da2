"""CSV / Parquet exports and read-only queries."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from pipelines import exports
from pipelines.exports import EXPORTS, read_only_query, write_exports
from pipelines.resources import resources_from_settings
from pipelines.settings import Settings

from .helpers import MB, T0, RawLayer, build_all, list_row, local_row, sync_row

HOSTILE = '=HYPERLINK("http://x","y")'


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    db = tmp_path_factory.mktemp("exports") / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.local_orders(
        [
            local_row(
                "B1",
                "8944000000000000001",
                package_code=HOSTILE,
                amount="12.5000",
                status="@active",
            ),
            local_row(
                "B2",
                "8944000000000000002",
                package_code="-2+3+cmd|' /C calc'!A0",
                amount="-3.2500",
            ),
        ]
    )
    raw.esimtrade_orders([list_row("B1", cost_price="12.5000"), list_row("B2")])
    raw.esimtrade_syncs(
        [sync_row("B1", "t1", "8944000000000000001", total_volume=500 * MB, order_usage=600 * MB)],
        at=T0 + timedelta(microseconds=250_000),
    )
    build_all(con)
    con.close()
    return db


@pytest.fixture
def exported(warehouse: Path, tmp_path: Path) -> dict[str, Path]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return write_exports(con, tmp_path / "out")
    finally:
        con.close()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_report_is_written_as_csv_and_parquet(exported):
    assert set(exported) == {f"{name}.{ext}" for name in EXPORTS for ext in ("csv", "parquet")}
    folder = exported["usage.csv"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(exported)  # no temp files left
    header = exported["discrepancies.csv"].read_text().splitlines()[0]
    assert header.startswith(
        "provider,order_no,iccid,discrepancy_type,severity,local_value,provider_value,detected_at"
    )


def test_a_hostile_cell_round_trips_as_text(exported):
    rows = {r["row_id"]: r for r in _csv(exported["reconciliation.csv"])}
    assert rows["L2"]["local_package_code"] == "'" + HOSTILE
    assert rows["L2"]["local_package_code"][1:] == HOSTILE
    assert rows["L2"]["local_status"] == "'@active"
    assert rows["L3"]["local_package_code"] == "'-2+3+cmd|' /C calc'!A0"
    findings = {
        (r["order_no"], r["discrepancy_type"]): r for r in _csv(exported["discrepancies.csv"])
    }
    assert findings[("B1", "package_mismatch")]["local_value"] == "'" + HOSTILE
    # a text cell holding just a negative number is a number, not a formula
    assert findings[("B2", "amount_mismatch")]["local_value"] == "-3.2500"


def test_numbers_stay_numbers(exported):
    rows = {r["row_id"]: r for r in _csv(exported["reconciliation.csv"])}
    assert rows["L2"]["local_amount"] == "12.5000"
    assert rows["L3"]["local_amount"] == "-3.2500"  # a negative amount is not a formula
    [usage] = _csv(exported["usage.csv"])
    assert usage["remaining_bytes"] == str(-100 * MB)
    assert usage["pct_used"] == "120.00"
    assert usage["is_unlimited"] == "false"


def test_timestamps_are_iso_utc_with_z(exported):
    [usage] = _csv(exported["usage.csv"])
    assert usage["last_synced_at"] == "2026-01-10T12:00:00.250000Z"
    detected = {r["detected_at"] for r in _csv(exported["discrepancies.csv"])}
    assert detected == {"2026-01-10T12:05:00Z"}
    [daily] = _csv(exported["usage_daily.csv"])
    assert daily["usage_date"] == "2026-01-10"


def test_exports_are_stable(warehouse, tmp_path):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        first = write_exports(con, tmp_path / "a")
        second = write_exports(con, tmp_path / "b")
    finally:
        con.close()
    for name in first:
        if name.endswith(".csv"):
            assert first[name].read_bytes() == second[name].read_bytes(), name


def test_parquet_keeps_the_database_types(exported):
    table = pq.read_table(exported["reconciliation.parquet"])
    frame = pl.from_arrow(table)
    assert frame.height == 2
    row = frame.filter(pl.col("row_id") == "L2").row(0, named=True)
    assert row["local_package_code"] == HOSTILE  # no spreadsheet quoting in Parquet
    assert row["local_amount"] == Decimal("12.5000")
    assert str(table.schema.field("provider_last_synced_at").type).startswith("timestamp[us, tz=")


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(warehouse, tmp_path, monkeypatch):
    out = tmp_path / "out"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        write_exports(con, out)
        before = (out / "reconciliation.csv").read_bytes()

        def broken(con, sql, handle):
            handle.write(b"half a file")
            raise OSError("disk full")

        monkeypatch.setattr(exports, "_write_csv", broken)
        with pytest.raises(OSError, match="disk full"):
            write_exports(con, out)
    finally:
        con.close()
    assert (out / "reconciliation.csv").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_export_dir_comes_from_the_environment(monkeypatch, tmp_path):
    def configured() -> Path:
        return Path(resources_from_settings(Settings())["exports"].directory)

    monkeypatch.delenv("ESIM_RECON_EXPORT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file here
    assert configured() == Path("exports")
    monkeypatch.setenv("ESIM_RECON_EXPORT_DIR", str(tmp_path))
    assert configured() == tmp_path


def test_read_only_query_reads_and_cannot_write(warehouse):
    frame = read_only_query(warehouse, "select count(*) as n from reports.reconciliation")
    assert frame.to_dicts() == [{"n": 2}]
    with pytest.raises(duckdb.Error, match="read-only"):
        read_only_query(warehouse, "create table reports.sneaky as select 1 as x")
    with pytest.raises(duckdb.Error, match="read-only"):
        read_only_query(warehouse, "delete from reports.reconciliation")
    assert read_only_query(warehouse, "select count(*) as n from reports.reconciliation")[
        "n"
    ].to_list() == [2]
