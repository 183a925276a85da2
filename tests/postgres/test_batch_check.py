"""The vectorised check of database rows against the file path's row check, without a server:
for any row, a batch accepts it with the same typed values or quarantines it with the same
reason as `_check_row` (the rule the CSV and Parquet paths apply)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.local_orders import REQUIRED_COLUMNS, _check_row
from pipelines.local_orders_db import check_batch, connection_url, redact_url

_texts = {
    "provider": ["esimtrade", "pressone", " PressOne ", "ESIMTRADE", "bogus", "", "esimtrade\t"],
    "order_no": ["B1", " B2 ", "", "\u00a0B3", "B\x1f4"],
    "iccid": [
        "",
        "8948010000095399804",
        "8948010000095399805",
        " 89440000000000000123 ",
        "12",
        "894400000000000000127",
        "8944000000000000012",
    ],
    "package_code": ["", "PUX79Y0PK", " pkg ", "x" * 1001],
    "status": ["active", "", " Ready ", "act\nive\n"],
    "amount": [
        "1.5",
        "1.5000",
        "2",
        "000001.25",
        "1e1",
        "-1",
        "abc",
        "1000000",
        "999999.9999",
        "1.123456",
        " 3 ",
        "NaN",
        "",
        "1.23455",
    ],
    "currency": ["USD", "usd", " USD", "EUR", ""],
    "created_at": [
        "2026-01-01",
        "2026-01-01 10:00:00+00",
        "2026-01-01T10:00:00Z",
        "2026-01-01 10:00:00.123456+00",
        "2026-01-01 10:00:00",
        "2026-02-30",
        "2026-01-01 24:00:00",
        "2026-01-01 23:59:60",
        "2026-01-01 10:00:00+02:00",
        "2026-01-01T10:00",
        "2026-01-01Z",
        "",
        "yesterday",
        "20260101",
    ],
}
rows = st.fixed_dictionaries(
    {
        name: st.one_of(st.sampled_from(_texts[name]), st.text(max_size=12))
        for name in REQUIRED_COLUMNS
    }
)


@settings(max_examples=300, deadline=None)
@given(st.lists(rows, min_size=1, max_size=20))
def test_a_batch_decides_every_row_as_the_file_path_does(batch: list[dict[str, str]]) -> None:
    table = pa.table({name: [row[name] for row in batch] for name in REQUIRED_COLUMNS})
    checked = check_batch(table, list(REQUIRED_COLUMNS), first_line=1)
    accepted = {row["line_no"]: row for row in checked.accepted.iter_rows(named=True)}
    rejected = {row["line_no"]: row["reason"] for row in checked.rejected.iter_rows(named=True)}
    assert len(accepted) + len(rejected) == len(batch)
    luhn_warnings = 0
    for line_no, row in enumerate(batch, start=1):
        values = {name: row[name] for name in REQUIRED_COLUMNS}  # the file path's order
        try:
            expected, luhn_warning = _check_row(values)
        except ValueError as exc:
            assert rejected.get(line_no) == f"invalid value: {exc}", values
            continue
        luhn_warnings += luhn_warning
        got = accepted.get(line_no)
        assert got is not None, (values, rejected.get(line_no))
        for name, value in expected.items():
            actual = got[name]
            if isinstance(value, Decimal):
                assert actual == value, (name, values)
            else:
                assert actual == value, (name, values, actual, value)
    assert checked.luhn_warnings == luhn_warnings


def test_a_database_url_is_shown_without_its_password_and_connects_with_a_timeout() -> None:
    url = "postgresql://reseller:s%40cret-9f2@db.internal:6432/shop?sslmode=require&password=x2"
    shown = redact_url(url)
    assert shown == "postgresql://reseller@db.internal:6432/shop?sslmode=require"
    connecting = connection_url(url)
    assert "connect_timeout=15" in connecting and "application_name=esim-recon" in connecting
    assert "s%40cret-9f2" in connecting  # the driver still gets the password
    assert connection_url(url + "&connect_timeout=3").count("connect_timeout") == 1
