from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from pipelines import progress

RAW_SCHEMA_SQL = Path(__file__).with_name("raw_schema.sql")
RAW_COMMENTS_SQL = Path(__file__).with_name("raw_comments.sql")
_UNCOMMENTED_RAW_SQL = """
select (select count(*) from duckdb_tables() where schema_name = 'raw' and comment is null)
     + (select count(*) from duckdb_columns() where schema_name = 'raw' and comment is null)
"""
_RAW_COLUMNS_SQL = """
select table_name, column_name, data_type from duckdb_columns() where schema_name = 'raw'
"""

# DuckDB's own default is 80% of the machine's memory: a 10M-row model build then takes what it
# can. A fixed cap keeps the process small; joins, sorts and windows over it spill to the
# `<database>.tmp` folder beside the file instead.
DEFAULT_MEMORY_LIMIT = "1536MB"

RAW_TABLES: frozenset[str] = frozenset(
    {
        "raw.ingest_log",
        "raw.esimtrade_orders",
        "raw.esimtrade_order_syncs",
        "raw.pressone_orders",
        "raw.pressone_usage",
        "raw.local_orders",
        "raw.local_orders_rejected",
        "raw.provider_quarantine",
    }
)

_QUALIFIED_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_POLARS_TYPES: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "JSON": pl.String(),
    "INTEGER": pl.Int32(),
    "BIGINT": pl.Int64(),
    "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
    "DATE": pl.Date(),
    "TIMESTAMP WITH TIME ZONE": pl.Datetime("us", "UTC"),
}


class WarehouseError(RuntimeError):
    """The DuckDB file cannot be used."""


class WarehouseBusyError(WarehouseError):
    """Another process holds the DuckDB file; raised once the bounded wait runs out."""


def _is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, duckdb.IOException) and ("lock" in text or "conflicting" in text)


class Warehouse:
    """Opens the DuckDB file and keeps the raw schema in place."""

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout_seconds: float = 60.0,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
    ) -> None:
        self.path = Path(path)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.memory_limit = memory_limit

    @contextmanager
    def connect(
        self,
        *,
        read_only: bool = False,
        wait_seconds: float | None = None,
        sandboxed: bool = False,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, waiting up to `wait_seconds` for another process's lock.

        `sandboxed` (with `read_only`) also takes away every other file and the network: no
        `COPY ... TO`, `ATTACH`, `read_csv` or `INSTALL`, and the setting cannot be turned back
        on from SQL, so a query can write nothing anywhere.
        """
        if read_only and not self.path.exists():
            raise WarehouseError(
                f"no database at {self.path}: run `esim-recon run` (or `demo`) first"
            )
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        timeout = self.lock_timeout_seconds if wait_seconds is None else wait_seconds

        def tell_waiting(_state: RetryCallState) -> None:
            holder = "a run" if read_only else "an open DuckDB session (an analyst's) or a run"
            progress.waiting(
                f"database:{self.path}",
                f"waiting for {self.path}: {holder} has it open (up to {timeout:.0f} s)",
            )

        retrying = Retrying(
            retry=retry_if_exception(_is_lock_conflict),
            stop=stop_after_delay(timeout),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            before_sleep=tell_waiting,
            reraise=False,
        )
        config: dict[str, Any] = {
            "memory_limit": self.memory_limit,
            "preserve_insertion_order": False,
        }
        if sandboxed:
            config |= {"enable_external_access": False, "lock_configuration": True}
        try:
            con = retrying(duckdb.connect, str(self.path), read_only=read_only, config=config)
        except RetryError as exc:
            if read_only:
                message = (
                    f"the database {self.path} is being written by another process (an "
                    f"esim-recon run); waited {timeout:.0f} s; read queries work again once "
                    "it has finished"
                )
            else:
                message = (
                    f"the database {self.path} is in use by another process (another "
                    f"esim-recon run, or an open read-only session); waited {timeout:.0f} s; "
                    "try again when it has finished"
                )
            raise WarehouseBusyError(message) from exc.last_attempt.exception()
        except duckdb.Error as exc:
            detail = " ".join(str(exc).split())
            raise WarehouseError(f"cannot open the database {self.path}: {detail}") from exc
        try:
            yield con
        finally:
            con.close()

    def ensure_raw_schema(self, con: duckdb.DuckDBPyConnection) -> None:
        # Every write connection asks: two catalog reads answer it when nothing is missing,
        # cheaper than running the schema's statements again.
        [(uncommented,)] = con.execute(_UNCOMMENTED_RAW_SQL).fetchall()
        if not uncommented and _declared_raw_columns() <= set(
            con.execute(_RAW_COLUMNS_SQL).fetchall()
        ):
            return
        con.execute(RAW_SCHEMA_SQL.read_text(encoding="utf-8"))
        [(uncommented,)] = con.execute(_UNCOMMENTED_RAW_SQL).fetchall()
        if uncommented:
            con.execute(RAW_COMMENTS_SQL.read_text(encoding="utf-8"))


@functools.cache
def _declared_raw_columns() -> frozenset[tuple[str, str, str]]:
    """(table, column, type) of every raw column the schema file declares."""
    con = duckdb.connect(":memory:")
    try:
        con.execute(RAW_SCHEMA_SQL.read_text(encoding="utf-8"))
        return frozenset(con.execute(_RAW_COLUMNS_SQL).fetchall())
    finally:
        con.close()


def append_frames(
    con: duckdb.DuckDBPyConnection, frames: Mapping[str, pl.DataFrame]
) -> dict[str, int]:
    """Append each frame to its table, all in one transaction: all land or none do.

    Columns are matched by name, so a frame may leave out nullable columns.
    """
    for table in frames:
        if not _QUALIFIED_NAME.match(table):
            raise ValueError(f"not a table this warehouse writes: {table!r}")
    written: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for index, (table, frame) in enumerate(frames.items()):
            if frame.height == 0:
                written[table] = 0
                continue
            view = f"_append_batch_{index}"
            con.register(view, frame.to_arrow())
            try:
                # Identifiers cannot be bound parameters; both are checked above.
                con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}")
            finally:
                con.unregister(view)
            written[table] = frame.height
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return written


def _polars_type(duckdb_type: str) -> pl.DataType:
    decimal = _DECIMAL.match(duckdb_type)
    if decimal:
        return pl.Decimal(int(decimal.group(1)), int(decimal.group(2)))
    try:
        return _POLARS_TYPES[duckdb_type]
    except KeyError:
        raise ValueError(f"no frame type for DuckDB type {duckdb_type}") from None


def table_schema(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, pl.DataType]:
    """Column types of `schema.table` as polars types, read from the database itself.

    The DDL stays the one place where raw column types are written down.
    """
    schema_name, _, table_name = table.partition(".")
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema_name, table_name],
    ).fetchall()
    if not columns:
        raise ValueError(f"no such table: {table}")
    return {name: _polars_type(data_type) for name, data_type in columns}


def append_rows(
    con: duckdb.DuckDBPyConnection, rows: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, int]:
    """Append plain rows (dicts) to each table as one Arrow batch per table, one transaction.

    Rows are typed by the table's own columns; a key a row leaves out lands as NULL.
    """
    frames = {
        table: pl.DataFrame(list(table_rows), schema=table_schema(con, table), orient="row")
        for table, table_rows in rows.items()
    }
    return append_frames(con, frames)
