"""CSV and Parquet exports of the report relations, and read-only queries on the DuckDB file.

Format of the CSV files (decided once, relied on by scripts):

- UTF-8, a header row, comma-separated, `\\n` line ends, fields quoted only when needed; an
  unquoted empty field is a missing value, `""` an empty text.
- Rows in a stable order, by the keys in `EXPORTS` (documented per file), so two exports of the
  same data are byte-identical. discrepancies.csv lists the largest amount_at_risk first;
  finance_actions.csv (the finance worklist, action column first) groups by action, largest
  amount first.
- Timestamps ISO-8601 in UTC with a `Z`: `2026-01-31T12:00:00Z`, with `.ffffff` microseconds only
  when the value has a fraction of a second. Dates `YYYY-MM-DD`.
- Decimal amounts as text exactly as stored, in their stored scale (`12.5000` for an order
  amount, `12.50` for money at risk): never through a float. Percentages two places
  (`45.20`). Byte counts and other integers as plain integers (negative numbers stay numbers).
  Booleans `true` / `false`.
- Text cells that a spreadsheet would read as a formula (starting with `=`, `+`, `-`, `@`, tab or
  carriage return) get a leading single quote. Only text columns are touched, and a text cell
  that is just a negative decimal number (`-3.2500`, an amount in `local_value`) stays as it is:
  it cannot run anything.

The Parquet copies hold the same rows in the same order with the database's own types (UTC
timestamps, exact decimals) and no quoting: they are for programs, not spreadsheets.

Every file is written to a temporary file in the target folder, flushed to disk, then moved over
the old one with `os.replace`, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from pipelines.warehouse import Warehouse

_BATCH_ROWS = 100_000
_FILE_MODE = 0o644
# Bound as $formula_start and $plain_number where a CSV query quotes text cells.
_TEXT_PATTERNS = {"formula_start": "^[=+\\-@\\t\\r]", "plain_number": "-[0-9]+([.][0-9]+)?"}


@dataclass(frozen=True)
class ExportSpec:
    relation: str
    order_by: tuple[str, ...]


# File stem -> relation and sort keys (each a total order on the relation's unique key); a key
# ending in " desc" sorts largest first.
EXPORTS: dict[str, ExportSpec] = {
    "reconciliation": ExportSpec(
        "reports.reconciliation",
        ("provider", "order_no", "local_line_no", "provider_esim_key", "row_id"),
    ),
    "discrepancies": ExportSpec(
        "reports.discrepancies",
        ("amount_at_risk desc", "provider", "order_no", "iccid", "discrepancy_type"),
    ),
    "money_at_risk": ExportSpec(
        "reports.money_at_risk", ("provider", "currency", "money_direction")
    ),
    "finance_actions": ExportSpec(
        "reports.finance_actions",
        ("action", "amount desc", "provider", "order_no", "iccid", "discrepancy_type"),
    ),
    "usage": ExportSpec("reports.usage", ("provider", "order_no", "esim_key")),
    "usage_daily": ExportSpec("reports.usage_daily", ("provider", "usage_date", "package_code")),
    "status_transitions": ExportSpec(
        "reports.status_transitions", ("provider", "order_no", "esim_key", "first_seen_at")
    ),
}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


_INTEGER_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
    }
)


def _csv_expression(column: str, type_name: str) -> str:
    """SQL turning one column of `src` into its CSV cell text (integers stay integers)."""
    name = _quote(column)
    col = f"src.{name}"
    upper = type_name.upper()
    if upper.startswith("TIMESTAMP"):
        utc = f"timezone('UTC', {col})" if "TIME ZONE" in upper or upper.endswith("TZ") else col
        return (
            f"case when {col} is null then null "
            f"when microsecond({utc}) % 1000000 = 0 then strftime({utc}, '%Y-%m-%dT%H:%M:%SZ') "
            f"else strftime({utc}, '%Y-%m-%dT%H:%M:%S.%fZ') end as {name}"
        )
    if upper == "DATE":
        return f"strftime({col}, '%Y-%m-%d') as {name}"
    if upper.startswith("DECIMAL") or upper == "BOOLEAN":
        return f"cast({col} as varchar) as {name}"
    if upper in _INTEGER_TYPES:
        return f"{col} as {name}"
    text = col if upper == "VARCHAR" else f"cast({col} as varchar)"
    return (
        f"case when regexp_matches({text}, $formula_start) "
        f"and not regexp_full_match({text}, $plain_number) then '''' || {text} "
        f"else {text} end as {name}"
    )


def _sort_key(key: str) -> tuple[str, str]:
    """`"column"` or `"column desc"` as (column, direction)."""
    column, _, way = key.partition(" ")
    return column, "desc" if way.strip().lower() == "desc" else "asc"


class _Query(NamedTuple):
    sql: str
    params: dict[str, str]


def _export_queries(con: duckdb.DuckDBPyConnection, spec: ExportSpec) -> tuple[_Query, _Query]:
    """The CSV and the Parquet query, rows sorted on the typed values whatever their text form."""
    columns = [(row[0], row[1]) for row in con.execute(f"describe {spec.relation}").fetchall()]
    names = {name for name, _ in columns}
    sort_keys = [_sort_key(key) for key in spec.order_by]
    missing = [key for key, _ in sort_keys if key not in names]
    if missing:
        raise ValueError(f"{spec.relation} has no sort column(s) {missing}")
    order = ", ".join(f"src.{_quote(key)} {way} nulls last" for key, way in sort_keys)

    def ordered(select: str) -> str:
        return f"select {select} from {spec.relation} as src order by {order}"

    csv_sql = ordered(", ".join(_csv_expression(name, type_name) for name, type_name in columns))
    csv_params = {key: value for key, value in _TEXT_PATTERNS.items() if f"${key}" in csv_sql}
    parquet_sql = ordered(", ".join(f"src.{_quote(name)}" for name, _ in columns))
    return _Query(csv_sql, csv_params), _Query(parquet_sql, {})


def _reader(con: duckdb.DuckDBPyConnection, query: _Query) -> pa.RecordBatchReader:
    return con.sql(query.sql, params=query.params).to_arrow_reader(_BATCH_ROWS)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temp file next to `path`, fsync it, then move it onto `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(_FILE_MODE)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _write_csv(con: duckdb.DuckDBPyConnection, query: _Query, handle: BinaryIO) -> None:
    reader = _reader(con, query)
    # Column names are plain identifiers: the header row needs no quoting.
    handle.write((",".join(reader.schema.names) + "\n").encode("utf-8"))
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    with pa_csv.CSVWriter(handle, reader.schema, write_options=options) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _write_parquet(con: duckdb.DuckDBPyConnection, query: _Query, handle: BinaryIO) -> None:
    reader = _reader(con, query)
    with pq.ParquetWriter(handle, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def write_exports(con: duckdb.DuckDBPyConnection, out_dir: str | Path) -> dict[str, Path]:
    """Write `<name>.csv` and `<name>.parquet` for every report in `EXPORTS`.

    Returns file name -> path. The report relations must exist (build the models first).
    """
    folder = Path(out_dir)
    written: dict[str, Path] = {}
    for name, spec in EXPORTS.items():
        csv_query, parquet_query = _export_queries(con, spec)
        written[f"{name}.csv"] = atomic_write(
            folder / f"{name}.csv", lambda handle, q=csv_query: _write_csv(con, q, handle)
        )
        written[f"{name}.parquet"] = atomic_write(
            folder / f"{name}.parquet",
            lambda handle, q=parquet_query: _write_parquet(con, q, handle),
        )
    return written


READ_WAIT_SECONDS = 3.0


class EmptyQueryError(ValueError):
    """The query holds no statement that returns rows."""


@dataclass(frozen=True)
class TextResult:
    """A query's columns and its rows as DuckDB renders each value (NULL as None)."""

    columns: list[str]
    rows: list[tuple[str | None, ...]]
    total_rows: int


