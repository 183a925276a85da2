"""The oracle's rules, checked on small hand-made cases (docs/reconciliation-rules.md)."""

from __future__ import annotations

import random
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.simulator.iccid import (
    IccidFactory,
    break_luhn,
    luhn_digit,
    luhn_ok,
    malformed_variants,
    shape_ok,
)
from pipelines.simulator.model import LocalRow
from pipelines.simulator.truth import (
    CANONICAL_STATES,
    ProviderEsim,
    decide,
    esimtrade_state,
    history_findings,
    local_state,
    pressone_state,
    transition_invalid,
)


def test_luhn():
    assert luhn_digit("7992739871") == "3"  # the textbook example
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    iccid = "894801000009539980" + luhn_digit("894801000009539980")
    assert luhn_ok(iccid) and not luhn_ok(break_luhn(iccid)) and shape_ok(break_luhn(iccid))


def test_iccid_factory_unique_and_valid():
    factory = IccidFactory(random.Random(1), [("8944465400", 19), ("89010030001", 20)])
    made = [factory.next() for _ in range(5000)]
    assert len(set(made)) == len(made)
    assert all(luhn_ok(i) and shape_ok(i) and len(i) in (19, 20) for i in made)


def test_shape():
    assert shape_ok("8944465400000267221")  # 19
    assert shape_ok("89440000000000000001")  # 20
    assert shape_ok("894400000000000000")  # 18 digits fit ^89\d{16,18}$
    assert not shape_ok("89440000000000000")  # 17
    assert not shape_ok("894400000000000000012")  # 21
    assert not shape_ok("9844465400000267221")
    for value, _ in malformed_variants("8944465400000267221"):
        assert not shape_ok(value)


def test_canonical_mapping():
    assert esimtrade_state("GETTING_RESOURCE") == "pending"
    assert esimtrade_state("got_resource") == "ready"
    assert esimtrade_state("REVOKE") == esimtrade_state("REVOKED") == "revoked"
    assert esimtrade_state("PENDING_REVIEW") == "unknown"
    assert pressone_state("failed", None) == "failed"
    assert pressone_state("refunded", "ACTIVE") == "cancelled"
    assert pressone_state("completed", None) == "ready"
    assert pressone_state("completed", "RECYCLED") == "expired"
    assert pressone_state("partially_refunded", None) == "unknown"
    assert pressone_state("partially_refunded", "FINISHED") == "depleted"
    assert local_state("  Active ") == "active" and local_state("in_use") == "unknown"


@pytest.mark.parametrize(
    ("before", "after", "invalid"),
    [
        ("pending", "ready", False),
        ("ready", "active", False),
        ("active", "depleted", False),
        ("depleted", "active", False),  # top-up
        ("depleted", "expired", False),
        ("active", "suspended", False),
        ("suspended", "active", False),
        ("active", "unknown", False),
        ("unknown", "pending", False),
        ("active", "ready", True),
        ("ready", "pending", True),
        ("cancelled", "active", True),
        ("expired", "ready", True),
        ("expired", "depleted", True),
        ("revoked", "cancelled", True),
        ("failed", "ready", True),
        ("depleted", "ready", True),
        ("suspended", "ready", False),
    ],
)
def test_transitions(before, after, invalid):
    assert transition_invalid(before, after) is invalid


def test_history_uses_the_most_recent_change():
    assert history_findings([("active", 5), ("ready", 5)]) == {"invalid_transition"}
    assert history_findings([("active", 5), ("ready", 5), ("ready", 5)]) == {"invalid_transition"}
    assert history_findings([("active", 5), ("ready", 5), ("active", 5)]) == set()
    assert history_findings([("active", 9), ("active", 4)]) == {"usage_regression"}
    assert history_findings([("active", 9), ("active", 4), ("active", 4)]) == {"usage_regression"}
    assert history_findings([("active", 9), ("active", 4), ("active", 6)]) == set()
    assert history_findings([("active", 9), ("active", None), ("active", 4)]) == {
        "usage_regression"
    }
    assert history_findings([("active", 9)]) == set()


