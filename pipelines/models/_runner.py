"""Builds seeds and models into DuckDB, one transaction per relation.

- seed: `CREATE OR REPLACE TABLE seeds.<name>` from the CSV (path bound as a parameter).
- table / view: `CREATE OR REPLACE TABLE|VIEW <schema>.<name> AS <select>`.
- history: the model's SELECT is the set of records present *now*, unique on `history_key`.
  The relation keeps every episode of every record, with three columns the runner maintains:
  `first_detected_at`, `last_seen_at` and `resolved_at`. Each build, in one transaction and with
  the run timestamp bound as a parameter:
    1. open episodes (resolved_at null) whose key is present get last_seen_at = run time and the
       present values of the other columns;
    2. open episodes whose key is absent get resolved_at = run time;
    3. present keys without an open episode start a new episode (first_detected_at = run time).
  A build with nothing changed therefore adds no rows and moves only `last_seen_at`. The
  relation is never dropped by the runner; a column added to the SELECT is added to the table.

Then `COMMENT ON TABLE` (the description) and `COMMENT ON COLUMN` (the header's column lines).
A reports model must document every column. Identifiers only ever come from file names and
header keys, both validated as plain identifiers; comment texts are quoted literals because
DuckDB does not accept parameters in COMMENT statements.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.models._project import (
    Model,
    ModelError,
    Project,
    Seed,
    _check_identifier,
    closure,
    project,
)
from pipelines.warehouse import Warehouse

HISTORY_COLUMNS: tuple[str, ...] = ("first_detected_at", "last_seen_at", "resolved_at")
_HISTORY_STAGE = "_history_current"


@dataclass(frozen=True)
class BuildResult:
    name: str
    relation: str
    kind: str  # seed | table | view | history
    rows: int


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def relation_exists(con: duckdb.DuckDBPyConnection, relation: str) -> str | None:
    """'table', 'view' or None for `schema.name`."""
    schema, name = relation.split(".", 1)
    row = con.execute(
        """
        select 'table' from duckdb_tables() where schema_name = ? and table_name = ?
        union all
        select 'view' from duckdb_views() where schema_name = ? and view_name = ?
        """,
        [schema, name, schema, name],
    ).fetchone()
    return row[0] if row else None


def relation_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [c[0] for c in con.execute(f"select * from {relation} limit 0").description]


def _drop_other_kind(con: duckdb.DuckDBPyConnection, relation: str, wanted: str) -> None:
    existing = relation_exists(con, relation)
    if existing and existing != wanted:
        con.execute(f"DROP {existing.upper()} {relation}")


def _seed_select(seed: Seed, environ: Mapping[str, str]) -> tuple[str, Path]:
    source = seed.source_path(environ)
    if not source.is_file():
        raise ModelError(f"seed {seed.name}: no file at {source}")
    header = seed.header(source)
    if source != seed.path and header != seed.header():
        raise ModelError(
            f"seed {seed.name}: {source} must have the header {','.join(seed.header())}"
        )
    casts = []
    for column in header:
        _check_identifier(column, f"seed {seed.name}: column")
        if column.startswith("is_"):
            casts.append(f"cast(trim({_quote(column)}) as boolean) as {column}")
        elif column.endswith("_rank"):
            casts.append(f"cast(trim({_quote(column)}) as integer) as {column}")
        else:
            casts.append(f"trim({_quote(column)}) as {column}")
    select = (
        f"select {', '.join(casts)} from read_csv($path, header = true, all_varchar = true, "
        "delim = ',', quote = '\"', escape = '\"')"
    )
    return select, source


def _apply_comments(con: duckdb.DuckDBPyConnection, model: Model, kind: str) -> None:
    columns = relation_columns(con, model.relation)
    unknown = sorted(set(model.columns) - set(columns))
    if unknown:
        raise ModelError(f"{model.path.name}: documents columns it does not have: {unknown}")
    if model.layer == "reports":
        missing = [c for c in columns if c not in model.columns]
        if missing:
            raise ModelError(f"{model.path.name}: report columns without a description: {missing}")
    object_kind = "VIEW" if kind == "view" else "TABLE"
    con.execute(f"COMMENT ON {object_kind} {model.relation} IS {_literal(model.description)}")
    for column, text in model.columns.items():
        con.execute(f"COMMENT ON COLUMN {model.relation}.{column} IS {_literal(text)}")


def _build_history(con: duckdb.DuckDBPyConnection, model: Model, run_at: datetime) -> None:
    relation = model.relation
    # The staging temp table lives inside the model's transaction: a failure rolls it back too.
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_HISTORY_STAGE} AS {model.sql}")
    staged = relation_columns(con, _HISTORY_STAGE)
    keys = model.history_key
    clash = sorted(set(staged) & set(HISTORY_COLUMNS))
    if clash:
        raise ModelError(f"{model.path.name}: the runner maintains {clash}; do not select them")
    missing_keys = [k for k in keys if k not in staged]
    if missing_keys:
        raise ModelError(f"{model.path.name}: history_key columns not selected: {missing_keys}")
    key_list = ", ".join(keys)
    nulls = " or ".join(f"{k} is null" for k in keys)
    bad = con.execute(
        f"select (select count(*) from {_HISTORY_STAGE} where {nulls}), "
        f"(select count(*) from (select {key_list} from {_HISTORY_STAGE} "
        f"group by all having count(*) > 1))"
    ).fetchone()
    if bad and (bad[0] or bad[1]):
        raise ModelError(
            f"{model.path.name}: history_key must be non-null and unique "
            f"({bad[0]} null keys, {bad[1]} duplicated keys)"
        )
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE {_HISTORY_STAGE}").fetchall()}
    if relation_exists(con, relation) != "table":
        _drop_other_kind(con, relation, "table")
        # Explicit DDL, not `CREATE TABLE ... AS SELECT ... WHERE false`: with DuckDB 2.0 an
        # empty table made that way and filled in the same transaction keeps "empty" column
        # statistics, and later queries in the session see no rows.
        columns = [f"{column} {types[column]}" for column in staged]
        columns += [f"{column} TIMESTAMPTZ" for column in HISTORY_COLUMNS]
        con.execute(f"CREATE TABLE {relation} ({', '.join(columns)})")
    else:
        existing = set(relation_columns(con, relation))
        for column in staged:
            if column not in existing:
                con.execute(f"ALTER TABLE {relation} ADD COLUMN {column} {types[column]}")
    match = " and ".join(f"h.{k} = c.{k}" for k in keys)
    attributes = [c for c in staged if c not in keys]
    assignments = ", ".join(["last_seen_at = $run_at", *(f"{a} = c.{a}" for a in attributes)])
    con.execute(
        f"UPDATE {relation} AS h SET {assignments} FROM {_HISTORY_STAGE} AS c "
        f"WHERE h.resolved_at IS NULL AND {match}",
        {"run_at": run_at},
    )
    con.execute(
        f"UPDATE {relation} AS h SET resolved_at = $run_at WHERE h.resolved_at IS NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {_HISTORY_STAGE} AS c WHERE {match})",
        {"run_at": run_at},
    )
    con.execute(
        f"INSERT INTO {relation} BY NAME SELECT c.*, $run_at AS first_detected_at, "
        "$run_at AS last_seen_at, CAST(NULL AS TIMESTAMPTZ) AS resolved_at "
        f"FROM {_HISTORY_STAGE} AS c WHERE NOT EXISTS (SELECT 1 FROM {relation} AS h "
        f"WHERE h.resolved_at IS NULL AND {match})",
        {"run_at": run_at},
    )
    con.execute(f"DROP TABLE {_HISTORY_STAGE}")


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"select count(*) from {relation}").fetchone()
    return int(row[0]) if row else 0


def _build_one(
    con: duckdb.DuckDBPyConnection,
    node: Seed | Model,
    run_at: datetime,
    environ: Mapping[str, str],
) -> BuildResult:
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {node.schema}")
        if isinstance(node, Seed):
            select, source = _seed_select(node, environ)
            _drop_other_kind(con, node.relation, "table")
            con.execute(
                f"CREATE OR REPLACE TABLE {node.relation} AS {select}", {"path": str(source)}
            )
            con.execute(
                f"COMMENT ON TABLE {node.relation} IS "
                f"{_literal(f'Seed loaded from {source.name}.')}"
            )
            kind = "seed"
        else:
            kind = node.materialized
            if kind == "history":
                _build_history(con, node, run_at)
            else:
                _drop_other_kind(con, node.relation, kind)
                con.execute(f"CREATE OR REPLACE {kind.upper()} {node.relation} AS {node.sql}")
            _apply_comments(con, node, kind)
        rows = _count(con, node.relation)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return BuildResult(node.name, node.relation, kind, rows)


def build(
    con: duckdb.DuckDBPyConnection,
    names: Iterable[str] | None = None,
    *,
    run_at: datetime | None = None,
    project_: Project | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[BuildResult]:
    """(Re)create the named seeds and models (all when `names` is None), dependencies first.

    Only the named nodes are built; upstream models must exist already, except seeds, which are
    loaded when a selected model reads one that is not in the database yet. `run_at` (default:
    now, UTC) stamps history models.
    """
    proj = project_ or project()
    env = os.environ if environ is None else environ
    when = run_at or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("run_at must be timezone-aware")
    # Models read raw tables: make sure they exist (empty) even before any ingestion ran.
    Warehouse(":memory:").ensure_raw_schema(con)
    selected = list(proj.order) if names is None else closure(proj, names)
    missing_seeds = {
        seed
        for name in selected
        if name in proj.models
        for seed in proj.models[name].seed_deps
        if seed not in selected and relation_exists(con, proj.seeds[seed].relation) is None
    }
    selected = closure(proj, [*missing_seeds, *selected])
    return [_build_one(con, proj.node(name), when, env) for name in selected]
