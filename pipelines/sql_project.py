"""The dbt project in `sql/`: where it is, its manifest, its vocabularies, and a build helper.

- `manifest_path()` returns `sql/target/manifest.json`, running `dbt parse` first when it is
  missing or older than any file of the project (a fresh clone, an edited model): no manual step.
- `discrepancy_types()` / `SEVERITIES`: the discrepancy vocabulary, read from its seed.
- `run_dbt(db_path, args)`: any dbt command on one DuckDB file, in this process, on the project
  parsed once (no dbt process to start, no parse per build). The Dagster step (`assets.models`)
  builds through it; `build(db_path, ...)` is the same `dbt build` for tests, benchmarks and
  scripts that build the SQL layer without a Dagster run.

The DuckDB path reaches dbt through ESIM_RECON_DB (read by `sql/profiles.yml`), the same
variable the rest of esim-recon reads, so no profile file has to be written by anyone.
"""

from __future__ import annotations

import csv
import functools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
TARGET_DIR = SQL_DIR / "target"
MANIFEST_PATH = TARGET_DIR / "manifest.json"
DB_ENV = "ESIM_RECON_DB"
# The run time stamped on history episodes (default: when dbt started); see macros/run_at.sql.
RUN_AT_ENV = "ESIM_RECON_RUN_AT"
# Files dbt reads; anything else under sql/ (the planning queries, dbt's own output) is not
# part of the manifest.
_PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "models", "seeds", "macros", "tests")
_PROJECT_SUFFIXES = frozenset({".sql", ".yml", ".yaml", ".csv", ".md"})

SEVERITIES: tuple[str, ...] = ("critical", "warning")


class SqlProjectError(RuntimeError):
    """The dbt project could not be parsed or built; the message says which command and why."""


def _project_files() -> Iterator[Path]:
    for part in _PROJECT_PARTS:
        path = SQL_DIR / part
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (p for p in path.rglob("*") if p.suffix in _PROJECT_SUFFIXES)


