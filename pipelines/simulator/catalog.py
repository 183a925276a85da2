"""Static vocabulary of the simulated providers: package catalogues and status words."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from decimal import Decimal

MIB = 1_048_576
GIB = 1_073_741_824

# --- eSIMTrade -------------------------------------------------------------------------------

ESIMTRADE_PENDING = ("CREATE", "PAYING", "PAID", "GETTING_RESOURCE")
# Live statuses the generator draws from, with weights (the whole vocabulary, both spellings of
# REVOKED, and two values no mapping knows).
ESIMTRADE_STATUS_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("CREATE", 0.6),
    ("PAYING", 0.6),
    ("PAID", 0.8),
    ("GETTING_RESOURCE", 1.5),
    ("GOT_RESOURCE", 18.0),
    ("IN_USE", 32.0),
    ("USED_UP", 10.0),
    ("USED_EXPIRED", 10.0),
    ("UNUSED_EXPIRED", 6.0),
    ("CANCEL", 6.0),
    ("SUSPENDED", 2.0),
    ("REVOKED", 1.6),
    ("REVOKE", 0.8),
    ("PENDING_REVIEW", 0.7),
    ("ON_HOLD", 0.4),
)

# smdpStatus that goes with each esimStatus (first entry is the most common).
ESIMTRADE_SMDP: dict[str, tuple[str, ...]] = {
    "GOT_RESOURCE": ("RELEASED", "RELEASED", "DOWNLOAD"),
    "IN_USE": ("ENABLED", "ENABLED", "ENABLED", "INSTALLATION"),
    "USED_UP": ("ENABLED", "DISABLED"),
    "USED_EXPIRED": ("DISABLED", "DELETED"),
    "UNUSED_EXPIRED": ("RELEASED",),
    "CANCEL": ("RELEASED",),
    "SUSPENDED": ("DISABLED", "ENABLED"),
    "REVOKED": ("DISABLED", "DELETED"),
    "REVOKE": ("DISABLED", "DELETED"),
    "PENDING_REVIEW": ("RELEASED",),
    "ON_HOLD": ("RELEASED", "DISABLED"),
}

# Statuses after which the profile has been used (some bytes consumed).
ESIMTRADE_USED = frozenset({"IN_USE", "USED_UP", "USED_EXPIRED", "SUSPENDED", "REVOKED", "REVOKE"})


@dataclass(frozen=True, slots=True)
class EsimTradePackage:
    code: str
    slug: str
    name: str
    location: str
    volume: int  # bytes
    duration: int
    unit: str
    cost: Decimal
    sell: Decimal


_ET_LOCATIONS = (
    ("PK", "Pakistan"),
    ("TR", "Turkey"),
    ("JP", "Japan"),
    ("US", "United States"),
    ("GB", "United Kingdom"),
    ("TH", "Thailand"),
    ("AE", "United Arab Emirates"),
    ("DE", "Germany"),
    ("ID", "Indonesia"),
    ("EU", "Europe"),
)
# (volume in MiB, days, daily plan?)
_ET_PLANS = (
    (500, 1, True),
    (1024, 1, True),
    (1024, 7, False),
    (3072, 15, False),
    (5120, 30, False),
    (10240, 30, False),
)


def esimtrade_catalog(seed: int) -> list[EsimTradePackage]:
    rng = random.Random(f"{seed}:esimtrade-catalog")
    alphabet = string.ascii_uppercase + string.digits
    packages = []
    for location, country in _ET_LOCATIONS:
        for mib, days, daily in _ET_PLANS:
            code = "".join(rng.choice(alphabet) for _ in range(7)) + location
            gb = mib / 1024
            size = f"{mib}MB" if mib < 1024 else f"{gb:g}GB"
            size_slug = f"{gb:g}"
            if daily:
                slug, name = f"{location}_{size_slug}_Daily", f"{country} {size}/Day"
            else:
                slug, name = f"{location}_{size_slug}_{days}", f"{country} {size} {days}Days"
            base = Decimal("0.35") + Decimal(mib) / 1024 * Decimal("0.62") * (
                1 + Decimal(days) / 60
            )
            cost = base.quantize(Decimal("0.01")) + Decimal(rng.randrange(0, 40)) / 100
            sell = (cost * Decimal("1.6")).quantize(Decimal("1")) - Decimal("0.01")
            sell = max(sell, cost + Decimal("0.50"))
            packages.append(
                EsimTradePackage(code, slug, name, location, mib * MIB, days, "DAY", cost, sell)
            )
    return packages


# --- PressOne --------------------------------------------------------------------------------

PRESSONE_ORDER_STATUS_NAMES = {
    "completed": "Completed",
    "failed": "Failed",
    "refunded": "Refunded",
    "partially_refunded": "Partially Refunded",
}


@dataclass(frozen=True, slots=True)
class PressOnePackage:
    package_id: str
    title: str
    operator: str
    data: str  # "1 GB" or "Unlimited"
    total_mb: int  # 0 for unlimited plans
    validity: str  # days
    price: Decimal
    unlimited: bool


_PO_OPERATORS = (
    ("kallur-digital", "Kallur Digital"),
    ("moshi-moshi", "Moshi Moshi"),
    ("merhaba", "Merhaba"),
    ("change", "Change"),
    ("uki-mobile", "Uki Mobile"),
    ("hallo-mobil", "Hallo Mobil"),
    ("sambungkan", "Sambungkan"),
    ("ahava", "Ahava"),
)
_PO_PLANS = ((1, 7), (2, 15), (3, 30), (5, 30), (0, 7))  # GB (0 = unlimited), days


def pressone_catalog(seed: int) -> tuple[list[PressOnePackage], list[PressOnePackage]]:
    """(eSIM packages, top-up packages)."""
    rng = random.Random(f"{seed}:pressone-catalog")
    sims, topups = [], []
    for slug, title in _PO_OPERATORS:
        for gb, days in _PO_PLANS:
            if gb == 0:
                package_id, data, total = f"{slug}-{days}days-unlimited", "Unlimited", 0
            else:
                package_id, data, total = f"{slug}-{days}days-{gb}gb", f"{gb} GB", gb * 1024
            price = (
                Decimal("3.50")
                + Decimal(gb or 6) * Decimal("1.75")
                + Decimal(rng.randrange(0, 90)) / 100
            )
            sims.append(
                PressOnePackage(
                    package_id,
                    f"{title}-{data} - {days} Days",
                    slug,
                    data,
                    total,
                    str(days),
                    price,
                    gb == 0,
                )
            )
            if gb:
                topups.append(
                    PressOnePackage(
                        f"{package_id}-topup",
                        f"{title}-{data} - {days} Days Top-up",
                        slug,
                        data,
                        total,
                        str(days),
                        price - Decimal("0.50"),
                        False,
                    )
                )
    return sims, topups
