"""Reading the local orders file: bad rows quarantined with line and reason, good rows load."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.raw import local_orders
from pipelines.local_orders import LocalOrdersError, read_local_orders
from pipelines.resources import LocalOrdersResource, WarehouseResource

HEADER = "provider,order_no,iccid,package_code,status,amount,currency,created_at"
GOOD = (
    "esimtrade,B26022703140001,8948010000095399804,PUX79Y0PK,active,1.50,USD,2026-02-27T03:14:00Z"
)


def _write(tmp_path: Path, text: str | bytes, name: str = "local.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def _reasons(path: Path) -> dict[int, str]:
    return {row["line_no"]: row["reason"] for row in read_local_orders(path).rejected}


def test_a_clean_file_loads_typed_rows(tmp_path: Path) -> None:
    load = read_local_orders(_write(tmp_path, f"{HEADER}\n{GOOD}\n"))
    assert load.rejected == []
    [row] = load.accepted
    assert row["line_no"] == 2
    assert row["amount"] == Decimal("1.5000")
    assert row["created_at"].isoformat() == "2026-02-27T03:14:00+00:00"
    assert row["iccid"] == "8948010000095399804"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("pressone,P-1,,pkg,ready,-1,USD,2026-01-01", "amount is negative"),
        ("pressone,P-1,,pkg,ready,abc,USD,2026-01-01", "amount is not a number"),
        ("pressone,P-1,,pkg,ready,NaN,USD,2026-01-01", "amount is not a number"),
        ("pressone,P-1,,pkg,ready,2,USD,not-a-date", "created_at is not a date/time"),
        ("pressone,P-1,,pkg,ready,2,EUR,2026-01-01", "currency must be USD"),
        ("airalo,P-1,,pkg,ready,2,USD,2026-01-01", "unknown provider"),
        ("pressone,,,pkg,ready,2,USD,2026-01-01", "order_no is empty"),
        ("pressone,P-1,,pkg,,2,USD,2026-01-01", "status is empty"),
        ("pressone,P-1,,pkg", "column count"),
        (f"pressone,P-1,,{'x' * 5000},ready,2,USD,2026-01-01", "field too long"),
        ('pressone,"P\n1",,pkg,ready,2,USD,2026-01-01', "control characters"),
    ],
)
def test_each_bad_row_is_quarantined_with_its_line_and_reason(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = _write(tmp_path, f"{HEADER}\n{GOOD}\n{line}\n")
    load = read_local_orders(path)
    assert [row["line_no"] for row in load.accepted] == [2]
    [(line_no, text)] = _reasons(path).items()
    assert line_no == 3
    assert reason in text


def test_duplicate_rows_bom_and_bad_bytes(tmp_path: Path) -> None:
    raw = (
        b"\xef\xbb\xbf" + HEADER.encode() + b"\n" + GOOD.encode() + b"\n" + GOOD.encode() + b"\n"
        b"pressone,P-\xff2,,pkg,ready,2,USD,2026-01-01\n"
        b"pressone,P-3,,pkg,ready,2,USD,2026-01-01 10:00:00\n"
    )
    path = _write(tmp_path, raw)
    load = read_local_orders(path)
    assert [row["order_no"] for row in load.accepted] == ["B26022703140001", "P-3"]
    assert _reasons(path) == {
        3: "duplicate row: same as line 2",
        4: "encoding: not valid UTF-8",
    }
    assert load.rejected_reasons == {"duplicate row": 1, "encoding": 1}


def test_extra_columns_are_ignored_and_named(tmp_path: Path) -> None:
    load = read_local_orders(_write(tmp_path, f"{HEADER},note\n{GOOD},hello\n"))
    assert len(load.accepted) == 1
    assert load.extra_columns == ["note"]


def test_malformed_iccids_load_so_the_models_can_report_them(tmp_path: Path) -> None:
    bad_shape = GOOD.replace("8948010000095399804", "12345")
    bad_luhn = GOOD.replace("8948010000095399804", "8948010000095399805").replace("0001", "0002")
    load = read_local_orders(_write(tmp_path, f"{HEADER}\n{bad_shape}\n{bad_luhn}\n"))
    assert [row["iccid"] for row in load.accepted] == ["12345", "8948010000095399805"]
    assert load.luhn_warnings == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("provider,order_no,iccid\nesimtrade,B1,\n", "required column(s) missing"),
    ],
)
def test_unreadable_files_fail_whole_with_one_message(
    tmp_path: Path, content: str, message: str
) -> None:
    with pytest.raises(LocalOrdersError) as raised:
        read_local_orders(_write(tmp_path, content))
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_parquet_input_is_validated_the_same_way(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "provider": ["pressone", "pressone"],
            "order_no": ["P-1", "P-2"],
            "iccid": [None, None],
            "package_code": ["pkg", "pkg"],
            "status": ["ready", "ready"],
            "amount": ["2.00", "-5"],
            "currency": ["USD", "USD"],
            "created_at": ["2026-01-01", "2026-01-01"],
        }
    )
    path = tmp_path / "local.parquet"
    frame.write_parquet(path)
    load = read_local_orders(path)
    assert [row["order_no"] for row in load.accepted] == ["P-1"]
    assert _reasons(path) == {3: "invalid value: amount is negative: -5"}


def test_the_asset_lands_good_and_bad_rows_and_leaves_the_db_alone_on_an_unreadable_file(
    tmp_path: Path,
) -> None:
    db = tmp_path / "recon.duckdb"
    good = _write(tmp_path, f"{HEADER}\n{GOOD}\npressone,P-1,,pkg,ready,abc,USD,2026-01-01\n")
    resources = {"warehouse": WarehouseResource(database=str(db))}
    result = dg.materialize(
        [local_orders],
        resources=resources | {"local_orders_file": LocalOrdersResource(path=str(good))},
    )
    assert result.success
    broken = _write(tmp_path, "provider,order_no\nesimtrade,B1\n", name="broken.csv")
    failed = dg.materialize(
        [local_orders],
        resources=resources | {"local_orders_file": LocalOrdersResource(path=str(broken))},
        raise_on_error=False,
    )
    assert not failed.success
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT order_no FROM raw.local_orders").fetchall() == [
            ("B26022703140001",)
        ]
        assert con.execute("SELECT line_no, reason FROM raw.local_orders_rejected").fetchall() == [
            (3, "invalid value: amount is not a number: 'abc'")
        ]
        statuses = con.execute("SELECT status FROM raw.ingest_log").fetchall()
        assert statuses == [("complete",)]
    finally:
        con.close()