def manifest_is_stale() -> bool:
    if not MANIFEST_PATH.exists():
        return True
    built = MANIFEST_PATH.stat().st_mtime
    return any(path.stat().st_mtime > built for path in _project_files())


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def manifest_path() -> Path:
    """`sql/target/manifest.json`, (re)made by `dbt parse` when missing or stale."""
    if not manifest_is_stale():
        return MANIFEST_PATH
    TARGET_DIR.mkdir(parents=True, exist_ok=True)
    # Two processes loading the definitions at once parse once.
    with FileLock(str(TARGET_DIR / ".parse.lock")):
        if manifest_is_stale():
            result = subprocess.run(  # noqa: S603 - fixed arguments, our own project
                [dbt_executable(), "parse", "--quiet", "--project-dir", str(SQL_DIR)],
                cwd=SQL_DIR,
                env={
                    **os.environ,
                    "DBT_PROFILES_DIR": str(SQL_DIR),
                    # here, whatever a caller's environment says: builds load this parse
                    "DBT_TARGET_PATH": str(TARGET_DIR),
                    "DBT_LOG_PATH": str(TARGET_DIR),
                    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                },
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not MANIFEST_PATH.exists():
                detail = (result.stdout + result.stderr).strip().splitlines()[-5:]
                raise SqlProjectError(
                    f"`dbt parse` of {SQL_DIR} failed: {' | '.join(detail) or 'no output'}"
                )
            MANIFEST_PATH.touch()
    return MANIFEST_PATH


@dataclass(frozen=True)
class DiscrepancyType:
    code: str
    severity_rule: str
    is_disagreement: bool
    description: str


@functools.cache
def discrepancy_types() -> tuple[DiscrepancyType, ...]:
    """The rows of `sql/seeds/discrepancy_types.csv`, in file order."""
    with (SQL_DIR / "seeds" / "discrepancy_types.csv").open(newline="", encoding="utf-8") as f:
        return tuple(
            DiscrepancyType(
                code=row["discrepancy_type"].strip(),
                severity_rule=row["severity_rule"].strip(),
                is_disagreement=row["is_disagreement"].strip().lower() == "true",
                description=row["description"].strip(),
            )
            for row in csv.DictReader(f)
        )


def discrepancy_codes() -> tuple[str, ...]:
    return tuple(item.code for item in discrepancy_types())


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set in os.environ for the duration (dbt reads its settings from there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class BuildOutcome:
    success: bool
    # node name -> dbt status (success, error, pass, fail, skipped, ...)
    statuses: dict[str, str]
    failures: list[str]


def run_dbt(
    db_path: Path | str,
    args: Sequence[str],
    *,
    variables: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    on_event: Callable[[Any], None] | None = None,
) -> BuildOutcome:
    """Run one dbt command in this process against the DuckDB file `db_path`.

    The project is not parsed again (see `_kept_manifest`) unless `variables` change it.
    `on_event` receives every dbt event (`EventMsg`) as it happens. DuckDB shares one database
    instance per file within a process, so a caller may keep its own connection to the file
    open (without a different configuration) while dbt runs.
    """
    from dbt.cli.main import dbtRunner

    command = [*args, "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR)]
    if variables:
        import json

        command += ["--vars", json.dumps(dict(variables))]
    env = {
        DB_ENV: str(Path(db_path).resolve()),
        "DBT_TARGET_PATH": str(TARGET_DIR / "local"),
        "DBT_LOG_PATH": str(TARGET_DIR / "local"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        **(environ or {}),
    }
    manifest = None if variables else _kept_manifest(Path(db_path))
    if manifest is not None:
        _as_parsed(manifest)
    with environment(env):
        try:
            runner = dbtRunner(manifest=manifest, callbacks=[on_event] if on_event else None)
            # --no-write-json: results reach the caller as Python objects, so dbt's manifest
            # and run results are not written again on every build (about half a second).
            result = runner.invoke([*command, "--quiet", "--no-write-json"])
        finally:
            _close_dbt_database()
    if result.exception is not None:
        raise SqlProjectError(f"dbt {' '.join(args)} failed: {result.exception}")
    statuses: dict[str, str] = {}
    failures: list[str] = []
    for item in getattr(result.result, "results", None) or []:
        name = item.node.name
        status = str(item.status)
        statuses[name] = status
        if status in ("error", "fail"):
            failures.append(f"{name}: {(item.message or status).strip()}")
    return BuildOutcome(success=bool(result.success), statuses=statuses, failures=failures)


def _planned_build(
    db_path: Path | str, args: list[str], env: dict[str, str], *, full_refresh: bool, whole: bool
) -> BuildOutcome:
    import duckdb

    from pipelines import incremental

    con = duckdb.connect(str(db_path))
    try:
        plan = incremental.plan_build(con, full_refresh_requested=full_refresh, whole_graph=whole)
    finally:
        con.close()
    env = {**env, **plan.environ()}
    if plan.staging_first:
        first = run_dbt(db_path, plan.staging_args(), environ=env)
        if not first.success:
            return first
    outcome = run_dbt(db_path, plan.build_args(args), environ=env)
    if outcome.success and plan.whole_graph:
        con = duckdb.connect(str(db_path))
        try:
            incremental.record_build(con, plan)
        finally:
            con.close()
    return outcome


# Parsed projects by (database name, parse). Parsing costs seconds of CPU, and dbt parses the
# whole project again whenever the DuckDB path changes (the path is part of the profile). The
# project is parsed once, by `manifest_path()`'s `dbt parse`, which also leaves dbt's own
# serialized parse (`partial_parse.msgpack`) beside the manifest; a build loads that in a tenth
# of a second. Only the database name qualifying each relation depends on the file (it is the
# file's stem), so it is set to the file's.
_MANIFESTS: dict[tuple[str, float], Any] = {}
_KEPT_PARSE = TARGET_DIR / "partial_parse.msgpack"


def _kept_manifest(db_path: Path) -> Any:
    manifest_path()  # parses again when a file of the project changed
    try:
        key = (db_path.stem, _KEPT_PARSE.stat().st_mtime)
    except FileNotFoundError:
        return _parsed_manifest(db_path)
    if key not in _MANIFESTS:
        from dbt.contracts.graph.manifest import Manifest
        from dbt.parser.manifest import extended_mashumuro_decoder

        try:
            manifest = Manifest.from_msgpack(
                _KEPT_PARSE.read_bytes(), decoder=extended_mashumuro_decoder
            )
        except Exception:  # not a parse this dbt can read: parse here instead
            return _parsed_manifest(db_path)
        _use_database(manifest, db_path.stem)
        # what a parse ends with: the `graph` macros read
        manifest.build_flat_graph()
        _MANIFESTS.clear()
        _MANIFESTS[key] = manifest
    return _MANIFESTS[key]


def _as_parsed(manifest: Any) -> None:
    """Clear what an earlier invocation's compile marked on a kept manifest's nodes.

    dbt compiles nodes in place: it marks a model compiled with its ephemeral models' CTEs
    injected, and an invocation finding that mark neither compiles nor injects again. The SQL
    is rendered anew on every invocation, so the CTEs would be missing."""
    from dbt.contracts.graph.nodes import CompiledNode

    for node in manifest.nodes.values():
        if isinstance(node, CompiledNode):
            node.compiled = False
            node.extra_ctes_injected = False
            node.extra_ctes = []


def _use_database(manifest: Any, database: str) -> None:
    """Qualify every relation of `manifest` with `database` instead of the parse's."""
    for node in [*manifest.nodes.values(), *manifest.sources.values()]:
        parsed = getattr(node, "database", None)
        if parsed is None or parsed == database:
            continue
        node.database = database
        relation_name = getattr(node, "relation_name", None)
        if relation_name and relation_name.startswith(f'"{parsed}".'):
            node.relation_name = f'"{database}".' + relation_name[len(parsed) + 3 :]


def _parsed_manifest(db_path: Path) -> Any:
    """The project parsed in this process (when no kept parse can be loaded)."""
    from dbt.cli.main import dbtRunner

    local = str(TARGET_DIR / "local")
    with environment({"DBT_TARGET_PATH": local, "DBT_LOG_PATH": local}):
        parsed = dbtRunner().invoke(
            ["parse", "--project-dir", str(SQL_DIR), "--profiles-dir", str(SQL_DIR), "--quiet"]
        )
    if not parsed.success or parsed.result is None:
        raise SqlProjectError(f"dbt parse failed: {parsed.exception or 'see the dbt log'}")
    _use_database(parsed.result, db_path.stem)
    parsed.result.build_flat_graph()
    return parsed.result


def _close_dbt_database() -> None:
    """dbt-duckdb keeps its database open for the life of the process; close it, so that the
    caller (or a read-only connection) is the only user of the file again."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        environment_ = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if environment_ is not None:
        environment_.close()


def build(
    db_path: Path | str,
    select: str | Sequence[str] | None = None,
    *,
    run_at: datetime | None = None,
    full_refresh: bool = False,
    environ: Mapping[str, str] | None = None,
    check: bool = True,
    with_tests: bool = True,
    incremental: bool = False,
) -> BuildOutcome:
    """`dbt build` (seeds, models, tests) of `select` (default: everything) into `db_path`.

    `run_at` stamps the history (the time of the run that found a finding); default: now.
    With `check`, a failing model or test raises SqlProjectError naming it; `with_tests=False`
    builds seeds and models only. With `incremental`, the build is planned and recorded as a
    run's build is (pipelines.incremental): on the touched orders when it can be; otherwise
    every build recomputes every order.
    """
    import duckdb

    from pipelines.warehouse import Warehouse

    # Models read raw tables: they exist (empty) before any ingestion ran. A plain connection,
    # so that it shares the database instance with one the caller may hold.
    con = duckdb.connect(str(db_path))
    try:
        Warehouse(":memory:").ensure_raw_schema(con)
    finally:
        con.close()
    args = ["build"]
    if select:
        args += ["--select", *([select] if isinstance(select, str) else select)]
    if full_refresh:
        args.append("--full-refresh")
    if not with_tests:
        args += ["--exclude-resource-type", "test"]
    env = dict(environ or {})
    if run_at is not None:
        if run_at.tzinfo is None:
            raise ValueError("run_at must be timezone-aware")
        env[RUN_AT_ENV] = run_at.isoformat()
    if incremental:
        outcome = _planned_build(db_path, args, env, full_refresh=full_refresh, whole=not select)
    else:
        outcome = run_dbt(db_path, args, environ=env)
    if check and not outcome.success:
        raise SqlProjectError("dbt build failed: " + "; ".join(outcome.failures or ["see dbt log"]))
    return outcome
