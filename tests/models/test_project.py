"""The dbt project in `sql/`: layout, docs and tests beside the models, the report contracts,
the vocabularies as seeds, the manifest made without a manual step."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines import sql_project
from pipelines.report_dictionary import report_dictionary_markdown
from pipelines.warehouse import RAW_TABLES

from .helpers import T0, build, query

MODELS = sql_project.SQL_DIR / "models"
LAYERS = ("staging", "reconciliation", "reports")
PROVIDERS = ("esimtrade", "pressone", "local")
# The contract's discrepancy codes (contract.md); the seed may only add to them.
CONTRACT_CODES = {
    "missing_at_provider",
    "missing_locally",
    "status_mismatch",
    "iccid_mismatch",
    "package_mismatch",
    "amount_mismatch",
    "usage_exceeds_volume",
    "duplicate_iccid",
    "invalid_iccid",
    "sync_failed",
    "invalid_transition",
    "usage_regression",
}
CONTRACT_COLUMNS = {
    "discrepancies": [
        "provider",
        "order_no",
        "iccid",
        "discrepancy_type",
        "severity",
        "local_value",
        "provider_value",
        "detected_at",
    ],
    "usage": [
        "provider",
        "order_no",
        "iccid",
        "package_code",
        "state",
        "total_bytes",
        "used_bytes",
        "remaining_bytes",
        "pct_used",
        "last_synced_at",
    ],
    "reconciliation": ["provider", "order_no", "iccid", "match_verdict"],
    "discrepancy_history": ["first_detected_at", "last_seen_at", "resolved_at"],
    "status_transitions": ["from_state", "to_state", "first_seen_at", "is_invalid"],
    "usage_daily": ["provider", "package_code", "usage_date", "used_bytes"],
}


def _model_files() -> dict[str, Path]:
    files = sorted(MODELS.rglob("*.sql"))
    names = [path.stem for path in files]
    assert len(names) == len(set(names)), "a model name is used twice"
    return {path.stem: path for path in files}


def _documented() -> dict[str, tuple[Path, dict]]:
    """model name -> (YAML file, its entry), from the YAML files beside the models."""
    found: dict[str, tuple[Path, dict]] = {}
    for path in MODELS.rglob("*.yml"):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            assert entry["name"] not in found, f"{entry['name']} documented twice"
            found[entry["name"]] = (path, entry)
    return found


def _providers() -> list[str]:
    """The `providers` var of dbt_project.yml: the providers whose staging folders are unioned."""
    project = yaml.safe_load((sql_project.SQL_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return project["vars"]["providers"]


def _sql_body(path: Path) -> str:
    """The SQL without Jinja comments, config blocks and `--` comment lines."""
    text = re.sub(r"\{#.*?#\}", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    text = re.sub(r"\{\{\s*config\(.*?\)\s*\}\}", "", text, flags=re.DOTALL)
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))


def test_layout_one_model_per_file_in_its_layer_and_provider_folder():
    files = _model_files()
    for name, path in files.items():
        layer = path.relative_to(MODELS).parts[0]
        assert layer in LAYERS, path
        prefix = {"staging": "stg_", "reconciliation": "int_", "reports": ""}[layer]
        assert name.startswith(prefix), name
        for provider in PROVIDERS:
            if name.startswith(f"stg_{provider}_"):
                assert path.parent == MODELS / "staging" / provider, path
    assert {"reconciliation", "discrepancies", "usage"} <= set(files)


def test_every_model_is_documented_beside_it_with_the_same_cte_shape():
    files = _model_files()
    documented = _documented()
    assert set(documented) == set(files)
    for name, path in files.items():
        yml, entry = documented[name]
        assert yml.parent == path.parent, f"{name} is documented in {yml}, not beside it"
        assert entry.get("description"), name
        body = _sql_body(path).strip()
        # import CTEs -> logical CTEs -> `final` -> `select * from final`
        assert body.startswith("with"), name
        assert re.search(r"^final as \($", body, re.MULTILINE), name
        assert body.splitlines()[-1] == "select * from final", name


def _names_a_provider(body: str, provider: str) -> bool:
    """Whether shared SQL names `provider`: its models, its name or one of its raw tables
    (`'esimtrade_orders'`, also inside `source('raw', ...)`)."""
    return f"stg_{provider}_" in body or f"'{provider}'" in body or f"'{provider}_" in body


def test_shared_staging_models_name_no_provider():
    # A third provider is a folder of staging models and its name in the `providers` var: the
    # shared staging models union every provider's canonical models through one macro.
    providers = _providers()
    files = _model_files()
    shared = list((MODELS / "staging").glob("*.sql"))
    unioned = set()
    for path in shared:
        body = _sql_body(path)
        for provider in providers:
            assert not _names_a_provider(body, provider), (path.name, provider)
        unioned |= set(re.findall(r"union_provider_models\(\s*'([a-z_]+)'", body))
    assert {"state_history", "usage_history", "known_orders"} <= unioned
    # stg_raw_runs counts each provider's raw rows through its entries views
    unioned |= {"list_entries", "fetch_entries"}
    for provider in providers:
        for suffix in unioned:
            name = f"stg_{provider}_{suffix}"
            assert files[name].parent == MODELS / "staging" / provider, name


def test_shared_findings_name_no_provider():
    # Failed fetches reach sync_failed through each provider's canonical failed_fetches model;
    # int_touched_orders reads each provider's raw lists and fetches through its entries views.
    providers = _providers()
    files = _model_files()
    for path in [*(MODELS / "reconciliation").glob("*.sql"), *(MODELS / "reports").glob("*.sql")]:
        body = _sql_body(path)
        for provider in providers:
            assert not _names_a_provider(body, provider), (path.name, provider)
    assert "union_provider_models('failed_fetches')" in _sql_body(files["int_row_findings"])
    touched = _sql_body(files["int_touched_orders"])
    for suffix in ("list_entries", "fetch_entries"):
        assert re.search(rf"union_provider_models\(\s*'{suffix}'", touched), suffix
    for provider in providers:
        assert files[f"stg_{provider}_failed_fetches"].parent == MODELS / "staging" / provider


def test_models_read_only_sources_and_refs():
    qualified = re.compile(r"\b(raw|seeds|staging|reconciliation|reports)\.[a-z_]+\b")
    for name, path in _model_files().items():
        assert not qualified.search(_sql_body(path)), f"{name}: use source() / ref()"
    sources = yaml.safe_load((MODELS / "staging" / "_sources.yml").read_text(encoding="utf-8"))
    [raw] = sources["sources"]
    assert {f"raw.{t['name']}" for t in raw["tables"]} == set(RAW_TABLES)


def test_complete_load_is_defined_once():
    mentions = [
        path.stem
        for path in [*MODELS.rglob("*.sql"), *(sql_project.SQL_DIR / "macros").rglob("*.sql")]
        if "'complete'" in path.read_text(encoding="utf-8")
    ]
    assert mentions == ["stg_ingest_loads"]


def test_reports_have_enforced_contracts_and_every_column_documented():
    documented = _documented()
    for name, path in _model_files().items():
        if path.parent.name != "reports":
            continue
        _, entry = documented[name]
        columns = {c["name"]: c for c in entry["columns"]}
        assert all(c.get("description") and c.get("data_type") for c in columns.values()), name
        if name != "discrepancy_history":  # a custom materialization: no dbt contract there
            assert entry["config"]["contract"]["enforced"] is True, name
        assert [c for c in columns if c in CONTRACT_COLUMNS.get(name, [])] == CONTRACT_COLUMNS.get(
            name, []
        )


def test_the_discrepancy_vocabulary_is_a_seed():
    types = sql_project.discrepancy_types()
    assert set(sql_project.discrepancy_codes()) == CONTRACT_CODES
    assert {t.severity_rule for t in types} <= {
        "critical",
        "warning",
        "critical_if_money_side_differs",
    }
    assert all(t.description for t in types)
    with (sql_project.SQL_DIR / "seeds" / "discrepancy_types.csv").open() as handle:
        assert next(csv.reader(handle)) == [
            "discrepancy_type",
            "severity_rule",
            "is_disagreement",
            "description",
        ]


def test_only_the_findings_model_names_a_discrepancy_type():
    # A new type is a seed row plus its SQL in int_row_findings: what a type means elsewhere
    # (its severity, whether the sides disagree) is read from the seed.
    codes = sql_project.discrepancy_codes()
    for name, path in _model_files().items():
        if name == "int_row_findings":
            continue
        body = _sql_body(path)
        # int_reconciliation_rows gives an unpaired row the verdict of the same name
        allowed = (
            {"missing_locally", "missing_at_provider"}
            if name == "int_reconciliation_rows"
            else set()
        )
        assert not [c for c in codes if f"'{c}'" in body and c not in allowed], name


def test_a_stale_manifest_is_parsed_again():
    manifest = sql_project.manifest_path()
    model = _model_files()["usage"]
    edited = model.stat().st_mtime
    # the manifest made before the model's last edit (never a time in the future)
    os.utime(manifest, (edited - 5, edited - 5))
    assert sql_project.manifest_is_stale()
    assert sql_project.manifest_path() == manifest
    assert not sql_project.manifest_is_stale()
    nodes = json.loads(manifest.read_text())["nodes"]
    assert "model.esim_recon.usage" in nodes


def test_the_parse_builds_load_lands_in_sql_target_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A build sets DBT_TARGET_PATH for its own artifacts; the parse it may trigger must still
    # refresh the manifest and the kept parse that Dagster and every build load.
    manifest = sql_project.manifest_path()
    monkeypatch.setenv("DBT_TARGET_PATH", str(tmp_path))
    edited = _model_files()["usage"].stat().st_mtime
    os.utime(manifest, (edited - 5, edited - 5))
    assert sql_project.manifest_is_stale()
    assert sql_project.manifest_path() == manifest
    assert not list(tmp_path.iterdir())
    assert (sql_project.TARGET_DIR / "partial_parse.msgpack").exists()
    assert "model.esim_recon.usage" in json.loads(manifest.read_text())["nodes"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    db = tmp_path_factory.mktemp("project") / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    try:
        build(con, run_at=T0)
        yield con
    finally:
        con.close()


def test_reports_carry_their_docs_as_comments(built):
    for name, expected in CONTRACT_COLUMNS.items():
        rows = query(
            built,
            "select column_name, comment from duckdb_columns() "
            "where schema_name = 'reports' and table_name = ? order by column_index",
            [name],
        )
        columns = [r["column_name"] for r in rows]
        assert [c for c in columns if c in expected] == expected, name
        assert all(r["comment"] for r in rows), name
    comments = query(
        built, "select table_name, comment from duckdb_tables() where schema_name = 'reports'"
    )
    assert comments and all(c["comment"] for c in comments)
    seeds = query(built, "select table_name from duckdb_tables() where schema_name = 'seeds'")
    assert {"discrepancy_types", "canonical_states"} <= {s["table_name"] for s in seeds}


def test_report_dictionary_comes_from_the_same_texts(built):
    markdown = report_dictionary_markdown()
    for (name,) in built.execute(
        "select table_name from duckdb_tables() where schema_name = 'reports'"
    ).fetchall():
        assert f"### `reports.{name}`" in markdown
        for row in query(
            built,
            "select column_name, comment from duckdb_columns() "
            "where schema_name = 'reports' and table_name = ?",
            [name],
        ):
            line = f"| `{row['column_name']}` | {row['comment'].replace('|', chr(92) + '|')} |"
            assert line in markdown


def test_seed_types(built):
    types = dict(
        built.execute(
            "select column_name, column_type from (describe seeds.canonical_states)"
        ).fetchall()
    )
    assert types == {
        "state": "VARCHAR",
        "main_line_rank": "INTEGER",
        "is_terminal": "BOOLEAN",
        "is_money_side_exit": "BOOLEAN",
    }


def test_a_local_status_map_without_the_header_fails_naming_the_model(built, tmp_path):
    bad = tmp_path / "map.csv"
    bad.write_text("status,state\nx,active\n")
    with pytest.raises(sql_project.SqlProjectError, match="stg_local_status_map"):
        build(
            built,
            "stg_local_status_map",
            environ={"ESIM_RECON_LOCAL_STATUS_MAP": str(bad)},
            run_at=T0,
        )
    # the failed build left the previous relation in place
    assert query(built, "select count(*) > 0 as kept from staging.stg_local_status_map") == [
        {"kept": True}
    ]


def test_run_at_must_be_timezone_aware(built):
    with pytest.raises(ValueError, match="timezone"):
        build(built, "canonical_states", run_at=T0.replace(tzinfo=None))
