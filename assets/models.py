"""One Dagster asset per seed and per SQL model under `sql/`, generated from the files.

Asset key = file stem; dependencies come from the SQL (see `pipelines.models`). Groups as the UI
shows them: `models` (seeds, staging, reconciliation) and `reports`; the layer folder is the tag
`layer`. Each materialization (re)builds one relation through `pipelines.models.build`.
Asset checks are generated from the model headers (`unique_key`, `state_columns`) plus two
contract checks: reconciliation coverage and the discrepancy codes.
"""

from decimal import Decimal

import dagster as dg
import duckdb

from assets._metadata import markdown_table
from pipelines.models import (
    DISCREPANCY_TYPES,
    SEVERITIES,
    Model,
    Seed,
    build,
    project,
)
from pipelines.money import HEADLINE, MoneyLine, headline, money_lines, summary_json
from pipelines.resources import WarehouseResource

_PREVIEW_ROWS = 10
# Every step that opens the warehouse (read-write) takes the pool's single slot (dagster.yaml).
POOL = "duckdb"


def _discrepancy_metadata(con: duckdb.DuckDBPyConnection, relation: str) -> dict:
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
        "by_type": dg.MetadataValue.json({t: by_type.get(t, 0) for t in DISCREPANCY_TYPES}),
        "by_severity": dg.MetadataValue.json({s: by_severity.get(s, 0) for s in SEVERITIES}),
        **{f"type/{t}": dg.MetadataValue.int(by_type.get(t, 0)) for t in DISCREPANCY_TYPES},
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


def _group(layer: str) -> str:
    return "reports" if layer == "reports" else "models"


def _node_asset(node: Seed | Model) -> dg.AssetsDefinition:
    if isinstance(node, Seed):
        deps: list[dg.AssetKey] = []
        layer = "seeds"
        kinds = {"duckdb", "csv"}
        description = (
            f"Reference data from sql/seeds/{node.path.name}, loaded into {node.relation}."
        )
    else:
        deps = [dg.AssetKey(name) for name in sorted(node.upstream_assets)]
        layer = node.layer
        kinds = {"duckdb", "sql"}
        description = node.description

    @dg.asset(
        key=dg.AssetKey(node.name),
        deps=deps,
        group_name=_group(layer),
        kinds=kinds,
        description=description,
        owners=["team:data"],
        tags={"layer": layer},
        metadata={"relation": node.relation},
        pool=POOL,
    )
    def _materialize(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            results = build(con, [node.name])  # stamped with the time of the build
            result = next(r for r in results if r.name == node.name)
            metadata: dict = {
                "dagster/row_count": dg.MetadataValue.int(result.rows),
                "relation": dg.MetadataValue.text(result.relation),
                "materialized": dg.MetadataValue.text(result.kind),
            }
            extra = _EXTRA_METADATA.get(node.name)
            if extra is not None:
                metadata.update(extra(con, result.relation))
        return dg.MaterializeResult(metadata=metadata)

    return _materialize


def _check(
    asset: str,
    name: str,
    description: str,
    sql: str,
    failure: str,
    params: dict | None = None,
) -> dg.AssetChecksDefinition:
    """A check passing when `sql`, `params` bound, returns no rows; failing rows go to metadata."""

    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name=name,
        description=description,
        pool=POOL,
    )
    def _run(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect() as con:
            cursor = con.execute(f"select * from ({sql}) limit 21", params or {})
            columns = [c[0] for c in cursor.description]
            rows = cursor.fetchall()
        passed = not rows
        metadata = {"failing_examples": dg.MetadataValue.md(markdown_table(columns, rows[:20]))}
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if passed else failure,
            metadata={} if passed else metadata,
        )

    return _run


