"""Lenient readers of scalar values, the only parsers of numbers, decimals and dates in the
package (records, paging metadata, rate-limit headers and token lifetimes all use them).

Each returns ``None`` for a missing, ``null``, oddly typed or non-finite value instead of
raising: providers send numbers as strings and leave fields empty while profiles are
allocated. Booleans are never read as numbers.

The ``*_problem`` checks say why a value read that way still cannot go into its typed column
(an integer beyond BIGINT, an amount beyond DECIMAL(18, 4), an over-long string or one with
control characters); record parsers quarantine such records instead of loading them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "as_bool",
    "as_datetime",
    "as_decimal",
    "as_float",
    "as_int",
    "as_str",
    "decimal_problem",
    "float_problem",
    "int_problem",
    "text_problem",
    "utc_now",
]

# What the typed columns of the raw tables can hold (pipelines/warehouse/raw_schema.sql).
BIGINT_RANGE = (-(2**63), 2**63 - 1)
INTEGER_RANGE = (-(2**31), 2**31 - 1)
# DECIMAL(18, 4): 14 digits before the point.
DECIMAL_LIMIT = Decimal(10) ** 14
# Identifiers, statuses and codes are short; anything longer is not what the API documents.
MAX_TEXT_CHARS = 1024
# C0 controls and DEL; lone surrogates cannot be encoded as UTF-8 at all.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def as_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_int(value: Any) -> int | None:
    """An integer, from an int, an integral float or a string of either."""
    if isinstance(value, str):
        try:
            return int(value.strip())  # exact, even beyond a float's precision
        except ValueError:
            value = as_float(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, str):
            number = Decimal(value.strip())
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value))
        else:
            return None
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    return None


def as_datetime(value: Any) -> datetime | None:
    """UTC-aware datetime from ``"YYYY-MM-DD HH:MM:SS"`` (no zone: UTC), ISO 8601 forms
    (``T``, fractions, ``Z`` or offsets), a bare date, or epoch seconds/milliseconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            if not math.isfinite(value):
                return None
            seconds = value / 1000 if abs(value) > 100_000_000_000 else value
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def int_problem(value: int, *, bits: int = 64) -> str | None:
    """Why ``value`` does not fit a BIGINT (``bits=64``) or INTEGER (``bits=32``) column."""
    low, high = BIGINT_RANGE if bits == 64 else INTEGER_RANGE
    if low <= value <= high:
        return None
    return f"is beyond {'BIGINT' if bits == 64 else 'INTEGER'}"


def float_problem(value: Any) -> str | None:
    """Why a number that reads as no float (see :func:`as_float`) cannot go into a DOUBLE
    column: it is infinite or beyond any float. Not-a-number and non-numbers are no problem
    (they read as ``None``, like a missing value)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return "is beyond DOUBLE" if as_float(value) is None else None
    if isinstance(value, float):
        return "is beyond DOUBLE" if math.isinf(value) else None
    if isinstance(value, str):
        try:
            return "is beyond DOUBLE" if math.isinf(float(value.strip())) else None
        except ValueError:
            return None
    return None


def decimal_problem(value: Decimal) -> str | None:
    """Why ``value`` does not fit a DECIMAL(18, 4) column."""
    return "is beyond DECIMAL(18, 4)" if abs(value) >= DECIMAL_LIMIT else None


def text_problem(value: str, *, limit: int = MAX_TEXT_CHARS) -> str | None:
    """Why ``value`` is not a sane identifier or status: too long, control characters or
    characters that are not text (lone surrogates)."""
    if len(value) > limit:
        return f"is longer than {limit} characters ({len(value)})"
    if _CONTROL.search(value):
        return "holds control characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds characters that are not text (lone surrogates)"
    return None
