"""The SQL project: discovery, headers, dependencies from the SQL, the runner, documentation."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.models import (
    LAYERS,
    ModelError,
    build,
    load_project,
    project,
    report_dictionary_markdown,
)

from .helpers import T0, query

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


def test_project_layout():
    proj = project()
    assert {m.layer for m in proj.models.values()} == set(LAYERS)
    assert set(CONTRACT_COLUMNS) <= {m.name for m in proj.in_layer("reports")}
    for model in proj.models.values():
        prefix = {"staging": "stg_", "reconciliation": "int_", "reports": ""}[model.layer]
        assert model.name.startswith(prefix), model.name
        assert model.description and "\n" not in model.description
    # dependencies first
    position = {name: i for i, name in enumerate(proj.order)}
    for model in proj.models.values():
        for dep in model.model_deps | model.seed_deps:
            assert position[dep] < position[model.name]


def test_every_model_has_the_same_shape():
    # import CTEs -> logical CTEs -> `final` -> `select * from final`
    for model in project().models.values():
        assert model.sql.lstrip().startswith(("with", "--")), model.name
        assert re.search(r"^final as \($", model.sql, re.MULTILINE), model.name
        assert model.sql.splitlines()[-1] == "select * from final", model.name


def test_raw_tables_map_to_their_ingestion_assets():
    proj = project()
    assert proj.models["stg_local_orders"].raw_tables == {"local_orders"}
    assert "local_orders" in proj.models["stg_local_orders"].upstream_assets
    # raw.ingest_log is bookkeeping, not an asset
    assert proj.models["stg_ingest_loads"].raw_tables == {"ingest_log"}
    assert proj.models["stg_ingest_loads"].upstream_assets == frozenset()


def test_reports_have_the_contract_columns_and_comments(con):
    build(con, run_at=T0)
    for name, expected in CONTRACT_COLUMNS.items():
        rows = query(
            con,
            "select column_name, comment from duckdb_columns() "
            "where schema_name = 'reports' and table_name = ? order by column_index",
            [name],
        )
        columns = [r["column_name"] for r in rows]
        assert [c for c in columns if c in expected] == expected, name
        assert all(r["comment"] for r in rows), name
    comments = query(
        con, "select table_name, comment from duckdb_tables() where schema_name = 'reports'"
    )
    assert all(c["comment"] for c in comments)


def test_report_dictionary_comes_from_the_same_texts(con):
    build(con, run_at=T0)
    markdown = report_dictionary_markdown()
    for model in project().in_layer("reports"):
        assert f"### `{model.relation}`" in markdown
        for row in query(
            con,
            "select column_name, comment from duckdb_columns() "
            "where schema_name = 'reports' and table_name = ?",
            [model.name],
        ):
            line = f"| `{row['column_name']}` | {row['comment'].replace('|', chr(92) + '|')} |"
            assert line in markdown


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "sql"
    for folder in ("seeds", *LAYERS):
        (root / folder).mkdir(parents=True)
    (root / "seeds" / "colours.csv").write_text("name,is_warm,hue_rank\nred,true,1\nblue,false,\n")
    for relative, text in files.items():
        (root / relative).write_text(text)
    return root


GOOD_STAGING = """-- description: Colours, typed.
-- unique_key: name
with
colours as (
    select * from seeds.colours
),
final as (
    select * from colours
)
select * from final
"""


def test_dependencies_and_seed_types_from_a_small_project(tmp_path, con):
    root = _project(
        tmp_path,
        {
            "staging/stg_colours.sql": GOOD_STAGING,
            "reports/palette.sql": "-- description: The palette.\n"
            "-- column name: Colour name.\n"
            "-- column is_warm: Warm or not.\n"
            "-- column hue_rank: Order on the wheel.\n"
            "with c as (select * from staging.stg_colours)\nselect * from c\n",
        },
    )
    proj = load_project(root)
    assert proj.order == ("colours", "stg_colours", "palette")
    assert proj.models["palette"].model_deps == {"stg_colours"}
    results = build(con, project_=proj, run_at=T0)
    assert [(r.name, r.rows) for r in results] == [
        ("colours", 2),
        ("stg_colours", 2),
        ("palette", 2),
    ]
    types = dict(
        con.execute("select column_name, column_type from (describe seeds.colours)").fetchall()
    )
    assert types == {"name": "VARCHAR", "is_warm": "BOOLEAN", "hue_rank": "INTEGER"}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"staging/stg_x.sql": "-- description: x\nselect * from colours\n"}, "schema-qualified"),
        ({"staging/stg_x.sql": "-- description: x\nselect * from raw.nope\n"}, "not a raw table"),
        ({"staging/stg_x.sql": "select 1 as x\n"}, "description"),
        (
            {"staging/stg_x.sql": "-- description: x\n-- materialised: view\nselect 1\n"},
            "unknown header key",
        ),
        ({"staging/stg_x.sql": "-- description: x\nselect 1; select 2\n"}, "exactly one"),
        (
            {
                "staging/stg_x.sql": "-- description: x\nselect * from reports.r\n",
                "reports/r.sql": "-- description: r\nselect 1 as a\n",
            },
            "later layer",
        ),
        ({"staging/Bad-Name.sql": "-- description: x\nselect 1\n"}, "identifier"),
        ({"staging/colours.sql": "-- description: x\nselect 1\n"}, "used twice"),
        (
            {
                "staging/stg_a.sql": "-- description: a\nselect * from staging.stg_b\n",
                "staging/stg_b.sql": "-- description: b\nselect * from staging.stg_a\n",
            },
            "cycle",
        ),
    ],
)
def test_malformed_projects_are_rejected(tmp_path, files, message):
    root = _project(tmp_path, files)
    with pytest.raises(ModelError, match=message):
        load_project(root)


def test_reports_must_document_every_column(tmp_path, con):
    root = _project(
        tmp_path,
        {"reports/r.sql": "-- description: r\n-- column a: A.\nselect 1 as a, 2 as b\n"},
    )
    with pytest.raises(ModelError, match=re.escape("['b']")):
        build(con, project_=load_project(root), run_at=T0)
    # the failed model left nothing behind
    assert query(con, "select count(*) as n from duckdb_tables() where table_name = 'r'") == [
        {"n": 0}
    ]


def test_a_failing_model_keeps_its_previous_relation(tmp_path, con):
    root = _project(tmp_path, {"staging/stg_colours.sql": GOOD_STAGING})
    build(con, project_=load_project(root), run_at=T0)
    (root / "staging" / "stg_colours.sql").write_text(
        "-- description: broken\nselect cast('x' as integer) as n from seeds.colours\n"
    )
    with pytest.raises(duckdb.Error):
        build(con, ["stg_colours"], project_=load_project(root), run_at=T0)
    assert query(con, "select count(*) as n from staging.stg_colours") == [{"n": 2}]


def test_building_one_model_loads_missing_seeds(tmp_path, con):
    root = _project(tmp_path, {"staging/stg_colours.sql": GOOD_STAGING})
    results = build(con, ["stg_colours"], project_=load_project(root), run_at=T0)
    assert [r.name for r in results] == ["colours", "stg_colours"]
    # once the seed exists, building the model alone does not reload it
    results = build(con, ["stg_colours"], project_=load_project(root), run_at=T0)
    assert [r.name for r in results] == ["stg_colours"]


def test_a_seed_override_must_keep_the_header(tmp_path, con):
    bad = tmp_path / "map.csv"
    bad.write_text("status,state\nx,active\n")
    with pytest.raises(ModelError, match="must have the header"):
        build(
            con,
            ["local_status_map"],
            environ={"ESIM_RECON_LOCAL_STATUS_MAP": str(bad)},
            run_at=T0,
        )


def test_history_key_must_be_unique(tmp_path, con):
    root = _project(
        tmp_path,
        {
            "reports/h.sql": "-- description: h\n-- materialized: history\n"
            "-- history_key: k\n-- column k: K.\n-- column first_detected_at: F.\n"
            "-- column last_seen_at: L.\n-- column resolved_at: R.\n"
            "select 1 as k union all select 1\n",
        },
    )
    with pytest.raises(ModelError, match="unique"):
        build(con, project_=load_project(root), run_at=T0)


def test_history_of_many_rows_is_seen_by_the_next_model(tmp_path, con):
    # More rows than one DuckDB row group, built twice in one session: the second build must
    # find every open episode, and a model downstream must see them.
    history = (
        "-- description: h\n-- materialized: history\n-- history_key: k\n"
        "-- column k: K.\n-- column first_detected_at: F.\n"
        "-- column last_seen_at: L.\n-- column resolved_at: R.\n"
        "select range as k from range(200000)\n"
    )
    current = (
        "-- description: c\n-- column k: K.\n-- column detected_at: D.\n"
        "with h as (select * from reports.h)\n"
        "select k, first_detected_at as detected_at from h where resolved_at is null\n"
    )
    proj = load_project(_project(tmp_path, {"reports/h.sql": history, "reports/c.sql": current}))
    first = build(con, project_=proj, run_at=T0)
    second = build(con, project_=proj, run_at=T0 + timedelta(hours=1))
    assert [(r.name, r.rows) for r in first] == [("colours", 2), ("h", 200_000), ("c", 200_000)]
    assert [(r.name, r.rows) for r in second] == [("colours", 2), ("h", 200_000), ("c", 200_000)]
    assert query(
        con, "select min(detected_at) as first, max(detected_at) as last from reports.c"
    ) == [{"first": T0, "last": T0}]


def test_run_at_must_be_timezone_aware(con):
    with pytest.raises(ValueError, match="timezone"):
        build(con, ["canonical_states"], run_at=T0.replace(tzinfo=None))
