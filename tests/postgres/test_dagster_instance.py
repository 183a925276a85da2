"""deploy/dagster.postgres.yaml, as it is, against a real PostgreSQL server: an `esim-recon run`
and a sensor tick of the Dagster daemon are recorded in Postgres, `esim-recon status` reads the
run back from there, and the duckdb pool keeps its single slot."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import adbc_driver_postgresql.dbapi as adbc_postgres
import dagster as dg
import pytest

from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.postgres.conftest import admin_execute, with_database
from tests.reliability._support import cli_env, run_cli

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SENSOR = "critical_findings_webhook"


def _fetch(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with adbc_postgres.connect(url) as con, con.cursor() as cursor:
        cursor.execute(sql, params or None)
        return cursor.fetchall()


def _wait_for_tick(url: str, timeout: float) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # a tick is recorded STARTED and then updated once the sensor has been evaluated
        ticks = _fetch(url, "SELECT selector_id, status FROM job_ticks WHERE status <> 'STARTED'")
        if ticks:
            return ticks
        time.sleep(1)
    return []


def test_runs_and_sensor_ticks_are_recorded_in_postgres_and_read_back_by_status(
    pg_admin_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suffix = secrets.token_hex(4)
    name, user, password = f"dagster_{suffix}", f"dagster_{suffix}", secrets.token_hex(12)
    admin_execute(
        pg_admin_url,
        f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
        f"CREATE DATABASE {name} OWNER {user}",
    )
    storage_url = with_database(pg_admin_url, name, user, password)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "deploy" / "dagster.postgres.yaml", home / "dagster.yaml")
    server = urlsplit(pg_admin_url)
    instance_env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": str(server.hostname),
        "DAGSTER_PG_PORT": str(server.port),
        "DAGSTER_PG_DB": name,
        "DAGSTER_PG_USER": user,
        "DAGSTER_PG_PASSWORD": password,
    }
    daemon: subprocess.Popen[str] | None = None
    try:
        world = generate_dataset(seed=5, orders=60)
        local = tmp_path / "local_orders.csv"
        world.write_local_orders(local)
        workdir = tmp_path / "work"
        with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
            env = cli_env(simulator, workdir, local_orders=local) | instance_env
            result = run_cli(["run"], workdir, env)
            assert result.returncode == 0, result.stderr[-3000:]

        # The run is in Postgres, and nowhere else: no SQLite history beside the config.
        [(run_id, status)] = _fetch(storage_url, "SELECT run_id, status FROM runs")
        assert status == "SUCCESS"
        assert not (home / "history").exists()
        steps = _fetch(
            storage_url,
            "SELECT count(*) FROM event_logs WHERE run_id = $1"
            " AND dagster_event_type = 'STEP_SUCCESS'",
            (run_id,),
        )
        # Every step of the run: the ingestion assets, the one dbt build, the exports.
        assert steps[0][0] >= 5

        shown = run_cli(["status", "--json"], workdir, env)
        assert shown.returncode == 0, shown.stderr[-2000:]
        report = json.loads(shown.stdout)
        assert report["last_run"]["run_id"] == run_id
        assert report["last_run"]["status"] == "success"

        # The daemon evaluates the (running by default) sensor and records the tick there too.
        daemon = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-daemon")),
                "run",
                "-m",
                "pipelines.definitions",
            ],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        ticks = _wait_for_tick(storage_url, timeout=120)
        assert ticks, "no sensor tick recorded in Postgres"
        assert daemon.poll() is None

        for variable, value in instance_env.items():
            monkeypatch.setenv(variable, value)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [state] = [s for s in instance.all_instigator_state() if s.instigator_name == SENSOR]
            recorded = instance.get_ticks(state.instigator_origin_id, state.selector_id)
            assert recorded and recorded[0].status.value in {"SKIPPED", "SUCCESS"}
            # One writer: the run queue and the duckdb pool still allow one at a time.
            config = instance.get_concurrency_config()
            assert config.run_queue_config.max_concurrent_runs == 1
            assert config.pool_config.default_pool_limit == 1
            assert instance.event_log_storage.get_concurrency_info("duckdb").slot_count == 1
            assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
    finally:
        if daemon is not None and daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        admin_execute(
            pg_admin_url,
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            f"DROP ROLE IF EXISTS {user}",
        )
