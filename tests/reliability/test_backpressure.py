"""Backpressure is not failure: a provider that limits the client's rate far below what the
client would send, or fails 40 % of its requests, costs time and requests but never changes the
reports; a list page gets far more patience than a sync; a usage quota that outlasts the run's
time budget leaves the eSIMs for the next run with their last good state, not `sync_failed`.

Each run is compared with a fault-free, unlimited run of the same world (docs/faults.md gives
what each case costs over it, measured with `python -m bench.backpressure`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.definitions import runnable
from pipelines.resources import RunOptionsResource
from pipelines.runner import materialize_all
from pipelines.simulator import FaultConfig, FaultKind, RateLimits, generate_dataset, serve
from pipelines.simulator.faults import Limit
from tests.pipeline.helpers import FAST_RETRY, query, simulator_resources
from tests.reliability._support import clean_run_reports, count, reports, run_pipeline

SMALL = {"timeout_seconds": 0.5, "page_size": 10}

# Both providers answer 429 beyond 20 requests a second, 50 ms after each request; the clients
# are left at the tests' settings (eSIMTrade paced at 10,000 a second, PressOne unpaced).
LIMITED = RateLimits(
    esimtrade=Limit(20, 1.0),
    pressone=Limit(20, 1.0),
    pressone_usage_per_iccid=Limit(10, 60.0),
    pressone_token=Limit(5, 60.0),
)
LATENCY_MS = 50

# 40 % of all requests fail: 5xx, cut bodies, dropped connections and stalls, evenly.
FAILING_KINDS = (
    FaultKind.HTTP_500,
    FaultKind.HTTP_502,
    FaultKind.HTTP_503,
    FaultKind.HTTP_504,
    FaultKind.TRUNCATED_JSON,
    FaultKind.DISCONNECT,
    FaultKind.STALL,
)


def forty_percent_failing() -> FaultConfig:
    return FaultConfig(
        rates=dict.fromkeys(FAILING_KINDS, 0.4 / len(FAILING_KINDS)), stall_seconds=1.0
    )


def lists_failing_beyond_a_syncs_attempts() -> FaultConfig:
    """Every list page fails (503) two more times in a row than a sync may try."""
    return FaultConfig(
        rates={FaultKind.HTTP_503: 1.0},
        max_consecutive=FAST_RETRY["retry_attempts"] + 2,
        endpoints=frozenset({"esimtrade.list", "pressone.orders"}),
    )


@pytest.fixture(scope="module")
def world():
    return generate_dataset(seed=5, orders=40, drift_orders=4)


@pytest.fixture(scope="module")
def clean(world, tmp_path_factory):
    return clean_run_reports(world, tmp_path_factory, **SMALL)


def test_providers_limiting_far_below_the_client_give_the_clean_reports(
    world, clean, tmp_path: Path
) -> None:
    run = run_pipeline(world, tmp_path, rate_limits=LIMITED, latency_ms=LATENCY_MS, **SMALL)
    # Both providers did limit the clients...
    assert run.stats.rate_limited["esimtrade.sync"] + run.stats.rate_limited["esimtrade.list"]
    assert run.stats.rate_limited["pressone.usage"] + run.stats.rate_limited["pressone.orders"]
    # ...and no request gave up for it.
    assert reports(run.db) == clean


def test_forty_percent_failing_requests_give_the_clean_reports(
    world, clean, tmp_path: Path
) -> None:
    run = run_pipeline(world, tmp_path, faults=forty_percent_failing(), **SMALL)
    assert all(run.stats.faults[kind] for kind in FAILING_KINDS), run.stats.faults
    assert reports(run.db) == clean


def test_list_pages_failing_longer_than_a_sync_may_retry_still_load(
    world, clean, tmp_path: Path
) -> None:
    run = run_pipeline(world, tmp_path, faults=lists_failing_beyond_a_syncs_attempts(), **SMALL)
    # Every list page failed more often than a sync is allowed to, and still loaded.
    assert run.stats.faults[FaultKind.HTTP_503] >= 2 * (FAST_RETRY["retry_attempts"] + 2)
    assert run.outcome.lists_not_loaded == []
    assert reports(run.db) == clean


def test_a_usage_quota_beyond_the_time_budget_leaves_the_sims_for_the_next_run(
    world, tmp_path: Path
) -> None:
    """PressOne allows one usage request per sim per 15 minutes: a second run right after the
    first may ask none of them. They are left for the next run, as they were."""
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    limits = RateLimits(None, None, Limit(1, 900.0), None)
    with serve(world, rate_limits=limits) as simulator:
        resources = simulator_resources(simulator, db, local, **SMALL)
        resources["run_options"] = RunOptionsResource(sync_seconds=20.0)
        first = materialize_all(runnable, resources, db_path=db)
        assert first.success, first.failures
        before = reports(db, runs_apart=True)
        second = materialize_all(runnable, resources, db_path=db)
        limited = simulator.stats.rate_limited["pressone.usage"]
    assert second.success, second.failures
    usage_runs = dict(
        query(
            db,
            "SELECT run_id, count(*) FROM raw.pressone_usage GROUP BY run_id",
        )
    )
    assert second.run_id not in usage_runs  # no answer, so nothing recorded as failed
    planned = usage_runs[first.run_id]
    assert limited >= planned  # every sim was asked, and limited, in the second run
    [(status, detail)] = query(
        db,
        "SELECT status, detail FROM raw.ingest_log WHERE run_id = ? AND asset = 'pressone_usage'",
        [second.run_id],
    )
    assert status == "partial" and detail == "{}"
    # The sims keep their last good state: the reports are the first run's.
    assert reports(db, runs_apart=True) == before
    assert (
        count(
            db,
            "SELECT count(*) FROM reports.discrepancies WHERE discrepancy_type = 'sync_failed' "
            "AND provider = 'pressone'",
        )
        == 0
    )
