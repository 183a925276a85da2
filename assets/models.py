"""The SQL layer as Dagster assets: the dbt project in `sql/`, loaded by dagster-dbt.

One `@dbt_assets` definition covers every seed and model; a run builds the selected part of the
graph in ONE step (`dbt build`: seeds, models, then their tests). Each seed and model keeps its
own asset key (its name: `reconciliation`, `stg_local_orders`, ...), description, owners and
group (`models`, `reports`, from the project's `meta.dagster`); a model reading `raw.<table>`
depends on the ingestion asset that writes it. dbt tests are the assets' checks.

The step holds the `duckdb` pool's single slot (one writer, see dagster.yaml); dbt runs in the
step's process (dbtRunner, on the project parsed once: pipelines.sql_project) against the
warehouse resource's file, passed as ESIM_RECON_DB (sql/profiles.yml), and dagster-dbt turns its
node results into materializations and check results. After dbt has finished, the
materializations get their row counts and, for the findings, the counts per type and severity
an on-call engineer looks at first.
"""

import contextlib
import io
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DbtProject, dbt_assets
from dagster_dbt.asset_utils import (
    get_manifest_and_translator_from_dbt_assets,
    get_subset_selection_for_context,
)
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage
from dbt_common.events.functions import msg_to_dict

from assets._metadata import markdown_table
from pipelines.incremental import (
    FULL_REFRESH_KIND,
    FULL_REFRESH_TAG,
    KIND_TAG,
    plan_build,
    record_build,
)
from pipelines.money import HEADLINE, MoneyLine, headline, money_lines, summary_json
from pipelines.resources import WarehouseResource
from pipelines.sql_project import (
    SEVERITIES,
    SQL_DIR,
    discrepancy_codes,
    manifest_path,
    run_dbt,
)

_PREVIEW_ROWS = 10
# Every step that opens the warehouse (read-write) takes the pool's single slot (dagster.yaml).
POOL = "duckdb"
DBT_STEP = "sql_models"

# Raw tables are written by ingestion assets named like the table, with two exceptions: the
# rejected local rows come from the `local_orders` asset, and `raw.ingest_log` is written by
# every ingestion asset (bookkeeping, not an asset of its own, so no dependency); so is
# `raw.provider_quarantine` (every provider asset may write it).
RAW_TABLE_ASSETS: Mapping[str, str | None] = {
    "local_orders_rejected": "local_orders",
    "ingest_log": None,
    "provider_quarantine": None,
}
_NO_ASSET = dg.AssetKey(["raw", "ingest_log"])


