"""The Dagster assets and checks generated from `sql/`, materialized in-process."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.models import model_assets, model_checks, sql_models
from assets.reports import report_assets
from pipelines.resources import ExportsResource, WarehouseResource
from pipelines.sql_project import discrepancy_codes

from .helpers import MB, T0, RawLayer, list_row, local_row, sync_row

ALL = [*model_assets, *model_checks, *report_assets]
SPECS = {key.to_user_string(): spec for key, spec in sql_models.specs_by_key.items()}


def test_one_asset_per_seed_and_model_with_its_docs_owner_and_group():
    models = {p.stem: p for p in Path("sql/models").rglob("*.sql")}
    # an ephemeral model is no relation: dbt inlines it into the models reading it
    inlined = {n for n, p in models.items() if "materialized='ephemeral'" in p.read_text()}
    seeds = {p.stem for p in Path("sql/seeds").glob("*.csv")}
    assert {"stg_esimtrade_list_entries", "stg_pressone_fetch_entries"} <= inlined
    assert set(SPECS) == (set(models) - inlined) | seeds
    for name, spec in SPECS.items():
        layer = "seeds" if name in seeds else models[name].relative_to("sql/models").parts[0]
        assert spec.group_name == ("reports" if layer == "reports" else "models"), name
        assert spec.tags["layer"] == layer
        assert spec.owners == ["team:data"], name
        assert spec.description and not spec.description.lstrip().startswith("with"), name
        assert {"dbt", "duckdb"} <= set(spec.kinds)
        schema = "seeds" if layer == "seeds" else layer
        assert spec.metadata["relation"] == f"{schema}.{name}"


def test_the_whole_graph_is_one_step_in_the_duckdb_pool():
    assert model_assets == [sql_models]
    assert sql_models.op.pool == "duckdb"
    assert sql_models.can_subset


def test_dependencies_come_from_the_sql():
    deps = {name: {d.asset_key.to_user_string() for d in spec.deps} for name, spec in SPECS.items()}
    # int_touched_orders: which orders an incremental build reads (macros/order_batch.sql)
    assert deps["stg_local_orders"] == {
        "local_orders",
        "stg_ingest_loads",
        "stg_local_status_map",
        "int_touched_orders",
    }
    assert deps["stg_esimtrade_sync_attempts"] == {
        "esimtrade_order_syncs",
        "canonical_status_map",
        "int_touched_orders",
    }
    assert deps["discrepancies"] == {"discrepancy_history"}
    assert "pressone_usage" in deps["stg_pressone_usage_attempts"]
    # raw.ingest_log is bookkeeping written by every ingestion asset, not an asset
    assert deps["stg_ingest_loads"] == set()
    [exports] = report_assets
    assert {k.to_user_string() for k in exports.dependency_keys} == {
        "reconciliation",
        "discrepancies",
        "usage",
        "usage_daily",
        "status_transitions",
        "money_at_risk",
        "finance_actions",
    }
    assert deps["money_at_risk"] == {"discrepancies"}
    assert {"int_finding_money", "money_rules"} <= set(deps["discrepancy_history"]) | set(
        deps["int_finding_money"]
    )


def test_dbt_tests_are_asset_checks():
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in sql_models.check_keys}
    assert {
        "stg_local_orders:stg_local_orders_unique_key",
        "usage:usage_unique_key",
        "reconciliation:reconciliation_accepted_states_provider_state",
        "reconciliation:reconciliation_local_coverage",
        "reconciliation:reconciliation_provider_coverage",
        "discrepancies:discrepancies_discrepancy_codes",
        "discrepancy_history:discrepancy_history_discrepancy_codes",
    } <= checks


def _materializations(result: dg.ExecuteInProcessResult, key: str) -> list:
    """The materializations of one asset (the dbt step materializes many)."""
    return [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == dg.AssetKey(key)
    ]


def _materialize(db: Path, selection=None, assets=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets or ALL,
        selection=selection,
        resources={
            "warehouse": WarehouseResource(database=str(db)),
            "exports": ExportsResource(directory=str(db.parent / "exports")),
        },
        raise_on_error=False,
    )


def _plant(db: Path) -> None:
    con = duckdb.connect(str(db))
    raw = RawLayer(con)
    raw.local_orders(
        [
            local_row("B1", "8944000000000000001"),
            local_row("B2", "8944000000000000002", status="cancelled"),
        ]
    )
    raw.esimtrade_orders([list_row(order_no) for order_no in ("B1", "B2", "B3")])
    raw.esimtrade_syncs(
        [sync_row("B1", "t1", "8944000000000000001", total_volume=100 * MB, order_usage=10 * MB)]
    )
    con.close()


@pytest.fixture(scope="module")
def materialized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("dagster")
    db = folder / "warehouse.duckdb"
    empty = _materialize(db, assets=[*model_assets, *report_assets])
    _plant(db)
    planted = _materialize(db)
    yield {"db": db, "folder": folder, "empty": empty, "planted": planted}


def test_materialize_on_an_empty_raw_layer(materialized):
    result = materialized["empty"]
    assert result.success
    rows = _materializations(result, "reconciliation")[0].metadata
    assert rows["dagster/row_count"].value == 0


def test_materialize_with_data_passes_every_check(materialized):
    result = materialized["planted"]
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == len(sql_models.check_keys)
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_discrepancies_metadata_counts_and_preview(materialized):
    [event] = _materializations(materialized["planted"], "discrepancies")
    metadata = event.metadata
    assert metadata["dagster/row_count"].value == 2
    by_type = metadata["by_type"].value
    assert set(by_type) == set(discrepancy_codes())
    assert by_type["status_mismatch"] == 1 and by_type["missing_locally"] == 1
    assert metadata["by_severity"].value == {"critical": 2, "warning": 0}
    preview = metadata["preview"].value
    assert preview.splitlines()[0].startswith("| severity | amount_at_risk | currency")
    assert "missing_locally" in preview and "status_mismatch" in preview
    # B2 was refunded locally but is in use at the provider (lost); B3 is unrecorded.
    assert metadata["money/lost_cost_usd"].value == 1.0
    assert metadata["money/recoverable_usd"].value == 0.0
    directions = {
        line["money_direction"]: (line["findings"], line["amount"])
        for line in metadata["money_at_risk"].value["by_direction"]
    }
    assert directions == {"lost_cost": (1, "1.00"), "unrecorded_cost": (1, "1.00")}


def test_money_at_risk_asset_carries_the_headline(materialized):
    [event] = _materializations(materialized["planted"], "money_at_risk")
    metadata = event.metadata
    assert metadata["money_at_risk"].value["headline"] == {
        "recoverable": {"USD": "0.00"},
        "customer_exposure": {"USD": "0.00"},
        "lost_cost": {"USD": "1.00"},
    }
    assert "| lost_cost | USD | 1 | 1.00 |" in metadata["money_preview"].value


def test_report_exports_asset_writes_the_files(materialized):
    exports = materialized["folder"] / "exports"
    names = sorted(p.name for p in exports.iterdir())
    charts = ["charts.html", "discrepancy_trend.png", "money_trend.png", "usage_daily.png"]
    assert names == sorted(
        charts
        + [
            f"{stem}.{ext}"
            for stem in (
                "reconciliation",
                "discrepancies",
                "usage",
                "usage_daily",
                "status_transitions",
                "money_at_risk",
                "finance_actions",
            )
            for ext in ("csv", "parquet")
        ]
    )
    with (exports / "discrepancies.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["discrepancy_type"] for r in rows} == {"status_mismatch", "missing_locally"}


def _planted_check_failures(materialized, tmp_path: Path, sql: str) -> set[str]:
    db = tmp_path / "copy.duckdb"
    shutil.copy(materialized["db"], db)
    con = duckdb.connect(str(db))
    con.execute(sql)
    con.close()
    result = _materialize(db, selection=dg.AssetSelection.all_asset_checks())
    return {
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }


def test_checks_fail_on_planted_problems(materialized, tmp_path):
    failures = _planted_check_failures(
        materialized,
        tmp_path,
        """
        insert into staging.stg_local_orders select * from staging.stg_local_orders limit 1;
        insert into reports.usage select * from reports.usage limit 1;
        update reports.reconciliation set provider_state = 'activ' where row_id = 'L2';
        update reports.discrepancies set discrepancy_type = 'weird'
            where discrepancy_type = 'missing_locally';
        -- the same provider eSIM a second time, under another row id
        insert into reports.reconciliation
        select * replace ('X' || row_id as row_id) from reports.reconciliation
        where provider_esim_key is not null and local_line_no is not null limit 1;
        """,
    )
    assert failures == {
        "stg_local_orders:stg_local_orders_unique_key",
        "usage:usage_unique_key",
        "reconciliation:reconciliation_accepted_states_provider_state",
        "reconciliation:reconciliation_local_coverage",
        "reconciliation:reconciliation_provider_coverage",
        "discrepancies:discrepancies_discrepancy_codes",
    }


def test_a_selection_builds_those_models_and_runs_their_checks_only(materialized, tmp_path):
    db = tmp_path / "subset.duckdb"
    shutil.copy(materialized["db"], db)
    con = duckdb.connect(str(db))
    # a local line the previous build did not see: only a rebuild of the selection shows it
    RawLayer(con).local_orders(
        [
            local_row("B1", "8944000000000000001"),
            local_row("B2", "8944000000000000002", status="cancelled"),
            local_row("B9", "8944000000000000009"),
        ],
        run_id="run-2",
        at=T0 + timedelta(hours=1),
    )
    con.close()
    selected = ["stg_local_orders", "stg_local_status_map"]
    result = _materialize(db, selection=dg.AssetSelection.assets(*selected))
    assert result.success
    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert built == set(selected)
    checked = {e.asset_key.to_user_string() for e in result.get_asset_check_evaluations()}
    assert checked == set(selected)
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {
        k.name for k in sql_models.check_keys if k.asset_key.to_user_string() in selected
    }
    con = duckdb.connect(str(db), read_only=True)
    try:
        orders = {
            r[0] for r in con.execute("select order_no from staging.stg_local_orders").fetchall()
        }
        reported = {
            r[0] for r in con.execute("select order_no from reports.reconciliation").fetchall()
        }
    finally:
        con.close()
    assert "B9" in orders
    assert "B9" not in reported  # not selected, so not rebuilt
