"""The README stays true: its report dictionary is the text the database carries in COMMENT ON,
every setting is documented, and every query of the analyst guide runs on a demo database."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from pipelines.report_dictionary import readme_section
from pipelines.settings import Settings
from tests.demo_world import build_demo_db

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _section(title: str) -> str:
    text = _readme()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def analyst_queries() -> list[str]:
    """The SQL statements of the analyst guide's sql blocks, each with its comment line."""
    blocks = re.findall(r"```sql\n(.*?)```", _section("Analyst guide"), flags=re.DOTALL)
    statements = [part.strip() for block in blocks for part in block.split(";")]
    return [statement for statement in statements if statement]


def test_readme_report_dictionary_matches_the_models() -> None:
    # Stale after a change to a report model's docs: `python -m pipelines.report_dictionary --write`
    assert readme_section().strip() in _readme()


def test_every_setting_is_documented() -> None:
    text = _section("Configuring real providers")
    names = {name.upper() for name in Settings.model_fields}
    names |= {"ESIM_RECON_LOCK_WAIT", "DAGSTER_HOME", "NO_COLOR"}
    missing = sorted(name for name in names if f"`{name}`" not in text)
    assert not missing


def test_the_analyst_guide_has_ten_commented_questions() -> None:
    queries = analyst_queries()
    assert len(queries) == 10
    for number, query in enumerate(queries, start=1):
        assert query.startswith(f"-- {number}. "), query.splitlines()[0]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_db(tmp_path_factory.mktemp("readme_demo"))


@pytest.mark.parametrize("number", range(1, 11))
def test_analyst_query_runs_on_a_demo_database(demo_db: Path, number: int) -> None:
    query = analyst_queries()[number - 1]
    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        cursor = con.execute(query)
        columns = [column[0] for column in cursor.description]
        rows = cursor.fetchall()
    finally:
        con.close()
    assert columns and len(set(columns)) == len(columns)
    assert all(len(row) == len(columns) for row in rows)


def test_most_analyst_queries_find_something_on_the_demo(demo_db: Path) -> None:
    """The demo plants every kind of disagreement: the questions have answers there."""
    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        answered = [bool(con.execute(query).fetchall()) for query in analyst_queries()]
    finally:
        con.close()
    # Question 9 (findings resolved lately) may be empty after only two runs.
    assert all(answered[:8]) and answered[9], answered


ENV_EXAMPLE = README.parent / ".env.example"
TEMPLATE = README.parent / "examples" / "local_orders.template.csv"


def test_env_example_names_every_setting_and_loads_once_filled_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dotenv import dotenv_values

    from pipelines.local_orders import read_local_orders

    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    missing = sorted(name.upper() for name in Settings.model_fields if name.upper() not in text)
    assert not missing
    # The date and amount formats are stated where the variable is set.
    assert "created_at" in text and "amount" in text and "2026-01-31T12:00:00Z" in text
    filled = {
        key: value or "filled-in"
        for key, value in dotenv_values(ENV_EXAMPLE).items()
        if value is not None
    }
    filled["ESIM_RECON_LOCAL_ORDERS"] = str(TEMPLATE)
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in filled.items()))
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    settings.require_run_inputs()
    assert settings.esimtrade_base_url and settings.esimtrade_base_url.endswith("/api/v1")
    assert read_local_orders(settings.esim_recon_local_orders).rejected == []


def test_the_local_orders_template_loads_every_row_and_the_readme_states_its_formats() -> None:
    from pipelines.local_orders import REQUIRED_COLUMNS, read_local_orders

    loaded = read_local_orders(TEMPLATE)
    assert loaded.rejected == [] and len(loaded.accepted) >= 4
    assert TEMPLATE.read_text().splitlines()[0] == ",".join(REQUIRED_COLUMNS)
    section = _section("Configuring real providers")
    assert "examples/local_orders.template.csv" in section
    for stated in ("2026-01-31T12:00:00Z", "4.50"):
        assert stated in section


def test_every_raw_table_and_column_says_what_it_holds(demo_db: Path) -> None:
    """The README sends analysts to raw.*: the database itself explains it."""
    con = duckdb.connect(str(demo_db), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE schema_name = 'raw'"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name || '.' || column_name, comment FROM duckdb_columns() "
            "WHERE schema_name = 'raw'"
        ).fetchall()
    finally:
        con.close()
    assert len(tables) >= 7 and len(columns) > 50
    assert [name for name, comment in tables + columns if not (comment or "").strip()] == []


def test_analyst_query_9_runs_through_esim_recon_sql(demo_db: Path) -> None:
    """Question 9 returns an INTERVAL column, which the CLI prints as DuckDB does."""
    import subprocess
    import sys

    query = analyst_queries()[8]
    result = subprocess.run(
        # As copied from the README: the query starts with its `-- 9.` comment line.
        [sys.executable, "-m", "pipelines.cli", "sql", "--db", str(demo_db), query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].count("\t") >= 1
    with_interval = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "sql",
            "--db",
            str(demo_db),
            "SELECT max(detected_at) - min(detected_at) AS spread FROM reports.discrepancies",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert with_interval.returncode == 0, with_interval.stderr
    assert with_interval.stdout.splitlines()[0] == "spread"
