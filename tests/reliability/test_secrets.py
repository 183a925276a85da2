"""Runs with known, distinctive secrets leave no trace of them: not in the command's output,
not in Dagster's storage, not in the DuckDB file, not in the exports (error paths included)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.simulator import (
    Credentials,
    FaultConfig,
    FaultKind,
    RateLimits,
    generate_dataset,
    serve,
)
from tests.reliability._support import cli_env, run_cli

SECRET_KEY = "SK-distinctive-7f3a9c2e51"
CLIENT_SECRET = "CS-distinctive-2b8e1d6f04"
WRONG_SECRET_KEY = "SK-wrong-distinctive-91c4aa"
WRONG_CLIENT_SECRET = "CS-wrong-distinctive-5d0e77"
CREDENTIALS = Credentials(
    access_code="access-0001",
    secret_key=SECRET_KEY,
    client_id="client-0001",
    client_secret=CLIENT_SECRET,
)


def _files_holding(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    hits: dict[str, list[str]] = {}
    needles = [secret.encode() for secret in secrets]
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found = [needle.decode() for needle in needles if needle in data]
        if found:
            hits[str(path.relative_to(root))] = found
    return hits


def _database_cells_holding(db: Path, secrets: list[str]) -> list[str]:
    """Every text cell of every table, searched in SQL (the file itself may be compressed)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'JSON')"
        ).fetchall()
        hits = []
        for schema, table, column in columns:
            for secret in secrets:
                [(n,)] = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" '
                    f'WHERE contains("{column}"::VARCHAR, ?)',
                    [secret],
                ).fetchall()
                if n:
                    hits.append(f"{schema}.{table}.{column}")
        return hits
    finally:
        con.close()


@pytest.mark.slow
def test_no_secret_or_token_is_stored_or_printed(tmp_path: Path) -> None:
    world = generate_dataset(seed=3, orders=40, drift_orders=2)
    local = tmp_path / "local_orders.csv"
    world.write_local_orders(local)
    with local.open("a", encoding="utf-8") as handle:  # one row to quarantine
        handle.write("pressone,20260101-000001,,pkg,ready,abc,USD,2026-01-01\n")
    workdir = tmp_path / "work"
    # Early token expiry makes several tokens and 401s carrying them; 500s make error paths.
    faults = FaultConfig(rates={FaultKind.TOKEN_EXPIRY: 0.03, FaultKind.HTTP_500: 0.05})
    outputs: list[str] = []
    with serve(
        world, credentials=CREDENTIALS, faults=faults, rate_limits=RateLimits.unlimited()
    ) as simulator:
        env = cli_env(simulator, workdir, local_orders=local)
        good = run_cli(["run"], workdir, env)
        assert good.returncode == 0, good.stderr[-3000:]
        assert "1 rejected (see raw.local_orders_rejected)" in good.stdout
        # Rejected credentials on both providers: the error messages must not echo them.
        bad = run_cli(
            ["run"],
            workdir,
            env
            | {
                "ESIMTRADE_SECRET_KEY": WRONG_SECRET_KEY,
                "PRESSONE_CLIENT_SECRET": WRONG_CLIENT_SECRET,
            },
        )
        assert bad.returncode == 1
        assert "rejected the credentials" in bad.stderr.strip().splitlines()[-1]
        exported = run_cli(["export"], workdir, env)
        assert exported.returncode == 0, exported.stderr
        outputs += [good.stdout, good.stderr, bad.stdout, bad.stderr, exported.stdout]
        tokens = list(simulator.state.tokens)
    assert len(tokens) >= 2  # the expiries did make the client fetch new tokens

    secrets = [SECRET_KEY, CLIENT_SECRET, WRONG_SECRET_KEY, WRONG_CLIENT_SECRET, *tokens]
    for output in outputs:
        assert not [secret for secret in secrets if secret in output]
    # Dagster's run and event storage, the DuckDB file and its WAL, the exports, the lock.
    assert (workdir / "dagster_home").is_dir() and (workdir / "exports").is_dir()
    assert _files_holding(workdir, secrets) == {}
    assert _database_cells_holding(workdir / "data" / "recon.duckdb", secrets) == []
    # The searches do find what is there: an order number, in every place searched.
    order_no = world.local_rows[0].order_no
    assert {"exports/reconciliation.csv"} <= set(_files_holding(workdir, [order_no]))
    assert "reports.reconciliation.order_no" in _database_cells_holding(
        workdir / "data" / "recon.duckdb", [order_no]
    )
