"""A deterministic simulated world for both providers, plus the reseller's local order records.

``generate_dataset(seed, orders)`` builds the providers' data, plants disagreements of every
discrepancy type into the local records and the provider data, and records what a complete
pipeline run would observe. ``Dataset.advance()`` moves the world to the next epoch (as between
two pipeline runs) and plants history findings (invalid transitions, usage regressions).
``Dataset.ground_truth()`` applies docs/reconciliation-rules.md to it (see ``truth.py``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipelines.simulator import truth
from pipelines.simulator.catalog import (
    ESIMTRADE_PENDING,
    ESIMTRADE_SMDP,
    ESIMTRADE_STATUS_WEIGHTS,
    ESIMTRADE_USED,
    MIB,
    esimtrade_catalog,
    pressone_catalog,
)
from pipelines.simulator.iccid import (
    ESIMTRADE_PREFIXES,
    PRESSONE_PREFIXES,
    SPARE_PREFIXES,
    IccidFactory,
    break_luhn,
    luhn_digit,
    malformed_variants,
)
from pipelines.simulator.model import (
    EsimTradeEsim,
    LocalRow,
    Planted,
    PressOneOrder,
    PressOneSim,
    PressOneUsage,
    PressOneUser,
    iso_utc,
)

LOCAL_ORDERS_HEADER = (
    "provider",
    "order_no",
    "iccid",
    "package_code",
    "status",
    "amount",
    "currency",
    "created_at",
)
REFERENCE_NOW = datetime(2026, 2, 27, 12, 0, tzinfo=UTC)
EPOCH_STEP = timedelta(days=1)
HISTORY_SPAN = timedelta(days=180)


def _weighted(rng: random.Random, weights: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in weights]
    return rng.choices(names, weights=[w for _, w in weights])[0]


def esimtrade_status_weights(
    terminal_share: float | None = None,
) -> tuple[tuple[str, float], ...]:
    """The live eSIMTrade status weights; with ``terminal_share``, rescaled so that statuses of a
    terminal canonical state (depleted, expired, cancelled, revoked) are drawn with that
    probability, the rest keeping their relative weights."""
    if terminal_share is None:
        return ESIMTRADE_STATUS_WEIGHTS
    if not 0.0 <= terminal_share <= 1.0:
        raise ValueError("terminal_share must be within [0, 1]")

    def terminal(status: str) -> bool:
        return truth.esimtrade_state(status) in truth.TERMINAL_STATES

    sums = {
        True: sum(weight for status, weight in ESIMTRADE_STATUS_WEIGHTS if terminal(status)),
        False: sum(weight for status, weight in ESIMTRADE_STATUS_WEIGHTS if not terminal(status)),
    }
    share = {True: terminal_share, False: 1.0 - terminal_share}
    return tuple(
        (status, weight / sums[terminal(status)] * share[terminal(status)])
        for status, weight in ESIMTRADE_STATUS_WEIGHTS
    )


def provider_shares(total: int) -> dict[str, int]:
    """How ``total`` orders split between the providers (eSIMTrade takes the odd one)."""
    return {"esimtrade": (total + 1) // 2, "pressone": total // 2}


def plants_per_type(provider_orders: int) -> int:
    """How many local-file disagreements of each type are planted per provider."""
    return max(2, round(provider_orders * 0.006))


def history_plants(provider_orders: int) -> int:
    """How many invalid transitions / usage regressions are planted per provider per epoch."""
    return max(3, round(provider_orders * 0.006))


@dataclass(eq=False)
class Dataset:
    seed: int
    orders: int
    drift_orders: int
    esimtrade: list[EsimTradeEsim]  # newest first; drift orders (the newest) at the head
    pressone: list[PressOneOrder]  # newest first, top-ups included; drift orders at the head
    pressone_usage: dict[str, PressOneUsage]  # by ICCID; an ICCID absent here answers 404
    epoch: int = 0
    now: datetime = REFERENCE_NOW
    local_rows: list[LocalRow] = field(default_factory=list)
    planted: list[Planted] = field(default_factory=list)
    decoys: list[dict[str, str]] = field(default_factory=list)
    # Per eSIM uid, one (canonical state, used bytes or None) per epoch, as a full run observed it.
    history: dict[int, list[tuple[str, int | None]]] = field(default_factory=dict)
    # eSIM uids that carry a planted role; random moves between epochs leave them alone.
    roles: set[int] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.reindex()

    def __repr__(self) -> str:  # the default would print every order
        return (
            f"Dataset(seed={self.seed}, orders={self.orders}, drift_orders={self.drift_orders}, "
            f"epoch={self.epoch}, local_rows={len(self.local_rows)})"
        )

    # --- indexes used by the server -------------------------------------------------------

    def reindex(self) -> None:
        self.esimtrade_by_order = {esim.order_no: esim for esim in self.esimtrade}
        self.esimtrade_by_iccid: dict[str, list[EsimTradeEsim]] = {}
        for esim in self.esimtrade:  # newest first, so index lists are newest first too
            if esim.iccid:
                self.esimtrade_by_iccid.setdefault(esim.iccid, []).append(esim)
        self.pressone_by_id = {order.id: order for order in self.pressone}
        self.pressone_by_code = {order.code: order for order in self.pressone}
        self.pressone_by_iccid: dict[str, list[PressOneOrder]] = {}
        for order in self.pressone:
            for sim in order.sims:
                self.pressone_by_iccid.setdefault(sim.iccid, []).append(order)

    # --- local records ----------------------------------------------------------------------

    def local_orders_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LOCAL_ORDERS_HEADER)
        for row in self.local_rows:
            writer.writerow(row.csv_fields())
        return buffer.getvalue()

    def write_local_orders(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.local_orders_csv(), encoding="utf-8")
        return target

    # --- ground truth -------------------------------------------------------------------------

    def ground_truth(self) -> dict[str, Any]:
        with self.lock:
            return truth.ground_truth(self)

    def write_ground_truth(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.ground_truth(), indent=1) + "\n", encoding="utf-8")
        return target

    def record_observation(self) -> None:
        """Append what one complete pipeline run sees now to every eSIM's history."""
        for esim in truth.observe(self):
            self.history.setdefault(esim.uid, []).append((esim.state, esim.used))

    # --- between runs ---------------------------------------------------------------------------

    def advance(self, rng_seed: int | None = None) -> None:
        """Move the world to the next epoch (what changes between two pipeline runs).

        The local records do not change. eSIMTrade's stored list keeps the old status of an
        order until that order is synced by order number.
        """
        with self.lock:
            rng = random.Random(
                rng_seed if rng_seed is not None else f"{self.seed}:advance:{self.epoch + 1}"
            )
            self.epoch += 1
            self.now += EPOCH_STEP
            _Evolver(self, rng).run()
            self.record_observation()


