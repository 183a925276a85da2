"""One writer: two runs at once never crash on DuckDB's lock, the Dagster pool really limits
warehouse steps to one, and read-only queries during a run get a one-line answer."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.raw import local_orders
from pipelines.definitions import all_assets, model_checks
from pipelines.exports import read_only_query
from pipelines.resources import LocalOrdersResource, WarehouseResource
from pipelines.simulator import RateLimits, generate_dataset, serve
from pipelines.warehouse import WarehouseBusyError
from tests.reliability._support import (
    clean_run_reports,
    cli_env,
    reports,
    run_cli,
    start_cli,
)

HEADER = "provider,order_no,iccid,package_code,status,amount,currency,created_at"
ROW = "pressone,20260101-000001,,pkg,ready,2.00,USD,2026-01-01"


@pytest.fixture(scope="module")
def world():
    return generate_dataset(seed=13, orders=40, drift_orders=2)


@pytest.fixture(scope="module")
def clean(world, tmp_path_factory):
    return clean_run_reports(world, tmp_path_factory, runs_apart=True)


def _wait_for(condition, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "timed out waiting for the run to start"
        time.sleep(0.02)


@pytest.mark.slow
def test_two_runs_started_together_both_succeed_one_after_the_other(
    world, clean, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited(), latency_ms=20) as simulator:
        env = cli_env(simulator, tmp_path, local_orders=local)
        runs = [start_cli(["run"], tmp_path, env) for _ in range(2)]
        results = [process.communicate(timeout=600) for process in runs]
    for process, (_, stderr) in zip(runs, results, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    # The run that waited said so, once, with what it waited for.
    waits = [line for _, stderr in results for line in stderr.splitlines() if "waiting" in line]
    assert len(waits) == 1, waits
    assert waits[0].startswith("esim-recon: waiting for another esim-recon run to finish writing")
    db = tmp_path / "data" / "recon.duckdb"
    # Two complete runs, one after the other, and the same reports as a single clean run.
    assert reports(db, runs_apart=True) == clean
    con = duckdb.connect(str(db), read_only=True)
    try:
        loads = con.execute(
            "SELECT asset, count(DISTINCT run_id) FROM raw.ingest_log WHERE status = 'complete' "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        windows = con.execute(
            "SELECT run_id, min(started_at), max(finished_at) FROM raw.ingest_log "
            "GROUP BY ALL ORDER BY 2"
        ).fetchall()
    finally:
        con.close()
    assert {count for _, count in loads} == {2}
    (_, _, first_end), (_, second_start, _) = windows
    assert first_end <= second_start  # the second run waited for the first


@pytest.mark.slow
def test_a_second_run_that_cannot_wait_refuses_in_one_line(world, tmp_path: Path) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited(), latency_ms=50) as simulator:
        env = cli_env(simulator, tmp_path, local_orders=local)
        first = start_cli(["run"], tmp_path, env)
        # The first run holds the lock once it talks to a provider.
        _wait_for(lambda: sum(simulator.stats.requests.values()) > 0, first)
        second = run_cli(["run"], tmp_path, env | {"ESIM_RECON_LOCK_WAIT": "1"})
        # An analyst's query meanwhile: an answer or one line, never a stack trace.
        query = run_cli(["sql", "--csv", "SELECT count(*) AS n FROM raw.ingest_log"], tmp_path, env)
        _, first_err = first.communicate(timeout=600)
    assert second.returncode == 1
    [waiting, line] = second.stderr.strip().splitlines()
    assert waiting.startswith("esim-recon: waiting for another esim-recon run")
    assert "ESIM_RECON_LOCK_WAIT" in waiting
    assert line.startswith("esim-recon: another esim-recon run is writing")
    assert "waited 1 s" in line
    assert first.returncode == 0, first_err[-3000:]
    if query.returncode:
        [busy] = query.stderr.strip().splitlines()
        assert "is being written by another process" in busy
    else:
        assert query.stdout.splitlines()[0] == "n"


def _hold_write_lock(db: Path) -> subprocess.Popen[str]:
    """Another process holding the file read-write, as a run does while it writes."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"con = duckdb.connect({str(db)!r})\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


