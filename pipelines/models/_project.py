"""The SQL project: seeds and models found in `sql/`, their header metadata and dependencies.

Layout (folders are DuckDB schemas, in flow order):

- `sql/seeds/*.csv`: reference data loaded into schema `seeds`, one table per file. Columns are
  text, except by naming convention: `is_*` columns are BOOLEAN and `*_rank` columns INTEGER.
  A seed may be replaced by a file named in an environment variable (see `SEED_OVERRIDES`);
  the replacement must have exactly the same header.
- `sql/staging/`, `sql/reconciliation/`, `sql/reports/`: one model per `.sql` file, a single
  `WITH ... SELECT` in DuckDB SQL. The file stem is the model name, unique across folders; the
  relation is `<folder>.<stem>`. A model may read raw tables, seeds and models of its own or an
  earlier layer, always schema-qualified; dependencies are read from the SQL with sqlglot.

Header block (the leading `--` comment lines), `key: value`; a line indented by two or more
spaces after `--` continues the previous value, any other comment line ends the header:

    -- description: one line, becomes the table comment and the Dagster asset description
    -- materialized: table | view | history          (default table)
    -- unique_key: col_a, col_b                       (checked by an asset check)
    -- history_key: col_a, col_b                      (materialized: history only)
    -- state_columns: local_state, provider_state     (values must be canonical states)
    -- column <name>: what the column holds           (becomes COMMENT ON COLUMN)

`materialized: history` keeps state across builds; see `pipelines.models._runner`.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlglot
from sqlglot import exp

from pipelines.warehouse import RAW_TABLES

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

LAYERS: tuple[str, ...] = ("staging", "reconciliation", "reports")
SEED_SCHEMA = "seeds"
RAW_SCHEMA = "raw"
MATERIALIZATIONS = frozenset({"table", "view", "history"})

# Seeds whose file can be replaced through an environment variable.
SEED_OVERRIDES: Mapping[str, str] = {"local_status_map": "ESIM_RECON_LOCAL_STATUS_MAP"}

# Raw tables are written by ingestion assets named like the table, with two exceptions:
# the rejected local rows come from the `local_orders` asset, and `raw.ingest_log` is written by
# every ingestion asset (it is bookkeeping, not an asset of its own).
RAW_TABLE_ASSET_OVERRIDES: Mapping[str, str | None] = {
    "local_orders_rejected": "local_orders",
    "ingest_log": None,
}

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_HEADER_KEY = re.compile(r"^--\s*(column\s+[A-Za-z_][A-Za-z0-9_]*|[a-z_]+)\s*:\s*(.*)$")
_KNOWN_KEYS = frozenset(
    {"description", "materialized", "unique_key", "history_key", "state_columns"}
)


class ModelError(ValueError):
    """The SQL project is malformed: a header, a reference or the dependency graph."""


def _check_identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ModelError(f"{what} {name!r} is not a plain lower-case identifier")
    return name


class _Relation:
    """What seeds and models share: a name in a schema."""

    name: str

    @property
    def schema(self) -> str:
        raise NotImplementedError

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Seed(_Relation):
    name: str
    path: Path
    override_env: str | None = None

    @property
    def schema(self) -> str:
        return SEED_SCHEMA

    def source_path(self, environ: Mapping[str, str] | None = None) -> Path:
        """The file to load: the override named by the environment, else the bundled one."""
        env = os.environ if environ is None else environ
        if self.override_env and env.get(self.override_env):
            return Path(env[self.override_env]).expanduser()
        return self.path

    def header(self, path: Path | None = None) -> list[str]:
        with (path or self.path).open(newline="", encoding="utf-8-sig") as handle:
            row = next(csv.reader(handle), [])
        return [column.strip() for column in row]


@dataclass(frozen=True)
class Model(_Relation):
    name: str
    layer: str
    path: Path
    sql: str
    description: str
    materialized: str = "table"
    unique_key: tuple[str, ...] = ()
    history_key: tuple[str, ...] = ()
    state_columns: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    references: frozenset[tuple[str, str]] = frozenset()

    @property
    def schema(self) -> str:
        return self.layer

    @property
    def raw_tables(self) -> frozenset[str]:
        return frozenset(name for schema, name in self.references if schema == RAW_SCHEMA)

    @property
    def seed_deps(self) -> frozenset[str]:
        return frozenset(name for schema, name in self.references if schema == SEED_SCHEMA)

    @property
    def model_deps(self) -> frozenset[str]:
        return frozenset(name for schema, name in self.references if schema in LAYERS)

    @property
    def upstream_assets(self) -> frozenset[str]:
        """Asset keys this model reads: ingestion assets, seeds and other models."""
        raw_assets = {RAW_TABLE_ASSET_OVERRIDES.get(table, table) for table in self.raw_tables}
        return frozenset({name for name in raw_assets if name} | self.seed_deps | self.model_deps)


def parse_header(text: str, path: Path) -> tuple[dict[str, str], dict[str, str], str]:
    """Split a model file into (metadata, column docs, SQL body)."""
    lines = text.splitlines()
    meta: dict[str, str] = {}
    columns: dict[str, str] = {}
    current: tuple[dict[str, str], str] | None = None
    body_start = len(lines)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith("--"):
            body_start = index
            break
        match = _HEADER_KEY.match(stripped)
        if match:
            key, value = match.group(1), match.group(2).strip()
            if key.startswith("column"):
                column = _check_identifier(key.split()[1], f"{path.name}: documented column")
                if column in columns:
                    raise ModelError(f"{path.name}: column {column!r} documented twice")
                columns[column] = value
                current = (columns, column)
            else:
                if key not in _KNOWN_KEYS:
                    raise ModelError(f"{path.name}: unknown header key {key!r}")
                if key in meta:
                    raise ModelError(f"{path.name}: header key {key!r} given twice")
                meta[key] = value
                current = (meta, key)
            continue
        continuation = stripped[2:]
        if current is not None and continuation.startswith("  ") and continuation.strip():
            target, key = current
            target[key] = f"{target[key]} {continuation.strip()}"
            continue
        # Any other comment line ends the header: it belongs to the SQL.
        body_start = index
        break
    return meta, columns, "\n".join(lines[body_start:]).strip()


def _column_list(value: str | None, path: Path, key: str) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(
        _check_identifier(part.strip(), f"{path.name}: {key} column")
        for part in value.split(",")
        if part.strip()
    )


def parse_references(sql: str, path: Path) -> frozenset[tuple[str, str]]:
    """Every (schema, table) the statement reads, CTE names excluded."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise ModelError(f"{path.name}: SQL does not parse: {exc}") from exc
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ModelError(f"{path.name}: a model is exactly one SELECT statement")
    tree = statements[0]
    cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    references: set[tuple[str, str]] = set()
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        schema = table.db.lower()
        if not name:
            continue  # a table function, e.g. unnest(...)
        if not schema:
            if name in cte_names:
                continue
            raise ModelError(
                f"{path.name}: table {name!r} must be schema-qualified "
                f"(raw., seeds., {', '.join(f'{layer}.' for layer in LAYERS)})"
            )
        if table.catalog:
            raise ModelError(f"{path.name}: {table.sql()} names a database; use schema.table")
        references.add((schema, name))
    return frozenset(references)