# =============================================================================================
# Generation
# =============================================================================================


class _Generator:
    def __init__(self, seed: int, terminal_share: float | None = None) -> None:
        self.seed = seed
        self.status_weights = esimtrade_status_weights(terminal_share)
        self.rng = random.Random(f"{seed}:world")
        self.et_packages = esimtrade_catalog(seed)
        self.po_packages, self.po_topups = pressone_catalog(seed)
        self.et_iccids = IccidFactory(random.Random(f"{seed}:iccid:esimtrade"), ESIMTRADE_PREFIXES)
        self.po_iccids = IccidFactory(random.Random(f"{seed}:iccid:pressone"), PRESSONE_PREFIXES)
        self.spare_iccids = IccidFactory(random.Random(f"{seed}:iccid:spare"), SPARE_PREFIXES)
        self.uid = 0

    def next_uid(self) -> int:
        self.uid += 1
        return self.uid

    def times(self, count: int, start: datetime, end: datetime) -> list[datetime]:
        span = int((end - start).total_seconds())
        return sorted(start + timedelta(seconds=self.rng.randrange(span)) for _ in range(count))

    # --- eSIMTrade ---------------------------------------------------------------------------

    def esimtrade(self, count: int, drift: int) -> list[EsimTradeEsim]:
        rng = self.rng
        old = self.times(count, REFERENCE_NOW - HISTORY_SPAN, REFERENCE_NOW - timedelta(hours=2))
        new = self.times(
            drift, REFERENCE_NOW - timedelta(minutes=90), REFERENCE_NOW - timedelta(minutes=1)
        )
        per_minute: dict[str, int] = {}
        esims = []
        for index, created in enumerate(old + new):
            is_drift = index >= count
            minute = created.strftime("%y%m%d%H%M")
            per_minute[minute] = per_minute.get(minute, 0) + 1
            digits = f"{minute}{per_minute[minute]:04d}"
            if is_drift:
                status = rng.choices(("GOT_RESOURCE", "IN_USE", "GETTING_RESOURCE"), (6, 3, 1))[0]
            else:
                status = _weighted(rng, self.status_weights)
            package = rng.choice(self.et_packages)
            esim = EsimTradeEsim(
                uid=self.next_uid(),
                order_no="B" + digits,
                esim_tran_no=digits,
                transaction_id=f"gs_{int(created.timestamp() * 1000) + rng.randrange(1000)}",
                created_at=created,
                package=package,
                iccid=None,
                imsi=None,
                esim_status=status,
                smdp_status=None,
                total_volume=None,
                total_duration=None,
                order_usage=None,
                stored_status=status.lower(),
                drift=is_drift,
            )
            if status in ESIMTRADE_PENDING:
                esim.omit_when_null = rng.random() < 0.5
                if status in ("CREATE", "PAYING"):
                    esim.esim_tran_no = None
            else:
                self.allocate(esim)
                esim.order_usage = self.esimtrade_usage(status, esim.total_volume or 0)
            esims.append(esim)
        esims.reverse()
        return esims

    def allocate(self, esim: EsimTradeEsim) -> None:
        esim.iccid = self.et_iccids.next()
        esim.imsi = "2600101" + str(self.rng.randrange(10**7, 10**8))
        esim.total_volume = esim.package.volume
        esim.total_duration = esim.package.duration
        esim.order_usage = 0
        esim.smdp_status = self.rng.choice(ESIMTRADE_SMDP.get(esim.esim_status, ("RELEASED",)))
        if esim.esim_tran_no is None:
            esim.esim_tran_no = esim.order_no[1:]

    def esimtrade_usage(self, status: str, volume: int) -> int:
        if status == "USED_UP":
            return volume
        if status in ESIMTRADE_USED:
            return int(volume * self.rng.uniform(0.02, 0.97))
        return 0

    # --- PressOne ----------------------------------------------------------------------------

    def pressone(
        self, count: int, drift: int
    ) -> tuple[list[PressOneOrder], dict[str, PressOneUsage]]:
        rng = self.rng
        users = [
            PressOneUser(
                1201,
                "Reseller API",
                "api@reseller.example",
                "Reseller Ltd",
                REFERENCE_NOW - timedelta(days=400),
            ),
            PressOneUser(
                1202,
                "Support Desk",
                "support@reseller.example",
                "Reseller Ltd",
                REFERENCE_NOW - timedelta(days=390),
            ),
            PressOneUser(
                1377,
                "Partner Shop",
                "shop@partner.example",
                "Partner Shop GmbH",
                REFERENCE_NOW - timedelta(days=200),
            ),
        ]
        old = self.times(count, REFERENCE_NOW - HISTORY_SPAN, REFERENCE_NOW - timedelta(hours=2))
        new = self.times(
            drift, REFERENCE_NOW - timedelta(minutes=90), REFERENCE_NOW - timedelta(minutes=1)
        )
        order_id = rng.randrange(9_000, 12_000)
        code_seq = rng.randrange(8_000, 9_500)
        sim_id = rng.randrange(20_000, 30_000)
        orders: list[PressOneOrder] = []
        usage: dict[str, PressOneUsage] = {}
        topup_targets: list[tuple[PressOneSim, str]] = []  # (sim, operator)
        for index, created in enumerate(old + new):
            is_drift = index >= count
            order_id += 1
            code_seq += rng.randint(1, 4)
            user = rng.choices(users, (6, 1, 2))[0]
            description = rng.choice(
                (
                    None,
                    None,
                    None,
                    f"{user.company} order",
                    f"customer #{rng.randrange(100, 99999)}",
                    "bulk restock",
                )
            )
            code = f"{created:%Y%m%d}-{code_seq:06d}"
            if not is_drift and topup_targets and rng.random() < 0.05:
                sim, operator = rng.choice(topup_targets)
                target = usage[sim.iccid]
                choices = [p for p in self.po_topups if p.operator == operator] or self.po_topups
                package = rng.choice(choices)
                target.total_mb += package.total_mb
                target.remaining_mb += package.total_mb
                if target.status == "FINISHED":
                    target.status = "ACTIVE"
                orders.append(
                    PressOneOrder(
                        self.next_uid(),
                        order_id,
                        code,
                        created,
                        "topup",
                        package,
                        1,
                        "completed",
                        description,
                        user,
                        [sim],
                    )
                )
                continue
            package = rng.choice(self.po_packages)
            if is_drift:
                status, quantity = "completed", 1
            else:
                status = rng.choices(
                    ("completed", "failed", "refunded", "partially_refunded"), (84, 5, 5, 6)
                )[0]
                quantity = (
                    1
                    if status == "failed"
                    else 2
                    if status == "partially_refunded"
                    else rng.choices((1, 2), (88, 12))[0]
                )
            order = PressOneOrder(
                self.next_uid(),
                order_id,
                code,
                created,
                "sim",
                package,
                quantity,
                status,
                description,
                user,
                [],
                is_drift,
            )
            if status != "failed":
                for position in range(quantity):
                    sim_id += 1
                    sim = PressOneSim(
                        self.next_uid(),
                        sim_id,
                        self.po_iccids.next(),
                        created,
                        f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}-"
                        f"{rng.randrange(16**8):08X}-{rng.randrange(16**6):06X}",
                    )
                    order.sims.append(sim)
                    record = self.pressone_usage(order, position, is_drift)
                    if record is not None:
                        usage[sim.iccid] = record
                        if (
                            status == "completed"
                            and not record.unlimited
                            and record.status in ("ACTIVE", "FINISHED")
                        ):
                            topup_targets.append((sim, package.operator))
            orders.append(order)
        orders.reverse()
        return orders, usage

    def pressone_usage(
        self, order: PressOneOrder, position: int, drift: bool
    ) -> PressOneUsage | None:
        rng = self.rng
        if drift:
            status = rng.choice((None, "NOT_ACTIVE"))
        elif order.status == "completed":
            status = rng.choices(
                (None, "NOT_ACTIVE", "ACTIVE", "FINISHED", "EXPIRED", "UNKNOWN", "RECYCLED"),
                (10, 15, 38, 14, 15, 3, 5),
            )[0]
        elif order.status == "refunded":
            status = rng.choice((None, "NOT_ACTIVE", "NOT_ACTIVE"))
        else:  # partially_refunded: one sim in use, the refunded one never activated
            status = (
                rng.choice(("ACTIVE", "NOT_ACTIVE"))
                if position == 0
                else rng.choice((None, "NOT_ACTIVE"))
            )
        if status is None:
            return None
        package = order.package
        total = package.total_mb
        if package.unlimited:
            remaining = 0
        elif status == "NOT_ACTIVE":
            remaining = total
        elif status == "FINISHED":
            remaining = 0
        elif status == "ACTIVE":
            remaining = total - int(total * rng.uniform(0.01, 0.95))
        else:
            remaining = rng.randrange(0, total + 1)
        expires = order.created_at + timedelta(days=int(package.validity) + rng.randrange(0, 20))
        return PressOneUsage(
            total, remaining, status, package.unlimited, None if status == "NOT_ACTIVE" else expires
        )


