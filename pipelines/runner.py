"""Running the asset graph in-process, one run at a time, and summarising what it found.

Used by `esim-recon run`, `esim-recon demo` and the tests. The Dagster schedule runs the same
assets through the daemon instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from filelock import FileLock, Timeout

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCK_WAIT_SECONDS = 600.0


class RunError(RuntimeError):
    """A run could not start or did not finish; the message is one line for a person."""


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)


def ensure_dagster_home() -> Path:
    """Dagster needs an absolute DAGSTER_HOME to keep run history; default to ./.dagster_home."""
    configured = os.environ.get("DAGSTER_HOME")
    home = Path(configured).resolve() if configured else Path.cwd() / ".dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    instance_config = home / "dagster.yaml"
    project_config = PROJECT_ROOT / "dagster.yaml"
    if not instance_config.exists() and project_config.exists() and home != PROJECT_ROOT:
        shutil.copyfile(project_config, instance_config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def run_lock(db_path: Path) -> FileLock:
    """The CLI-level single-writer lock beside the DuckDB file."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(db_path) + ".run-lock")


def _lock_wait_seconds() -> float:
    raw = os.environ.get("ESIM_RECON_LOCK_WAIT")
    try:
        return float(raw) if raw else DEFAULT_LOCK_WAIT_SECONDS
    except ValueError:
        raise RunError(f"ESIM_RECON_LOCK_WAIT must be a number of seconds, not {raw!r}") from None


def _failure_reasons(result: dg.ExecuteInProcessResult) -> list[str]:
    reasons = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        step = event.step_key or "step"
        data = event.step_failure_data
        message = ""
        if data is not None and data.user_failure_data is not None:
            message = data.user_failure_data.description or ""
        if not message and data is not None and data.error is not None:
            cause = data.error.cause or data.error
            message = cause.message.strip().splitlines()[-1] if cause.message else ""
        reasons.append(f"{step}: {message or 'failed'}")
    return reasons


PID_TAG = "esim_recon/pid"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Close runs of this CLI whose process died (SIGKILL, power loss).

    A killed in-process run stays STARTED and keeps its pool slot, which would block every later
    run; holding the run lock, we know no other CLI run is alive, so its slots can be freed.
    """
    reaped = []
    records = instance.get_run_records(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING],
        ),
        limit=100,
    )
    for record in records:
        run = record.dagster_run
        pid_text = run.tags.get(PID_TAG)
        if not pid_text or not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        instance.report_run_failed(run, "the process running it ended without finishing")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def materialize_all(
    assets: list[Any],
    resources: Mapping[str, Any],
    *,
    db_path: Path,
    selection: str | None = None,
    lock_wait_seconds: float | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Materialize the graph (or `selection`) in this process, holding the run lock."""
    ensure_dagster_home()
    wait = _lock_wait_seconds() if lock_wait_seconds is None else lock_wait_seconds
    lock = run_lock(db_path)
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise RunError(
            f"another esim-recon run is writing {db_path} (waited {wait:.0f} s); "
            "try again when it has finished"
        ) from None
    try:
        with dg.DagsterInstance.get() as instance:
            reap_dead_runs(instance)
            try:
                result = dg.materialize(
                    assets,
                    resources=dict(resources),
                    instance=instance,
                    selection=selection,
                    raise_on_error=False,
                    tags={**dict(tags or {}), PID_TAG: str(os.getpid())},
                    run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                )
            except dg.DagsterInvalidSubsetError as exc:
                raise RunError(f"--select {selection!r} matches nothing usable: {exc}") from None
            except dg.DagsterInvariantViolationError as exc:
                raise RunError(f"--select {selection!r}: {exc}") from None
            materialized = sorted(
                event.asset_key.to_user_string()
                for event in result.get_asset_materialization_events()
                if event.asset_key is not None
            )
            failed_checks = sorted(
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                for evaluation in result.get_asset_check_evaluations()
                if not evaluation.passed
            )
            return RunOutcome(
                run_id=result.run_id,
                success=result.success,
                failures=_failure_reasons(result),
                materialized=materialized,
                failed_checks=failed_checks,
            )
    finally:
        lock.release()


def discrepancy_summary(db_path: Path) -> dict[str, Any]:
    """Counts per discrepancy type and severity from reports.discrepancies (read-only)."""
    if not db_path.exists():
        return {}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = {
            row[0]
            for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reports'"
            ).fetchall()
        }
        if "discrepancies" not in tables:
            return {}
        by_type = con.execute(
            "SELECT discrepancy_type, severity, count(*)::BIGINT FROM reports.discrepancies "
            "GROUP BY ALL ORDER BY 1, 2"
        ).fetchall()
        counts = {}
        for name in ("reconciliation", "usage"):
            if name in tables:
                row = con.execute(f"SELECT count(*)::BIGINT FROM reports.{name}").fetchone()
                counts[name] = row[0] if row else 0
        return {"by_type": by_type, "rows": counts}
    finally:
        con.close()