@given(st.lists(st.sampled_from((*CANONICAL_STATES, "unknown")), min_size=1, max_size=6))
def test_history_only_judges_the_last_change(states):
    found = "invalid_transition" in history_findings([(s, None) for s in states])
    changes = [(a, b) for a, b in pairwise(states) if a != b]
    assert found == (bool(changes) and transition_invalid(*changes[-1]))


def _row(
    order_no, iccid="", status="active", package="P1", amount="1.00", line=1, provider="esimtrade"
):
    return LocalRow(
        provider, order_no, iccid, package, status, amount, "USD", "2026-01-01T00:00:00Z", line
    )


def _esim(
    order_no,
    uid,
    iccid=None,
    state="active",
    package="P1",
    amount="1.00",
    used=None,
    total=None,
    sync_failed=False,
    provider="esimtrade",
):
    return ProviderEsim(
        provider,
        order_no,
        uid,
        f"k{uid}",
        iccid,
        state,
        package,
        Decimal(amount),
        used,
        total,
        False,
        used is not None,
        sync_failed,
    )


def _kinds(findings):
    return sorted((f.order_no, f.iccid, f.discrepancy_type, f.severity) for f in findings)


def test_matching_by_iccid_then_in_order():
    locals_ = [
        _row("A", "8900000000000000002", line=1),
        _row("A", "", status="ready", line=2),
    ]
    esims = [
        _esim("A", 1, "8900000000000000001", state="ready"),
        _esim("A", 2, "8900000000000000002"),
    ]
    findings, key_iccid = decide(locals_, esims, {"esimtrade": {"A"}, "pressone": set()}, {})
    assert findings == []  # line 1 matches sim 2 by ICCID; line 2 pairs with sim 1
    assert key_iccid == {2: "8900000000000000002", 1: ""}


def test_leftovers_and_money_severity():
    locals_ = [
        _row("GONE", "8900000000000000009"),
        _row("B", "8900000000000000003", status="active"),
        _row("C", "8900000000000000004", status="revoked"),
    ]
    esims = [
        _esim("B", 1, "8900000000000000003", state="cancelled"),
        _esim("C", 2, "8900000000000000004", state="cancelled"),
        _esim("D", 3, None, state="failed"),
    ]
    findings, _ = decide(locals_, esims, {"esimtrade": {"B", "C", "D"}, "pressone": set()}, {})
    assert _kinds(findings) == [
        ("B", "8900000000000000003", "status_mismatch", "critical"),
        ("C", "8900000000000000004", "status_mismatch", "warning"),  # both sides money states
        ("D", "", "missing_locally", "critical"),
        ("GONE", "8900000000000000009", "missing_at_provider", "critical"),
    ]


def test_pair_findings_and_local_checks():
    locals_ = [
        _row("E", "8900000000000000011", package="P2", amount="1.005"),  # within 0.01
        _row(
            "F", "89000000000000000", amount="1.02"
        ),  # 17 digits: invalid shape, no iccid_mismatch
        _row("G", "8900000000000000013", amount="0.98"),
        _row("H", "8900000000000000013"),
    ]
    esims = [
        _esim("E", 1, "8900000000000000010"),
        _esim("F", 2, "8900000000000000012"),
        _esim("G", 3, None, used=11, total=10),
        _esim("H", 4, "8900000000000000013", sync_failed=True),
    ]
    findings, _ = decide(locals_, esims, {"esimtrade": set("EFGH"), "pressone": set()}, {})
    assert _kinds(findings) == [
        ("E", "8900000000000000011", "iccid_mismatch", "warning"),
        ("E", "8900000000000000011", "package_mismatch", "warning"),
        ("F", "89000000000000000", "amount_mismatch", "critical"),
        ("F", "89000000000000000", "invalid_iccid", "warning"),
        ("G", "8900000000000000013", "amount_mismatch", "critical"),
        ("G", "8900000000000000013", "duplicate_iccid", "warning"),
        ("G", "8900000000000000013", "usage_exceeds_volume", "warning"),
        ("H", "8900000000000000013", "duplicate_iccid", "warning"),
        ("H", "8900000000000000013", "sync_failed", "warning"),
    ]


