"""The whole graph against the simulator over loopback, checked against its planted truth."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import (
    finding_money,
    findings,
    money_mismatches,
    query,
    simulator_resources,
    truth_findings,
    truth_money,
)


@pytest.fixture
def world(tmp_path: Path):
    dataset = generate_dataset(seed=11, orders=300)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    return dataset, local, tmp_path / "recon.duckdb"


def _run(simulator, db: Path, local: Path, **options) -> None:
    outcome = materialize_all(
        runnable, simulator_resources(simulator, db, local, **options), db_path=db
    )
    assert outcome.success, outcome.failures
    assert outcome.failed_checks == []


def test_raw_layer_matches_the_simulated_providers(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local)
    counts = dataset.ground_truth()["counts"]
    [(esimtrade_orders,)] = query(
        db, "SELECT count(DISTINCT provider_order_no) FROM raw.esimtrade_orders"
    )
    assert esimtrade_orders == counts["esimtrade_list_orders"]
    [(pressone_orders,)] = query(db, "SELECT count(DISTINCT order_id) FROM raw.pressone_orders")
    assert pressone_orders == counts["pressone_orders"]
    [(local_rows,)] = query(db, "SELECT count(*) FROM raw.local_orders")
    assert local_rows == counts["local_rows"]
    [(statuses,)] = query(
        db,
        "SELECT count(*) FROM raw.ingest_log WHERE status = 'complete' AND asset IN "
        "('local_orders', 'esimtrade_orders', 'esimtrade_order_syncs', 'pressone_orders', "
        "'pressone_usage')",
    )
    assert statuses == 5


def test_findings_equal_the_planted_truth_across_two_runs(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local)
        first_truth = dataset.ground_truth()
        assert findings(db) == truth_findings(first_truth)
        # Every finding's amount, currency and direction as the oracle computes them.
        money, expected_money = finding_money(db), truth_money(first_truth)
        assert money == expected_money, money_mismatches(money, expected_money)

        dataset.advance()
        _run(simulator, db, local)
        second_truth = dataset.ground_truth()
        found = findings(db)
        expected = truth_findings(second_truth)
        assert found == expected, {
            "missed": sorted(expected - found)[:10],
            "extra": sorted(found - expected)[:10],
        }
        money, expected_money = finding_money(db), truth_money(second_truth)
        assert money == expected_money, money_mismatches(money, expected_money)
        # This world moves money in six of the directions (recoverable ones are in the demo's).
        directions = {direction for *_, direction in money.values()}
        assert directions >= {
            "customer_exposure",
            "unrecorded_cost",
            "lost_cost",
            "overcharge",
            "books_overstate",
            "unverified",
        }
        kinds = Counter(kind for *_, kind in found)
        assert kinds["usage_regression"] >= 3 and kinds["invalid_transition"] >= 3

        # Nothing changes upstream: the same findings, each still one row with its first
        # detected_at.
        stable = (
            "SELECT provider, order_no, iccid, discrepancy_type, severity, detected_at "
            "FROM reports.discrepancies ORDER BY ALL"
        )
        before = query(db, stable)
        _run(simulator, db, local)
        assert query(db, stable) == before


def test_usage_bytes_are_exact_for_every_esim(world) -> None:
    dataset, local, db = world
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        _run(simulator, db, local)
    expected = {
        (item["provider"], item["order_no"], item["iccid"]): (
            item["total_bytes"],
            item["used_bytes"],
        )
        for item in dataset.ground_truth()["usage"]
    }
    rows = query(db, "SELECT provider, order_no, iccid, total_bytes, used_bytes FROM reports.usage")
    actual = {(p, o, i): (t, u) for p, o, i, t, u in rows}
    assert actual == expected