class SqlTranslator(DagsterDbtTranslator):
    """dbt node -> Dagster asset: keys are plain names, raw sources are the ingestion assets."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        name = dbt_resource_props["name"]
        if dbt_resource_props["resource_type"] == "source":
            asset = RAW_TABLE_ASSETS.get(name, name)
            return _NO_ASSET if asset is None else dg.AssetKey(asset)
        return dg.AssetKey(name)

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        schema = dbt_resource_props.get("schema")
        name = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        return {"relation": f"{schema}.{name}"}

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        kind = dbt_resource_props["resource_type"]
        layer = "seeds" if kind == "seed" else str(dbt_resource_props.get("schema") or kind)
        return {"layer": layer}

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if any(dep.asset_key == _NO_ASSET for dep in spec.deps):
            spec = spec.replace_attributes(
                deps=[dep for dep in spec.deps if dep.asset_key != _NO_ASSET]
            )
        return spec


sql_project = DbtProject(project_dir=SQL_DIR, profiles_dir=SQL_DIR)
translator = SqlTranslator()


def _discrepancy_metadata(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
    codes = discrepancy_codes()
    by_type = dict(
        con.execute(f"select discrepancy_type, count(*) from {relation} group by all").fetchall()
    )
    by_severity = dict(
        con.execute(f"select severity, count(*) from {relation} group by all").fetchall()
    )
    preview_columns = [
        "severity",
        "amount_at_risk",
        "currency",
        "money_direction",
        "discrepancy_type",
        "provider",
        "order_no",
        "iccid",
        "local_value",
        "provider_value",
        "detected_at",
    ]
    preview = con.execute(
        f"select {', '.join(preview_columns)} from {relation} "
        "order by case severity when 'critical' then 0 else 1 end, amount_at_risk desc, "
        "detected_at, "
        "provider, order_no, iccid, discrepancy_type limit $rows",
        {"rows": _PREVIEW_ROWS},
    ).fetchall()
    return {
        "by_type": dg.MetadataValue.json({t: by_type.get(t, 0) for t in codes}),
        "by_severity": dg.MetadataValue.json({s: by_severity.get(s, 0) for s in SEVERITIES}),
        **{f"type/{t}": dg.MetadataValue.int(by_type.get(t, 0)) for t in codes},
        **{f"severity/{s}": dg.MetadataValue.int(by_severity.get(s, 0)) for s in SEVERITIES},
        **_money_metadata(money_lines(con, relation)),
        "preview": dg.MetadataValue.md(
            markdown_table(preview_columns, preview) if preview else "_no findings_"
        ),
    }


def _money_metadata(lines: list[MoneyLine]) -> dict:
    """The money at risk: the headline figures (USD, what the contract's amounts are in), every
    direction as JSON and a small table."""
    figures = headline(lines)
    return {
        **{
            f"money/{direction}_usd": dg.MetadataValue.float(
                float(Decimal(figures[direction].get("USD", "0.00")))
            )
            for direction, _label in HEADLINE
        },
        "money_at_risk": dg.MetadataValue.json(summary_json(lines)),
        "money_preview": dg.MetadataValue.md(
            markdown_table(
                ["money_direction", "currency", "findings", "amount"],
                [(m.direction, m.currency, m.findings, f"{m.amount:.2f}") for m in lines],
            )
            if lines
            else "_no findings_"
        ),
    }


def _money_at_risk_metadata(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
    return _money_metadata(money_lines(con, relation))


def _verdict_metadata(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
    by_verdict = dict(
        con.execute(f"select match_verdict, count(*) from {relation} group by all").fetchall()
    )
    return {
        "by_verdict": dg.MetadataValue.json({str(k): v for k, v in sorted(by_verdict.items())}),
        **{f"verdict/{k}": dg.MetadataValue.int(v) for k, v in by_verdict.items()},
    }


def _episode_metadata(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
    row = con.execute(
        f"select count(*) filter (where resolved_at is null), "
        f"count(*) filter (where resolved_at is not null) from {relation}"
    ).fetchone()
    open_episodes, resolved = row if row else (0, 0)
    return {
        "episodes/open": dg.MetadataValue.int(open_episodes),
        "episodes/resolved": dg.MetadataValue.int(resolved),
    }


# Extra metadata per model, beyond the row count: what an on-call engineer looks at first.
_EXTRA_METADATA = {
    "discrepancies": _discrepancy_metadata,
    "reconciliation": _verdict_metadata,
    "discrepancy_history": _episode_metadata,
    "money_at_risk": _money_at_risk_metadata,
}


def _table_relations(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in con.execute(
            "select schema_name, table_name from duckdb_tables()"
        ).fetchall()
    }


def _relation_of(assets_def: dg.AssetsDefinition, output_name: str) -> str | None:
    key = assets_def.keys_by_output_name[output_name]
    value = assets_def.specs_by_key[key].metadata.get("relation")
    return str(getattr(value, "value", value)) if value is not None else None


def _with_metadata(
    events: list[Any], assets_def: dg.AssetsDefinition, warehouse: WarehouseResource
) -> Iterator[Any]:
    """The dbt events, materializations enriched from the warehouse (read once dbt is done)."""
    outputs = [event for event in events if isinstance(event, dg.Output)]
    extra: dict[int, dict] = {}
    if outputs:
        with warehouse.connect() as con:
            tables = _table_relations(con)
            for event in outputs:
                relation = _relation_of(assets_def, event.output_name)
                if relation not in tables:
                    continue  # a view: counting it would run it
                row = con.execute(f"select count(*) from {relation}").fetchone()
                metadata: dict = {
                    "dagster/row_count": dg.MetadataValue.int(int(row[0]) if row else 0)
                }
                name = relation.split(".", 1)[1]
                if name in _EXTRA_METADATA:
                    metadata.update(_EXTRA_METADATA[name](con, relation))
                extra[id(event)] = metadata
    for event in events:
        if isinstance(event, dg.Output) and id(event) in extra:
            yield event.with_metadata({**event.metadata, **extra[id(event)]})
        else:
            yield event


# The dbt events that carry a node's result: dagster-dbt turns them into materializations and
# check results.
_RESULT_EVENTS = frozenset(
    {"LogSeedResult", "LogModelResult", "LogSnapshotResult", "LogTestResult"}
)


class _DbtEvents:
    """What a dbt invocation reported while it ran: node results (as dbt's structured-log
    dicts) and its log lines."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def __call__(self, event: Any) -> None:
        name = event.info.name
        if name in _RESULT_EVENTS:
            self.results.append(msg_to_dict(event))
        if event.info.level in ("info", "warn", "error"):
            self.lines.append(event.info.msg)


class _DbtProject:
    """The step's dbt project as dagster-dbt holds it: its manifest and translator."""

    def __init__(self, context: AssetExecutionContext) -> None:
        self.context = context
        self.manifest, self.translator, _project = get_manifest_and_translator_from_dbt_assets(
            [context.assets_def]
        )

    def selection(self) -> list[str]:
        """dbt's selection arguments for the assets and checks this step was asked for (none
        when it was asked for all of them)."""
        args, indirect_selection = get_subset_selection_for_context(
            context=self.context,
            manifest=self.manifest,
            select=None,
            exclude=None,
            selector=None,
            dagster_dbt_translator=self.translator,
            current_dbt_indirect_selection_env=None,
        )
        if indirect_selection:
            args = [*args, "--indirect-selection", indirect_selection]
        return args

    def dagster_events(self, events: _DbtEvents) -> list[Any]:
        """dbt's node results as Dagster events: an output per model and seed built, a check
        result per test run (dagster-dbt's own translation of dbt's structured log)."""
        return [
            dagster_event
            for raw in events.results
            for dagster_event in DbtCoreCliEventMessage(
                raw_event=raw, event_history_metadata={}
            ).to_default_asset_events(
                manifest=self.manifest,
                dagster_dbt_translator=self.translator,
                context=self.context,
                project=sql_project,
            )
        ]


@dbt_assets(
    manifest=manifest_path(),
    project=sql_project,
    dagster_dbt_translator=translator,
    name=DBT_STEP,
    pool=POOL,
)
def sql_models(context: AssetExecutionContext, warehouse: WarehouseResource) -> Iterator[Any]:
    """`dbt build` of the selected seeds and models, with their tests, in one step: on the
    orders touched since the last recorded build when it can be (pipelines.incremental)."""
    tags = context.run.tags
    whole_graph = set(context.selected_asset_keys) >= set(context.assets_def.keys)
    # the file exists and has its raw schema, even before any ingestion ran
    with warehouse.connect() as con:
        plan = plan_build(
            con,
            full_refresh_requested=tags.get(FULL_REFRESH_TAG) == "true"
            or tags.get(KIND_TAG) == FULL_REFRESH_KIND,
            whole_graph=whole_graph,
        )
    context.log.info(
        f"dbt build: {'full refresh' if plan.full_refresh else 'incremental'} ({plan.reason})"
    )
    database = str(Path(warehouse.database).resolve())
    if plan.staging_first:
        # An order batch left staging with the touched orders only: whole again first.
        first = run_dbt(database, plan.staging_args(), environ=plan.environ())
        if not first.success:
            raise dg.Failure(description="dbt run of staging failed: " + "; ".join(first.failures))
    # dbt runs in this process on the project parsed once (pipelines.sql_project): no dbt
    # process to start and no parse per run.
    project = _DbtProject(context)
    events = _DbtEvents()
    # dbt prints its errors too; the CLI prints its own summary, so dbt's lines go to the
    # run's event log (the Dagster UI) in one message instead.
    with contextlib.redirect_stdout(io.StringIO()):
        outcome = run_dbt(
            database,
            plan.build_args(["build", *project.selection()]),
            environ=plan.environ(),
            on_event=events,
        )
    context.log.debug("\n".join(events.lines))
    if outcome.success and plan.whole_graph:
        with warehouse.connect() as con:
            record_build(con, plan)
    yield from _with_metadata(project.dagster_events(events), context.assets_def, warehouse)
    if not outcome.success:
        raise dg.Failure(
            description="dbt build failed: " + ("; ".join(outcome.failures) or "see the dbt log"),
        )


model_assets = [sql_models]
# dbt tests are checks of `sql_models` itself (dagster-dbt turns each into an asset check).
model_checks: list[dg.AssetChecksDefinition] = []

__all__ = ["DBT_STEP", "POOL", "model_assets", "model_checks", "sql_models", "translator"]