def _money(findings):
    return sorted(
        (f.order_no, f.discrepancy_type, f.money_direction, str(f.amount_at_risk), f.currency)
        for f in findings
    )


def test_money_at_risk_of_every_rule():
    locals_ = [
        _row("R1", "8900000000000000021", status="cancelled", amount="2.3455"),
        _row("R2", "8900000000000000022", status="failed", amount="3.00"),
        _row("R3", "8900000000000000023", status="active", amount="5.5"),
        _row("R4", "8900000000000000024", status="cancelled", amount="1.00"),
        _row("R5", "8900000000000000025", amount="7.00"),
        _row("R6", "8900000000000000026", amount="-2.00"),
        _row("R7", "8900000000000000027", amount="4.00"),
        _row("R9", "8900000000000000029", package="P2"),
    ]
    esims = [
        _esim("R1", 1, "8900000000000000021", state="ready", amount="2.3455"),
        _esim("R2", 2, "8900000000000000022", state="suspended", amount="3.00"),
        _esim("R3", 3, "8900000000000000023", state="revoked", amount="5.50"),
        _esim("R4", 4, "8900000000000000024", state="failed"),
        _esim("R5", 5, "8900000000000000025", amount="6.25"),
        _esim("R7", 7, "8900000000000000027", amount="4.00", sync_failed=True),
        _esim("R8", 8, None, state="pending", amount="8.00"),
        _esim("R8", 9, None, state="active", amount="9.00", provider="pressone"),
        _esim("R9", 10, "8900000000000000029"),
    ]
    known = {"esimtrade": {"R1", "R2", "R3", "R4", "R5", "R7", "R8", "R9"}, "pressone": {"R8"}}
    findings, _ = decide(locals_, esims, known, {})
    assert _money(findings) == [
        ("R1", "status_mismatch", "recoverable", "2.35", "USD"),
        ("R2", "status_mismatch", "lost_cost", "3.00", "USD"),
        ("R3", "status_mismatch", "customer_exposure", "5.50", "USD"),
        ("R4", "status_mismatch", "none", "0.00", "USD"),
        ("R5", "amount_mismatch", "books_overstate", "0.75", "USD"),
        ("R6", "missing_at_provider", "customer_exposure", "0.00", "USD"),
        ("R7", "sync_failed", "unverified", "4.00", "USD"),
        ("R8", "missing_locally", "recoverable", "8.00", "USD"),
        ("R8", "missing_locally", "unrecorded_cost", "9.00", "USD"),
        ("R9", "package_mismatch", "none", "0.00", "USD"),
    ]


def test_money_of_a_finding_seen_on_several_rows_is_its_first_rows():
    # Two local rows without ICCID in one order, neither known to the provider: one finding,
    # described by the first local line; a sync failure with no amount anywhere is 0.
    locals_ = [_row("M", "", amount="3.00", line=4), _row("M", "", amount="5.00", line=2)]
    esims = [
        _esim("Q", 1, None, amount="1.00", sync_failed=True),
    ]
    esims[0].amount = None
    findings, _ = decide(locals_, esims, {"esimtrade": {"Q"}, "pressone": set()}, {})
    assert _money(findings) == [
        ("M", "missing_at_provider", "customer_exposure", "5.00", "USD"),
        ("Q", "missing_locally", "unrecorded_cost", "0.00", "USD"),
        ("Q", "sync_failed", "unverified", "0.00", "USD"),
    ]
