"""`esim-recon run --from/--to` as a user runs it: a subprocess against the simulator."""

from __future__ import annotations

from datetime import UTC, date
from pathlib import Path

import pytest

from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import query
from tests.pipeline.test_cli import _cli

FIRST, LAST = date(2026, 1, 5), date(2026, 1, 12)


@pytest.mark.slow
def test_run_from_to_backfills_those_days_in_one_run(tmp_path: Path) -> None:
    dataset = generate_dataset(seed=11, orders=200)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(dataset, rate_limits=RateLimits.unlimited()) as simulator:
        env = {
            **simulator.env(),
            "ESIM_RECON_LOCAL_ORDERS": str(local),
            "ESIM_RECON_DB": str(db),
            "ESIM_RECON_EXPORT_DIR": str(tmp_path / "exports"),
            "ESIM_RECON_RETRY_INITIAL_WAIT": "0.01",
            "ESIM_RECON_RETRY_MAX_WAIT": "0.05",
            "ESIMTRADE_REQUESTS_PER_MINUTE": "600000",
            "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        }
        result = _cli(["run", "--from", FIRST.isoformat(), "--to", LAST.isoformat()], tmp_path, env)
    assert result.returncode == 0, result.stderr
    expected = {
        e.order_no
        for e in dataset.esimtrade
        if FIRST <= e.created_at.astimezone(UTC).date() <= LAST
    }
    listed = {no for (no,) in query(db, "SELECT provider_order_no FROM raw.esimtrade_orders")}
    assert listed == expected and expected
    assert query(
        db,
        "SELECT DISTINCT window_from, window_to FROM raw.ingest_log "
        "WHERE asset IN ('esimtrade_orders', 'pressone_orders')",
    ) == [(FIRST, LAST)]
    [(runs,)] = query(db, "SELECT count(DISTINCT run_id) FROM raw.ingest_log")
    assert runs == 1


@pytest.mark.slow
def test_run_refuses_a_range_outside_the_partitions(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "ESIMTRADE_BASE_URL=http://127.0.0.1:9/api/v1\n"
        "ESIMTRADE_ACCESS_CODE=ac-unreached-31\nESIMTRADE_SECRET_KEY=sk-unreached-31\n"
        f"ESIM_RECON_LOCAL_ORDERS={tmp_path / 'orders.csv'}\n"
    )
    (tmp_path / "orders.csv").write_text(
        "provider,order_no,iccid,package_code,status,amount,currency,created_at\n"
    )
    result = _cli(["run", "--from", "2020-01-01", "--to", "2020-01-02"], tmp_path)
    assert result.returncode == 2
    assert "not a list partition" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = _cli(["run", "--to", "2026-01-02"], tmp_path)
    assert result.returncode == 2 and "--to needs --from" in result.stderr