def generate_dataset(
    seed: int = 7,
    orders: int = 1000,
    *,
    drift_orders: int = 0,
    esimtrade_terminal_share: float | None = None,
) -> Dataset:
    """Build the simulated world for ``seed``: ``orders`` provider orders (about half each) plus
    ``drift_orders`` newest orders (split the same way) that the server can hide to simulate
    list drift. ``esimtrade_terminal_share`` sets the share of eSIMTrade eSIMs (drift orders
    aside) generated in a terminal state (see ``esimtrade_status_weights``); ``None`` keeps the
    usual mix. The same arguments always give the same dataset."""
    if orders < 0 or drift_orders < 0:
        raise ValueError("orders and drift_orders must not be negative")
    generator = _Generator(seed, esimtrade_terminal_share)
    share, drift_share = provider_shares(orders), provider_shares(drift_orders)
    esimtrade = generator.esimtrade(share["esimtrade"], drift_share["esimtrade"])
    pressone, usage = generator.pressone(share["pressone"], drift_share["pressone"])
    dataset = Dataset(
        seed=seed,
        orders=orders,
        drift_orders=drift_orders,
        esimtrade=esimtrade,
        pressone=pressone,
        pressone_usage=usage,
    )
    planter = _Planter(dataset, generator)
    planter.provider_side()
    dataset.reindex()
    dataset.record_observation()
    planter.local_side()
    return dataset


