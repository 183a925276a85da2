"""Under injected provider faults the reports equal a fault-free run's on the same seed.

The simulator decides each fault from a hash of the seed and the request, and never faults one
request more than twice in a row, so a client that retries enough always gets every answer: any
difference in the reports is the pipeline's fault.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.simulator import FaultConfig, FaultKind, generate_dataset
from pipelines.simulator.faults import LIST_PAGE_KINDS, TRANSPORT_KINDS
from tests.reliability._support import dagster_home, reports, run_pipeline

ALL_KINDS = frozenset(FaultKind)
PER_REQUEST = (*TRANSPORT_KINDS, FaultKind.TOKEN_EXPIRY)


def twenty_percent() -> FaultConfig:
    """20 % of all API requests fault, the kind drawn evenly (429 in its four forms, 5xx,
    stall, disconnect, truncated JSON, token expiry). The kinds that only a few requests can
    meet come on top, so that each of them occurs at this size: list drift and a repeated row
    on 10 % of list pages each, throttling on half the token requests."""
    rates = dict.fromkeys(PER_REQUEST, 0.2 / len(PER_REQUEST))
    rates |= {FaultKind.LIST_DRIFT: 0.1, FaultKind.DUPLICATE_ROW: 0.1}
    rates[FaultKind.TOKEN_THROTTLED] = 0.5
    return FaultConfig(rates=rates, stall_seconds=1.5)


MATRIX = {"timeout_seconds": 1.0, "page_size": 10}


@pytest.fixture(scope="module")
def matrix_world():
    return generate_dataset(seed=23, orders=200, drift_orders=6)


@pytest.fixture(scope="module")
def clean_reports(matrix_world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    with dagster_home(folder):
        run = run_pipeline(matrix_world, folder, **MATRIX)
    return reports(run.db)


def test_twenty_percent_faults_with_drift_give_the_clean_reports(
    matrix_world, clean_reports, tmp_path: Path
) -> None:
    run = run_pipeline(matrix_world, tmp_path, faults=twenty_percent(), **MATRIX)
    injected = {FaultKind(kind) for kind, n in run.stats.faults.items() if n}
    assert injected == ALL_KINDS, sorted(ALL_KINDS - injected)
    found = reports(run.db)
    for name, rows in clean_reports.items():
        assert found[name] == rows, name


# --- one kind at a time, at a high rate, on a small world ------------------------------------

# Rates high enough that most requests meet the fault at least once. 429s that ask for a wait
# (a second, or a date two seconds ahead) pause the whole client, so they get a lower rate to
# keep the test short; list faults only apply to pages after the first.
RATES = {
    FaultKind.RETRY_AFTER_SECONDS: 0.1,
    FaultKind.RETRY_AFTER_DATE: 0.05,
    FaultKind.STALL: 0.3,
}
HIGH = 0.5


@pytest.fixture(scope="module")
def small_world():
    return generate_dataset(seed=5, orders=40, drift_orders=4)


SMALL = {"timeout_seconds": 0.5, "page_size": 10}


@pytest.fixture(scope="module")
def small_clean(small_world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_clean")
    with dagster_home(folder):
        run = run_pipeline(small_world, folder, **SMALL)
    return reports(run.db)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FaultKind), ids=str)
def test_each_fault_kind_at_a_high_rate_gives_the_clean_reports(
    small_world, small_clean, tmp_path: Path, kind: FaultKind
) -> None:
    rate = RATES.get(kind, HIGH)
    faults = FaultConfig.only(kind, rate=rate, stall_seconds=1.0)
    run = run_pipeline(small_world, tmp_path, faults=faults, **SMALL)
    assert run.stats.faults[kind] > 0, f"{kind} was never injected"
    if kind in LIST_PAGE_KINDS:
        # Drift and repeated rows only touch list pages; the lists were re-read or de-duplicated.
        assert run.stats.requests["esimtrade.list"] + run.stats.requests["pressone.orders"] > 2
    found = reports(run.db)
    for name, rows in small_clean.items():
        assert found[name] == rows, name
