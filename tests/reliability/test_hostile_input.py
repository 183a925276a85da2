"""Hostile local input through the real `local_orders` asset into DuckDB: each bad row is
quarantined with its line and reason, the good rows load, the counts are in the asset's
metadata; a file that cannot be read at all leaves the database exactly as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.raw import local_orders
from pipelines.definitions import runnable
from pipelines.resources import (
    ESIMTradeResource,
    ExportsResource,
    LocalOrdersResource,
    PressOneResource,
    RunOptionsResource,
    WarehouseResource,
)
from pipelines.runner import RunError, materialize_all
from pipelines.sql_project import build
from tests.reliability._support import db_contents

HEADER = "provider,order_no,iccid,package_code,status,amount,currency,created_at"
GOOD = (
    "esimtrade,B26022703140001,8948010000095399804,PUX79Y0PK,active,1.50,USD,2026-02-27T03:14:00Z"
)
GOOD2 = "pressone,20260101-000002,8944000000000000012,pkg-1,ready,2.00,USD,2026-01-01"


def _materialize(db: Path, path: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [local_orders],
        resources={
            "warehouse": WarehouseResource(database=str(db)),
            "local_orders_file": LocalOrdersResource(path=str(path)),
        },
        raise_on_error=False,
    )


def _load(tmp_path: Path, content: str | bytes, name: str = "local.csv") -> dict[str, Any]:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    db = tmp_path / "recon.duckdb"
    result = _materialize(db, path)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = {k: v.value for k, v in event.materialization.metadata.items()}
    con = duckdb.connect(str(db), read_only=True)
    try:
        accepted = con.execute(
            "SELECT line_no, order_no, iccid FROM raw.local_orders ORDER BY line_no"
        ).fetchall()
        rejected = con.execute(
            "SELECT line_no, reason FROM raw.local_orders_rejected ORDER BY line_no"
        ).fetchall()
    finally:
        con.close()
    assert metadata["dagster/row_count"] == len(accepted)
    assert metadata["rejected_rows"] == len(rejected)
    return {"accepted": accepted, "rejected": rejected, "metadata": metadata, "db": db}


def _csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def _one_rejected(loaded: dict[str, Any], line: int, reason: str) -> None:
    assert [row[0] for row in loaded["accepted"]] == [2]
    [(line_no, text)] = loaded["rejected"]
    assert line_no == line
    assert reason in text, text
    kind = text.split(":", 1)[0]
    assert loaded["metadata"]["rejected_reasons"] == {kind: 1}


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        pytest.param("pressone,P-1,,pkg,ready,2", "column count: 6 fields", id="missing-columns"),
        pytest.param(
            "pressone,P-1,,pkg,ready,2,USD,2026-01-01,surplus",
            "column count: 9 fields",
            id="extra-columns",
        ),
        pytest.param("pressone,P-1,,pkg,ready,true,USD,2026-01-01", "amount is not", id="type"),
        pytest.param("pressone,P-1,,pkg,ready,2,USD,2026-02-30", "created_at", id="bad-date"),
        pytest.param("pressone,P-1,,pkg,ready,2,USD,yesterday", "created_at", id="no-date"),
        pytest.param("pressone,P-1,,pkg,ready,-0.01,USD,2026-01-01", "negative", id="negative"),
        pytest.param('pressone,P-1,,pkg,ready,"1,50",USD,2026-01-01', "not a number", id="comma"),
        pytest.param("pressone,P-1,,pkg,ready,Infinity,USD,2026-01-01", "not a number", id="inf"),
        pytest.param(
            f"pressone,P-1,,{'x' * 2_000_000},ready,2,USD,2026-01-01",
            "field too long",
            id="huge-field",
        ),
    ],
)
def test_a_bad_row_is_quarantined_with_line_and_reason(
    tmp_path: Path, row: str, reason: str
) -> None:
    _one_rejected(_load(tmp_path, _csv(GOOD, row)), 3, reason)


def test_extra_header_columns_are_ignored_and_reported(tmp_path: Path) -> None:
    loaded = _load(tmp_path, _csv(f"{GOOD},a note", header=f"{HEADER},note"))
    assert [row[0] for row in loaded["accepted"]] == [2]
    assert loaded["metadata"]["extra_columns_ignored"] == "note"


def test_columns_in_another_order_load_by_name(tmp_path: Path) -> None:
    names = HEADER.split(",")
    values = GOOD.split(",")
    loaded = _load(tmp_path, _csv(",".join(reversed(values)), header=",".join(reversed(names))))
    assert loaded["accepted"] == [(2, "B26022703140001", "8948010000095399804")]


def test_malformed_iccids_load_and_become_invalid_iccid_findings(tmp_path: Path) -> None:
    bad = ["12345", "89ABC00000000000000", "8948 0100 0009 5399 804"]
    rows = [
        GOOD.replace("8948010000095399804", iccid).replace("0001", f"000{n + 2}")
        for n, iccid in enumerate(bad)
    ]
    loaded = _load(tmp_path, _csv(*rows))
    assert [row[2] for row in loaded["accepted"]] == bad
    assert loaded["rejected"] == []
    build(loaded["db"])
    con = duckdb.connect(str(loaded["db"]))
    try:
        found = con.execute(
            "SELECT local_value FROM reports.discrepancies "
            "WHERE discrepancy_type = 'invalid_iccid' ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert sorted(value for (value,) in found) == sorted(bad)


def test_duplicate_rows(tmp_path: Path) -> None:
    """An identical row with an ICCID is the same eSIM twice and is quarantined; identical rows
    without one are the eSIMs of a quantity-2 order; a shared ICCID on otherwise different rows
    loads (the models report duplicate_iccid)."""
    unknown = "esimtrade,B26022703140009,,PUX79Y0PK,pending,1.50,USD,2026-02-27T03:14:00Z"
    shared = GOOD.replace("B26022703140001", "B26022703140005")
    loaded = _load(tmp_path, _csv(GOOD, GOOD, unknown, unknown, shared))
    assert [row[0] for row in loaded["accepted"]] == [2, 4, 5, 6]
    assert loaded["rejected"] == [(3, "duplicate row: same as line 2")]
    assert loaded["metadata"]["rejected_reasons"] == {"duplicate row": 1}
    build(loaded["db"])
    con = duckdb.connect(str(loaded["db"]))
    try:
        found = con.execute(
            "SELECT order_no FROM reports.discrepancies "
            "WHERE discrepancy_type = 'duplicate_iccid' ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    assert found == [("B26022703140001",), ("B26022703140005",)]


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    loaded = _load(tmp_path, b"\xef\xbb\xbf" + _csv(GOOD, GOOD2).encode())
    assert [row[0] for row in loaded["accepted"]] == [2, 3]
    assert loaded["rejected"] == []


def test_non_utf8_bytes_quarantine_only_their_row(tmp_path: Path) -> None:
    content = _csv(GOOD).encode() + "pressone,P-é,,pkg,ready,2,USD,2026-01-01\n".encode("latin-1")
    _one_rejected(_load(tmp_path, content), 3, "encoding: not valid UTF-8")


def test_crlf_line_ends_and_blank_lines(tmp_path: Path) -> None:
    loaded = _load(tmp_path, f"{HEADER}\r\n{GOOD}\r\n\r\n{GOOD2}\r\n")
    assert [row[0] for row in loaded["accepted"]] == [2, 4]


def test_an_unterminated_quote_swallows_the_rest_and_is_quarantined(tmp_path: Path) -> None:
    loaded = _load(tmp_path, _csv(GOOD, 'pressone,"P-1,,pkg,ready,2,USD,2026-01-01', GOOD2))
    assert [row[0] for row in loaded["accepted"]] == [2]
    [(line_no, reason)] = loaded["rejected"]
    assert line_no == 3 and reason.startswith("column count")


def test_parquet_with_wrong_column_types(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "provider": ["pressone", "pressone"],
            "order_no": [1001, 1002],  # integers: fine as text
            "iccid": [None, None],
            "package_code": ["pkg", "pkg"],
            "status": ["ready", "ready"],
            "amount": [[1, 2], [3]],  # a list: no amount
            "currency": ["USD", "USD"],
            "created_at": ["2026-01-01", "2026-01-01"],
        }
    )
    path = tmp_path / "local.parquet"
    frame.write_parquet(path)
    loaded = _load(tmp_path, path.read_bytes(), name="local.parquet")
    assert loaded["accepted"] == []
    assert [reason for _, reason in loaded["rejected"]] == [
        "invalid value: amount is not a number: '[1, 2]'",
        "invalid value: amount is not a number: '[3]'",
    ]


# --- files that cannot be read at all -------------------------------------------------------


def _garbage() -> bytes:
    return bytes(range(256)) * 4


UNREADABLE = [
    pytest.param(b"", "the file is empty", id="empty"),
    pytest.param(b"\xef\xbb\xbf\r\n  \n", "the file is empty", id="only-bom-and-blanks"),
    pytest.param(b"provider,order_no\nesimtrade,B1\n", "required column(s) missing", id="header"),
    pytest.param(_garbage(), "required column(s) missing", id="binary"),
    pytest.param(b"PAR1 not really parquet", "not a readable Parquet file", id="parquet"),
]


def _resources(db: Path, local: Path) -> dict[str, Any]:
    closed = "http://127.0.0.1:9"
    return {
        "warehouse": WarehouseResource(database=str(db)),
        "esimtrade": ESIMTradeResource(
            base_url=closed, access_code="unreached-code", secret_key="unreached-secret-key"
        ),
        "pressone": PressOneResource(
            base_url=closed, client_id="unreached-client", client_secret="unreached-client-secret"
        ),
        "local_orders_file": LocalOrdersResource(path=str(local)),
        "exports": ExportsResource(directory=str(db.parent / "exports")),
        "run_options": RunOptionsResource(),
    }


@pytest.mark.parametrize(("content", "message"), UNREADABLE)
def test_an_unreadable_file_fails_in_one_line_and_leaves_the_database_as_it_was(
    tmp_path: Path, content: bytes, message: str
) -> None:
    db = tmp_path / "recon.duckdb"
    good = tmp_path / "good.csv"
    good.write_text(_csv(GOOD, GOOD2, "pressone,P-1,,pkg,ready,x,USD,2026-01-01"))
    assert _materialize(db, good).success
    before = db_contents(db)
    assert before["raw.local_orders"] and before["raw.local_orders_rejected"]

    bad = tmp_path / ("bad.parquet" if b"PAR1" in content else "bad.csv")
    bad.write_bytes(content)
    # A whole run (the provider assets would write first if it started) refuses to start.
    with pytest.raises(RunError) as refused:
        materialize_all(runnable, _resources(db, bad), db_path=db)
    text = str(refused.value)
    assert text.startswith("local orders not loaded: ") and message in text
    assert "\n" not in text
    assert db_contents(db) == before
    # The asset alone fails the same way and writes nothing either.
    failed = _materialize(db, bad)
    assert not failed.success
    assert db_contents(db) == before


def test_a_missing_file_and_a_folder_are_unreadable(tmp_path: Path) -> None:
    db = tmp_path / "recon.duckdb"
    for path in (tmp_path / "absent.csv", tmp_path):
        with pytest.raises(RunError, match="no such file"):
            materialize_all(runnable, _resources(db, path), db_path=db)
    assert not db.exists()


def test_rejected_rows_keep_their_raw_text_for_the_analyst(tmp_path: Path) -> None:
    loaded = _load(tmp_path, _csv(GOOD, "pressone,P-1,,pkg,ready,abc,USD,2026-01-01"))
    con = duckdb.connect(str(loaded["db"]), read_only=True)
    try:
        [(raw_line,)] = con.execute("SELECT raw_line FROM raw.local_orders_rejected").fetchall()
    finally:
        con.close()
    assert raw_line == "pressone,P-1,,pkg,ready,abc,USD,2026-01-01"
    assert json.loads(json.dumps(loaded["metadata"]["rejected_reasons"])) == {"invalid value": 1}
