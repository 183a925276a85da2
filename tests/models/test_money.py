"""Money at risk (contract, "Money at risk"): one hand-made raw layer planting every rule of the
table, built once; each test reads what the reports say about its orders."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipelines.exports import write_exports

from .helpers import MB, T0, RawLayer, build, build_all, findings, list_row, local_row, query


def iccid(n: int) -> str:
    return f"8944{n:015d}"


E = "B2612040000{:04d}".format
P = "20261204-{:06d}".format

# eSIMTrade orders: (order_no, local row or None, list row or None, sync or None)
ESIMTRADE: list[tuple[str, dict | None, dict | None, dict | None]] = [
    # refunded locally, still unused at the provider: cancel it there (amount rounds half up)
    (
        E(1),
        {"status": "cancelled", "amount": "2.3455"},
        {"cost_price": "2.3455", "status": "got_resource"},
        {"esim_status": "GOT_RESOURCE"},
    ),
    # refunded locally, used at the provider
    (
        E(2),
        {"status": "revoked", "amount": "3.0000"},
        {"cost_price": "3.0000"},
        {"esim_status": "IN_USE"},
    ),
    # cancelled at the provider, the customer still holds it; amount in the local currency
    (
        E(3),
        {"amount": "5.5000", "currency": "EUR"},
        {"cost_price": "6.0000"},
        {"esim_status": "CANCEL"},
    ),
    # both sides money-side exits: a status_mismatch that moves no money
    (E(4), {"status": "cancelled"}, {}, {"esim_status": "REVOKE"}),
    # local amount above the charge; and below it
    (E(5), {"amount": "7.0000"}, {"cost_price": "6.2500"}, {}),
    (E(6), {"amount": "1.0000"}, {"cost_price": "1.4000"}, {}),
    # the provider does not know it; a negative local amount is no money at risk
    (E(7), {"amount": "-3.0000"}, None, {"outcome": "not_found", "http_status": 404}),
    (E(8), {"amount": "8.1250"}, None, {"outcome": "not_found", "http_status": 404}),
    # only the provider knows it: unused (recoverable) and in use (unrecorded)
    (E(9), None, {"status": "got_resource", "cost_price": "9.0000"}, None),
    (E(10), None, {"status": "in_use", "cost_price": "10.0000"}, None),
    # the sync failed: the charge from the stored list
    (E(11), {"amount": "11.0000"}, {"cost_price": "11.0000"}, {"outcome": "failed"}),
    # a sync failed for an order nobody knows: no amount at all
    (E(12), None, None, {"outcome": "failed"}),
    # a package mismatch moves no money
    (E(13), {"package_code": "PKX"}, {}, {}),
]

# PressOne: one order of two sims at 4.50 each; the local file has only the first.
PRESSONE_ORDER = P(1)


def _plant(raw: RawLayer) -> None:
    local_rows: list[dict] = []
    list_rows: list[dict] = []
    sync_rows: list[dict] = []
    for n, (order_no, local, listed, sync) in enumerate(ESIMTRADE, start=1):
        if local is not None:
            local_rows.append(local_row(order_no, iccid(n), **local))
        if listed is not None:
            list_rows.append(list_row(order_no, **{"cost_price": "1.0000", **listed}))
        if sync is not None:
            row = {"requested_order_no": order_no, **sync}
            if row.get("outcome", "ok") == "ok":
                row = {
                    "esim_tran_no": f"tran-{n}",
                    "iccid": iccid(n),
                    "esim_status": "IN_USE",
                    "total_volume": 500 * MB,
                    "order_usage": 100 * MB,
                    "package_code": "PK1",
                    **row,
                }
            else:
                row = {"error": "HTTP 503 after 5 tries", **row}
            sync_rows.append(row)
    local_rows.append(
        {
            "provider": "pressone",
            "order_no": PRESSONE_ORDER,
            "iccid": iccid(101),
            "package_code": "pk-1gb",
            "amount": "4.5000",
            "status": "ready",
        }
    )
    raw.local_orders(local_rows)
    raw.esimtrade_orders(list_rows)
    raw.esimtrade_syncs(sync_rows, run_id="sync-1", at=T0 + timedelta(minutes=1))
    raw.pressone_orders(
        [
            {
                "order_id": 1,
                "order_code": PRESSONE_ORDER,
                "package_id": "pk-1gb",
                "price": "4.5000",
                "quantity": 2,
                "sim_id": 10 + index,
                "sim_index": index,
                "iccid": iccid(101 + index),
            }
            for index in range(2)
        ]
    )
    raw.pressone_usage(
        [
            {
                "iccid": iccid(101 + index),
                "order_code": PRESSONE_ORDER,
                "usage_status": "NOT_ACTIVE",
                "total_mb": 1024.0,
                "remaining_mb": 1024.0,
            }
            for index in range(2)
        ],
        run_id="usage-1",
        at=T0 + timedelta(minutes=1),
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(str(tmp_path_factory.mktemp("money") / "warehouse.duckdb"))
    _plant(RawLayer(con))
    build_all(con, T0 + timedelta(minutes=2))
    yield con
    con.close()


def _money(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, Decimal, str]]:
    return {
        (f["order_no"], f["discrepancy_type"]): (
            f["money_direction"],
            f["amount_at_risk"],
            f["currency"],
        )
        for f in findings(con)
    }


def test_every_finding_gets_the_amount_and_direction_of_its_rule(scenario):
    money = _money(scenario)
    usd = "USD"
    assert money == {
        (E(1), "status_mismatch"): ("recoverable", Decimal("2.35"), usd),
        (E(2), "status_mismatch"): ("lost_cost", Decimal("3.00"), usd),
        (E(3), "status_mismatch"): ("customer_exposure", Decimal("5.50"), "EUR"),
        (E(3), "amount_mismatch"): ("overcharge", Decimal("0.50"), usd),
        (E(4), "status_mismatch"): ("none", Decimal("0.00"), usd),
        (E(5), "amount_mismatch"): ("books_overstate", Decimal("0.75"), usd),
        (E(6), "amount_mismatch"): ("overcharge", Decimal("0.40"), usd),
        (E(7), "missing_at_provider"): ("customer_exposure", Decimal("0.00"), usd),
        (E(8), "missing_at_provider"): ("customer_exposure", Decimal("8.13"), usd),
        (E(9), "missing_locally"): ("recoverable", Decimal("9.00"), usd),
        (E(10), "missing_locally"): ("unrecorded_cost", Decimal("10.00"), usd),
        (E(11), "sync_failed"): ("unverified", Decimal("11.00"), usd),
        (E(12), "sync_failed"): ("unverified", Decimal("0.00"), usd),
        (E(13), "package_mismatch"): ("none", Decimal("0.00"), usd),
        # a PressOne price is per eSIM: the unrecorded second sim costs one price, not two
        (PRESSONE_ORDER, "missing_locally"): ("recoverable", Decimal("4.50"), usd),
    }
    assert all(f["action"] for f in findings(scenario))
    [(scale,)] = scenario.execute(
        "select numeric_scale from information_schema.columns "
        "where table_schema = 'reports' and table_name = 'discrepancies' "
        "and column_name = 'amount_at_risk'"
    ).fetchall()
    assert scale == 2


def test_money_at_risk_sums_the_open_findings_per_provider_currency_and_direction(scenario):
    rows = {
        (r["provider"], r["currency"], r["money_direction"]): (r["findings"], r["amount"])
        for r in query(scenario, "select * from reports.money_at_risk")
    }
    assert rows == {
        ("esimtrade", "USD", "recoverable"): (2, Decimal("11.35")),
        ("esimtrade", "USD", "lost_cost"): (1, Decimal("3.00")),
        ("esimtrade", "EUR", "customer_exposure"): (1, Decimal("5.50")),
        ("esimtrade", "USD", "customer_exposure"): (2, Decimal("8.13")),
        ("esimtrade", "USD", "overcharge"): (2, Decimal("0.90")),
        ("esimtrade", "USD", "books_overstate"): (1, Decimal("0.75")),
        ("esimtrade", "USD", "unrecorded_cost"): (1, Decimal("10.00")),
        ("esimtrade", "USD", "unverified"): (2, Decimal("11.00")),
        ("esimtrade", "USD", "none"): (2, Decimal("0.00")),
        ("pressone", "USD", "recoverable"): (1, Decimal("4.50")),
    }


def test_the_history_carries_the_money_as_last_seen(scenario) -> None:
    [row] = query(
        scenario,
        "select money_direction, amount_at_risk "
        "from reports.discrepancy_history where order_no = ? and discrepancy_type = ?",
        [E(1), "status_mismatch"],
    )
    assert row["money_direction"] == "recoverable"
    assert row["amount_at_risk"] == Decimal("2.35")


def test_exports_list_the_largest_amount_first_and_a_finance_worklist(scenario, tmp_path: Path):
    written = write_exports(scenario, tmp_path)
    with written["discrepancies.csv"].open(newline="") as handle:
        amounts = [Decimal(r["amount_at_risk"]) for r in csv.DictReader(handle)]
    assert amounts == sorted(amounts, reverse=True) and amounts[0] == Decimal("11.00")
    with written["finance_actions.csv"].open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames is not None and reader.fieldnames[0] == "action"
        rows = list(reader)
    # every finding that moves money, none of the others; grouped by action
    assert len(rows) == 13
    assert {r["money_direction"] for r in rows} >= {"recoverable", "lost_cost", "unverified"}
    actions = [r["action"] for r in rows]
    assert actions == sorted(actions)
    [lost] = [r for r in rows if r["money_direction"] == "lost_cost"]
    worked = [lost[c] for c in ("order_no", "iccid", "provider", "amount", "currency")]
    assert worked == [E(2), iccid(2), "esimtrade", "3.00", "USD"]
    assert lost["first_detected_at"].endswith("Z")
    with written["money_at_risk.csv"].open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 10


def test_the_rules_are_data(scenario, tmp_path: Path) -> None:
    # A changed rule changes the money without touching SQL: lost eSIMs become "none".
    con = duckdb.connect(str(tmp_path / "copy.duckdb"))
    try:
        _plant(RawLayer(con))
        build_all(con, T0 + timedelta(minutes=2))
        con.execute(
            "update seeds.money_rules set money_direction = 'none', amount_source = 'zero' "
            "where money_direction = 'lost_cost'"
        )
        build(
            con,
            ["int_finding_money", "discrepancy_history", "discrepancies"],
            run_at=T0 + timedelta(minutes=3),
        )
        assert _money(con)[(E(2), "status_mismatch")] == ("none", Decimal("0.00"), "USD")
    finally:
        con.close()
