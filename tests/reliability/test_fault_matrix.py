"""Under injected provider faults the reports equal a fault-free run's on the same seed.

The simulator decides each fault from a hash of the seed and the request, and never faults one
request more than twice in a row, so a client that retries enough always gets every answer: any
difference in the reports is the pipeline's fault.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.simulator import FaultConfig, FaultKind, generate_dataset
from pipelines.simulator.faults import TRANSPORT_KINDS
from tests.reliability._support import clean_run_reports, dagster_home, reports, run_pipeline

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
    return clean_run_reports(matrix_world, tmp_path_factory, **MATRIX)


def test_twenty_percent_faults_with_drift_give_the_clean_reports(
    matrix_world, clean_reports, tmp_path: Path
) -> None:
    run = run_pipeline(matrix_world, tmp_path, faults=twenty_percent(), **MATRIX)
    injected = {FaultKind(kind) for kind, n in run.stats.faults.items() if n}
    assert injected == ALL_KINDS, sorted(ALL_KINDS - injected)
    found = reports(run.db)
    for name, rows in clean_reports.items():
        assert found[name] == rows, name


# --- each kind at a high rate, on a small world ----------------------------------------------

# One run per family of faults, each kind of it at a rate where many requests meet it. 429s that
# ask for a wait (a second, or a date two seconds ahead) pause the whole client, so they get
# lower rates; token throttling needs token requests, which expiries cause.
FAMILIES: dict[str, dict[FaultKind, float]] = {
    "429": {
        FaultKind.RETRY_AFTER_SECONDS: 0.05,
        FaultKind.RETRY_AFTER_ZERO: 0.15,
        FaultKind.RETRY_AFTER_DATE: 0.03,
        FaultKind.RETRY_AFTER_MISSING: 0.15,
    },
    "5xx": dict.fromkeys(
        (FaultKind.HTTP_500, FaultKind.HTTP_502, FaultKind.HTTP_503, FaultKind.HTTP_504), 0.12
    ),
    "transport": {
        FaultKind.STALL: 0.1,
        FaultKind.DISCONNECT: 0.2,
        FaultKind.TRUNCATED_JSON: 0.2,
    },
    # One expiry kills the token every concurrent request holds; at much more than this the
    # client sees fresh tokens rejected five times in a row and stops as for bad credentials.
    "token": {FaultKind.TOKEN_EXPIRY: 0.05, FaultKind.TOKEN_THROTTLED: 0.6},
    "list": {FaultKind.LIST_DRIFT: 0.4, FaultKind.DUPLICATE_ROW: 0.4},
}
SMALL = {"timeout_seconds": 0.5, "page_size": 10}


def test_the_families_cover_every_kind() -> None:
    assert {kind for family in FAMILIES.values() for kind in family} == ALL_KINDS


@pytest.fixture(scope="module")
def small_world():
    return generate_dataset(seed=5, orders=40, drift_orders=4)


@pytest.fixture(scope="module")
def small_clean(small_world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("small_clean")
    with dagster_home(folder):
        run = run_pipeline(small_world, folder, **SMALL)
    return reports(run.db)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_fault_kind_at_a_high_rate_gives_the_clean_reports(
    small_world, small_clean, tmp_path: Path, family: str
) -> None:
    faults = FaultConfig(rates=FAMILIES[family], stall_seconds=1.0)
    run = run_pipeline(small_world, tmp_path, faults=faults, **SMALL)
    missing = [kind for kind in FAMILIES[family] if not run.stats.faults[kind]]
    assert not missing, f"never injected: {missing}"
    found = reports(run.db)
    for name, rows in small_clean.items():
        assert found[name] == rows, name
