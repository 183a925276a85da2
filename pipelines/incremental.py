"""Incremental builds of the dbt project: which kind of build to run, and what was built.

A build is one of:
- a full refresh (`dbt build --full-refresh`): the first build of a file, a build after the
  project changed (its files, the local status map it reads, the dbt versions: `fingerprint()`),
  the daily job, `esim-recon run --full-refresh`;
- a whole build of part of the graph (a `--select` run): the selected models read every order;
- an order batch (ESIM_RECON_ORDER_BATCH=1): the models recompute the touched orders only, as
  `sql/models/reconciliation/int_touched_orders.sql` derives them from what raw holds now and
  what the last recorded build had read.
After a successful build of the whole graph, `record_build` stores what it read (schema
`builds`); a failed build records nothing, so the next build starts from the older record and
recomputes the failed build's orders too. Deciding what is touched is SQL; this module only
chooses the kind of build and copies the record.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import duckdb

from pipelines.sql_project import SQL_DIR, _project_files

ORDER_BATCH_ENV = "ESIM_RECON_ORDER_BATCH"
LOCAL_STATUS_MAP_ENV = "ESIM_RECON_LOCAL_STATUS_MAP"
STATE_SCHEMA = "builds"
# Run tags asking for a full refresh: the CLI's --full-refresh, and the daily job's kind.
FULL_REFRESH_TAG = "esim_recon/full_refresh"
KIND_TAG = "esim_recon/kind"
FULL_REFRESH_KIND = "full_refresh"
# Rebuilt whole before a build of part of the graph: an order batch leaves them holding the
# touched orders only.
BATCH_MODELS = ("path:models/staging", "int_esim_matches")


@dataclass(frozen=True)
class BuildPlan:
    full_refresh: bool
    order_batch: bool
    reason: str
    fingerprint: str
    # A build of part of the graph after an order batch: staging is rebuilt whole first.
    staging_first: bool = False
    # Whether the build covers the whole graph, and so is recorded when it succeeds.
    whole_graph: bool = True

    def environ(self) -> dict[str, str]:
        return {ORDER_BATCH_ENV: "1" if self.order_batch else "0"}

    def build_args(self, args: list[str]) -> list[str]:
        """`args` of `dbt build`, with --full-refresh when the plan is one."""
        if self.full_refresh and "--full-refresh" not in args:
            return [*args, "--full-refresh"]
        return args

    def staging_args(self) -> list[str]:
        """The `dbt run` that makes staging whole again before a build of part of the graph."""
        return ["run", "--select", *BATCH_MODELS]


def fingerprint() -> str:
    """A digest of everything a build's result depends on besides raw data."""
    digest = hashlib.sha256()
    for path in sorted(_project_files()):
        digest.update(str(path.relative_to(SQL_DIR)).encode())
        digest.update(path.read_bytes())
    override = os.environ.get(LOCAL_STATUS_MAP_ENV, "").strip()
    digest.update(override.encode())
    if override and Path(override).is_file():
        digest.update(Path(override).read_bytes())
    for package in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()


def _recorded_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    exists = con.execute(
        "select count(*) from duckdb_tables() where schema_name = $schema "
        "and table_name = 'last_build'",
        {"schema": STATE_SCHEMA},
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = con.execute(f"select fingerprint from {STATE_SCHEMA}.last_build").fetchone()
    return str(row[0]) if row else None


def plan_build(
    con: duckdb.DuckDBPyConnection, *, full_refresh_requested: bool, whole_graph: bool
) -> BuildPlan:
    """The kind of build to run now on the warehouse behind `con`."""
    current = fingerprint()
    recorded = _recorded_fingerprint(con)
    # Staging may hold an order batch once a build was ever recorded.
    part = {"whole_graph": whole_graph, "staging_first": not whole_graph and recorded is not None}
    if full_refresh_requested:
        return BuildPlan(True, False, "full refresh requested", current, **part)
    if recorded is None:
        return BuildPlan(True, False, "first build", current, **part)
    if recorded != current:
        return BuildPlan(True, False, "the dbt project or its settings changed", current, **part)
    if not whole_graph:
        return BuildPlan(False, False, "part of the graph", current, **part)
    return BuildPlan(False, True, "touched orders", current, **part)


def record_build(con: duckdb.DuckDBPyConnection, plan: BuildPlan) -> None:
    """After a successful build of the whole graph: what it read, in one transaction."""
    con.execute(f"create schema if not exists {STATE_SCHEMA}")
    con.execute("begin transaction")
    try:
        con.execute(
            f"create or replace table {STATE_SCHEMA}.built_runs as "
            "select * from staging.stg_raw_runs"
        )
        con.execute(
            f"create or replace table {STATE_SCHEMA}.built_coverage as "
            "select provider, is_ingested, local_loaded from reconciliation.int_source_coverage"
        )
        con.execute(
            f"create or replace table {STATE_SCHEMA}.last_build as "
            "select "
            "  (select any_value(batch_id) from reconciliation.int_touched_orders) as batch_id, "
            "  cast($fingerprint as varchar) as fingerprint, "
            "  cast($kind as varchar) as kind, "
            "  (select coalesce(bool_or(is_all), false) from reconciliation.int_touched_orders) "
            "    as rebuilt_all, "
            "  (select count(*) from reconciliation.int_touched_orders where not is_all) "
            "    as touched_orders, "
            "  (select run_id from staging.stg_raw_runs "
            "   where raw_table = 'local_orders' and is_complete "
            "   order by finished_at desc, run_id desc limit 1) as local_run_id, "
            "  now() as built_at",
            {
                "fingerprint": plan.fingerprint,
                "kind": "full refresh" if plan.full_refresh else plan.reason,
            },
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def last_build(con: duckdb.DuckDBPyConnection) -> dict[str, object] | None:
    """The recorded build (kind, touched orders, when), or None."""
    if _recorded_fingerprint(con) is None:
        return None
    cursor = con.execute(f"select * from {STATE_SCHEMA}.last_build")
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    return dict(zip(names, row, strict=True)) if row else None
