"""SIGKILL `esim-recon run` mid-way; the next run completes and its reports equal a clean run's.

The simulator answers slowly (latency) so that the kill lands inside an ingestion asset; the
trigger is the number of requests the simulator has seen for that asset's endpoint.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import query
from tests.reliability._support import (
    clean_run_reports,
    cli_env,
    reports,
    run_cli,
    start_cli,
)


@pytest.fixture(scope="module")
def world():
    return generate_dataset(seed=9, orders=60, drift_orders=2)


@pytest.fixture(scope="module")
def clean(world, tmp_path_factory):
    return clean_run_reports(world, tmp_path_factory, runs_apart=True)


def _kill_when(
    process: subprocess.Popen[str], seen: Callable[[], bool], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not seen():
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the kill: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the kill trigger never fired")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize(
    ("endpoint", "after", "killed_after_syncs"),
    [("esimtrade.sync", 8, False), ("pressone.usage", 8, True)],
)
def test_a_run_killed_mid_ingestion_is_completed_by_the_next(
    world, clean, tmp_path: Path, endpoint: str, after: int, killed_after_syncs: bool
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited(), latency_ms=150) as simulator:
        env = cli_env(simulator, tmp_path, local_orders=local)
        first = start_cli(["run"], tmp_path, env)
        _kill_when(first, lambda: simulator.stats.requests[endpoint] >= after)
        first.stdout.close()
        first.stderr.close()
        # The lock file stays behind; the lock itself went with the process.
        assert (tmp_path / "data" / "recon.duckdb.run-lock").exists()

        second = run_cli(["run"], tmp_path, env)
        assert second.returncode == 0, second.stderr[-3000:]

    db = tmp_path / "data" / "recon.duckdb"
    snapshot_runs = query(
        db,
        "SELECT count(DISTINCT run_id) FROM raw.esimtrade_order_syncs "
        "WHERE outcome = 'ok' AND order_usage IS NOT NULL",
    )
    # Killed during PressOne usage, eSIMTrade's usage snapshots of both runs are there.
    assert snapshot_runs == [(2 if killed_after_syncs else 1,)]
    # usage_daily included: the killed run's snapshots are ordinary observations, so usage is
    # not counted twice (only its `snapshots` column counts what both runs took).
    assert reports(db, runs_apart=True) == clean

    # The killed run is closed in Dagster and holds no pool slot.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        runs = instance.get_run_records()
        statuses = sorted(record.dagster_run.status.value for record in runs)
        assert statuses == ["FAILURE", "SUCCESS"]
        info = instance.event_log_storage.get_concurrency_info("duckdb")
        assert info.slot_count == 1
        assert info.claimed_slots == [] and info.pending_steps == []