def _load_model(path: Path, layer: str) -> Model:
    name = _check_identifier(path.stem, "model file name")
    meta, columns, body = parse_header(path.read_text(encoding="utf-8"), path)
    if not meta.get("description"):
        raise ModelError(f"{path.name}: the header needs a `-- description:` line")
    materialized = meta.get("materialized", "table").strip().lower()
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{path.name}: materialized must be one of {sorted(MATERIALIZATIONS)}")
    history_key = _column_list(meta.get("history_key"), path, "history_key")
    if (materialized == "history") != bool(history_key):
        raise ModelError(f"{path.name}: history_key goes with materialized: history, and only it")
    return Model(
        name=name,
        layer=layer,
        path=path,
        sql=body.rstrip().rstrip(";").rstrip(),
        description=meta["description"],
        materialized=materialized,
        unique_key=_column_list(meta.get("unique_key"), path, "unique_key"),
        history_key=history_key,
        state_columns=_column_list(meta.get("state_columns"), path, "state_columns"),
        columns=columns,
        references=parse_references(body, path),
    )


@dataclass(frozen=True)
class Project:
    seeds: Mapping[str, Seed]
    models: Mapping[str, Model]
    order: tuple[str, ...]  # seeds and models, dependencies first

    def node(self, name: str) -> Seed | Model:
        if name in self.seeds:
            return self.seeds[name]
        if name in self.models:
            return self.models[name]
        raise ModelError(f"no seed or model named {name!r}")

    def in_layer(self, layer: str) -> list[Model]:
        return [
            self.models[n] for n in self.order if n in self.models and self.models[n].layer == layer
        ]


