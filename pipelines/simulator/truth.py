"""Ground truth: docs/reconciliation-rules.md applied to the simulated world, in plain Python.

This module is the simulator's independent oracle. It reads the world the way a complete pipeline
run would see it (every eSIMTrade order synced, every PressOne sim's usage fetched, every list
fully loaded) and decides the findings rule by rule, with each finding's money at risk (the
contract's "Money at risk" table, written out here as plain conditions). It deliberately shares
no code with the provider clients or the SQL models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pipelines.simulator.iccid import shape_ok
from pipelines.simulator.model import LocalRow

if TYPE_CHECKING:
    from pipelines.simulator.dataset import Dataset

CANONICAL_STATES = (
    "pending",
    "ready",
    "active",
    "depleted",
    "expired",
    "cancelled",
    "revoked",
    "suspended",
    "failed",
)
DISCREPANCY_TYPES = (
    "missing_at_provider",
    "missing_locally",
    "status_mismatch",
    "iccid_mismatch",
    "package_mismatch",
    "amount_mismatch",
    "usage_exceeds_volume",
    "duplicate_iccid",
    "invalid_iccid",
    "sync_failed",
    "invalid_transition",
    "usage_regression",
)
SEVERITY_ORDER = {"warning": 0, "critical": 1}
MONEY_STATES = frozenset({"cancelled", "revoked", "failed"})
TERMINAL_STATES = frozenset({"depleted", "expired", "cancelled", "revoked", "failed"})
MAIN_LINE_RANK = {"pending": 0, "ready": 1, "active": 2, "depleted": 3, "expired": 3}

_ESIMTRADE_STATES = {
    "CREATE": "pending",
    "PAYING": "pending",
    "PAID": "pending",
    "GETTING_RESOURCE": "pending",
    "GOT_RESOURCE": "ready",
    "IN_USE": "active",
    "USED_UP": "depleted",
    "USED_EXPIRED": "expired",
    "UNUSED_EXPIRED": "expired",
    "CANCEL": "cancelled",
    "SUSPENDED": "suspended",
    "REVOKED": "revoked",
    "REVOKE": "revoked",
}
_PRESSONE_USAGE_STATES = {
    "NOT_ACTIVE": "ready",
    "ACTIVE": "active",
    "FINISHED": "depleted",
    "EXPIRED": "expired",
    "RECYCLED": "expired",
    "UNKNOWN": "unknown",
}


def esimtrade_state(status: str | None) -> str:
    if status is None:
        return "unknown"
    return _ESIMTRADE_STATES.get(status.upper(), "unknown")


def pressone_state(order_status: str, usage_status: str | None) -> str:
    if order_status == "failed":
        return "failed"
    if order_status == "refunded":
        return "cancelled"
    if order_status == "completed":
        return (
            "ready" if usage_status is None else _PRESSONE_USAGE_STATES.get(usage_status, "unknown")
        )
    if order_status == "partially_refunded" and usage_status is not None:
        return _PRESSONE_USAGE_STATES.get(usage_status, "unknown")
    return "unknown"


def local_state(raw: str) -> str:
    """The local status through the default mapping (canonical names map to themselves)."""
    value = raw.strip().lower()
    return value if value in CANONICAL_STATES else "unknown"


def transition_invalid(previous: str, current: str) -> bool:
    if previous == current or "unknown" in (previous, current):
        return False
    if {previous, current} == {"active", "suspended"}:
        return False
    if previous in TERMINAL_STATES:
        return not (previous == "depleted" and current in ("active", "expired"))
    if previous in MAIN_LINE_RANK and current in MAIN_LINE_RANK:
        return MAIN_LINE_RANK[current] < MAIN_LINE_RANK[previous]
    return False


@dataclass(slots=True)
class ProviderEsim:
    """One provider eSIM as a complete pipeline run sees it."""

    provider: str
    order_no: str
    uid: int
    key: str  # eSIMTrade esimTranNo (else order number); PressOne sim id (else order id)
    iccid: str | None
    state: str
    package_code: str | None
    amount: Decimal | None
    used: int | None
    total: int | None
    unlimited: bool
    usage_observed: bool  # a successful usage observation exists
    sync_failed: bool


def observe(dataset: Dataset) -> list[ProviderEsim]:
    """The provider eSIM rows of section 1 of the rules, for the world as it is now."""
    rows: list[ProviderEsim] = []
    for esim in dataset.esimtrade:
        # Without a successful sync: one order-level row from the stored list.
        synced = not esim.poisoned
        observed = synced and esim.total_volume is not None and esim.order_usage is not None
        rows.append(
            ProviderEsim(
                provider="esimtrade",
                order_no=esim.order_no,
                uid=esim.uid,
                key=(esim.esim_tran_no or esim.order_no) if synced else esim.order_no,
                iccid=esim.iccid if synced else None,
                state=esimtrade_state(esim.esim_status if synced else esim.stored_status),
                package_code=esim.package.code,
                amount=esim.package.cost,
                used=esim.order_usage if observed else None,
                total=esim.total_volume if observed else None,
                unlimited=False,
                usage_observed=observed,
                sync_failed=not synced,
            )
        )
    for order in dataset.pressone:
        if order.type != "sim":
            continue
        # An order without sims (a failed one) is one order-level row.
        for sim in order.sims or [None]:
            usage = dataset.pressone_usage.get(sim.iccid) if sim else None
            seen = usage if usage is not None and not usage.poisoned else None
            rows.append(
                ProviderEsim(
                    provider="pressone",
                    order_no=order.code,
                    uid=sim.uid if sim else order.uid,
                    key=f"sim-{sim.id}" if sim else f"order-{order.id}",
                    iccid=sim.iccid if sim else None,
                    state=pressone_state(order.status, seen.status if seen else None),
                    package_code=order.package.package_id,
                    amount=order.price,
                    used=seen.used_bytes if seen else None,
                    total=seen.total_bytes if seen else None,
                    unlimited=bool(seen and seen.unlimited and seen.status != "RECYCLED"),
                    usage_observed=seen is not None,
                    sync_failed=usage is not None and usage.poisoned,
                )
            )
    return rows


@dataclass(slots=True)
class _Match:
    local: LocalRow | None
    esim: ProviderEsim | None


def match_rows(local_rows: Sequence[LocalRow], esims: Sequence[ProviderEsim]) -> list[_Match]:
    """Section 2 of the rules, for the rows of one provider."""
    local_by_order: dict[str, list[LocalRow]] = defaultdict(list)
    esims_by_order: dict[str, list[ProviderEsim]] = defaultdict(list)
    for row in local_rows:
        local_by_order[row.order_no].append(row)
    for esim in esims:
        esims_by_order[esim.order_no].append(esim)
    matches: list[_Match] = []
    for order_no in sorted(set(local_by_order) | set(esims_by_order)):
        locals_left = sorted(local_by_order.get(order_no, ()), key=lambda r: r.line)
        esims_left = sorted(esims_by_order.get(order_no, ()), key=lambda e: e.key)
        # 1. same order number and the same non-empty ICCID
        unpaired_locals = []
        for row in locals_left:
            partner = None
            if row.iccid:
                partner = next((e for e in esims_left if e.iccid == row.iccid), None)
            if partner is None:
                unpaired_locals.append(row)
            else:
                esims_left.remove(partner)
                matches.append(_Match(row, partner))
        # 2. the rest of the order paired in order, ICCID nulls last
        unpaired_locals.sort(key=lambda r: (not r.iccid, r.iccid, r.line))
        esims_left.sort(key=lambda e: (e.iccid is None, e.iccid or "", e.key))
        for row, esim in zip(unpaired_locals, esims_left, strict=False):
            matches.append(_Match(row, esim))
        # 3. leftovers
        paired = min(len(unpaired_locals), len(esims_left))
        matches.extend(_Match(row, None) for row in unpaired_locals[paired:])
        matches.extend(_Match(None, esim) for esim in esims_left[paired:])
    return matches


def _amount(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


UNUSED_STATES = frozenset({"pending", "ready"})
USED_STATES = frozenset({"active", "suspended", "depleted", "expired"})
CENT = Decimal("0.01")
NO_MONEY = (Decimal("0.00"), "USD", "none")


def _cents(value: Decimal | None) -> Decimal:
    """2 places, half up, never negative; a missing amount is 0."""
    if value is None or value < 0:
        return Decimal("0.00")
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money_at_risk(
    kind: str,
    local: LocalRow | None,
    esim: ProviderEsim | None,
) -> tuple[Decimal, str, str]:
    """(amount_at_risk, currency, money_direction) of a finding seen on this local row and/or
    provider eSIM: the contract's "Money at risk" table, one eSIM's amounts."""
    local_amount = _amount(local.amount) if local is not None else None
    local_currency = (local.currency.strip().upper() or "USD") if local is not None else "USD"
    provider_amount = esim.amount if esim is not None else None
    mine = local_state(local.status) if local is not None else None
    theirs = esim.state if esim is not None else None
    if kind == "missing_locally":
        direction = "recoverable" if theirs in UNUSED_STATES else "unrecorded_cost"
        return _cents(provider_amount), "USD", direction
    if kind == "missing_at_provider":
        return _cents(local_amount), local_currency, "customer_exposure"
    if kind == "status_mismatch":
        if mine in MONEY_STATES and theirs in UNUSED_STATES:
            return _cents(provider_amount), "USD", "recoverable"
        if mine in MONEY_STATES and theirs in USED_STATES:
            return _cents(provider_amount), "USD", "lost_cost"
        if theirs in MONEY_STATES and mine not in MONEY_STATES:
            return _cents(local_amount), local_currency, "customer_exposure"
        return NO_MONEY
    if kind == "amount_mismatch" and local_amount is not None and provider_amount is not None:
        if provider_amount > local_amount:
            return _cents(provider_amount - local_amount), "USD", "overcharge"
        if provider_amount < local_amount:
            return _cents(local_amount - provider_amount), "USD", "books_overstate"
    if kind == "sync_failed":
        if provider_amount is not None:
            return _cents(provider_amount), "USD", "unverified"
        if local_amount is not None:
            return _cents(local_amount), local_currency, "unverified"
        return Decimal("0.00"), "USD", "unverified"
    return NO_MONEY


@dataclass(frozen=True, slots=True)
class Finding:
    provider: str
    order_no: str
    iccid: str
    discrepancy_type: str
    severity: str
    amount_at_risk: Decimal = Decimal("0.00")
    currency: str = "USD"
    money_direction: str = "none"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.provider, self.order_no, self.iccid, self.discrepancy_type)


def history_findings(observations: Sequence[tuple[str, int | None]]) -> set[str]:
    """invalid_transition / usage_regression for one eSIM's per-run observations, oldest first."""
    found = set()
    states = [state for state, _ in observations]
    for i in range(len(states) - 1, 0, -1):
        if states[i] != states[i - 1]:
            if transition_invalid(states[i - 1], states[i]):
                found.add("invalid_transition")
            break
    used = [value for _, value in observations if value is not None]
    for i in range(len(used) - 1, 0, -1):
        if used[i] != used[i - 1]:
            if used[i] < used[i - 1]:
                found.add("usage_regression")
            break
    return found