def read_only_query(
    db_path: str | Path, sql: str, *, wait_seconds: float = READ_WAIT_SECONDS
) -> pl.DataFrame:
    """Run `sql` on the DuckDB file opened read-only; a write fails with DuckDB's own error.

    The connection is sandboxed: no other file can be read or written (`COPY ... TO` fails).
    DuckDB lets no other process open a file a run is writing, not even read-only: after
    `wait_seconds` this raises `WarehouseBusyError` (a `WarehouseError`, as is a missing file).
    """
    with Warehouse(db_path).connect(
        read_only=True, wait_seconds=wait_seconds, sandboxed=True
    ) as con:
        relation = con.sql(sql)
        if relation is None:
            return pl.DataFrame()
        return relation.pl()


def read_only_text_query(
    db_path: str | Path,
    sql: str,
    *,
    limit: int | None = None,
    wait_seconds: float = READ_WAIT_SECONDS,
) -> TextResult:
    """`sql` on the sandboxed read-only connection, every value cast to text by DuckDB.

    DuckDB renders every type it has (INTERVAL, lists, structs, decimals) exactly as its own
    shell does, which no dataframe conversion promises. `limit` caps the rows fetched;
    `total_rows` counts them all. Raises `EmptyQueryError` when no statement returns rows.
    """
    if not sql.strip().strip(";").strip():
        raise EmptyQueryError("no query given")
    with Warehouse(db_path).connect(
        read_only=True, wait_seconds=wait_seconds, sandboxed=True
    ) as con:
        relation = con.sql(sql)
        if relation is None:
            raise EmptyQueryError("the query has no statement that returns rows")
        columns = list(relation.columns)
        # By position: a result may repeat a column name.
        casts = (f"CAST(#{position} AS VARCHAR)" for position in range(1, len(columns) + 1))
        as_text = relation.project(", ".join(casts))
        rows = as_text.limit(limit).fetchall() if limit is not None else as_text.fetchall()
        total = len(rows)
        if limit is not None and total == limit:
            [(total,)] = relation.aggregate("count(*)").fetchall()
        return TextResult(columns=columns, rows=rows, total_rows=int(total))
