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
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from filelock import FileLock, Timeout

from pipelines import progress
from pipelines.automation import FULL_RECONCILIATION_JOB
from pipelines.local_orders import LocalOrdersError, check_local_orders_file
from pipelines.local_orders_db import check_local_orders_database, is_database_url
from pipelines.money import money_summary
from pipelines.warehouse import Warehouse, WarehouseError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCK_WAIT_SECONDS = 600.0


# Metadata key under which a list asset says, in one line, that its list could not be loaded.
LIST_NOT_LOADED = "esim_recon/list_not_loaded"


class RunError(RuntimeError):
    """A run could not start or did not finish; the message is one line for a person."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunOutcome:
    run_id: str
    success: bool
    failures: list[str] = field(default_factory=list)
    materialized: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    # The run that rebuilt the models after a provider's ingestion failed (see materialize_all).
    continued_by: str | None = None
    # discrepancy_summary() read while the run still held the lock, so no other run races it.
    summary: dict[str, Any] = field(default_factory=dict)
    # One line per provider list that could not be loaded (its previous complete load stays in
    # force); the run itself completed.
    lists_not_loaded: list[str] = field(default_factory=list)


def ensure_dagster_home(home: Path | None = None) -> Path:
    """Dagster needs an absolute DAGSTER_HOME to keep run history: `home` when given (the demo
    keeps its own), else DAGSTER_HOME, else ./.dagster_home."""
    if home is not None:
        home = home.resolve()
    else:
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


def failure_reason(event: Any) -> str:
    """`step: one-line reason` of a STEP_FAILURE event."""
    data = event.step_failure_data
    message = ""
    if data is not None and data.user_failure_data is not None:
        message = data.user_failure_data.description or ""
    if not message and data is not None and data.error is not None:
        cause = data.error.cause or data.error
        message = cause.message.strip().splitlines()[-1] if cause.message else ""
    return f"{event.step_key or 'step'}: {message or 'failed'}"


def _failure_reasons(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        failure_reason(event)
        for event in result.all_events
        if event.event_type_value == "STEP_FAILURE"
    ]


PID_TAG = "esim_recon/pid"
# When the process started (Linux clock ticks since boot), so that a reused PID is not taken
# for the process that ran the run.
PID_START_TAG = "esim_recon/pid_start"


def _process_start(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces; field 22 is starttime.
    return stat.rsplit(")", 1)[-1].split()[19]


def _process_alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if started is None:
        return True
    current = _process_start(pid)
    return current is None or current == started


def _process_tags() -> dict[str, str]:
    tags = {PID_TAG: str(os.getpid())}
    started = _process_start(os.getpid())
    if started is not None:
        tags[PID_START_TAG] = started
    return tags


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
        if not pid_text or not pid_text.isdigit():
            continue
        if _process_alive(int(pid_text), run.tags.get(PID_START_TAG)):
            continue
        instance.report_run_failed(run, "the process running it ended without finishing")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


CONTINUES_TAG = "esim_recon/continues"
# Dagster's console logger prints every step failure with its stack trace and one error per
# skipped step; the CLI states the outcome itself in one line, and the full event log stays in
# the instance (the Dagster UI). ESIM_RECON_LOG_LEVEL brings the console log back.
LOG_LEVEL_ENV = "ESIM_RECON_LOG_LEVEL"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _run_config() -> dict[str, Any]:
    level = (os.environ.get(LOG_LEVEL_ENV) or "CRITICAL").strip().upper()
    if level not in _LOG_LEVELS:
        raise RunError(f"{LOG_LEVEL_ENV} must be one of {', '.join(_LOG_LEVELS)}, not {level!r}")
    return {"loggers": {"console": {"config": {"log_level": level}}}}


def _asset_defs(assets: list[Any]) -> list[dg.AssetsDefinition]:
    return [item for item in assets if isinstance(item, dg.AssetsDefinition)]


def _selected_keys(assets: list[Any], selection: str | None) -> set[dg.AssetKey]:
    definitions = _asset_defs(assets)
    if selection is None:
        return {key for item in definitions for key in item.keys}
    try:
        return set(dg.AssetSelection.from_string(selection).resolve(definitions))
    except Exception:  # an unusable selection is reported by the run itself
        return set()


def _preflight(assets: list[Any], resources: Mapping[str, Any], selection: str | None) -> None:
    """Refuse to start when the local orders file cannot be read at all, so that no asset
    (the provider ones included) writes anything: the database stays as it was."""
    local = resources.get("local_orders_file")
    path = getattr(local, "path", None)
    if isinstance(path, dg.EnvVar):  # a database URL with its password stays in the environment
        path = path.get_value()
    if not path or dg.AssetKey("local_orders") not in _selected_keys(assets, selection):
        return
    try:
        if is_database_url(path):
            check_local_orders_database(path, getattr(local, "query", None))
        else:
            check_local_orders_file(path)
    except LocalOrdersError as exc:
        # A database that cannot be read is a configuration problem (exit 2), like a bad URL.
        code = 2 if is_database_url(path) else 1
        raise RunError(f"local orders not loaded: {exc}", exit_code=code) from None


def _step_assets(assets: list[Any]) -> dict[str, dg.AssetsDefinition]:
    return {item.op.name: item for item in _asset_defs(assets)}


def _provider_ingest(definition: dg.AssetsDefinition) -> bool:
    return any(
        definition.group_names_by_key.get(key) == "ingest"
        and "provider" in definition.tags_by_key.get(key, {})
        for key in definition.keys
    )


def _continuation(
    assets: list[Any], selection: str | None, result: dg.ExecuteInProcessResult
) -> set[dg.AssetKey]:
    """Assets to build after a run in which only provider ingestion failed.

    A provider that is down fails its own ingestion assets; Dagster then skips everything
    downstream, the other provider's models and the reports included. Those skipped models are
    rebuilt in a second run from what is in the warehouse: the healthy provider's fresh data and
    the failed provider's latest complete loads (its local rows stay `not_checked` if it was
    never ingested). Ingestion assets are never retried here, and nothing is continued when the
    local file or a model failed.
    """
    by_step = _step_assets(assets)
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    if not failed or not all(
        step in by_step and _provider_ingest(by_step[step]) for step in failed
    ):
        return set()
    # Steps skipped because of the failure never started (Dagster logs no event for them).
    keys = _selected_keys(assets, selection)
    for step, definition in by_step.items():
        if step in started or _provider_ingest(definition):
            keys -= set(definition.keys)
    return keys


def _code_location_name() -> str:
    """The code location `dagster dev` loads from pyproject.toml ([tool.dagster])."""
    import tomllib

    with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
        settings = tomllib.load(handle).get("tool", {}).get("dagster", {})
    return str(settings.get("code_location_name") or settings.get("module_name"))


def _job_origin(job_name: str) -> Any:
    """Where the UI finds `job_name`: the project's code location, as `dagster dev` loads it.

    A run carrying it is listed under its job (the Overview timeline, the job's runs page, the
    launchpad's re-execution), like a run started from the UI or a schedule.
    """
    import sys

    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="pipelines.definitions",
            working_directory=str(PROJECT_ROOT),
        ),
        location_name=_code_location_name(),
    )
    return RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=location, repository_name=SINGLETON_REPOSITORY_NAME
        ),
        job_name=job_name,
    )


def _launch(
    job_def: dg.JobDefinition,
    instance: dg.DagsterInstance,
    *,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
    asset_selection: frozenset[dg.AssetKey] | None,
) -> dg.ExecuteInProcessResult:
    """Run `job_def` in this process as the project's named job (see `_job_origin`).

    `JobDefinition.execute_in_process` records no code location, so the UI would file the run
    as an anonymous one; this is the same execution with the origin set on the run.
    """
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import (
        ExecuteRunWithPlanIterable,
        create_execution_plan,
        job_execution_iterator,
    )
    from dagster._core.execution.context_creation_job import (
        PlanOrchestrationContextManager,
        orchestration_context_event_generator,
    )

    job = (
        job_def
        if asset_selection is None
        else job_def.get_subset(asset_selection=set(asset_selection))
    )
    in_memory = InMemoryJob(job)
    plan = create_execution_plan(in_memory, run_config=run_config, instance_ref=instance.get_ref())
    run = instance.create_run_for_job(
        job_def=job,
        run_config=run_config,
        tags={**job_def.run_tags, **tags},
        asset_selection=asset_selection,
        execution_plan=plan,
        remote_job_origin=_job_origin(job_def.name),
    )
    events = list(
        ExecuteRunWithPlanIterable(
            execution_plan=plan,
            iterator=job_execution_iterator,
            execution_context_manager=PlanOrchestrationContextManager(
                context_event_generator=orchestration_context_event_generator,
                job=in_memory,
                execution_plan=plan,
                dagster_run=run,
                instance=instance,
                run_config=run_config,
                executor_defs=None,
                output_capture=None,
                raise_on_error=False,
            ),
        )
    )
    finished = instance.get_run_by_id(run.run_id)
    return dg.ExecuteInProcessResult(
        job_def=job, event_list=events, dagster_run=finished or run, output_capture={}
    )


def _job_definition(
    assets: list[Any], resources: Mapping[str, Any], job_name: str
) -> dg.JobDefinition:
    """The named job from `pipelines.automation`, bound to this run's resources."""
    from pipelines.automation import jobs

    checks = [item for item in assets if isinstance(item, dg.AssetChecksDefinition)]
    definitions = dg.Definitions(
        assets=[item for item in _asset_defs(assets) if item not in checks],
        asset_checks=checks,
        jobs=jobs,
        resources=dict(resources),
    )
    return definitions.resolve_job_def(job_name)


def _run_options_config(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The run options as run config, so the run's launchpad shows what this run did."""
    options = resources.get("run_options")
    if options is None:
        return {}
    values = {
        "full_sync": options.full_sync,
        "sync_budget": options.sync_budget,
        "sync_seconds": options.sync_seconds,
    }
    return {"resources": {"run_options": {"config": values}}}


def _materialize(
    job_def: dg.JobDefinition,
    resources: Mapping[str, Any],
    instance: dg.DagsterInstance,
    selection: str | dg.AssetSelection | None,
    tags: Mapping[str, str],
) -> dg.ExecuteInProcessResult:
    from dagster._core.definitions.asset_selection import DagsterInvalidAssetSelectionError

    try:
        keys = None
        if selection is not None:
            try:
                chosen = (
                    dg.AssetSelection.from_string(selection)
                    if isinstance(selection, str)
                    else selection
                )
            except DagsterInvalidAssetSelectionError as exc:
                raise RunError(f"--select {selection!r} is not a selection: {exc}") from None
            keys = frozenset(chosen.resolve(job_def.asset_layer.asset_graph))
            if not keys:
                raise RunError(f"--select {selection!r} matches no asset")
        return _launch(
            job_def,
            instance,
            run_config={**_run_config(), **_run_options_config(resources)},
            tags={**tags, **_process_tags()},
            asset_selection=keys,
        )
    except dg.DagsterInvalidSubsetError as exc:
        raise RunError(f"--select {selection!r} matches nothing usable: {exc}") from None
    except (dg.DagsterInvariantViolationError, dg.DagsterInvalidDefinitionError) as exc:
        raise RunError(f"--select {selection!r}: {exc}") from None


def materialize_all(
    assets: list[Any],
    resources: Mapping[str, Any],
    *,
    db_path: Path,
    selection: str | None = None,
    lock_wait_seconds: float | None = None,
    tags: Mapping[str, str] | None = None,
    dagster_home: Path | None = None,
    job_name: str = FULL_RECONCILIATION_JOB,
) -> RunOutcome:
    """Materialize the graph (or `selection`) in this process, holding the run lock.

    When only provider ingestion failed, the skipped models and reports are rebuilt in a
    second run (`RunOutcome.continued_by`); the outcome still reports the failure.
    """
    ensure_dagster_home(dagster_home)
    _preflight(assets, resources, selection)
    wait = _lock_wait_seconds() if lock_wait_seconds is None else lock_wait_seconds
    lock = run_lock(db_path)
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            progress.waiting(
                "run-lock",
                f"waiting for another esim-recon run to finish writing {db_path} "
                f"(up to {wait:.0f} s, ESIM_RECON_LOCK_WAIT)",
            )
            lock.acquire(timeout=wait)
    except Timeout:
        raise RunError(
            f"another esim-recon run is writing {db_path} (waited {wait:.0f} s); "
            "try again when it has finished"
        ) from None
    try:
        with dg.DagsterInstance.get() as instance:
            reap_dead_runs(instance)
            run_tags = dict(tags or {})
            job_def = _job_definition(assets, resources, job_name)
            results = [_materialize(job_def, resources, instance, selection, run_tags)]
            rest = _continuation(assets, selection, results[0])
            if rest:
                results.append(
                    _materialize(
                        job_def,
                        resources,
                        instance,
                        dg.AssetSelection.assets(*rest),
                        {**run_tags, CONTINUES_TAG: results[0].run_id},
                    )
                )
            materialized = sorted(
                {
                    event.asset_key.to_user_string()
                    for result in results
                    for event in result.get_asset_materialization_events()
                    if event.asset_key is not None
                }
            )
            lists_not_loaded = [
                str(event.materialization.metadata[LIST_NOT_LOADED].value)
                for result in results
                for event in result.get_asset_materialization_events()
                if LIST_NOT_LOADED in event.materialization.metadata
            ]
            failed_checks = sorted(
                f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
                for result in results
                for evaluation in result.get_asset_check_evaluations()
                if not evaluation.passed
            )
            return RunOutcome(
                run_id=results[0].run_id,
                success=all(result.success for result in results),
                failures=[reason for result in results for reason in _failure_reasons(result)],
                materialized=materialized,
                failed_checks=failed_checks,
                continued_by=results[1].run_id if len(results) > 1 else None,
                summary=discrepancy_summary(db_path),
                lists_not_loaded=lists_not_loaded,
            )
    finally:
        lock.release()


def _local_load_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows loaded and quarantined by the latest complete load of the local orders file."""
    row = con.execute(
        "SELECT run_id, rows_written FROM raw.ingest_log "
        "WHERE asset = 'local_orders' AND status = 'complete' "
        "ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return {}
    rejected = con.execute(
        "SELECT count(*)::BIGINT FROM raw.local_orders_rejected WHERE run_id = ?", [row[0]]
    ).fetchone()
    return {"accepted": int(row[1] or 0), "rejected": int(rejected[0]) if rejected else 0}


def discrepancy_summary(db_path: Path, *, wait_seconds: float = 5.0) -> dict[str, Any]:
    """Counts per discrepancy type and severity from reports.discrepancies (read-only), the
    money at risk per direction, the report row counts and the latest local load's accepted /
    rejected rows. Empty when there
    are no reports yet or the file stays busy for `wait_seconds`."""
    if not db_path.exists():
        return {}
    try:
        with Warehouse(db_path).connect(read_only=True, wait_seconds=wait_seconds) as con:
            tables = {
                (row[0], row[1])
                for row in con.execute(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('reports', 'raw')"
                ).fetchall()
            }
            if ("reports", "discrepancies") not in tables:
                return {}
            by_type = con.execute(
                "SELECT discrepancy_type, severity, count(*)::BIGINT FROM reports.discrepancies "
                "GROUP BY ALL ORDER BY 1, 2"
            ).fetchall()
            counts = {}
            for name in ("reconciliation", "usage"):
                if ("reports", name) in tables:
                    row = con.execute(f"SELECT count(*)::BIGINT FROM reports.{name}").fetchone()
                    counts[name] = row[0] if row else 0
            local = {}
            if {("raw", "ingest_log"), ("raw", "local_orders_rejected")} <= tables:
                local = _local_load_counts(con)
            money = money_summary(con)
            return {"by_type": by_type, "rows": counts, "local_rows": local, "money": money}
    except WarehouseError:
        return {}