def decide(
    local_rows: Sequence[LocalRow],
    esims: Sequence[ProviderEsim],
    known_orders: dict[str, set[str]],
    history: dict[int, list[tuple[str, int | None]]],
) -> tuple[list[Finding], dict[int, str]]:
    """All findings, and for each provider eSIM the ICCID its findings are keyed by."""
    found: dict[tuple[str, str, str, str], Finding] = {}
    # A finding seen on several rows is described by one: critical first, then the lowest local
    # line, then the lowest eSIM key (missing ones last); its money is that row's.
    described_by: dict[tuple[str, str, str, str], tuple[int, int, int, int, str]] = {}

    def add(
        provider: str,
        order_no: str,
        iccid: str,
        kind: str,
        severity: str = "warning",
        *,
        row: LocalRow | None = None,
        esim: ProviderEsim | None = None,
    ) -> None:
        amount, currency, direction = money_at_risk(kind, row, esim)
        finding = Finding(provider, order_no, iccid, kind, severity, amount, currency, direction)
        rank = (
            -SEVERITY_ORDER[severity],
            0 if row is not None else 1,
            row.line if row is not None else 0,
            0 if esim is not None else 1,
            esim.key if esim is not None else "",
        )
        old = found.get(finding.key)
        if old is None or rank < described_by[finding.key]:
            found[finding.key] = finding
            described_by[finding.key] = rank

    finding_iccid: dict[int, str] = {}
    for provider in ("esimtrade", "pressone"):
        provider_locals = [row for row in local_rows if row.provider == provider]
        provider_esims = [esim for esim in esims if esim.provider == provider]
        for match in match_rows(provider_locals, provider_esims):
            row, esim = match.local, match.esim
            if esim is None:
                assert row is not None
                if row.order_no not in known_orders[provider]:
                    add(
                        provider,
                        row.order_no,
                        row.iccid,
                        "missing_at_provider",
                        "critical",
                        row=row,
                    )
                continue
            # The finding key's ICCID: the local row's where there is one, else the provider's.
            key_iccid = row.iccid if row is not None else (esim.iccid or "")
            finding_iccid[esim.uid] = key_iccid
            if row is None:
                add(provider, esim.order_no, key_iccid, "missing_locally", "critical", esim=esim)
            else:
                mine = local_state(row.status)
                if mine != esim.state:
                    money = (mine in MONEY_STATES) != (esim.state in MONEY_STATES)
                    add(
                        provider,
                        row.order_no,
                        key_iccid,
                        "status_mismatch",
                        "critical" if money else "warning",
                        row=row,
                        esim=esim,
                    )
                if row.iccid and esim.iccid and row.iccid != esim.iccid and shape_ok(row.iccid):
                    add(provider, row.order_no, key_iccid, "iccid_mismatch", row=row, esim=esim)
                if row.package_code and esim.package_code and row.package_code != esim.package_code:
                    add(provider, row.order_no, key_iccid, "package_mismatch", row=row, esim=esim)
                amount = _amount(row.amount)
                if (
                    amount is not None
                    and esim.amount is not None
                    and abs(amount - esim.amount) > Decimal("0.01")
                ):
                    add(
                        provider,
                        row.order_no,
                        key_iccid,
                        "amount_mismatch",
                        "critical",
                        row=row,
                        esim=esim,
                    )
            if (
                esim.usage_observed
                and not esim.unlimited
                and esim.used is not None
                and esim.total is not None
                and esim.used > esim.total
            ):
                add(provider, esim.order_no, key_iccid, "usage_exceeds_volume", row=row, esim=esim)
            if esim.sync_failed:
                add(provider, esim.order_no, key_iccid, "sync_failed", row=row, esim=esim)
            for kind in sorted(history_findings(history.get(esim.uid, ()))):
                add(provider, esim.order_no, key_iccid, kind, row=row, esim=esim)

    iccid_count: dict[str, int] = defaultdict(int)
    for row in local_rows:
        if row.iccid:
            iccid_count[row.iccid] += 1
    for row in local_rows:
        if row.iccid and iccid_count[row.iccid] > 1:
            add(row.provider, row.order_no, row.iccid, "duplicate_iccid", row=row)
        if row.iccid and not shape_ok(row.iccid):
            add(row.provider, row.order_no, row.iccid, "invalid_iccid", row=row)
    return sorted(found.values(), key=lambda f: f.key), finding_iccid


