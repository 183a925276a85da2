"""Reading the reseller's local order records (CSV or Parquet) into typed rows.

Every row is checked on its own: a bad row is quarantined with its line number and the reason,
the good rows load. Only a file that cannot be read at all (missing, empty, no header, required
columns missing, not CSV/Parquet) raises `LocalOrdersError`, before anything is written;
`check_local_orders_file` makes that decision without reading the rows, so a run can refuse to
start before any asset writes.

Duplicates: a row identical in every field to an earlier one *that carries an ICCID* is the same
eSIM written twice (an export glitch) and is quarantined as `duplicate row: same as line N`.
Identical rows without an ICCID are kept: they are the eSIMs of one quantity-N order whose
ICCIDs the reseller does not know yet. Rows that share an ICCID but differ in any other field
load, and the models report them as `duplicate_iccid`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

REQUIRED_COLUMNS: tuple[str, ...] = (
    "provider",
    "order_no",
    "iccid",
    "package_code",
    "status",
    "amount",
    "currency",
    "created_at",
)
PROVIDERS = frozenset({"esimtrade", "pressone"})
CURRENCIES = frozenset({"USD"})
MAX_FIELD_CHARS = 1_000
ICCID_SHAPE = re.compile(r"^89\d{16,18}$")
MAX_AMOUNT = Decimal("1000000")
_AMOUNT_QUANTUM = Decimal("0.0001")


class LocalOrdersError(ValueError):
    """The local orders file cannot be read at all."""


@dataclass
class LocalOrdersLoad:
    """What a file yielded: typed rows, quarantined rows, and what was noticed on the way."""

    source_file: str
    accepted: list[dict[str, object]]
    rejected: list[dict[str, object]]  # line_no, reason, raw_line
    extra_columns: list[str] = field(default_factory=list)
    luhn_warnings: int = 0

    @property
    def rejected_reasons(self) -> dict[str, int]:
        """Rejections counted by kind (the part of the reason before the colon)."""
        kinds = Counter(str(row["reason"]).split(":", 1)[0] for row in self.rejected)
        return dict(sorted(kinds.items()))


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _parse_created_at(text: str) -> datetime:
    value = text.strip()
    if len(value) == 10:
        parsed_date = date.fromisoformat(value)
        return datetime(parsed_date.year, parsed_date.month, parsed_date.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_amount(text: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"amount is not a number: {text.strip()[:40]!r}") from None
    if not amount.is_finite():
        raise ValueError(f"amount is not a number: {text.strip()[:40]!r}")
    if amount < 0:
        raise ValueError(f"amount is negative: {text.strip()}")
    if amount >= MAX_AMOUNT:
        raise ValueError(f"amount is implausibly large: {text.strip()[:40]}")
    return amount.quantize(_AMOUNT_QUANTUM)


def _check_row(values: dict[str, str]) -> tuple[dict[str, object], bool]:
    """Typed row and whether its ICCID fails the Luhn check; raises ValueError with a reason."""
    for name, value in values.items():
        if len(value) > MAX_FIELD_CHARS:
            raise ValueError(f"field too long: {name} has {len(value)} characters")
        if any(ord(char) < 32 for char in value.strip()):
            raise ValueError(f"{name} contains control characters (line breaks, tabs)")
    provider = values["provider"].strip().lower()
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider: {values['provider'].strip()[:40]!r}")
    order_no = values["order_no"].strip()
    if not order_no:
        raise ValueError("order_no is empty")
    status = values["status"].strip()
    if not status:
        raise ValueError("status is empty")
    amount_text = values["amount"].strip()
    if not amount_text:
        raise ValueError("amount is empty")
    amount = _parse_amount(amount_text)
    currency = values["currency"].strip().upper()
    if currency not in CURRENCIES:
        raise ValueError(f"currency must be USD: {values['currency'].strip()[:10]!r}")
    created_text = values["created_at"].strip()
    if not created_text:
        raise ValueError("created_at is empty")
    try:
        created_at = _parse_created_at(created_text)
    except ValueError:
        raise ValueError(f"created_at is not a date/time: {created_text[:40]!r}") from None
    iccid = values["iccid"].strip() or None
    package_code = values["package_code"].strip() or None
    # Only well-shaped ICCIDs count: a malformed one is already an invalid_iccid finding.
    luhn_warning = bool(iccid and ICCID_SHAPE.match(iccid) and not luhn_ok(iccid))
    return (
        {
            "provider": provider,
            "order_no": order_no,
            "iccid": iccid,
            "package_code": package_code,
            "status": status,
            "amount": amount,
            "currency": currency,
            "created_at": created_at,
        },
        luhn_warning,
    )


def _decode(raw: bytes, source: Path) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    # Undecodable bytes survive as lone surrogates so the rows holding them can be quarantined
    # one by one instead of failing the whole file.
    return raw.decode("utf-8", errors="surrogateescape")


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _printable(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8", errors="replace")[:500]


def _csv_header(path: Path, text: str) -> tuple[list[str], Any]:
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise LocalOrdersError(f"{path}: the file is empty (expected a header row)") from None
    except csv.Error as exc:
        raise LocalOrdersError(f"{path}: not a readable CSV file ({exc})") from None
    return header, reader


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if not raw.strip(b"\xef\xbb\xbf \t\r\n"):
        raise LocalOrdersError(f"{path}: the file is empty (expected a header row)")
    return _decode(raw, path)


def _rows_from_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str], str]]]:
    """Header and (line number, fields, raw text) per record."""
    text = _read_text(path)
    lines = text.splitlines(keepends=True)
    header, reader = _csv_header(path, text)
    records: list[tuple[int, list[str], str]] = []
    while True:
        start_line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append((start_line, [], f"\x00csv error: {exc}"))
            continue
        raw_text = "".join(lines[start_line - 1 : reader.line_num]).rstrip("\r\n")
        records.append((start_line, fields, raw_text))
    return header, records


def _as_text(series: pl.Series) -> list[str]:
    """A Parquet column as text cells; a type with no text form (lists, structs) becomes JSON,
    so the row fails validation on its own instead of the whole file failing."""
    try:
        return series.cast(pl.String).fill_null("").to_list()
    except pl.exceptions.PolarsError:
        return [
            "" if value is None else json.dumps(value, default=str) for value in series.to_list()
        ]


def _rows_from_parquet(path: Path) -> tuple[list[str], list[tuple[int, list[str], str]]]:
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:
        message = " ".join(str(exc).split())[:200]
        raise LocalOrdersError(f"{path}: not a readable Parquet file ({message})") from None
    header = list(frame.columns)
    columns = [_as_text(frame.get_column(name)) for name in header]
    records = []
    for index in range(frame.height):
        fields = [column[index] for column in columns]
        # Parquet has no lines; row N is reported as line N + 1, as if it were a CSV with header.
        records.append((index + 2, fields, json.dumps(dict(zip(header, fields, strict=True)))))
    return header, records


def _is_parquet(source: Path) -> bool:
    return source.suffix.lower() in {".parquet", ".pq"}


def _column_names(source: Path, header: list[str]) -> list[str]:
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    if missing:
        raise LocalOrdersError(
            f"{source}: required column(s) missing: {', '.join(missing)} "
            f"(expected header: {','.join(REQUIRED_COLUMNS)})"
        )
    return names


def check_local_orders_file(path: str | Path) -> None:
    """Raise `LocalOrdersError` (one line) when the file cannot be read at all; rows unread."""
    source = Path(path)
    if not source.is_file():
        raise LocalOrdersError(f"{source}: no such file")
    try:
        if _is_parquet(source):
            try:
                header = list(pl.read_parquet_schema(source))
            except Exception as exc:
                message = " ".join(str(exc).split())[:200]
                raise LocalOrdersError(
                    f"{source}: not a readable Parquet file ({message})"
                ) from None
        else:
            header, _ = _csv_header(source, _read_text(source))
    except OSError as exc:
        raise LocalOrdersError(f"{source}: cannot be read ({exc.strerror or exc})") from None
    _column_names(source, header)


def read_local_orders(path: str | Path) -> LocalOrdersLoad:
    source = Path(path)
    if not source.is_file():
        raise LocalOrdersError(f"{source}: no such file")
    if _is_parquet(source):
        header, records = _rows_from_parquet(source)
    else:
        header, records = _rows_from_csv(source)

    names = _column_names(source, header)
    positions = {column: names.index(column) for column in REQUIRED_COLUMNS}
    extra_columns = [name for name in names if name not in REQUIRED_COLUMNS]

    accepted: list[dict[str, object]] = []
    rejected: list[dict[str, object]] = []
    first_line_of: dict[tuple[str, ...], int] = {}
    luhn_warnings = 0

    def reject(line_no: int, reason: str, raw_text: str) -> None:
        rejected.append({"line_no": line_no, "reason": reason, "raw_line": _printable(raw_text)})

    for line_no, fields, raw_text in records:
        if raw_text.startswith("\x00csv error"):
            reject(line_no, raw_text[1:], "")
            continue
        if not fields or all(not value.strip() for value in fields):
            continue  # blank line
        if _has_surrogates(raw_text):
            reject(line_no, "encoding: not valid UTF-8", raw_text)
            continue
        if len(fields) != len(names):
            reject(
                line_no,
                f"column count: {len(fields)} fields, header has {len(names)}",
                raw_text,
            )
            continue
        values = {column: fields[positions[column]] for column in REQUIRED_COLUMNS}
        try:
            typed, luhn_warning = _check_row(values)
        except ValueError as exc:
            reject(line_no, f"invalid value: {exc}", raw_text)
            continue
        identity = tuple(value.strip() for value in values.values())
        # Without an ICCID, identical rows are the eSIMs of one quantity-N order (see above).
        if typed["iccid"] is not None:
            if identity in first_line_of:
                reject(line_no, f"duplicate row: same as line {first_line_of[identity]}", raw_text)
                continue
            first_line_of[identity] = line_no
        luhn_warnings += luhn_warning
        payload = json.dumps(dict(zip(names, fields, strict=True)))
        accepted.append({"line_no": line_no, **typed, "payload": payload})

    return LocalOrdersLoad(
        source_file=str(source),
        accepted=accepted,
        rejected=rejected,
        extra_columns=extra_columns,
        luhn_warnings=luhn_warnings,
    )