# =============================================================================================
# Planting
# =============================================================================================


class _HasUid(Protocol):
    @property
    def uid(self) -> int: ...


_Item = TypeVar("_Item", bound=_HasUid)
_Pattern = TypeVar("_Pattern")


class _RolePicker:
    """Hands out planted roles: an eSIM (by uid) gets at most one (``Dataset.roles``), and the
    random moves between epochs leave it alone afterwards."""

    ds: Dataset

    def pick(self, pool: Iterable[_Item], accept: Callable[[_Item], bool]) -> _Item | None:
        """The first item of ``pool`` (already shuffled) without a role that ``accept`` takes;
        it gets a role."""
        for item in pool:
            if item.uid not in self.ds.roles and accept(item):
                self.ds.roles.add(item.uid)
                return item
        return None

    def picks(
        self, pool: Sequence[_Item], count: int, accept: Callable[[_Item], bool]
    ) -> Iterator[_Item]:
        """Up to ``count`` picks, one at a time (the caller changes each before the next)."""
        for _ in range(count):
            item = self.pick(pool, accept)
            if item is not None:
                yield item


def _rotating(patterns: Sequence[_Pattern], count: int, plant: Callable[[_Pattern], bool]) -> None:
    """``count`` times, plant the first pattern ``plant`` manages, starting one pattern further
    along each time, so that every pattern gets its turn before any gets a second one."""
    for index in range(count):
        for shift in range(len(patterns)):
            if plant(patterns[(index + shift) % len(patterns)]):
                break


@dataclass(slots=True)
class _Target:
    """A provider eSIM as a candidate for planting into the local file, with its clean row."""

    provider: str
    uid: int
    order_no: str
    single: bool  # the only eSIM of its order
    state: str
    row: LocalRow


