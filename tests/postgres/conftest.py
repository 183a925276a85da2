"""A real PostgreSQL server for the tests marked `postgres`.

`.ci/run` starts a throwaway cluster and exports its admin URL as ESIM_RECON_TEST_PG_URL. Without
it, the test run starts its own cluster the same way (`.ci/pg-cluster`) and stops it at the end;
when that is impossible the tests skip on a developer machine and fail under CI (CI=true).
Each test gets its own database and login role, both dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi as adbc_postgres
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = PROJECT_ROOT / ".ci" / "pg-cluster"
URL_ENV = "ESIM_RECON_TEST_PG_URL"

ORDERS_TABLE = """
CREATE TABLE esim_orders (
    id           bigserial PRIMARY KEY,
    provider     text NOT NULL,
    order_no     text NOT NULL,
    iccid        text,
    package_code text,
    status       text,
    amount       numeric(12, 4),
    currency     text,
    created_at   timestamptz
)
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The superuser URL of a running server (with its password)."""
    configured = os.environ.get(URL_ENV)
    if configured:
        yield configured
        return
    started = subprocess.run(
        [str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        _unavailable(started.stderr.strip().splitlines()[-1] if started.stderr else "start failed")
    values = dict(line.split("=", 1) for line in started.stdout.split() if "=" in line)
    try:
        yield values[URL_ENV]
    finally:
        subprocess.run([str(CLUSTER_SCRIPT), "stop", values["ESIM_RECON_TEST_PG_DIR"]], check=False)


def with_database(
    url: str, database: str, user: str | None = None, password: str | None = None
) -> str:
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}"
    login = parts.username if user is None else user
    if user is None:
        password = parts.password
    if password:
        login = f"{login}:{password}"
    return urlunsplit((parts.scheme, f"{login}@{host}", f"/{database}", "", ""))


def admin_execute(url: str, *statements: str) -> None:
    with adbc_postgres.connect(url, autocommit=True) as con, con.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


@dataclass
class OrdersDatabase:
    """A database holding `esim_orders`, owned by a login role with a password."""

    admin_url: str  # superuser, this database
    name: str
    user: str
    password: str

    @property
    def url(self) -> str:
        """The URL with the password in it."""
        return with_database(self.admin_url, self.name, self.user, self.password)

    @property
    def url_without_password(self) -> str:
        return with_database(self.admin_url, self.name, self.user)

    def execute(self, *statements: str) -> None:
        admin_execute(self.admin_url, *statements)

    def insert(self, rows: list[tuple[object, ...]]) -> None:
        """Rows of (provider, order_no, iccid, package_code, status, amount, currency,
        created_at), as bound parameters."""
        with adbc_postgres.connect(self.admin_url) as con, con.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO esim_orders (provider, order_no, iccid, package_code, status, "
                "amount, currency, created_at) VALUES ($1, $2, $3, $4, $5, $6::numeric, $7, "
                "$8::timestamptz)",
                [tuple(None if v is None else str(v) for v in row) for row in rows],
            )
            con.commit()


@pytest.fixture
def orders_db(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OrdersDatabase]:
    for name in ("PGPASSWORD", "PGPASSFILE", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ESIM_RECON_LOCAL_ORDERS_QUERY", raising=False)
    suffix = secrets.token_hex(4)
    name, user, password = f"orders_{suffix}", f"reseller_{suffix}", secrets.token_hex(12)
    admin_execute(
        pg_admin_url,
        f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
        f"CREATE DATABASE {name} OWNER {user}",
    )
    database = OrdersDatabase(with_database(pg_admin_url, name), name, user, password)
    database.execute(ORDERS_TABLE, f"ALTER TABLE esim_orders OWNER TO {user}")
    try:
        yield database
    finally:
        admin_execute(
            pg_admin_url,
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            f"DROP ROLE IF EXISTS {user}",
        )
