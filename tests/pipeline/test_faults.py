"""Under provider faults and list drift the reports equal a fault-free run's."""

from __future__ import annotations

from pathlib import Path

from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import FaultConfig, RateLimits, generate_dataset, serve
from tests.pipeline.helpers import query, simulator_resources

REPORT = (
    "SELECT provider, order_no, iccid, discrepancy_type, severity, local_value "
    "FROM reports.discrepancies ORDER BY ALL"
)
USAGE = "SELECT provider, order_no, iccid, total_bytes, used_bytes FROM reports.usage ORDER BY ALL"


def _reports(tmp_path: Path, name: str, faults: FaultConfig | None) -> tuple[list, list]:
    dataset = generate_dataset(seed=23, orders=200, drift_orders=6)
    local = tmp_path / f"{name}.csv"
    dataset.write_local_orders(local)
    db = tmp_path / f"{name}.duckdb"
    with serve(dataset, faults=faults, rate_limits=RateLimits.unlimited()) as simulator:
        resources = simulator_resources(simulator, db, local, timeout_seconds=1.0, page_size=20)
        outcome = materialize_all(runnable, resources, db_path=db)
        assert outcome.success, outcome.failures
        assert outcome.failed_checks == []
    return query(db, REPORT), query(db, USAGE)


def test_twenty_percent_faults_with_drift_give_the_clean_reports(tmp_path: Path) -> None:
    clean = _reports(tmp_path, "clean", None)
    faulty = _reports(tmp_path, "faulty", FaultConfig.uniform(0.2, stall_seconds=1.5))
    assert faulty[0] == clean[0]
    assert faulty[1] == clean[1]
