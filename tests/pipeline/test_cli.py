"""The `esim-recon` command as a user runs it: in a subprocess, from a working directory."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "pipelines.cli"]


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ESIM", "PRESSONE"))}
    environment.update(env or {})
    environment["NO_COLOR"] = "1"
    return subprocess.run(
        CLI + args, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_demo_runs_end_to_end_and_finds_every_discrepancy_type(tmp_path: Path) -> None:
    result = _cli(["demo", "--orders", "300", "--dir", "demo"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Discrepancies (latest run)" in result.stdout
    demo = tmp_path / "demo"
    truth = json.loads((demo / "ground_truth.json").read_text())
    expected_types = {item["discrepancy_type"] for item in truth["findings"]}
    assert len(expected_types) == 12
    for name in ("reconciliation", "discrepancies", "usage"):
        assert (demo / "exports" / f"{name}.csv").is_file()
    with (demo / "exports" / "discrepancies.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["discrepancy_type"] for row in rows} == expected_types
    assert len(rows) == len(truth["findings"])

    query = _cli(
        [
            "sql",
            "--db",
            "demo/esim_recon.duckdb",
            "--csv",
            "SELECT count(*) AS n FROM reports.discrepancies",
        ],
        cwd=tmp_path,
    )
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines()[1] == str(len(rows))

    write = _cli(
        ["sql", "--db", "demo/esim_recon.duckdb", "DELETE FROM reports.discrepancies"],
        cwd=tmp_path,
    )
    assert write.returncode != 0
    assert "read-only" in write.stderr
    assert len(write.stderr.strip().splitlines()) == 1


def test_run_without_configuration_names_the_variable(tmp_path: Path) -> None:
    result = _cli(["run"], cwd=tmp_path)
    assert result.returncode == 2
    assert "ESIMTRADE_BASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_with_a_url_but_no_secret_names_the_missing_secret(tmp_path: Path) -> None:
    result = _cli(["run"], cwd=tmp_path, env={"ESIMTRADE_BASE_URL": "http://127.0.0.1:9/api/v1"})
    assert result.returncode == 2
    assert "ESIMTRADE_ACCESS_CODE" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_without_local_orders_file_says_so(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ESIMTRADE_BASE_URL=http://127.0.0.1:9/api/v1\n"
        "ESIMTRADE_ACCESS_CODE=code\nESIMTRADE_SECRET_KEY=secret\n"
        "ESIM_RECON_LOCAL_ORDERS=missing.csv\n"
    )
    result = _cli(["run"], cwd=tmp_path)
    assert result.returncode == 2
    assert "ESIM_RECON_LOCAL_ORDERS" in result.stderr and "missing.csv" in result.stderr


def test_every_command_has_help_with_examples(tmp_path: Path) -> None:
    for command in ("run", "demo", "sql", "export", "simulate"):
        result = _cli([command, "--help"], cwd=tmp_path)
        assert result.returncode == 0
        assert "Example" in result.stdout, command
