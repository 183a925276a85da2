"""A request that outlasts its retries is a `sync_failed` finding and the run goes on; a provider
whose order list cannot be loaded, even with the list's patience, leaves its previous complete
load in force, says so in one line, and the rest of the run completes."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipelines.definitions import runnable
from pipelines.resources import PressOneResource
from pipelines.runner import materialize_all
from pipelines.simulator import (
    Dataset,
    FaultConfig,
    FaultKind,
    RateLimits,
    RunningSimulator,
    generate_dataset,
    serve,
)
from pipelines.simulator.faults import TOKEN_ENDPOINT_KINDS, TRANSPORT_KINDS
from tests.pipeline.helpers import (
    FAST_RETRY,
    findings,
    query,
    simulator_resources,
    truth_findings,
)
from tests.reliability._support import cli_env, count, reports, run_cli

ATTEMPTS = 3


@pytest.fixture(scope="module")
def world() -> Dataset:
    return generate_dataset(seed=5, orders=40, drift_orders=4)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_requests_failing_after_retries_are_sync_failed_findings(
    world: Dataset, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        resources = simulator_resources(simulator, db, local, retry_attempts=ATTEMPTS)
        outcome = materialize_all(runnable, resources, db_path=db)
        planted = dict(simulator.stats.planted_failures)
    assert outcome.success, outcome.failures
    poisoned_syncs = sorted(esim.order_no for esim in world.esimtrade if esim.poisoned)
    poisoned_usage = sorted(i for i, record in world.pressone_usage.items() if record.poisoned)
    assert poisoned_syncs and poisoned_usage
    # Each poisoned request was tried exactly as often as the policy allows.
    assert planted == {
        "esimtrade.sync": ATTEMPTS * len(poisoned_syncs),
        "pressone.usage": ATTEMPTS * len(poisoned_usage),
    }
    rows = query(
        db,
        "SELECT provider, order_no, iccid, provider_value FROM reports.discrepancies "
        "WHERE discrepancy_type = 'sync_failed' ORDER BY ALL",
    )
    assert sorted(order for p, order, _, _ in rows if p == "esimtrade") == poisoned_syncs
    assert sorted(iccid for p, _, iccid, _ in rows if p == "pressone") == poisoned_usage
    for *_, error in rows:
        assert "HTTP 500" in error and f"after {ATTEMPTS} attempts" in error, error
    # Everything else was reconciled as usual.
    assert findings(db) == truth_findings(world.ground_truth())


@contextmanager
def _pressone_down(how: str, world: Dataset) -> Iterator[str]:
    """A PressOne base URL that never answers usefully."""
    if how == "closed_port":
        yield f"http://127.0.0.1:{closed_port()}/pressone"
        return
    # Every request, the token endpoint's too, answers 503, however often it is retried.
    assert FaultKind.HTTP_503 in TRANSPORT_KINDS and FaultKind.HTTP_503 in TOKEN_ENDPOINT_KINDS
    faults = FaultConfig(rates={FaultKind.HTTP_503: 1.0}, max_consecutive=10_000)
    with serve(world, faults=faults, rate_limits=RateLimits.unlimited()) as broken:
        yield broken.pressone_base_url


def _esimtrade_only(found: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    return {finding for finding in found if finding[0] == "esimtrade"}


def _pressone_down_resource(healthy: RunningSimulator, url: str) -> PressOneResource:
    env = healthy.env()
    return PressOneResource(
        base_url=url,
        client_id=env["PRESSONE_CLIENT_ID"],
        client_secret=env["PRESSONE_CLIENT_SECRET"],
        **(FAST_RETRY | {"retry_attempts": ATTEMPTS}),
    )


@pytest.mark.parametrize("how", ["closed_port", "all_503"])
def test_a_list_that_cannot_be_loaded_keeps_the_previous_load_and_the_run_completes(
    world: Dataset, tmp_path: Path, how: str
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(world, rate_limits=RateLimits.unlimited()) as healthy:
        resources = simulator_resources(healthy, db, local, retry_attempts=ATTEMPTS)
        first = materialize_all(runnable, resources, db_path=db)
        assert first.success and first.lists_not_loaded == []
        before = reports(db, runs_apart=True)
        with _pressone_down(how, world) as pressone_url:
            resources["pressone"] = _pressone_down_resource(healthy, pressone_url)
            outcome = materialize_all(runnable, resources, db_path=db)

    # The run completed, in one go, and said what it could not do in one line.
    assert outcome.success, outcome.failures
    assert outcome.continued_by is None and outcome.failed_checks == []
    [line] = outcome.lists_not_loaded
    assert line.startswith("pressone order list not loaded this run (the complete load of "), line
    assert "stays in force" in line and "\n" not in line
    assert {"pressone_orders", "pressone_usage", "reconciliation", "report_exports"} <= set(
        outcome.materialized
    )
    # The previous complete load stands: the reports are the first run's, to the row.
    assert reports(db, runs_apart=True) == before
    logged = dict(
        query(
            db,
            "SELECT asset, status FROM raw.ingest_log WHERE run_id = ? AND provider = 'pressone'",
            [outcome.run_id],
        )
    )
    assert logged == {"pressone_orders": "failed", "pressone_usage": "skipped"}
    # Only complete loads count: the failed one is never the list.
    assert (
        count(
            db,
            "SELECT count(DISTINCT run_id) FROM raw.ingest_log "
            "WHERE asset = 'pressone_orders' AND status = 'complete'",
        )
        == 1
    )
    expected_attempts = (
        PressOneResource(base_url="-", **(FAST_RETRY | {"retry_attempts": ATTEMPTS}))
        .retry_policy()
        .for_lists()
        .max_attempts
    )
    [(detail,)] = query(
        db,
        "SELECT detail FROM raw.ingest_log WHERE run_id = ? AND asset = 'pressone_orders'",
        [outcome.run_id],
    )
    # The list (its token request first) got the list's patience, not a sync's.
    assert detail.startswith("pressone POST /customer/v2/token: ")
    assert f"after {expected_attempts} attempts" in detail
    assert expected_attempts > ATTEMPTS


def test_a_provider_never_loaded_stays_unchecked_and_the_run_completes(
    world: Dataset, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    with serve(world, rate_limits=RateLimits.unlimited()) as healthy:
        resources = simulator_resources(healthy, db, local, retry_attempts=ATTEMPTS)
        resources["pressone"] = _pressone_down_resource(
            healthy, f"http://127.0.0.1:{closed_port()}/pressone"
        )
        outcome = materialize_all(runnable, resources, db_path=db)

    assert outcome.success, outcome.failures
    [line] = outcome.lists_not_loaded
    assert "(no complete load yet, so its orders stay unchecked;" in line
    # eSIMTrade is reconciled exactly as in a healthy run; PressOne was never ingested, so its
    # local rows are not judged.
    assert _esimtrade_only(findings(db)) == _esimtrade_only(truth_findings(world.ground_truth()))
    verdicts = dict(
        query(
            db,
            "SELECT match_verdict, count(*) FROM reports.reconciliation "
            "WHERE provider = 'pressone' GROUP BY ALL",
        )
    )
    assert verdicts == {"not_checked": sum(row.provider == "pressone" for row in world.local_rows)}
    assert (tmp_path / "exports" / "reconciliation.csv").is_file()


@pytest.mark.slow
def test_the_cli_says_in_one_line_which_list_was_not_loaded_and_exits_3(
    world: Dataset, tmp_path: Path
) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        env = cli_env(
            simulator,
            tmp_path,
            local_orders=local,
            PRESSONE_BASE_URL=f"http://127.0.0.1:{closed_port()}/pressone",
            ESIM_RECON_RETRY_ATTEMPTS=str(ATTEMPTS),
        )
        result = run_cli(["run"], tmp_path, env)
        assert result.returncode == 3, result.stderr[-2000:]
        line = result.stderr.strip().splitlines()[-1]
        assert line.startswith("esim-recon: pressone order list not loaded this run"), line
        assert "connection failed" in line
        # The reports stand, with eSIMTrade's findings.
        answer = run_cli(
            [
                "sql",
                "--csv",
                "SELECT count(*) AS n FROM reports.discrepancies WHERE provider = 'esimtrade'",
            ],
            tmp_path,
            env,
        )
        report = run_cli(["status", "--json"], tmp_path, env)
        shown = run_cli(["status"], tmp_path, env)
    assert answer.returncode == 0, answer.stderr
    expected = _esimtrade_only(truth_findings(world.ground_truth()))
    assert answer.stdout.splitlines()[1] == str(len(expected))

    # The on-call view: the run that lost a provider is a failure with its reason, even though
    # the rebuild of the reports after it succeeded.
    assert report.returncode == 0, report.stderr
    last = json.loads(report.stdout)["last_run"]
    assert last["status"] == "failure"
    assert last["run_id"].startswith(line.split()[2])
    assert last["continued_by"]
    assert any("pressone could not be reached" in failure for failure in last["failures"])
    assert shown.returncode == 0, shown.stderr
    headline = next(row for row in shown.stdout.splitlines() if row.startswith("Last run:"))
    assert "failure" in headline and "success" not in headline
    assert "failed: pressone_orders: pressone could not be reached" in shown.stdout


def test_a_base_url_without_its_api_path_is_named_as_such(world: Dataset, tmp_path: Path) -> None:
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        env = cli_env(simulator, tmp_path, local_orders=local, ESIM_RECON_RETRY_ATTEMPTS="2")
        env["ESIMTRADE_BASE_URL"] = env["ESIMTRADE_BASE_URL"].removesuffix("/api/v1")
        result = run_cli(["run", "--select", "esimtrade_orders"], tmp_path, env)
    assert result.returncode == 1, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "esimtrade answered HTTP 404, the endpoint was not found" in line
    assert "ESIMTRADE_BASE_URL" in line and "/api/v1" in line
    assert "could not be reached" not in line
