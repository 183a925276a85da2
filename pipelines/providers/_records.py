"""Typed records parsed from provider payloads.

Every record is a frozen, slotted dataclass that keeps the untouched JSON object in ``raw`` so
that fields the providers add later are preserved (``raw`` takes part in equality but not in
hashing, dicts being unhashable, nor in ``repr``, to keep it short). Parsing is lenient:
missing, ``null`` or oddly typed values become ``None`` (profiles can still be allocating), and
only the key a record cannot exist without (an order number, an order id) makes a parser raise
:class:`~pipelines.providers._errors.PayloadShapeError`.

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

from ._errors import PayloadShapeError
from ._scalars import as_bool, as_datetime, as_decimal, as_float, as_int, as_str

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
R = TypeVar("R")
Outcome = Literal["ok", "not_found", "failed"]


# --- reading plain fields -------------------------------------------------------------------

# The lenient reader for each annotation a plain record field may have (annotations are
# strings here, see ``from __future__ import annotations``).
_READERS: dict[str, Callable[[Any], Any]] = {
    "str | None": as_str,
    "int | None": as_int,
    "float | None": as_float,
    "bool | None": as_bool,
    "Decimal | None": as_decimal,
    "datetime | None": as_datetime,
}


def _camel(name: str) -> str:
    """``esim_tran_no`` -> ``esimTranNo`` (eSIMTrade's key for a field)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Per record class and key spelling: (field name, JSON key, reader) of every readable field,
# worked out once (``dataclasses.fields`` and the annotation look-ups cost more than the reading).
_PLANS: dict[tuple[type, Callable[[str], str]], tuple[tuple[str, str, Callable[[Any], Any]], ...]]
_PLANS = {}


def _plan(
    cls: type, key: Callable[[str], str]
) -> tuple[tuple[str, str, Callable[[Any], Any]], ...]:
    plan = _PLANS.get((cls, key))
    if plan is None:
        plan = tuple(
            (spec.name, key(spec.name), reader)
            for spec in fields(cls)
            if (reader := _READERS.get(str(spec.type))) is not None
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
            values[name] = reader(obj.get(json_key))
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
        codes = tuple(c for c in (as_str(p.get("packageCode")) for p in package_list) if c)
        return _build(
            cls,
            obj,
            key=_camel,
            package_code=as_str(first.get("packageCode")),
            package_name=as_str(first.get("packageName")),
            package_slug=as_str(first.get("slug")),
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
        order_id = as_int(obj.get("id"))
        if order_id is None:
            raise PayloadShapeError("order without an integer id")
        code = as_str(obj.get("code"))
        if not code:
            raise PayloadShapeError("order without a code")
        status = obj.get("status")
        if isinstance(status, dict):
            slug = as_str(status.get("slug"))
            name = as_str(status.get("name"))
        elif isinstance(status, str) and status.strip():
            name = status
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
