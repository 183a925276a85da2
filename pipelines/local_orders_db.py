"""Reading the reseller's local order records from its Postgres database, as Arrow batches.

ESIM_RECON_LOCAL_ORDERS=postgresql://user@host:port/db selects this source; the query in
ESIM_RECON_LOCAL_ORDERS_QUERY (default `select * from esim_orders`) returns the columns of the
local orders file. The rows stream through ADBC's Postgres driver (binary COPY into Arrow, in
C), a batch at a time, so memory follows the batch size and not the table size.

The whole read is one REPEATABLE READ, READ ONLY transaction: a run sees one consistent state of
the order system while it keeps writing.

Validation is the CSV path's (`pipelines.local_orders`): each batch goes through a vectorised
check that accepts only rows whose every field is plainly well formed, with exactly the values
`_check_row` would give them; the few rows it does not accept go through `_check_row` itself,
which accepts or quarantines them with the file path's reasons. A database row has no line:
`line_no` is its position in the query's result (1-based) and the rejected row carries
`row_key`, its `id` column when the query returns one, else provider/order_no/iccid.

The password comes from the URL, PGPASSWORD or ~/.pgpass (libpq reads both); every text that
leaves this module names the URL with the password removed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_postgres
import polars as pl
import pyarrow as pa

from pipelines.local_orders import (
    MAX_FIELD_CHARS,
    PROVIDERS,
    REQUIRED_COLUMNS,
    LocalOrdersError,
    _check_row,
    _printable,
)

DEFAULT_QUERY = "select * from esim_orders"
URL_SCHEMES = ("postgresql://", "postgres://")
# Arrow batch size asked of the driver (bytes of one COPY chunk): ~100k rows of local orders.
BATCH_BYTES = 16 * 1024 * 1024
CONNECT_TIMEOUT_SECONDS = 15
_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})

ACCEPTED_SCHEMA: dict[str, pl.DataType] = {
    "line_no": pl.Int32(),
    "provider": pl.String(),
    "order_no": pl.String(),
    "iccid": pl.String(),
    "package_code": pl.String(),
    "status": pl.String(),
    "amount": pl.Decimal(18, 4),
    "currency": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "payload": pl.String(),
}
REJECTED_SCHEMA: dict[str, pl.DataType] = {
    "line_no": pl.Int32(),
    "row_key": pl.String(),
    "reason": pl.String(),
    "raw_line": pl.String(),
}
IDENTITY_SCHEMA: dict[str, pl.DataType] = {"line_no": pl.Int32(), "identity_hash": pl.UInt64()}

# The forms the fast path takes as they are (Postgres prints timestamps and numerics in these);
# anything else goes to `_check_row`. Seconds stop at 59: Python has no leap second.
_FAST_TIMESTAMP = (
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[ T](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?(?:Z|\+00(?::?00)?)?)?$"
)
_FAST_AMOUNT = r"^\d{1,6}(?:\.\d{1,4})?$"
_CONTROL = r"[\x00-\x1f]"
# Values whose ends need more than removing spaces go to the slow path, so that stripping
# spaces here gives what Python's str.strip() gives there.
_OTHER_SPACE_AT_ENDS = r"^\s|\s$"
_ICCID_SHAPE = r"^89\d{16,18}$"


def is_database_url(location: str | None) -> bool:
    return bool(location) and str(location).strip().lower().startswith(URL_SCHEMES)


def redact_url(url: str) -> str:
    """The URL without its password (in the authority or as a query parameter)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in _SECRET_PARAMS
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def connection_url(url: str) -> str:
    """The URL as given, plus a connect timeout (libpq waits forever for a silent host) and an
    application name the database administrator can recognise, unless the URL sets them."""
    parts = urlsplit(url.strip())
    params = parse_qsl(parts.query, keep_blank_values=True)
    names = {key for key, _ in params}
    if "connect_timeout" not in names and not os.environ.get("PGCONNECT_TIMEOUT"):
        params.append(("connect_timeout", str(CONNECT_TIMEOUT_SECONDS)))
    if "application_name" not in names and not os.environ.get("PGAPPNAME"):
        params.append(("application_name", "esim-recon"))
    return urlunsplit(parts._replace(query=urlencode(params)))


def _password_of(url: str) -> str | None:
    parts = urlsplit(url.strip())
    secrets = [parts.password] + [
        v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in _SECRET_PARAMS
    ]
    return next((secret for secret in secrets if secret), None)