def _model_checks(model: Model) -> list[dg.AssetChecksDefinition]:
    checks = []
    if model.unique_key:
        keys = ", ".join(model.unique_key)
        checks.append(
            _check(
                model.name,
                "unique_key",
                f"({keys}) is unique in {model.relation}.",
                f"select {keys}, count(*) as copies from {model.relation} "
                "group by all having count(*) > 1",
                f"duplicate ({keys}) in {model.relation}",
            )
        )
    if model.state_columns:
        columns = ", ".join(model.state_columns)
        checks.append(
            _check(
                model.name,
                "accepted_states",
                f"{columns} hold only canonical states (seeds.canonical_states).",
                # UNPIVOT names each value's column and leaves out the nulls.
                f"select column_name, state, count(*) as rows from (unpivot (select {columns} "
                f"from {model.relation}) on {columns} into name column_name value state) "
                "where state not in (select state from seeds.canonical_states) group by all",
                f"values outside the canonical states in {model.relation}",
            )
        )
    return checks


_COVERAGE_SQL = """
with
local_rows as (select line_no from staging.stg_local_orders),
provider_esims as (select provider, order_no, esim_key from reconciliation.int_provider_esims),
report_local as (
    select local_line_no, count(*) as copies
    from reports.reconciliation where local_line_no is not null group by local_line_no
),
report_provider as (
    select provider, order_no, provider_esim_key, count(*) as copies
    from reports.reconciliation where provider_esim_key is not null group by all
)
select 'local row' as side, cast(local_rows.line_no as varchar) as item,
       coalesce(report_local.copies, 0) as copies
from local_rows left join report_local on report_local.local_line_no = local_rows.line_no
where coalesce(report_local.copies, 0) <> 1
union all
select 'local row (unknown)', cast(report_local.local_line_no as varchar), report_local.copies
from report_local left join local_rows on local_rows.line_no = report_local.local_line_no
where local_rows.line_no is null
union all
select 'provider eSIM', provider_esims.provider || ':' || provider_esims.order_no || ':'
       || provider_esims.esim_key, coalesce(report_provider.copies, 0)
from provider_esims left join report_provider
    on report_provider.provider = provider_esims.provider
    and report_provider.order_no = provider_esims.order_no
    and report_provider.provider_esim_key = provider_esims.esim_key
where coalesce(report_provider.copies, 0) <> 1
union all
select 'provider eSIM (unknown)', report_provider.provider || ':' || report_provider.order_no
       || ':' || report_provider.provider_esim_key, report_provider.copies
from report_provider left join provider_esims
    on provider_esims.provider = report_provider.provider
    and provider_esims.order_no = report_provider.order_no
    and provider_esims.esim_key = report_provider.provider_esim_key
where provider_esims.esim_key is null
"""


def _contract_checks() -> list[dg.AssetChecksDefinition]:
    checks = [
        _check(
            "reconciliation",
            "coverage",
            "Every latest local row and every provider eSIM appears exactly once in "
            "reports.reconciliation.",
            _COVERAGE_SQL,
            "rows missing from, repeated in or unknown to reports.reconciliation",
        )
    ]
    for asset in ("discrepancies", "discrepancy_history"):
        checks.append(
            _check(
                asset,
                "discrepancy_codes",
                "discrepancy_type holds only the contract's twelve codes; severity is "
                "critical or warning.",
                f"select discrepancy_type, severity, count(*) as rows from reports.{asset} "
                "where not list_contains($codes, discrepancy_type) "
                "or not list_contains($severities, severity) group by all",
                f"unknown discrepancy codes or severities in reports.{asset}",
                {"codes": list(DISCREPANCY_TYPES), "severities": list(SEVERITIES)},
            )
        )
    return checks


def _build_definitions() -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    proj = project()
    assets = [_node_asset(proj.node(name)) for name in proj.order]
    checks: list[dg.AssetChecksDefinition] = []
    for name in proj.order:
        if name in proj.models:
            checks.extend(_model_checks(proj.models[name]))
    checks.extend(_contract_checks())
    return assets, checks


model_assets, model_checks = _build_definitions()

__all__ = ["model_assets", "model_checks"]