def _validate_references(models: Mapping[str, Model], seeds: Mapping[str, Seed]) -> None:
    for model in models.values():
        for schema, name in sorted(model.references):
            qualified = f"{schema}.{name}"
            if schema == RAW_SCHEMA:
                if qualified not in RAW_TABLES:
                    raise ModelError(f"{model.path.name}: {qualified} is not a raw table")
            elif schema == SEED_SCHEMA:
                if name not in seeds:
                    raise ModelError(f"{model.path.name}: no seed file for {qualified}")
            elif schema in LAYERS:
                other = models.get(name)
                if other is None or other.layer != schema:
                    raise ModelError(f"{model.path.name}: no model {qualified}")
                if LAYERS.index(schema) > LAYERS.index(model.layer):
                    raise ModelError(
                        f"{model.path.name}: a {model.layer} model cannot read the later "
                        f"layer {schema}"
                    )
                if name == model.name:
                    raise ModelError(f"{model.path.name}: a model cannot read itself")
            else:
                raise ModelError(f"{model.path.name}: unknown schema in {qualified}")


def _topological_order(models: Mapping[str, Model], seeds: Mapping[str, Seed]) -> tuple[str, ...]:
    """Dependencies first; ties broken by layer, then name, so the order is stable."""
    deps = {name: set() for name in seeds}
    deps.update({name: set(m.seed_deps | m.model_deps) for name, m in models.items()})
    rank = {name: -1 for name in seeds}
    rank.update({name: LAYERS.index(m.layer) for name, m in models.items()})
    done: list[str] = []
    remaining = dict(deps)
    while remaining:
        ready = sorted(
            (n for n, d in remaining.items() if not (d - set(done))),
            key=lambda n: (rank[n], n),
        )
        if not ready:
            raise ModelError(f"dependency cycle among models: {sorted(remaining)}")
        done.append(ready[0])
        del remaining[ready[0]]
    return tuple(done)


def load_project(sql_dir: Path | None = None) -> Project:
    """Read every seed and model file under `sql_dir` (default: the project's `sql/`)."""
    root = sql_dir or SQL_DIR
    seeds: dict[str, Seed] = {}
    for path in sorted((root / SEED_SCHEMA).glob("*.csv")):
        name = _check_identifier(path.stem, "seed file name")
        seeds[name] = Seed(name, path, SEED_OVERRIDES.get(name))
    models: dict[str, Model] = {}
    for layer in LAYERS:
        for path in sorted((root / layer).glob("*.sql")):
            model = _load_model(path, layer)
            if model.name in models or model.name in seeds:
                raise ModelError(f"the name {model.name!r} is used twice under {root}")
            models[model.name] = model
    _validate_references(models, seeds)
    return Project(seeds=seeds, models=models, order=_topological_order(models, seeds))


@functools.cache
def project() -> Project:
    """The project's own `sql/` folder, read once per process."""
    return load_project()


def closure(project_: Project, names: Iterable[str]) -> list[str]:
    """`names` in build order (no upstream added)."""
    wanted = set(names)
    for name in wanted:
        project_.node(name)
    return [name for name in project_.order if name in wanted]
