"""The Dagster definitions: they load and validate, the schedules ask for the right runs."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import RANGE_END_TAG, RANGE_START_TAG, range_tags
from pipelines.automation import daily_full_refresh_schedule, hourly_sync_schedule
from pipelines.definitions import defs

ROOT = Path(__file__).resolve().parents[2]
INCREMENTAL = {"resources": {"run_options": {"config": {"full_sync": False}}}}
LISTS = {dg.AssetKey("esimtrade_orders"), dg.AssetKey("pressone_orders")}


def test_definitions_validate_and_hold_both_jobs() -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    every_asset = set(graph.get_all_asset_keys())
    for name in ("hourly_sync", "daily_full_refresh"):
        job = defs.resolve_job_def(name)
        assert job.executor_def is dg.in_process_executor
        resolved = dg.validate_run_config(job, INCREMENTAL)
        assert resolved["resources"]["run_options"]["config"]["full_sync"] is False
        assert set(job.asset_layer.selected_asset_keys) == every_asset
        # Syncs are incremental in the jobs (esim-recon run stays a full sync).
        assert (
            job.run_config == {"resources": {"run_options": {"config": {"full_sync": False}}}}
            or job.config_mapping is None
        )
    for key in LISTS:
        node = graph.get(key)
        assert node.partitions_def is not None
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.freshness_policy is not None
    for key in every_asset - LISTS:
        assert graph.get(key).partitions_def is None


def test_every_report_asset_has_a_check() -> None:
    graph = defs.resolve_asset_graph()
    checked = {key.asset_key for key in graph.asset_check_keys}
    reports = {key for key in graph.get_all_asset_keys() if graph.get(key).group_name == "reports"}
    assert reports and reports <= checked


def test_hourly_schedule_asks_for_the_last_two_days() -> None:
    when = datetime(2026, 3, 4, 10, 5, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        request = hourly_sync_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert hourly_sync_schedule.job_name == "hourly_sync"
    assert request.tags[RANGE_START_TAG] == "2026-03-03"
    assert request.tags[RANGE_END_TAG] == "2026-03-04"
    assert request.run_key == "hourly:2026-03-04T10"
    # Syncs are incremental in the jobs (esim-recon run stays a full sync).
    assert request.run_config == INCREMENTAL


def test_daily_schedule_asks_for_an_unpartitioned_full_run() -> None:
    when = datetime(2026, 3, 4, 3, 15, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        request = daily_full_refresh_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert daily_full_refresh_schedule.job_name == "daily_full_refresh"
    assert RANGE_START_TAG not in request.tags and request.partition_key is None
    assert request.run_config == INCREMENTAL


def test_range_tags_refuse_days_outside_the_partitions() -> None:
    with pytest.raises(ValueError, match="not a list partition"):
        range_tags(datetime(2023, 12, 31, tzinfo=UTC).date(), datetime(2024, 1, 2).date())
    with pytest.raises(ValueError, match="starts after"):
        range_tags(datetime(2024, 1, 3).date(), datetime(2024, 1, 2).date())


@pytest.mark.slow
def test_dagster_cli_validates_the_project(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": os.environ["DAGSTER_HOME"]}
    dagster = Path(sys.executable).with_name("dagster")
    result = subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


def test_the_instance_config_queues_one_run_and_gives_duckdb_one_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    with dg.DagsterInstance.get() as instance:
        config = instance.get_concurrency_config()
        assert config.run_queue_config.max_concurrent_runs == 1
        assert config.pool_config.default_pool_limit == 1
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.freshness_enabled
    assert (tmp_path / "history" / "runs.db").exists()


@pytest.mark.parametrize("path", ["dagster.yaml", "deploy/dagster.postgres.yaml"])
def test_instance_files_match_the_dagster_instance_schema(path: str) -> None:
    import yaml
    from dagster._config import validate_config
    from dagster._config.field import Field
    from dagster._core.instance.config import (
        dagster_instance_config_schema,
        validate_concurrency_config,
    )

    document = yaml.safe_load((ROOT / path).read_text())
    result = validate_config(Field(dagster_instance_config_schema()).config_type, document)
    assert result.success, [error.message for error in result.errors or []]
    validate_concurrency_config(document)
    assert document["concurrency"]["pools"]["default_limit"] == 1
    assert document["concurrency"]["runs"]["max_concurrent_runs"] == 1