class _Planter(_RolePicker):
    def __init__(self, dataset: Dataset, generator: _Generator) -> None:
        self.ds = dataset
        self.gen = generator
        self.rng = random.Random(f"{dataset.seed}:plant")
        self.k = {
            provider: plants_per_type(count)
            for provider, count in provider_shares(dataset.orders).items()
        }

    def plant(
        self,
        provider: str,
        order_no: str,
        kind: str,
        how: str,
        *,
        uid: int | None = None,
        row: LocalRow | None = None,
    ) -> None:
        self.ds.planted.append(Planted(provider, order_no, kind, how, uid, row))

    def decoy(self, provider: str, order_no: str, iccid: str, kind: str, detail: str) -> None:
        self.ds.decoys.append(
            {
                "provider": provider,
                "order_no": order_no,
                "iccid": iccid,
                "kind": kind,
                "detail": detail,
            }
        )

    def luhn_decoy(self, provider: str, order_no: str, iccid: str) -> None:
        detail = "ICCID fails the Luhn check but has a valid shape: not a finding"
        self.decoy(provider, order_no, iccid, "luhn_failure", detail)

    # --- provider side: poisoned syncs, over-volume usage, recycled ICCID, Luhn decoys -------

    def provider_side(self) -> None:
        self.esimtrade_side()
        self.pressone_side()

    def esimtrade_side(self) -> None:
        ds, rng, k = self.ds, self.rng, self.k["esimtrade"]
        et = [esim for esim in ds.esimtrade if not esim.drift]
        rng.shuffle(et)
        live = ("GOT_RESOURCE", "IN_USE", "USED_UP", "CANCEL")
        for esim in self.picks(et, k, lambda e: e.esim_status in live):
            esim.poisoned = True
            esim.stored_status = esim.esim_status.lower()
            how = "sync by order number always answers 500"
            self.plant("esimtrade", esim.order_no, "sync_failed", how, uid=esim.uid)
        used = ("IN_USE", "USED_UP")
        for esim in self.picks(et, k, lambda e: e.esim_status in used and bool(e.total_volume)):
            volume = esim.total_volume or 0
            esim.order_usage = volume + rng.randrange(1, 300) * MIB
            how = f"orderUsage {esim.order_usage} > totalVolume {volume}"
            self.plant("esimtrade", esim.order_no, "usage_exceeds_volume", how, uid=esim.uid)
        # One recycled ICCID reused by a newer eSIM with a different esimTranNo.
        old = self.pick(
            sorted(et, key=lambda e: e.created_at), lambda e: e.esim_status == "USED_EXPIRED"
        )
        new = self.pick(
            sorted(et, key=lambda e: e.created_at, reverse=True),
            lambda e: e.esim_status in ("GOT_RESOURCE", "IN_USE"),
        )
        if old and new and old.created_at < new.created_at:
            old.smdp_status = "DELETED"
            new.iccid = old.iccid
            self.reused = (old, new)
        else:  # pragma: no cover - only for tiny datasets
            self.reused = None
        allocated = ("GOT_RESOURCE", "IN_USE", "USED_EXPIRED")
        for esim in self.picks(et, 2, lambda e: e.iccid is not None and e.esim_status in allocated):
            esim.iccid = break_luhn(esim.iccid or "")
            self.luhn_decoy("esimtrade", esim.order_no, esim.iccid)
        # A few stored statuses lag the live status until the order is synced.
        for esim in et:
            if (
                esim.uid not in ds.roles
                and esim.esim_status in ("IN_USE", "USED_UP", "USED_EXPIRED")
                and rng.random() < 0.04
            ):
                esim.stored_status = "got_resource" if esim.esim_status == "IN_USE" else "in_use"

    def pressone_side(self) -> None:
        ds, rng, k = self.ds, self.rng, self.k["pressone"]
        usage = ds.pressone_usage
        order_of = {
            sim.uid: order for order in ds.pressone if order.type == "sim" for sim in order.sims
        }
        sims = [
            sim
            for order in ds.pressone
            if order.type == "sim" and not order.drift
            for sim in order.sims
        ]
        rng.shuffle(sims)
        topped_up = {
            sim.iccid for order in ds.pressone if order.type == "topup" for sim in order.sims
        }

        def alone(sim: PressOneSim) -> bool:
            """The only sim of a completed order, never topped up."""
            order = order_of[sim.uid]
            return (
                order.status == "completed" and len(order.sims) == 1 and sim.iccid not in topped_up
            )

        def metered(sim: PressOneSim) -> bool:
            """A completed order's sim whose capped usage is in use or used up."""
            record = usage.get(sim.iccid)
            return (
                order_of[sim.uid].status == "completed"
                and record is not None
                and not record.poisoned
                and not record.unlimited
                and record.status in ("ACTIVE", "FINISHED")
            )

        for sim in self.picks(sims, k, lambda s: alone(s) and s.iccid in usage):
            usage[sim.iccid].poisoned = True
            how = "usage of this ICCID always answers 500"
            self.plant("pressone", order_of[sim.uid].code, "sync_failed", how, uid=sim.uid)
        for sim in self.picks(sims, k, metered):
            record = usage[sim.iccid]
            record.remaining_mb = -rng.randrange(1, 400)
            how = f"remaining {record.remaining_mb} MB of {record.total_mb} MB"
            self.plant("pressone", order_of[sim.uid].code, "usage_exceeds_volume", how, uid=sim.uid)
        for sim in self.picks(sims, 2, alone):
            record = usage.pop(sim.iccid, None)
            sim.iccid = break_luhn(sim.iccid)
            if record is not None:
                usage[sim.iccid] = record
            self.luhn_decoy("pressone", order_of[sim.uid].code, sim.iccid)

    # --- local side -------------------------------------------------------------------------

    def local_side(self) -> None:
        ds, rng = self.ds, self.rng
        esims = truth.observe(ds)
        et_world = {esim.uid: esim for esim in ds.esimtrade}
        po_world: dict[int, tuple[PressOneOrder, PressOneSim | None]] = {}
        for order in ds.pressone:
            po_world[order.uid] = (order, None)
            for sim in order.sims:
                po_world[sim.uid] = (order, sim)
        rows: list[LocalRow] = []
        targets: dict[str, list[_Target]] = {"esimtrade": [], "pressone": []}
        for seen in esims:
            if seen.provider == "esimtrade":
                esim = et_world[seen.uid]
                iccid, package, amount, created = (
                    esim.iccid or "",
                    esim.package.code,
                    esim.package.cost,
                    esim.created_at,
                )
                single, drift = True, esim.drift
            else:
                order, sim = po_world[seen.uid]
                iccid, package, amount, created = (
                    (sim.iccid if sim else ""),
                    order.package.package_id,
                    order.price,
                    order.created_at,
                )
                single, drift = len(order.sims) <= 1, order.drift
            status = seen.state
            if status == "unknown":  # the local file speaks canonical names only
                status = "pending" if seen.provider == "esimtrade" else "active"
            row = LocalRow(
                seen.provider,
                seen.order_no,
                iccid,
                package,
                status,
                str(amount),
                "USD",
                iso_utc(created),
            )
            rows.append(row)
            if not drift:  # drift orders stay clean: they may be hidden when a run lists them
                target = _Target(seen.provider, seen.uid, seen.order_no, single, seen.state, row)
                targets[seen.provider].append(target)
        for pool in targets.values():
            rng.shuffle(pool)
        ds.local_rows = rows
        if self.reused:
            rows_by_uid = {t.uid: t.row for t in targets["esimtrade"]}
            for esim in self.reused:
                self.plant(
                    "esimtrade",
                    esim.order_no,
                    "duplicate_iccid",
                    "ICCID recycled upstream and reused by a newer eSIM (different esimTranNo)",
                    row=rows_by_uid[esim.uid],
                )
        for provider in ("esimtrade", "pressone"):
            self.local_plants(provider, targets[provider])
        self.decoy_rows(targets)
        ds.local_rows = [row for row in ds.local_rows if row.order_no]  # removed rows are blanked
        ds.local_rows.sort(key=lambda r: (r.created_at, r.provider, r.order_no, r.iccid))
        for line, row in enumerate(ds.local_rows, start=1):
            row.line = line

    def local_plants(self, provider: str, pool: list[_Target]) -> None:
        ds, rng, k = self.ds, self.rng, self.k[provider]
        catalog = (
            [p.code for p in self.gen.et_packages]
            if provider == "esimtrade"
            else [p.package_id for p in self.gen.po_packages]
        )

        def single(target: _Target) -> bool:
            return target.single

        def has_iccid(target: _Target) -> bool:
            return target.single and bool(target.row.iccid)

        # missing_locally: provider eSIMs left out of the local file
        multi = self.pick(pool, lambda t: not t.single)
        if multi is not None:
            self.drop_row(multi, "one sim of a quantity-2 order left out")
        failed = self.pick(pool, lambda t: t.state == "failed")
        if failed is not None:
            self.drop_row(failed, "failed order (no sims) left out")
        for target in self.picks(pool, k - (multi is not None) - (failed is not None), single):
            self.drop_row(target, "left out of the local file")

        # missing_at_provider: local rows for orders no provider knows
        for index in range(k):
            row = self.fake_row(provider, index, empty_iccid=index == 1)
            ds.local_rows.append(row)
            how = "order number unknown to the provider"
            self.plant(provider, row.order_no, "missing_at_provider", how, row=row)

        # status_mismatch: money ones and warning ones
        money = ("cancelled", "revoked", "failed")
        patterns = [  # critical ones (exactly one side cancelled/revoked/failed) come first
            (money, "active", "provider {p}, local active"),
            (("active",), "ready", "provider active, local ready"),
            (money, "active", "provider {p}, local active"),
            (("active",), "cancelled", "provider active, local cancelled"),
            (("depleted", "expired"), "active", "provider {p}, local active"),
            (("ready",), "active", "provider ready, local active"),
        ]

        def status_mismatch(pattern: tuple[tuple[str, ...], str, str]) -> bool:
            states, local, how = pattern
            target = self.pick(pool, lambda t: t.single and t.state in states)
            if target is None:
                return False
            target.row.status = local
            how = how.format(p=target.state)
            self.plant(provider, target.order_no, "status_mismatch", how, row=target.row)
            return True

        _rotating(patterns, max(k, 3), status_mismatch)

        # iccid_mismatch: a different (valid-shape) ICCID
        for index, target in enumerate(self.picks(pool, k, has_iccid)):
            if index == 0 and provider == "esimtrade":
                payload = target.row.iccid[:17]
                target.row.iccid = payload + luhn_digit(payload)
                how = "18-digit ICCID: a valid shape for ^89\\d{16,18}$, but not the provider's"
            else:
                target.row.iccid = self.gen.spare_iccids.next()
                how = "another eSIM's ICCID typed in"
            self.plant(provider, target.order_no, "iccid_mismatch", how, row=target.row)

        # package_mismatch
        for target in self.picks(pool, k, single):
            old = target.row.package_code
            target.row.package_code = rng.choice([code for code in catalog if code != old])
            how = f"local {target.row.package_code}, provider {old}"
            self.plant(provider, target.order_no, "package_mismatch", how, row=target.row)

        # amount_mismatch (> 0.01), plus one 0.005 difference that is not a finding
        deltas = (Decimal("0.50"), Decimal("-0.25"), Decimal("1.00"), Decimal("0.02"))
        for index, target in enumerate(self.picks(pool, k, single)):
            price = Decimal(target.row.amount)
            target.row.amount = str(price + deltas[index % len(deltas)])
            how = f"local {target.row.amount}, provider {price}"
            self.plant(provider, target.order_no, "amount_mismatch", how, row=target.row)
        target = self.pick(pool, single)
        if target:
            target.row.amount = str(Decimal(target.row.amount) + Decimal("0.005"))
            self.decoy(
                provider,
                target.order_no,
                target.row.iccid,
                "amount_within_tolerance",
                f"local {target.row.amount} differs by 0.005: not a finding",
            )

        # duplicate_iccid: one local row carries another row's ICCID
        for _ in range(math.ceil(k / 2)):
            first = self.pick(pool, has_iccid)
            second = self.pick(pool, has_iccid)
            if first and second:
                first.row.iccid = second.row.iccid
                for target, other in ((first, second), (second, first)):
                    how = f"ICCID also on the row of order {other.order_no}"
                    self.plant(provider, target.order_no, "duplicate_iccid", how, row=target.row)

        # invalid_iccid: a spoiled ICCID
        for index, target in enumerate(self.picks(pool, k, has_iccid)):
            variants = malformed_variants(target.row.iccid)
            target.row.iccid, how = variants[(index + (provider == "pressone")) % len(variants)]
            self.plant(provider, target.order_no, "invalid_iccid", how, row=target.row)

        # Rows whose ICCID the reseller does not know yet (they still match by order number).
        for target in self.picks(
            pool, max(2, k // 2), lambda t: has_iccid(t) and t.state in ("ready", "active")
        ):
            target.row.iccid = ""

    def drop_row(self, target: _Target, how: str) -> None:
        self.plant(target.provider, target.order_no, "missing_locally", how, uid=target.uid)
        target.row.order_no = ""  # removed once planting is over

    def fake_row(self, provider: str, index: int, *, empty_iccid: bool) -> LocalRow:
        rng = self.rng
        created = REFERENCE_NOW - timedelta(
            days=rng.randrange(1, 150), seconds=rng.randrange(86400)
        )
        if provider == "esimtrade":
            order_no = "B" + created.strftime("%y%m%d%H%M") + f"{9000 + index:04d}"
            package = rng.choice(self.gen.et_packages)
            code, amount = package.code, package.cost
        else:
            order_no = f"{created:%Y%m%d}-{rng.randrange(500_000, 999_999):06d}"
            po_package = rng.choice(self.gen.po_packages)
            code, amount = po_package.package_id, po_package.price
        known = self.ds.esimtrade_by_order if provider == "esimtrade" else self.ds.pressone_by_code
        if order_no in known:  # pragma: no cover - the ranges above do not overlap real ones
            raise AssertionError(f"fake order number {order_no} collides")
        iccid = "" if empty_iccid else self.gen.spare_iccids.next()
        return LocalRow(
            provider,
            order_no,
            iccid,
            code,
            rng.choice(("active", "ready")),
            str(amount),
            "USD",
            iso_utc(created),
        )

    def decoy_rows(self, targets: dict[str, list[_Target]]) -> None:
        """Harmless variations that must not become findings."""
        variants = (("Active", "active"), (" ready ", "ready"), ("EXPIRED", "expired"))
        for provider, pool in targets.items():
            for raw, state in variants:
                target = self.pick(pool, lambda t, s=state: t.single and t.row.status == s)
                if target:
                    target.row.status = raw
                    self.decoy(
                        provider,
                        target.order_no,
                        target.row.iccid,
                        "status_spelling",
                        f"local status {raw!r}: case and blanks are ignored",
                    )
            target = self.pick(pool, lambda t: t.single and t.row.amount.endswith("0"))
            if target:
                target.row.amount = format(Decimal(target.row.amount).normalize(), "f")
                self.decoy(
                    provider,
                    target.order_no,
                    target.row.iccid,
                    "amount_format",
                    f"local amount written {target.row.amount}",
                )


# =============================================================================================
# Between epochs
# =============================================================================================


class _Evolver(_RolePicker):
    """Applies one epoch of change: planted history findings first, then ordinary life."""

    def __init__(self, dataset: Dataset, rng: random.Random) -> None:
        self.ds = dataset
        self.rng = rng
        self.h = {
            provider: history_plants(count)
            for provider, count in provider_shares(dataset.orders).items()
        }
        self.order_of = {
            sim.uid: order
            for order in dataset.pressone
            if order.type == "sim"
            for sim in order.sims
        }

    def plant(self, provider: str, order_no: str, uid: int, kind: str, how: str) -> None:
        how = f"epoch {self.ds.epoch}: {how}"
        self.ds.planted.append(Planted(provider, order_no, kind, how, uid, None))

    def free(self, uid: int) -> bool:
        return uid not in self.ds.roles

    def run(self) -> None:
        usage = self.ds.pressone_usage
        et = [esim for esim in self.ds.esimtrade if not esim.poisoned and self.free(esim.uid)]
        self.rng.shuffle(et)
        sims = [
            sim
            for order in self.ds.pressone
            if order.type == "sim"
            for sim in order.sims
            if self.free(sim.uid) and not (sim.iccid in usage and usage[sim.iccid].poisoned)
        ]
        self.rng.shuffle(sims)
        self.esimtrade_plants(et)
        self.pressone_plants(sims)
        self.esimtrade_life([esim for esim in et if self.free(esim.uid)])
        self.pressone_life([sim for sim in sims if self.free(sim.uid)])

    # --- planted ------------------------------------------------------------------------------

    def esimtrade_plants(self, pool: list[EsimTradeEsim]) -> None:
        patterns = (
            ("CANCEL", "IN_USE", "ENABLED"),
            ("USED_EXPIRED", "GOT_RESOURCE", "RELEASED"),
            ("IN_USE", "GOT_RESOURCE", "RELEASED"),
            ("UNUSED_EXPIRED", "GOT_RESOURCE", "RELEASED"),
            ("REVOKED", "IN_USE", "ENABLED"),
            ("USED_UP", "GOT_RESOURCE", "RELEASED"),
        )

        def invalid_transition(pattern: tuple[str, str, str]) -> bool:
            before, after, smdp = pattern
            esim = self.pick(pool, lambda e: e.esim_status == before and bool(e.iccid))
            if esim is None:
                return False
            esim.esim_status, esim.smdp_status = after, smdp
            how = f"esimStatus {before} -> {after}"
            self.plant("esimtrade", esim.order_no, esim.uid, "invalid_transition", how)
            return True

        _rotating(patterns, self.h["esimtrade"], invalid_transition)

        def regressable(esim: EsimTradeEsim) -> bool:
            used = esim.order_usage or 0
            return esim.esim_status == "IN_USE" and 10 * MIB <= used <= (esim.total_volume or 0)

        for esim in self.picks(pool, self.h["esimtrade"], regressable):
            before = esim.order_usage or 0
            esim.order_usage = int(before * self.rng.uniform(0.3, 0.8))
            how = f"orderUsage {before} -> {esim.order_usage}"
            self.plant("esimtrade", esim.order_no, esim.uid, "usage_regression", how)

    def pressone_plants(self, pool: list[PressOneSim]) -> None:
        usage = self.ds.pressone_usage
        patterns = (("FINISHED", "NOT_ACTIVE"), ("EXPIRED", "ACTIVE"), ("ACTIVE", "NOT_ACTIVE"))

        def invalid_transition(pattern: tuple[str, str]) -> bool:
            before, after = pattern
            sim = self.pick(
                pool,
                lambda s: (
                    self.order_of[s.uid].status == "completed"
                    and s.iccid in usage
                    and usage[s.iccid].status == before
                ),
            )
            if sim is None:
                return False
            usage[sim.iccid].status = after
            how = f"usage status {before} -> {after}"
            self.plant("pressone", self.order_of[sim.uid].code, sim.uid, "invalid_transition", how)
            return True

        _rotating(patterns, self.h["pressone"], invalid_transition)

        def regressable(sim: PressOneSim) -> bool:
            record = usage.get(sim.iccid)
            return (
                record is not None
                and record.status == "ACTIVE"
                and not record.unlimited
                and record.total_mb - record.remaining_mb >= 10
                and record.remaining_mb >= 0
            )

        for sim in self.picks(pool, self.h["pressone"], regressable):
            record = usage[sim.iccid]
            used = record.total_mb - record.remaining_mb
            record.remaining_mb += self.rng.randrange(1, used)
            how = f"remaining {record.total_mb - used} -> {record.remaining_mb} MB"
            self.plant("pressone", self.order_of[sim.uid].code, sim.uid, "usage_regression", how)

    # --- ordinary life ---------------------------------------------------------------------------

    def esimtrade_life(self, pool: list[EsimTradeEsim]) -> None:
        rng, ds = self.rng, self.ds
        for esim in pool:
            status, roll = esim.esim_status, rng.random()
            volume = esim.total_volume or 0
            if status == "IN_USE":
                if roll < 0.04:
                    esim.esim_status, esim.order_usage = "USED_UP", volume
                elif roll < 0.06:
                    esim.esim_status, esim.smdp_status = "USED_EXPIRED", "DISABLED"
                elif roll < 0.07:
                    esim.esim_status, esim.smdp_status = "SUSPENDED", "DISABLED"
                elif roll < 0.37 and esim.order_usage is not None and esim.order_usage < volume:
                    esim.order_usage = min(
                        volume,
                        esim.order_usage
                        + int((volume - esim.order_usage) * rng.uniform(0.02, 0.3))
                        + 1,
                    )
            elif status == "SUSPENDED" and roll < 0.2:
                esim.esim_status, esim.smdp_status = "IN_USE", "ENABLED"
            elif status == "GOT_RESOURCE":
                if roll < 0.1:
                    esim.esim_status, esim.smdp_status = "IN_USE", "ENABLED"
                    esim.order_usage = (esim.order_usage or 0) + int(volume * rng.uniform(0.0, 0.1))
                elif roll < 0.12:
                    esim.esim_status = "UNUSED_EXPIRED"
            elif status == "USED_UP" and roll < 0.1 and esim.total_volume is not None:
                esim.esim_status, esim.smdp_status = "IN_USE", "ENABLED"  # a top-up revives it
                esim.total_volume += esim.package.volume
                esim.total_duration = (esim.total_duration or 0) + esim.package.duration
            elif status in ("PAID", "GETTING_RESOURCE") and roll < 0.6:
                esim.esim_status = "GOT_RESOURCE"
                self._allocate(esim)
                ds.esimtrade_by_iccid.setdefault(esim.iccid or "", []).insert(0, esim)

    def _allocate(self, esim: EsimTradeEsim) -> None:
        rng = self.rng
        payload = "8948019999" + str(esim.uid).zfill(8)  # an issuer range the generator never uses
        esim.iccid = payload + luhn_digit(payload)
        esim.imsi = "2600109" + str(rng.randrange(10**7, 10**8))
        esim.total_volume = esim.package.volume
        esim.total_duration = esim.package.duration
        esim.order_usage = 0
        esim.smdp_status = "RELEASED"
        esim.esim_tran_no = esim.esim_tran_no or esim.order_no[1:]
        esim.omit_when_null = False

    def pressone_life(self, pool: list[PressOneSim]) -> None:
        rng, usage = self.rng, self.ds.pressone_usage
        for sim in pool:
            order = self.order_of[sim.uid]
            if order.status != "completed":
                continue
            record, roll = usage.get(sim.iccid), rng.random()
            if record is None:
                if roll < 0.1:
                    usage[sim.iccid] = PressOneUsage(
                        order.package.total_mb,
                        order.package.total_mb,
                        "NOT_ACTIVE",
                        order.package.unlimited,
                        None,
                    )
                continue
            if record.status == "ACTIVE":
                used_room = record.remaining_mb
                if roll < 0.04:
                    record.status = "FINISHED"
                    record.remaining_mb = 0 if not record.unlimited else record.remaining_mb
                elif roll < 0.06:
                    record.status = "EXPIRED"
                elif roll < 0.36 and not record.unlimited and used_room > 0:
                    record.remaining_mb -= rng.randint(1, max(1, int(used_room * 0.3)))
            elif record.status == "NOT_ACTIVE" and roll < 0.1:
                record.status = "ACTIVE"
                record.expired_at = self.ds.now + timedelta(days=int(order.package.validity))
                if not record.unlimited and record.total_mb > 0:
                    record.remaining_mb = record.total_mb - rng.randint(
                        1, max(1, record.total_mb // 10)
                    )
            elif record.status == "FINISHED" and roll < 0.05:
                record.status = "EXPIRED"
