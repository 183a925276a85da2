"""Local orders read from a real PostgreSQL server: the same rows give the same load and the
same findings as the CSV file, bad rows are quarantined with their database key, a database that
cannot be read stops `esim-recon run` in one line with exit 2 before anything is written, and
the password is nowhere it could leak to."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from assets.raw import local_orders
from pipelines import local_orders_db
from pipelines.local_orders_db import redact_url
from pipelines.resources import LocalOrdersResource, WarehouseResource
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.postgres.conftest import OrdersDatabase
from tests.reliability._support import cli_env, db_contents, run_cli

pytestmark = pytest.mark.postgres

TEXT_TABLE = """
CREATE TABLE orders_as_text (
    id bigserial PRIMARY KEY, provider text, order_no text, iccid text, package_code text,
    status text, amount text, currency text, created_at text, note text
)
"""
HEADER = (
    "provider",
    "order_no",
    "iccid",
    "package_code",
    "status",
    "amount",
    "currency",
    "created_at",
)
# Good rows and every kind of bad value the file path quarantines, as text cells.
ROWS: list[tuple[str, ...]] = [
    (
        "esimtrade",
        "B1",
        "8948010000095399804",
        "PUX79Y0PK",
        "active",
        "1.50",
        "USD",
        "2026-02-27T03:14:00Z",
    ),
    ("pressone", "P-2", "", "pkg-1", "ready", "2", "usd", "2026-01-01"),
    (
        " PressOne ",
        " P-3 ",
        "8944000000000000012",
        "pkg-1",
        "Active",
        "3.123456",
        "USD",
        "2026-01-01 10:00:00+02:00",
    ),
    (
        "esimtrade",
        "B4",
        "8948010000095399805",
        "PUX",
        "active",
        "1e1",
        "USD",
        "2026-01-02T00:00:00",
    ),
    ("bogus", "X1", "", "p", "active", "1", "USD", "2026-01-01"),
    ("esimtrade", "", "", "p", "active", "1", "USD", "2026-01-01"),
    ("esimtrade", "X3", "", "p", "", "1", "USD", "2026-01-01"),
    ("esimtrade", "X4", "", "p", "active", "abc", "USD", "2026-01-01"),
    ("esimtrade", "X5", "", "p", "active", "-1", "USD", "2026-01-01"),
    ("esimtrade", "X6", "", "p", "active", "1", "EUR", "2026-01-01"),
    ("esimtrade", "X7", "", "p", "active", "1", "USD", "2026-02-30"),
    ("esimtrade", "X8", "", "p", "active", "1", "USD", "2026-01-01 25:00:00"),
    ("esimtrade", "X9", "", "p", "act\tive", "1", "USD", "2026-01-01"),
    ("esimtrade", "X10", "", "x" * 1001, "active", "1", "USD", "2026-01-01"),
    ("esimtrade", "X11", "", "p", "active", "", "USD", "2026-01-01"),
    ("esimtrade", "X12", "", "p", "active", "1000000", "USD", "2026-01-01"),
    # The same eSIM written twice, and a quantity-2 order without ICCIDs (both rows load).
    (
        "esimtrade",
        "B1",
        "8948010000095399804",
        "PUX79Y0PK",
        "active",
        "1.50",
        "USD",
        "2026-02-27T03:14:00Z",
    ),
    ("pressone", "Q2", "", "pkg", "ready", "1", "USD", "2026-01-01"),
    ("pressone", "Q2", "", "pkg", "ready", "1", "USD", "2026-01-01"),
]


def _materialize(db: Path, location: str, query: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [local_orders],
        resources={
            "warehouse": WarehouseResource(database=str(db)),
            "local_orders_file": LocalOrdersResource(path=location, query=query),
        },
        raise_on_error=False,
    )


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _insert_text_rows(orders_db: OrdersDatabase, rows: list[tuple[str, ...]]) -> None:
    import adbc_driver_postgresql.dbapi as adbc_postgres

    with adbc_postgres.connect(orders_db.url) as con, con.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO orders_as_text (provider, order_no, iccid, package_code, status, amount,"
            " currency, created_at, note) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'n')",
            rows,
        )
        con.commit()


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


@pytest.mark.parametrize("batch_bytes", [None, 300], ids=["one-batch", "batches-of-a-few-rows"])
def test_the_database_rows_load_and_are_quarantined_exactly_as_the_same_csv_rows(
    orders_db: OrdersDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch_bytes: int | None,
) -> None:
    if batch_bytes is not None:
        # Duplicates then span batches: row 17 repeats row 1 of another batch.
        monkeypatch.setattr(local_orders_db, "BATCH_BYTES", batch_bytes)
    orders_db.execute(TEXT_TABLE, f"ALTER TABLE orders_as_text OWNER TO {orders_db.user}")
    _insert_text_rows(orders_db, ROWS)
    query = "select * from orders_as_text order by id"
    from_db = _materialize(tmp_path / "db.duckdb", orders_db.url, query)
    assert from_db.success
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(ROWS)
    csv_file = tmp_path / "local.csv"
    csv_file.write_text(buffer.getvalue(), encoding="utf-8")
    from_csv = _materialize(tmp_path / "csv.duckdb", str(csv_file))
    assert from_csv.success

    typed = (
        "SELECT line_no, provider, order_no, iccid, package_code, status, amount, currency,"
        " created_at FROM raw.local_orders ORDER BY line_no"
    )
    db_rows = _rows(tmp_path / "db.duckdb", typed)
    # The file's line N + 1 is the query's row N (the header is line 1).
    csv_rows = [(line - 1, *rest) for line, *rest in _rows(tmp_path / "csv.duckdb", typed)]
    assert db_rows == csv_rows
    assert len(db_rows) == 6  # B1, P-2, P-3, B4 (1e1 is a number), Q2 twice

    rejected = "SELECT line_no, reason, row_key FROM raw.local_orders_rejected ORDER BY line_no"
    db_rejected = _rows(tmp_path / "db.duckdb", rejected)
    csv_rejected = _rows(tmp_path / "csv.duckdb", rejected)
    assert [(line, reason.replace(" row ", " line ")) for line, reason, _ in db_rejected] == [
        (line - 1, reason.replace("line 2", "line 1")) for line, reason, _ in csv_rejected
    ]
    assert len(db_rejected) == 13
    keys = {line: key for line, _, key in db_rejected}
    assert keys[5] == "id=5" and keys[17] == "id=17"
    assert ("duplicate row: same as row 1") in {reason for _, reason, _ in db_rejected}

    metadata = _metadata(from_db)
    assert metadata["source_file"] == orders_db.url_without_password
    assert metadata["dagster/row_count"] == 6
    assert metadata["rejected_rows"] == 13
    assert metadata["rejected_reasons"] == _metadata(from_csv)["rejected_reasons"]
    assert metadata["extra_columns_ignored"] == "id, note"


def test_the_read_is_one_read_only_repeatable_read_snapshot(
    orders_db: OrdersDatabase, tmp_path: Path
) -> None:
    orders_db.insert([("esimtrade", "B1", None, "p", "active", "1.5", "USD", "2026-01-01")])
    query = (
        "select *, current_setting('transaction_isolation') as isolation,"
        " current_setting('transaction_read_only') as read_only from esim_orders"
    )
    result = _materialize(tmp_path / "recon.duckdb", orders_db.url, query)
    assert result.success
    [(payload,)] = _rows(tmp_path / "recon.duckdb", "SELECT payload::VARCHAR FROM raw.local_orders")
    assert '"isolation":"repeatable read"' in payload and '"read_only":"on"' in payload
    # A query that would change the order system is refused by the transaction itself.
    writing = _materialize(
        tmp_path / "other.duckdb", orders_db.url, "delete from esim_orders returning *"
    )
    assert not writing.success
    orders_db.execute("SELECT 1")
    again = _materialize(tmp_path / "third.duckdb", orders_db.url)
    assert again.success and _metadata(again)["dagster/row_count"] == 1


def _password_file(tmp_path: Path, orders_db: OrdersDatabase) -> Path:
    from urllib.parse import urlsplit

    parts = urlsplit(orders_db.url)
    passfile = tmp_path / "pgpass"
    passfile.write_text(
        f"{parts.hostname}:{parts.port}:{orders_db.name}:{orders_db.user}:{orders_db.password}\n"
    )
    passfile.chmod(0o600)
    return passfile


@pytest.mark.parametrize("where", ["PGPASSWORD", "PGPASSFILE"])
def test_the_password_may_come_from_pgpassword_or_a_password_file(
    orders_db: OrdersDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    orders_db.insert([("pressone", "P1", None, "p", "ready", "2", "USD", "2026-01-01")])
    if where == "PGPASSWORD":
        monkeypatch.setenv("PGPASSWORD", orders_db.password)
    else:
        monkeypatch.setenv("PGPASSFILE", str(_password_file(tmp_path, orders_db)))
    result = _materialize(tmp_path / "recon.duckdb", orders_db.url_without_password)
    assert result.success
    assert _metadata(result)["dagster/row_count"] == 1


def _failing_sources(orders_db: OrdersDatabase) -> dict[str, tuple[str, str | None, str]]:
    wrong = orders_db.url.replace(orders_db.password, "not-the-password-123")
    closed = "postgresql://someone:pw-unreachable-77@127.0.0.1:9/orders"
    return {
        "wrong-password": (wrong, None, "password authentication failed"),
        "unreachable": (closed, None, "cannot connect"),
        "missing-table": (orders_db.url, "select * from no_such_table", "does not exist"),
        "wrong-columns": (
            orders_db.url,
            "select provider, order_no, iccid from esim_orders",
            "the query returns no column(s) package_code, status, amount, currency, created_at",
        ),
        "a-column-twice": (
            orders_db.url,
            "select *, provider from esim_orders",
            "the query returns column(s) provider more than once",
        ),
    }


@pytest.mark.slow
def test_a_database_that_cannot_be_read_stops_the_run_in_one_line_with_exit_2(
    orders_db: OrdersDatabase, tmp_path: Path
) -> None:
    orders_db.insert([("esimtrade", "B1", None, "p", "active", "1.5", "USD", "2026-01-01")])
    workdir = tmp_path / "work"
    db = workdir / "data" / "recon.duckdb"
    db.parent.mkdir(parents=True)
    assert _materialize(db, orders_db.url).success
    before = db_contents(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESIM", "PRESSONE", "PG"))}
    env |= {
        "ESIMTRADE_BASE_URL": "http://127.0.0.1:9/api/v1",
        "ESIMTRADE_ACCESS_CODE": "ac-unreached-33",
        "ESIMTRADE_SECRET_KEY": "sk-unreached-33",
        "ESIM_RECON_DB": str(db),
        "ESIM_RECON_EXPORT_DIR": str(workdir / "exports"),
        "DAGSTER_HOME": str(workdir / "dagster_home"),
        "NO_COLOR": "1",
    }
    for name, (url, query, message) in _failing_sources(orders_db).items():
        case = env | {"ESIM_RECON_LOCAL_ORDERS": url}
        if query:
            case["ESIM_RECON_LOCAL_ORDERS_QUERY"] = query
        result = run_cli(["run"], workdir, case)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        [line] = result.stderr.strip().splitlines()
        assert message in line, (name, line)
        assert redact_url(url) in line
        for secret in ("not-the-password-123", "pw-unreachable-77", orders_db.password):
            assert secret not in result.stdout + result.stderr
        assert db_contents(db) == before, name


@pytest.mark.slow
def test_a_cli_run_from_the_database_finds_what_the_csv_finds_and_stores_no_password(
    orders_db: OrdersDatabase, tmp_path: Path
) -> None:
    world = generate_dataset(seed=11, orders=120)
    csv_file = tmp_path / "local_orders.csv"
    world.write_local_orders(csv_file)
    with csv_file.open(encoding="utf-8", newline="") as handle:
        rows = [tuple(row[name] or None for name in HEADER) for row in csv.DictReader(handle)]
    orders_db.insert(rows)

    findings = {}
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        for source, location in (("csv", str(csv_file)), ("db", orders_db.url)):
            workdir = tmp_path / source
            env = cli_env(simulator, workdir, local_orders=csv_file)
            env["ESIM_RECON_LOCAL_ORDERS"] = location
            result = run_cli(["run"], workdir, env)
            assert result.returncode == 0, result.stderr[-3000:]
            assert orders_db.password not in result.stdout + result.stderr
            findings[source] = _rows(
                workdir / "data" / "recon.duckdb",
                "SELECT provider, order_no, iccid, discrepancy_type, local_value, provider_value"
                " FROM reports.discrepancies ORDER BY ALL",
            )
    assert findings["db"] == findings["csv"]
    assert findings["db"]  # the dataset plants disagreements
    # Nowhere on disk: the DuckDB file, the exports, the Dagster instance (runs, event logs).
    secret = orders_db.password.encode()
    stored = [path for path in (tmp_path / "db").rglob("*") if path.is_file()]
    assert any(path.suffix == ".duckdb" for path in stored)
    assert any(path.suffix == ".csv" for path in stored)
    assert any("dagster_home" in path.parts for path in stored)
    for path in stored:
        assert secret not in path.read_bytes(), path