def money_totals(findings: Iterable[Finding]) -> dict[str, dict[str, Any]]:
    """Per money_direction: how many findings and their amount (USD and any other currency)."""
    totals: dict[str, dict[str, Any]] = {}
    for finding in findings:
        entry = totals.setdefault(finding.money_direction, {"findings": 0, "amount": {}})
        entry["findings"] += 1
        amounts = entry["amount"]
        amounts[finding.currency] = amounts.get(finding.currency, Decimal("0.00")) + (
            finding.amount_at_risk
        )
    return {
        direction: {
            "findings": entry["findings"],
            "amount": {
                currency: f"{value:.2f}" for currency, value in sorted(entry["amount"].items())
            },
        }
        for direction, entry in sorted(totals.items())
    }


def usage_rows(esims: Iterable[ProviderEsim]) -> list[dict[str, Any]]:
    rows = []
    for esim in esims:
        if not esim.usage_observed:
            continue
        rows.append(
            {
                "provider": esim.provider,
                "order_no": esim.order_no,
                "iccid": esim.iccid or "",
                "package_code": esim.package_code,
                "state": esim.state,
                "total_bytes": esim.total,  # None when unlimited
                "used_bytes": esim.used,
                "unlimited": esim.unlimited,
            }
        )
    rows.sort(key=lambda r: (r["provider"], r["order_no"], r["iccid"]))
    return rows