def _driver_message(exc: BaseException, url: str) -> str:
    """The server's or libpq's own words, on one line, with no password in them."""
    text = str(exc)
    match = re.search(r"(?:ERROR|FATAL):\s+(.*)", text)
    if match:
        text = match.group(1)
    else:
        text = re.sub(r"^[A-Z_]+: \[libpq\] ", "", text)
        text = re.sub(r"^Failed to connect: ", "", text)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    password = _password_of(url)
    if password:
        for form in {password, unquote(password)}:
            first = first.replace(form, "***")
    return " ".join(first.split())[:300]


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_names(source: str, names: list[str]) -> list[str]:
    normalised = [name.strip().lower() for name in names]
    twice = sorted({name for name in normalised if normalised.count(name) > 1})
    if twice:
        raise LocalOrdersError(
            f"{source}: the query returns column(s) {', '.join(twice)} more than once "
            "(set ESIM_RECON_LOCAL_ORDERS_QUERY)"
        )
    missing = [column for column in REQUIRED_COLUMNS if column not in normalised]
    if missing:
        raise LocalOrdersError(
            f"{source}: the query returns no column(s) {', '.join(missing)} "
            f"(it returns {', '.join(names) or 'nothing'}; expected "
            f"{','.join(REQUIRED_COLUMNS)}; set ESIM_RECON_LOCAL_ORDERS_QUERY)"
        )
    return normalised


@dataclass
class DatabaseBatch:
    """One batch of the query's rows, checked: what loads, what is quarantined, and the
    identity hash of every accepted row with an ICCID (for the duplicate-row rule)."""

    accepted: pl.DataFrame
    rejected: pl.DataFrame
    identities: pl.DataFrame
    luhn_warnings: int


@dataclass
class LocalOrdersQuery:
    """The query's result, read in one read-only REPEATABLE READ transaction.

    Use as a context manager: entering connects, opens the snapshot and checks the columns
    (raising `LocalOrdersError` in one line on any failure); `batches()` then streams the rows.
    """

    url: str
    query: str | None = None
    batch_bytes: int | None = None  # None: BATCH_BYTES
    columns: list[str] = field(default_factory=list)
    _names: list[str] = field(default_factory=list)  # as the query names them
    _connection: Any = None

    @property
    def source(self) -> str:
        return redact_url(self.url)

    @property
    def sql(self) -> str:
        return (self.query or "").strip().rstrip(";").strip() or DEFAULT_QUERY

    @property
    def extra_columns(self) -> list[str]:
        return [name for name in self.columns if name not in REQUIRED_COLUMNS]

    def __enter__(self) -> LocalOrdersQuery:
        try:
            self._connection = adbc_postgres.connect(connection_url(self.url))
        except adbc_driver_manager.Error as exc:
            raise LocalOrdersError(
                f"{self.source}: cannot connect: {_driver_message(exc, self.url)}"
            ) from None
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Timestamps print in UTC, so their text is the instant itself.
                cursor.execute("SET LOCAL TIME ZONE 'UTC'")
                schema = cursor.adbc_execute_schema(self.sql)
        except adbc_driver_manager.Error as exc:
            self.close()
            raise LocalOrdersError(
                f"{self.source}: the query failed: {_driver_message(exc, self.url)} "
                f"(ESIM_RECON_LOCAL_ORDERS_QUERY: {' '.join(self.sql.split())[:200]})"
            ) from None
        self._names = list(schema.names)
        try:
            self.columns = _column_names(self.source, self._names)
        except LocalOrdersError:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.rollback()  # read only: nothing to keep
            finally:
                self._connection.close()
                self._connection = None

    def _text_query(self) -> str:
        """Every column as Postgres prints it, named as the file path names its header."""
        selected = ", ".join(
            f"q.{_quote_identifier(original)}::text AS {_quote_identifier(name)}"
            for original, name in zip(self._names, self.columns, strict=True)
        )
        # The query on its own lines: a trailing `-- comment` in it ends before the parenthesis.
        return f"SELECT {selected} FROM (\n{self.sql}\n) AS q"

    def batches(self) -> Iterator[DatabaseBatch]:
        if self._connection is None:
            raise RuntimeError("LocalOrdersQuery used outside its `with` block")
        first_line = 1
        try:
            with self._connection.cursor() as cursor:
                cursor.adbc_statement.set_options(
                    **{
                        "adbc.postgresql.batch_size_hint_bytes": str(
                            self.batch_bytes or BATCH_BYTES
                        )
                    }
                )
                cursor.execute(self._text_query())
                reader = cursor.fetch_record_batch()
                for record_batch in reader:
                    if record_batch.num_rows == 0:
                        continue
                    yield check_batch(
                        pa.Table.from_batches([record_batch]), self.columns, first_line
                    )
                    first_line += record_batch.num_rows
        except adbc_driver_manager.Error as exc:
            raise LocalOrdersError(
                f"{self.source}: reading the rows failed: {_driver_message(exc, self.url)}"
            ) from None


