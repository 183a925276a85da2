"""Typed records parsed from provider payloads.

Every record is a frozen, slotted dataclass that keeps the untouched JSON object in ``raw`` so
that fields the providers add later are preserved (``raw`` takes part in equality but not in
hashing, dicts being unhashable, nor in ``repr``, to keep it short). Parsing is lenient:
missing, ``null`` or oddly typed values become ``None`` (profiles can still be allocating), and
only the key a record cannot exist without (an order number, an order id) makes a parser raise
:class:`~pipelines.providers._errors.PayloadShapeError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, Literal, TypeVar

from ._errors import PayloadShapeError

__all__ = [
    "ESIMTradeEsim",
    "ESIMTradeListedOrder",
    "ESIMTradeSyncResult",
    "Outcome",
    "Page",
    "PressOneOrder",
    "PressOneSim",
    "PressOneUsage",
    "PressOneUsageResult",
]

T = TypeVar("T")
Outcome = Literal["ok", "not_found", "failed"]


# --- lenient scalar coercion ---------------------------------------------------------------


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


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) and number.is_integer() else None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


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
        if not math.isfinite(value):
            return None
        seconds = value / 1000 if abs(value) > 100_000_000_000 else value
        try:
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


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- paging ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, holding only the records not already yielded by the same
    listing. ``source_endpoint`` is the API path and query that produced it (no secrets);
    ``total`` is the provider's row count as of this response, when it gave one;
    ``pass_number`` tells which walk over the list produced the page (see ``_paging``)."""

    number: int
    items: tuple[T, ...]
    fetched_at: datetime
    source_endpoint: str
    total: int | None
    pass_number: int = 1


