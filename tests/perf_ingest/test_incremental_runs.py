"""Incremental syncing end to end: the real ingestion assets against the simulator, twice or
more, on one DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.raw import _plan, esimtrade_order_syncs, esimtrade_orders, local_orders
from pipelines.resources import RunOptionsResource
from pipelines.simulator import Dataset, RateLimits, generate_dataset, serve
from pipelines.simulator.truth import TERMINAL_STATES, esimtrade_state
from tests.pipeline.helpers import query, simulator_resources

ASSETS = [local_orders, esimtrade_orders, esimtrade_order_syncs]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(seed=11, orders=240, esimtrade_terminal_share=0.9)


def _run(resources: dict[str, Any]) -> str:
    result = dg.materialize(ASSETS, resources=resources)
    assert result.success
    return result.run_id


def _synced(db: Path, run_id: str) -> list[str]:
    rows = query(
        db,
        "SELECT requested_order_no FROM raw.esimtrade_order_syncs WHERE run_id = ? "
        "GROUP BY requested_order_no ORDER BY min(fetched_at)",
        [run_id],
    )
    return [row[0] for row in rows]


def _sync_log(db: Path, run_id: str) -> tuple[str, int]:
    (row,) = query(
        db,
        "SELECT status, requests FROM raw.ingest_log WHERE run_id = ? "
        "AND asset = 'esimtrade_order_syncs'",
        [run_id],
    )
    return row[0], row[1]


def test_a_rerun_syncs_only_what_is_not_terminal(dataset: Dataset, tmp_path: Path) -> None:
    local = dataset.write_local_orders(tmp_path / "local.csv")
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        resources = simulator_resources(sim, db, local, full_sync=False)
        first = set(_synced(db, _run(resources)))
        second = set(_synced(db, _run(resources)))
    settled = {
        esim.order_no
        for esim in dataset.esimtrade
        if esimtrade_state(esim.esim_status) in TERMINAL_STATES and not esim.poisoned
    }
    assert settled and settled <= first
    assert second == first - settled
    # Most of this dataset is terminal: the re-run asks for a small share of the first.
    assert len(second) < 0.25 * len(first)


def test_default_full_sync_syncs_everything_again(dataset: Dataset, tmp_path: Path) -> None:
    local = dataset.write_local_orders(tmp_path / "local.csv")
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        resources = simulator_resources(sim, db, local)
        first = _synced(db, _run(resources))
        second = _synced(db, _run(resources))
    assert set(second) == set(first)


def test_a_request_budget_stops_and_the_next_run_continues(
    dataset: Dataset, tmp_path: Path
) -> None:
    local = dataset.write_local_orders(tmp_path / "local.csv")
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as sim:
        resources = simulator_resources(sim, db, local, full_sync=False)
        resources["run_options"] = RunOptionsResource(full_sync=False, sync_budget=50)
        runs = [_run(resources) for _ in range(2)]
        resources["run_options"] = RunOptionsResource(full_sync=False)
        plan_before_last = _plan(resources["warehouse"], "esimtrade_sync_plan", full=False)
        runs.append(_run(resources))
    first, second, third = (_synced(db, run_id) for run_id in runs)
    assert len(first) == len(second) == 50
    assert not set(first) & set(second)  # the second run went on where the first stopped
    assert [_sync_log(db, run_id)[0] for run_id in runs] == ["partial", "partial", "complete"]
    never_synced = set(plan_before_last.filter(plan_before_last["priority"] == 0)["order_no"])
    assert never_synced and never_synced <= set(third)
    assert not never_synced & (set(first) | set(second))


def test_a_time_budget_stops_gracefully_and_leaves_the_rest_first_in_line(
    dataset: Dataset, tmp_path: Path
) -> None:
    local = dataset.write_local_orders(tmp_path / "local.csv")
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited(), latency_ms=100) as sim:
        resources = simulator_resources(sim, db, local, full_sync=False, max_concurrency=2)
        resources["run_options"] = RunOptionsResource(full_sync=False, sync_seconds=1.0)
        run_id = _run(resources)
    synced = set(_synced(db, run_id))
    candidates = {esim.order_no for esim in dataset.esimtrade} | {
        row[0]
        for row in query(db, "SELECT order_no FROM raw.local_orders WHERE provider = 'esimtrade'")
    }
    status, requests = _sync_log(db, run_id)
    assert status == "partial" and requests == len(synced) < len(candidates)
    # Every sync that started was finished normally: only the planted always-failing syncs
    # may have failed, none was cut short by the budget.
    failed = {
        row[0]
        for row in query(
            db,
            "SELECT requested_order_no FROM raw.esimtrade_order_syncs "
            "WHERE run_id = ? AND outcome = 'failed'",
            [run_id],
        )
    }
    assert failed <= {esim.order_no for esim in dataset.esimtrade if esim.poisoned}
    # What this run did not reach comes first in the next run's plan.
    plan = _plan(resources["warehouse"], "esimtrade_sync_plan", full=False)
    untouched = candidates - synced
    assert set(plan.head(len(untouched))["order_no"]) == untouched