def check_local_orders_database(url: str, query: str | None = None) -> None:
    """Raise `LocalOrdersError` (one line) when the database cannot be read: wrong
    credentials, no server, a failing query, missing columns. No row is read."""
    with LocalOrdersQuery(url, query):
        pass


def _stripped(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars(" ")


def luhn_failures(iccids: pl.Series) -> int:
    """How many of these well-shaped ICCIDs have a wrong check digit (vectorised Luhn)."""
    if iccids.len() == 0:
        return 0
    # Digits from the right, each read once into its own column (no expression re-evaluated).
    digits = pl.DataFrame({"reversed": iccids.str.reverse()}).select(
        pl.col("reversed")
        .str.slice(position, 1)
        .cast(pl.Int32, strict=False)
        .fill_null(0)
        .alias(str(position))
        for position in range(20)
    )
    total = pl.sum_horizontal(
        pl.col(str(position))
        if position % 2 == 0
        else pl.col(str(position)) * 2 - 9 * (pl.col(str(position)) >= 5).cast(pl.Int32)
        for position in range(20)
    )
    return int(digits.select((total % 10 != 0).sum()).item())


def identity_hash(frame: pl.DataFrame) -> pl.Series:
    """A hash of the required fields as read, stripped: rows equal in all of them collide."""
    return frame.select(
        pl.concat_str(
            [pl.col(name).str.strip_chars() for name in REQUIRED_COLUMNS], separator="\x1f"
        ).hash()
    ).to_series()


def check_batch(table: pa.Table, columns: list[str], first_line: int) -> DatabaseBatch:
    """Validate one batch of text columns (named `columns`), rows numbered from `first_line`."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    frame = frame.rename(dict(zip(frame.columns, columns, strict=True))).with_columns(
        pl.all().cast(pl.String).fill_null("")
    )
    frame = frame.with_columns(
        pl.int_range(first_line, first_line + frame.height, dtype=pl.Int32).alias("__line_no"),
        pl.struct(columns).struct.json_encode().alias("__payload"),
    )
    plain = pl.all_horizontal(
        [
            (pl.col(name).str.len_chars() <= MAX_FIELD_CHARS)
            & ~pl.col(name).str.contains(_CONTROL)
            & ~_stripped(name).str.contains(_OTHER_SPACE_AT_ENDS)
            for name in REQUIRED_COLUMNS
        ]
    )
    created = _stripped("created_at").str.replace(r"(?:Z|\+00(?::?00)?)$", "")
    created = (
        pl.when(created.str.len_chars() == 10)
        .then(created + " 00:00:00")
        .otherwise(created.str.replace("T", " ", literal=True))
        .str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
        .dt.replace_time_zone("UTC")
    )
    typed = frame.with_columns(
        _stripped("provider").str.to_lowercase().alias("__provider"),
        _stripped("currency").str.to_uppercase().alias("__currency"),
        pl.when(_stripped("amount").str.contains(_FAST_AMOUNT))
        .then(_stripped("amount"))
        .cast(pl.Decimal(18, 4), strict=False)
        .alias("__amount"),
        pl.when(_stripped("created_at").str.contains(_FAST_TIMESTAMP))
        .then(created)
        .alias("__created_at"),
    )
    fast = (
        plain
        & pl.col("__provider").is_in(sorted(PROVIDERS))
        & (_stripped("order_no") != "")
        & (_stripped("status") != "")
        & (pl.col("__currency") == "USD")
        & pl.col("__amount").is_not_null()
        & pl.col("__created_at").is_not_null()
    )
    typed = typed.with_columns(fast.alias("__fast"))
    accepted = typed.filter(pl.col("__fast")).select(
        pl.col("__line_no").alias("line_no"),
        pl.col("__provider").alias("provider"),
        _stripped("order_no").alias("order_no"),
        pl.when(_stripped("iccid") != "").then(_stripped("iccid")).alias("iccid"),
        pl.when(_stripped("package_code") != "")
        .then(_stripped("package_code"))
        .alias("package_code"),
        _stripped("status").alias("status"),
        pl.col("__amount").alias("amount"),
        pl.col("__currency").alias("currency"),
        pl.col("__created_at").alias("created_at"),
        pl.col("__payload").alias("payload"),
    )
    slow = typed.filter(~pl.col("__fast"))
    slow_accepted, rejected = _check_slowly(slow, columns)
    accepted = pl.concat([accepted.cast(ACCEPTED_SCHEMA), slow_accepted], how="vertical")

    with_iccid = accepted.filter(pl.col("iccid").is_not_null())
    as_read = frame.join(
        with_iccid.select(pl.col("line_no").alias("__line_no")), on="__line_no", how="semi"
    )
    identities = pl.DataFrame(
        {"line_no": as_read.get_column("__line_no"), "identity_hash": identity_hash(as_read)},
        schema=IDENTITY_SCHEMA,
    )
    luhn_warnings = luhn_failures(
        with_iccid.filter(pl.col("iccid").str.contains(_ICCID_SHAPE)).get_column("iccid")
    )
    return DatabaseBatch(
        accepted=accepted.sort("line_no"),
        rejected=rejected,
        identities=identities,
        luhn_warnings=luhn_warnings,
    )


def row_keys(frame: pl.DataFrame) -> pl.Series:
    """How a person finds the row in the database: its id, else provider/order_no/iccid."""
    if "id" in frame.columns:
        return frame.select(pl.lit("id=") + pl.col("id").str.strip_chars()).to_series()
    parts = [pl.col(name).str.strip_chars() for name in ("provider", "order_no", "iccid")]
    return frame.select(pl.concat_str(parts, separator="/").str.strip_chars_end("/")).to_series()


def _check_slowly(slow: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows the fast path did not take, through the file path's own row check."""
    accepted: list[dict[str, object]] = []
    rejected: list[dict[str, object]] = []
    if slow.height:
        keys = row_keys(slow).to_list()
        for row, key in zip(
            slow.select([*REQUIRED_COLUMNS, "__line_no", "__payload"]).iter_rows(named=True),
            keys,
            strict=True,
        ):
            values = {name: row[name] for name in REQUIRED_COLUMNS}
            try:
                typed, _ = _check_row(values)
            except ValueError as exc:
                rejected.append(
                    {
                        "line_no": row["__line_no"],
                        "row_key": _printable(key),
                        "reason": f"invalid value: {exc}",
                        "raw_line": _printable(row["__payload"]),
                    }
                )
                continue
            accepted.append({"line_no": row["__line_no"], **typed, "payload": row["__payload"]})
    return (
        pl.DataFrame(accepted, schema=ACCEPTED_SCHEMA, orient="row"),
        pl.DataFrame(rejected, schema=REJECTED_SCHEMA, orient="row"),
    )


def duplicate_rows(candidates: pl.DataFrame) -> pl.DataFrame:
    """Of accepted rows (`line_no`, `payload`) whose identity hashes collide, those identical in
    every required field to an earlier one: line_no, row_key, reason, raw_line."""
    if candidates.height == 0:
        return pl.DataFrame(schema=REJECTED_SCHEMA)
    fields = candidates.select(
        "line_no",
        "payload",
        *[
            pl.col("payload").str.json_path_match(f"$.{name}").fill_null("").alias(name)
            for name in REQUIRED_COLUMNS
        ],
        pl.col("payload").str.json_path_match("$.id").alias("id"),
    )
    if fields.get_column("id").null_count() == fields.height:
        fields = fields.drop("id")
    identity = pl.concat_str(
        [pl.col(name).str.strip_chars() for name in REQUIRED_COLUMNS], separator="\x1f"
    )
    marked = fields.with_columns(pl.col("line_no").min().over(identity).alias("first_line"))
    duplicates = marked.filter(pl.col("line_no") != pl.col("first_line"))
    return duplicates.select(
        pl.col("line_no").cast(pl.Int32),
        row_keys(duplicates).alias("row_key"),
        pl.format("duplicate row: same as row {}", pl.col("first_line")).alias("reason"),
        pl.col("payload").str.slice(0, 500).alias("raw_line"),
    )