# --- eSIMTrade ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ESIMTradeListedOrder:
    """An order of ``GET /reseller/orders`` (the provider's stored copy). ``status`` is kept
    as given (lower case, e.g. ``"got_resource"``); prices are USD decimals."""

    provider_order_no: str
    status: str | None
    package_code: str | None
    package_name: str | None
    slug: str | None
    location_code: str | None
    quantity: int | None
    cost_price: Decimal | None
    sell_price: Decimal | None
    total_sell_price: Decimal | None
    raw: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any) -> ESIMTradeListedOrder:
        if not isinstance(obj, dict):
            raise PayloadShapeError("order is not a JSON object")
        order_no = as_str(obj.get("providerOrderNo"))
        if not order_no:
            raise PayloadShapeError("order without providerOrderNo")
        return cls(
            provider_order_no=order_no,
            status=as_str(obj.get("status")),
            package_code=as_str(obj.get("packageCode")),
            package_name=as_str(obj.get("packageName")),
            slug=as_str(obj.get("slug")),
            location_code=as_str(obj.get("locationCode")),
            quantity=as_int(obj.get("quantity")),
            cost_price=as_decimal(obj.get("costPrice")),
            sell_price=as_decimal(obj.get("sellPrice")),
            total_sell_price=as_decimal(obj.get("totalSellPrice")),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class ESIMTradeEsim:
    """One eSIM of ``GET /portal/orders``. Volumes are bytes; any field may be ``None`` while
    the profile is being allocated. ``esim_tran_no`` is the stable key (ICCIDs get reused).
    ``package_*`` come from ``packageList[0]``; ``package_codes`` lists every package."""

    esim_tran_no: str | None
    order_no: str | None
    transaction_id: str | None
    iccid: str | None
    imsi: str | None
    esim_status: str | None
    smdp_status: str | None
    total_volume: int | None
    order_usage: int | None
    total_duration: int | None
    duration_unit: str | None
    package_code: str | None
    package_name: str | None
    package_slug: str | None
    package_codes: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any) -> ESIMTradeEsim:
        if not isinstance(obj, dict):
            raise PayloadShapeError("eSIM is not a JSON object")
        packages = obj.get("packageList")
        package_list = (
            [p for p in packages if isinstance(p, dict)] if isinstance(packages, list) else []
        )
        first = package_list[0] if package_list else {}
        codes = tuple(c for c in (as_str(p.get("packageCode")) for p in package_list) if c)
        return cls(
            esim_tran_no=as_str(obj.get("esimTranNo")),
            order_no=as_str(obj.get("orderNo")),
            transaction_id=as_str(obj.get("transactionId")),
            iccid=as_str(obj.get("iccid")),
            imsi=as_str(obj.get("imsi")),
            esim_status=as_str(obj.get("esimStatus")),
            smdp_status=as_str(obj.get("smdpStatus")),
            total_volume=as_int(obj.get("totalVolume")),
            order_usage=as_int(obj.get("orderUsage")),
            total_duration=as_int(obj.get("totalDuration")),
            duration_unit=as_str(obj.get("durationUnit")),
            package_code=as_str(first.get("packageCode")),
            package_name=as_str(first.get("packageName")),
            package_slug=as_str(first.get("slug")),
            package_codes=codes,
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class ESIMTradeSyncResult:
    """Outcome of one ``GET /portal/orders`` sync.

    ``outcome`` is ``"ok"`` (``esims`` holds what the provider returned, possibly several),
    ``"not_found"`` (404; ``error_body`` is its JSON body) or ``"failed"`` (still failing after
    retries; ``error`` is a short redacted description).
    """

    requested_by: Literal["orderno", "iccid"]
    requested: str
    outcome: Outcome
    http_status: int | None
    esims: tuple[ESIMTradeEsim, ...]
    error: str | None
    error_body: dict[str, Any] | None
    fetched_at: datetime


# --- PressOne -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PressOneSim:
    id: int | None
    iccid: str | None
    created_at: datetime | None
    lpa: str | None
    matching_id: str | None
    raw: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PressOneSim:
        return cls(
            id=as_int(obj.get("id")),
            iccid=as_str(obj.get("iccid")),
            created_at=as_datetime(obj.get("created_at")),
            lpa=as_str(obj.get("lpa")),
            matching_id=as_str(obj.get("matching_id")),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class PressOneOrder:
    """A PressOne order (sim or top-up). ``created_at`` is UTC; ``price`` is USD per eSIM;
    ``status_slug`` is one of completed/failed/refunded/partially_refunded as given."""

    id: int
    code: str
    created_at: datetime | None
    description: str | None
    type: str | None
    package_id: str | None
    package: str | None
    esim_type: str | None
    data: str | None
    currency: str | None
    quantity: int | None
    validity: str | None
    price: Decimal | None
    status_slug: str | None
    status_name: str | None
    sims: tuple[PressOneSim, ...]
    raw: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, obj: Any) -> PressOneOrder:
        if not isinstance(obj, dict):
            raise PayloadShapeError("order is not a JSON object")
        order_id = as_int(obj.get("id"))
        if order_id is None:
            raise PayloadShapeError("order without an integer id")
        code = as_str(obj.get("code"))
        if not code:
            raise PayloadShapeError("order without a code")
        status = obj.get("status")
        status_obj = _dict(status)
        if status_obj is not None:
            slug = as_str(status_obj.get("slug"))
            name = as_str(status_obj.get("name"))
        elif isinstance(status, str) and status.strip():
            name = status
            slug = "_".join(status.strip().lower().split())
        else:
            slug = name = None
        sims = obj.get("sims")
        return cls(
            id=order_id,
            code=code,
            created_at=as_datetime(obj.get("created_at")),
            description=as_str(obj.get("description")),
            type=as_str(obj.get("type")),
            package_id=as_str(obj.get("package_id")),
            package=as_str(obj.get("package")),
            esim_type=as_str(obj.get("esim_type")),
            data=as_str(obj.get("data")),
            currency=as_str(obj.get("currency")),
            quantity=as_int(obj.get("quantity")),
            validity=as_str(obj.get("validity")),
            price=as_decimal(obj.get("price")),
            status_slug=slug,
            status_name=name,
            sims=tuple(PressOneSim.from_json(s) for s in sims if isinstance(s, dict))
            if isinstance(sims, list)
            else (),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class PressOneUsage:
    """Usage of one PressOne eSIM. Data amounts are MB; voice minutes; text SMS count."""

    iccid: str
    remaining: float | None
    total: float | None
    is_unlimited: bool | None
    status: str | None
    expired_at: datetime | None
    remaining_voice: float | None
    remaining_text: float | None
    total_voice: float | None
    total_text: float | None
    raw: dict[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, iccid: str, obj: Any) -> PressOneUsage:
        if not isinstance(obj, dict):
            raise PayloadShapeError("usage is not a JSON object")
        return cls(
            iccid=iccid,
            remaining=as_float(obj.get("remaining")),
            total=as_float(obj.get("total")),
            is_unlimited=as_bool(obj.get("is_unlimited")),
            status=as_str(obj.get("status")),
            expired_at=as_datetime(obj.get("expired_at")),
            remaining_voice=as_float(obj.get("remaining_voice")),
            remaining_text=as_float(obj.get("remaining_text")),
            total_voice=as_float(obj.get("total_voice")),
            total_text=as_float(obj.get("total_text")),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class PressOneUsageResult:
    """Outcome of one usage request: ``"ok"`` with ``usage``, ``"not_found"`` (404), or
    ``"failed"`` after retries with a short redacted ``error``."""

    iccid: str
    outcome: Outcome
    http_status: int | None
    usage: PressOneUsage | None
    error: str | None
    fetched_at: datetime