def test_read_only_queries_while_a_writer_holds_the_file_answer_in_one_line(
    tmp_path: Path,
) -> None:
    db = tmp_path / "recon.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA reports; CREATE TABLE reports.usage AS SELECT 1 AS n")
    con.close()
    holder = _hold_write_lock(db)
    try:
        # DuckDB's own semantics: no other process may open the file, not even read-only.
        with pytest.raises(duckdb.IOException, match="lock"):
            duckdb.connect(str(db), read_only=True)
        with pytest.raises(WarehouseBusyError) as busy:
            read_only_query(db, "SELECT * FROM reports.usage", wait_seconds=0.2)
        assert "\n" not in str(busy.value)
        result = run_cli(["sql", "--db", str(db), "SELECT * FROM reports.usage"], tmp_path, {})
        assert result.returncode == 1
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"esim-recon: the database {db} is being written by another")
        assert "Traceback" not in result.stderr and result.stdout == ""
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    # Once the writer is gone the same query answers.
    result = run_cli(["sql", "--db", str(db), "--csv", "SELECT * FROM reports.usage"], tmp_path, {})
    assert result.returncode == 0 and result.stdout.splitlines() == ["n", "1"]


def test_sql_on_a_missing_database_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_cli(["sql", "--db", "nowhere.duckdb", "SELECT 1"], tmp_path, {})
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "no database at nowhere.duckdb" in line


def test_every_warehouse_step_is_in_the_single_slot_duckdb_pool() -> None:
    pools = {step.op.name: step.op.pool for step in [*all_assets, *model_checks]}
    assert set(pools.values()) == {"duckdb"}, {k: v for k, v in pools.items() if v != "duckdb"}
    config = dg.DagsterInstance.get().get_concurrency_config()
    assert config.pool_config.default_pool_limit == 1


def test_a_warehouse_step_waits_while_another_run_holds_the_pool_slot(tmp_path: Path) -> None:
    (tmp_path / "local.csv").write_text(f"{HEADER}\n{ROW}\n", encoding="utf-8")
    db = tmp_path / "recon.duckdb"
    resources = {
        "warehouse": WarehouseResource(database=str(db)),
        "local_orders_file": LocalOrdersResource(path=str(tmp_path / "local.csv")),
    }
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("duckdb")
        assert storage.claim_concurrency_slot("duckdb", "another-run", "step").is_claimed
        outcome: list[bool] = []
        worker = threading.Thread(
            target=lambda: outcome.append(
                dg.materialize([local_orders], resources=resources, instance=instance).success
            )
        )
        worker.start()
        try:
            worker.join(timeout=4)
            assert worker.is_alive() and not db.exists()  # blocked on the slot, nothing written
        finally:
            storage.free_concurrency_slots_for_run("another-run")
        worker.join(timeout=120)
    assert outcome == [True]
    assert db.exists()


class _Lines:
    """A child's stderr lines as they come (read by a thread, so the child never blocks)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        self._thread = threading.Thread(
            target=lambda: self.lines.extend(iter(process.stderr.readline, "")), daemon=True
        )
        self._thread.start()

    def wait_for(self, text: str, process: subprocess.Popen[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert process.poll() is None, "".join(self.lines)[-2000:]
            assert time.monotonic() < deadline, f"no {text!r} in {self.lines}"
            time.sleep(0.05)

    def joined(self) -> list[str]:
        self._thread.join(timeout=30)
        return [line.rstrip("\n") for line in self.lines]


@pytest.mark.slow
def test_a_run_blocked_by_an_open_duckdb_session_says_what_it_waits_for(
    world, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    db = tmp_path / "data" / "recon.duckdb"
    db.parent.mkdir()
    duckdb.connect(str(db)).close()
    analyst = duckdb.connect(str(db), read_only=True)  # an analyst's session left open
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        env = cli_env(simulator, tmp_path, local_orders=local)
        run = start_cli(["run"], tmp_path, env)
        stderr = _Lines(run)
        try:
            stderr.wait_for("waiting for", run)
        finally:
            analyst.close()
        run.communicate(timeout=600)
    lines = stderr.joined()
    assert run.returncode == 0, lines[-20:]
    waits = [line for line in lines if "waiting" in line]
    assert len(waits) == 1, waits
    assert waits[0].startswith(f"esim-recon: waiting for {db}: an open DuckDB session")


@pytest.mark.slow
def test_a_run_held_back_by_the_rate_limit_says_so_once(world, tmp_path: Path) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        # 30 requests a minute: one every 2 s, so the second sync already waits.
        env = cli_env(simulator, tmp_path, local_orders=local, ESIMTRADE_REQUESTS_PER_MINUTE="30")
        result = run_cli(["run", "--budget", "4"], tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    waits = [line for line in result.stderr.splitlines() if "waiting" in line]
    assert len(waits) == 1, waits
    assert waits[0].startswith("esim-recon: waiting for eSIMTrade's rate limit")
    assert "30 requests/min (ESIMTRADE_REQUESTS_PER_MINUTE)" in waits[0]
