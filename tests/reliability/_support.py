"""Shared pieces of the reliability tests: pipeline runs against the simulator, the reports
compared between runs, whole-database snapshots and `esim-recon` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.definitions import runnable
from pipelines.runner import RunOutcome, materialize_all
from pipelines.simulator import (
    Dataset,
    FaultConfig,
    RateLimits,
    RunningSimulator,
    SimulatorStats,
    serve,
)
from tests.pipeline.helpers import query, simulator_resources

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Columns that legitimately differ between two runs of the same world: when things happened.
VOLATILE = {
    "reconciliation": {"provider_last_synced_at", "provider_state_observed_at"},
    "discrepancies": {"detected_at"},
    "usage": {"last_synced_at"},
    "usage_daily": set(),
}


# After more than one run of the same world: usage_daily.snapshots counts every snapshot taken
# (the bytes must not change: growth over the highest seen before).
ACROSS_RUNS = {"usage_daily": {"snapshots"}}


def report_columns(
    con: duckdb.DuckDBPyConnection, name: str, skip: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    return [
        row[0]
        for row in con.execute(f"DESCRIBE reports.{name}").fetchall()
        if row[0] not in VOLATILE[name] | skip
    ]


def reports(
    db: Path, names: tuple[str, ...] = tuple(VOLATILE), *, runs_apart: bool = False
) -> dict[str, list[tuple]]:
    """The report relations without their time columns, rows sorted (`runs_apart`: also
    without the columns that count what several runs did).

    For sync_failed findings `provider_value` is the error the last attempt met, which depends
    on which fault that attempt drew; it is compared only for being there.
    """
    con = duckdb.connect(str(db), read_only=True)
    try:
        out: dict[str, list[tuple]] = {}
        for name in names:
            skip = ACROSS_RUNS.get(name, set()) if runs_apart else set()
            columns = report_columns(con, name, skip)
            select = ", ".join(
                "CASE WHEN discrepancy_type = 'sync_failed' THEN (provider_value <> '')::VARCHAR "
                "ELSE provider_value END::VARCHAR AS provider_value"
                if name == "discrepancies" and column == "provider_value"
                else f'"{column}"'
                for column in columns
            )
            out[name] = con.execute(f"SELECT {select} FROM reports.{name} ORDER BY ALL").fetchall()
        return out
    finally:
        con.close()


def db_contents(db: Path) -> dict[str, list[tuple]]:
    """Every table and view of every schema, rows sorted: the database's whole visible state."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_catalog = current_database() ORDER BY ALL"
        ).fetchall()
        return {
            f"{schema}.{table}": con.execute(
                f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL'
            ).fetchall()
            for schema, table in names
        }
    finally:
        con.close()


@contextmanager
def dagster_home(base: Path) -> Iterator[Path]:
    """A private DAGSTER_HOME for work done outside a test function (module fixtures)."""
    home = base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        (PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        yield home


@dataclass
class PipelineRun:
    db: Path
    outcome: RunOutcome
    stats: SimulatorStats


def run_pipeline(
    dataset: Dataset,
    folder: Path,
    *,
    faults: FaultConfig | None = None,
    check: bool = True,
    rate_limits: RateLimits | None = None,
    latency_ms: float = 0,
    **tuning: Any,
) -> PipelineRun:
    """One full in-process run of the real graph against a fresh simulator of `dataset`
    (without rate limits unless `rate_limits` are given)."""
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / "local_orders.csv"
    dataset.write_local_orders(local)
    db = folder / "recon.duckdb"
    limits = rate_limits if rate_limits is not None else RateLimits.unlimited()
    with serve(dataset, faults=faults, rate_limits=limits, latency_ms=latency_ms) as simulator:
        resources = simulator_resources(simulator, db, local, **tuning)
        outcome = materialize_all(runnable, resources, db_path=db)
        stats = simulator.stats
    if check:
        assert outcome.success, outcome.failures
        assert outcome.failed_checks == []
    return PipelineRun(db, outcome, stats)


def clean_run_reports(
    dataset: Dataset,
    tmp_path_factory: pytest.TempPathFactory,
    *,
    runs_apart: bool = False,
    **tuning: Any,
) -> dict:
    """The reports of one fault-free run of `dataset` (for a module fixture to compare with),
    in a folder and Dagster home of its own."""
    folder = tmp_path_factory.mktemp("clean")
    with dagster_home(folder):
        run = run_pipeline(dataset, folder, **tuning)
    return reports(run.db, runs_apart=runs_apart)


def cli_env(
    simulator: RunningSimulator, workdir: Path, *, local_orders: Path, **extra: str
) -> dict[str, str]:
    """The contract's environment for `esim-recon run` against `simulator`, fast retries."""
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ESIM", "PRESSONE", "DAGSTER_HOME"))
    }
    environment.update(simulator.env())
    environment.update(
        {
            "ESIM_RECON_LOCAL_ORDERS": str(local_orders),
            "ESIM_RECON_DB": str(workdir / "data" / "recon.duckdb"),
            "ESIM_RECON_EXPORT_DIR": str(workdir / "exports"),
            "DAGSTER_HOME": str(workdir / "dagster_home"),
            "ESIMTRADE_REQUESTS_PER_MINUTE": "600000",
            "ESIM_RECON_RETRY_INITIAL_WAIT": "0.02",
            "ESIM_RECON_RETRY_MAX_WAIT": "0.2",
            "ESIM_RECON_HTTP_TIMEOUT": "5",
            "NO_COLOR": "1",
        }
    )
    environment.update(extra)
    return environment


CLI = [sys.executable, "-m", "pipelines.cli"]


def start_cli(args: list[str], workdir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        CLI + args,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(
    args: list[str], workdir: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        CLI + args, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
    )


def count(db: Path, sql: str, params: list[Any] | None = None) -> int:
    [(value,)] = query(db, sql, params)
    return int(value)
