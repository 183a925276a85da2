"""The simulated world: eSIMTrade eSIMs, PressOne orders, sims and usage, and local rows.

Every entity carries a ``uid`` that is stable for the life of a dataset; history and planted
records refer to eSIMs by it (never by ICCID, which a provider may reuse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipelines.simulator.catalog import (
    MIB,
    PRESSONE_ORDER_STATUS_NAMES,
    EsimTradePackage,
    PressOnePackage,
)


def _ts(moment: datetime) -> str:
    """PressOne's timestamps."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def iso_utc(moment: datetime) -> str:
    """eSIMTrade's and the local file's timestamps."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True, eq=False)
class EsimTradeEsim:
    """One eSIMTrade order (always one eSIM) with its live upstream state and stored copy."""

    uid: int
    order_no: str
    esim_tran_no: str | None
    transaction_id: str
    created_at: datetime
    package: EsimTradePackage
    iccid: str | None
    imsi: str | None
    esim_status: str
    smdp_status: str | None
    total_volume: int | None
    total_duration: int | None
    order_usage: int | None
    stored_status: str  # lower case, lags esim_status until the order is synced by order number
    drift: bool = False
    omit_when_null: bool = False  # while allocating, leave null fields out instead of sending null
    poisoned: bool = False  # its sync always answers 500

    def sync_json(self) -> dict[str, Any]:
        short = self.order_no[-8:].lower()
        data: dict[str, Any] = {
            "esimTranNo": self.esim_tran_no,
            "orderNo": self.order_no,
            "transactionId": self.transaction_id,
            "imsi": self.imsi,
            "iccid": self.iccid,
            "qrCodeUrl": f"https://p.qrsim.net/{short}.png" if self.iccid else None,
            "shortUrl": f"https://p.qrsim.net/{short}" if self.iccid else None,
            "ac": f"LPA:1$rsp.esimtrade.example${self.order_no[1:]}" if self.iccid else None,
            "smdpStatus": self.smdp_status,
            "totalVolume": self.total_volume,
            "totalDuration": self.total_duration,
            "durationUnit": self.package.unit,
            "orderUsage": self.order_usage,
            "esimStatus": self.esim_status,
            "expiredTime": None,
            "packageList": [
                {
                    "packageName": self.package.name,
                    "packageCode": self.package.code,
                    "slug": self.package.slug,
                    "duration": self.package.duration,
                    "volume": self.package.volume,
                    "locationCode": self.package.location,
                }
            ],
        }
        if self.omit_when_null:
            data = {key: value for key, value in data.items() if value is not None}
        return data

    def list_json(self) -> dict[str, Any]:
        return {
            "providerOrderNo": self.order_no,
            "slug": self.package.slug,
            "packageCode": self.package.code,
            "packageName": self.package.name,
            "locationCode": self.package.location,
            "status": self.stored_status,
            "quantity": 1,
            "costPrice": str(self.package.cost),
            "sellPrice": str(self.package.sell),
            "totalSellPrice": str(self.package.sell),
            "currency": "USD",
            "createdAt": iso_utc(self.created_at),
        }


@dataclass(slots=True, eq=False)
class PressOneSim:
    uid: int
    id: int
    iccid: str
    created_at: datetime
    matching_id: str

    def json(self) -> dict[str, Any]:
        lpa = "rsp.pressone.example"
        return {
            "id": self.id,
            "created_at": _ts(self.created_at),
            "iccid": self.iccid,
            "lpa": lpa,
            "imsis": None,
            "matching_id": self.matching_id,
            "qrcode": f"LPA:1${lpa}${self.matching_id}",
            "qrcode_url": f"https://sandbox.pressone.example/qr?code={self.matching_id}",
            "airalo_code": None,
            "apn_type": "automatic",
            "apn_value": None,
            "is_roaming": True,
            "confirmation_code": None,
        }


@dataclass(slots=True, eq=False)
class PressOneUser:
    id: int
    name: str
    email: str
    company: str
    created_at: datetime

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": _ts(self.created_at),
            "name": self.name,
            "email": self.email,
            "mobile": None,
            "address": None,
            "state": None,
            "city": None,
            "postal_code": None,
            "country_id": None,
            "company": self.company,
        }


@dataclass(slots=True, eq=False)
class PressOneOrder:
    uid: int  # order-level uid, used for the eSIM row of an order without sims
    id: int
    code: str
    created_at: datetime
    type: str  # "sim" | "topup"
    package: PressOnePackage
    quantity: int
    status: str  # order status slug
    description: str | None
    user: PressOneUser
    sims: list[PressOneSim] = field(default_factory=list)
    drift: bool = False

    @property
    def price(self) -> Decimal:
        return self.package.price

    def json(self, include: frozenset[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "code": self.code,
            "currency": "USD",
            "package_id": self.package.package_id,
            "quantity": self.quantity,
            "type": self.type,
            "description": self.description,
            "esim_type": "Prepaid",
            "validity": self.package.validity,
            "package": self.package.title,
            "data": self.package.data,
            "price": str(self.price),
            "created_at": _ts(self.created_at),
            "text": None,
            "voice": None,
            "net_price": str(self.price * self.quantity),
            "manual_installation": "<p>Settings &gt; Mobile &gt; Add eSIM</p>",
            "qrcode_installation": "<p>Scan the QR code</p>",
        }
        if "status" in include:
            name = PRESSONE_ORDER_STATUS_NAMES.get(self.status, self.status.title())
            body["status"] = {"name": name, "slug": self.status}
        if "user" in include:
            body["user"] = self.user.json()
        if "sims" in include:
            body["sims"] = [sim.json() for sim in self.sims]
        return body


@dataclass(slots=True, eq=False)
class PressOneUsage:
    """Usage of one ICCID as PressOne reports it (megabytes)."""

    total_mb: int
    remaining_mb: int
    status: str
    unlimited: bool
    expired_at: datetime | None
    poisoned: bool = False  # the usage endpoint always answers 500 for this ICCID

    def json(self) -> dict[str, Any]:
        if self.status == "RECYCLED":
            return {
                "remaining": 0,
                "total": 0,
                "expired_at": None,
                "is_unlimited": False,
                "status": "RECYCLED",
                "remaining_voice": None,
                "remaining_text": None,
                "total_voice": None,
                "total_text": None,
            }
        return {
            "remaining": self.remaining_mb,
            "total": self.total_mb,
            "expired_at": _ts(self.expired_at) if self.expired_at else None,
            "is_unlimited": self.unlimited,
            "status": self.status,
            "remaining_voice": 0,
            "remaining_text": 0,
            "total_voice": 0,
            "total_text": 0,
        }

    @property
    def used_bytes(self) -> int | None:
        if self.status == "RECYCLED":
            return 0  # a recycled eSIM answers zeros, and is_unlimited false
        if self.unlimited:
            return None
        return (self.total_mb - self.remaining_mb) * MIB

    @property
    def total_bytes(self) -> int | None:
        if self.status == "RECYCLED":
            return 0
        if self.unlimited:
            return None
        return self.total_mb * MIB


@dataclass(slots=True)
class LocalRow:
    provider: str
    order_no: str
    iccid: str
    package_code: str
    status: str
    amount: str
    currency: str
    created_at: str
    line: int = 0  # 1-based data line in the written file, set when rows are ordered

    def csv_fields(self) -> list[str]:
        return [
            self.provider,
            self.order_no,
            self.iccid,
            self.package_code,
            self.status,
            self.amount,
            self.currency,
            self.created_at,
        ]


@dataclass(frozen=True, slots=True)
class Planted:
    """A deliberate disagreement. It names either a local row or a provider eSIM (by uid)."""

    provider: str
    order_no: str
    discrepancy_type: str
    how: str
    esim_uid: int | None = None
    local_row: LocalRow | None = None