def ground_truth(dataset: Dataset) -> dict[str, Any]:
    esims = observe(dataset)
    known = {
        "esimtrade": {esim.order_no for esim in dataset.esimtrade},
        "pressone": {order.code for order in dataset.pressone},
    }
    findings, finding_iccid = decide(dataset.local_rows, esims, known, dataset.history)
    keys = {finding.key for finding in findings}
    planted = []
    for plant in dataset.planted:
        if plant.local_row is not None:
            iccid = plant.local_row.iccid
        else:
            assert plant.esim_uid is not None
            iccid = finding_iccid.get(plant.esim_uid, "")
        key = (plant.provider, plant.order_no, iccid, plant.discrepancy_type)
        if key in keys:  # a later change of the world can undo a planted disagreement
            planted.append(
                {
                    "provider": plant.provider,
                    "order_no": plant.order_no,
                    "iccid": iccid,
                    "discrepancy_type": plant.discrepancy_type,
                    "how": plant.how,
                }
            )
    planted.sort(key=lambda p: (p["discrepancy_type"], p["provider"], p["order_no"], p["iccid"]))
    pressone_sim_orders = sum(1 for order in dataset.pressone if order.type == "sim")
    return {
        "seed": dataset.seed,
        "orders": dataset.orders,
        "epoch": dataset.epoch,
        "counts": {
            "esimtrade_list_orders": len(dataset.esimtrade),
            "esimtrade_esims": sum(1 for esim in esims if esim.provider == "esimtrade"),
            "pressone_orders": len(dataset.pressone),
            "pressone_sim_orders": pressone_sim_orders,
            "pressone_topup_orders": len(dataset.pressone) - pressone_sim_orders,
            "pressone_esims": sum(1 for esim in esims if esim.provider == "pressone"),
            "local_rows": len(dataset.local_rows),
        },
        "findings": [
            {
                "provider": f.provider,
                "order_no": f.order_no,
                "iccid": f.iccid,
                "discrepancy_type": f.discrepancy_type,
                "severity": f.severity,
                "amount_at_risk": f"{f.amount_at_risk:.2f}",
                "currency": f.currency,
                "money_direction": f.money_direction,
            }
            for f in findings
        ],
        "usage": usage_rows(esims),
        "money": money_totals(findings),
        "planted": planted,
        "decoys": list(dataset.decoys),
    }
