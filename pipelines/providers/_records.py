"""Typed records parsed from provider payloads.

Every record is a frozen, slotted dataclass that keeps the untouched JSON object in ``raw`` so
that fields the providers add later are preserved (``raw`` takes part in equality but not in
hashing, dicts being unhashable, nor in ``repr``, to keep it short). Parsing is lenient:
missing, ``null`` or oddly typed values become ``None`` (profiles can still be allocating), and
only the key a record cannot exist without (an order number, an order id) makes a parser raise
:class:`~pipelines.providers._errors.PayloadShapeError`. A value that is there but cannot go
into its typed column (an integer beyond BIGINT, an amount beyond DECIMAL(18, 4), a string
longer than ``MAX_TEXT_CHARS`` or holding control characters) makes it raise
:class:`~pipelines.providers._errors.RecordRejected`: the record is quarantined, never loaded
with a silently changed value.

A plain field (annotated ``str | None``, ``int | None``, ``Decimal | None``...) is read from the
JSON key of the same name, camelCased for eSIMTrade (``esim_tran_no`` from ``esimTranNo``), with
the lenient reader of its type; ``from_json`` spells out only the fields that differ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from ._errors import PayloadShapeError, RecordRejected
from ._scalars import (
    as_bool,
    as_datetime,
    as_decimal,
    as_float,
    as_int,
    as_str,
    decimal_problem,
    float_problem,
    int_problem,
    text_problem,
)

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
    "Quarantined",
]

T = TypeVar("T")
R = TypeVar("R")
Outcome = Literal["ok", "not_found", "failed"]


# --- reading plain fields -------------------------------------------------------------------


def _rejected(key: str, value: Any, problem: str) -> RecordRejected:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    kind = "too_long" if "longer" in problem else "control_characters"
    if "beyond" in problem:
        kind = "out_of_range"
    return RecordRejected(f"{key} {shown} {problem}", kind=kind, field=key)


def column_str(value: Any, key: str) -> str | None:
    text = as_str(value)
    if text is not None and (problem := text_problem(text)):
        raise _rejected(key, text, problem)
    return text


def column_int(value: Any, key: str, bits: int = 64) -> int | None:
    number = as_int(value)
    if number is not None and (problem := int_problem(number, bits=bits)):
        raise _rejected(key, value, problem)
    return number


def column_decimal(value: Any, key: str) -> Decimal | None:
    number = as_decimal(value)
    if number is not None and (problem := decimal_problem(number)):
        raise _rejected(key, value, problem)
    return number


def column_float(value: Any, key: str) -> float | None:
    number = as_float(value)
    if number is None and (problem := float_problem(value)):
        raise _rejected(key, value, problem)
    return number


def _lenient(reader: Callable[[Any], Any]) -> Callable[[Any, str], Any]:
    return lambda value, _key: reader(value)


# The reader for each annotation a plain record field may have (annotations are strings here,
# see ``from __future__ import annotations``): lenient about missing or oddly typed values,
# strict about values beyond their column.
_READERS: dict[str, Callable[[Any, str], Any]] = {
    "str | None": column_str,
    "int | None": column_int,
    "float | None": column_float,
    "bool | None": _lenient(as_bool),
    "Decimal | None": column_decimal,
    "datetime | None": _lenient(as_datetime),
}
# Fields whose raw columns are INTEGER rather than BIGINT.
_INTEGER_FIELDS = frozenset({"quantity"})
# Free text the providers let people type: kept as given (only in the payload, never a key).
_FREE_TEXT_FIELDS = frozenset({"description", "package", "package_name"})


def _camel(name: str) -> str:
    """``esim_tran_no`` -> ``esimTranNo`` (eSIMTrade's key for a field)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Per record class and key spelling: (field name, JSON key, reader) of every readable field,
# worked out once (``dataclasses.fields`` and the annotation look-ups cost more than the reading).
_Reader = Callable[[Any, str], Any]
_PLANS: dict[tuple[type, Callable[[str], str]], tuple[tuple[str, str, _Reader], ...]] = {}


def _reader_of(name: str, annotation: str) -> _Reader | None:
    if name in _INTEGER_FIELDS and annotation == "int | None":
        return lambda value, key: column_int(value, key, bits=32)
    if name in _FREE_TEXT_FIELDS and annotation == "str | None":
        return _lenient(as_str)
    return _READERS.get(annotation)


def _plan(cls: type, key: Callable[[str], str]) -> tuple[tuple[str, str, _Reader], ...]:
    plan = _PLANS.get((cls, key))
    if plan is None:
        plan = tuple(
            (spec.name, key(spec.name), reader)
            for spec in fields(cls)
            if (reader := _reader_of(spec.name, str(spec.type))) is not None
        )
        _PLANS[(cls, key)] = plan
    return plan


def _build(
    cls: type[R], obj: dict[str, Any], *, key: Callable[[str], str] = str, **given: Any
) -> R:
    """``cls`` from the JSON object ``obj``: the fields in ``given`` take those values; every
    other field is read from the key ``key(field name)`` with the reader of its annotation
    (``_READERS``); ``raw`` is ``obj``. A field that is neither given nor of a readable
    annotation is a programming error (``TypeError`` from the constructor)."""
    values = dict(given)
    for name, json_key, reader in _plan(cls, key):
        if name not in values:
            values[name] = reader(obj.get(json_key), json_key)
    return cls(**values, raw=obj)


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


# --- quarantine ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An answer, or one record of an answer, refused before it became a typed record.

    ``raw`` is what was received as text (the whole body, or the one record re-serialized as
    JSON), secrets masked and cut to the first ``RAW_KEEP_CHARS`` characters (``truncated``
    says so); ``raw_bytes`` is the size received. ``kind`` is a short code (``too_large``,
    ``too_deep``, ``not_json``, ``bad_shape``, ``out_of_range``, ``too_long``,
    ``control_characters``) and ``reason`` one line naming the value and the limit.
    ``record_key`` is the order number, order id or ICCID when it is known; ``page`` the list
    page the record was on.
    """

    provider: str
    source_endpoint: str
    http_status: int | None
    kind: str
    reason: str
    raw: str
    raw_bytes: int
    truncated: bool
    fetched_at: datetime
    record_key: str | None = None
    page: int | None = None


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
        order_no = column_str(obj.get("providerOrderNo"), "providerOrderNo")
        if not order_no:
            raise PayloadShapeError("order without providerOrderNo")
        return _build(cls, obj, key=_camel, provider_order_no=order_no)


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
        codes = tuple(
            c for c in (column_str(p.get("packageCode"), "packageCode") for p in package_list) if c
        )
        return _build(
            cls,
            obj,
            key=_camel,
            package_code=column_str(first.get("packageCode"), "packageCode"),
            package_name=as_str(first.get("packageName")),
            package_slug=column_str(first.get("slug"), "slug"),
            package_codes=codes,
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
        return _build(cls, obj)


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
        order_id = column_int(obj.get("id"), "id")
        if order_id is None:
            raise PayloadShapeError("order without an integer id")
        code = column_str(obj.get("code"), "code")
        if not code:
            raise PayloadShapeError("order without a code")
        status = obj.get("status")
        if isinstance(status, dict):
            slug = column_str(status.get("slug"), "status.slug")
            name = as_str(status.get("name"))
        elif isinstance(status, str) and status.strip():
            name = column_str(status, "status")
            slug = "_".join(status.strip().lower().split())
        else:
            slug = name = None
        sims = obj.get("sims")
        return _build(
            cls,
            obj,
            id=order_id,
            code=code,
            status_slug=slug,
            status_name=name,
            sims=tuple(PressOneSim.from_json(s) for s in sims if isinstance(s, dict))
            if isinstance(sims, list)
            else (),
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
        return _build(cls, obj, iccid=iccid)


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
