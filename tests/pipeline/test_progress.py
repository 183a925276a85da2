"""Progress events from a real run against the simulator match what the run wrote."""

from __future__ import annotations

from pathlib import Path

from pipelines import progress
from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import query, simulator_resources


class Recorder:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.advances: dict[str, int] = {}
        self.ended: dict[str, progress.Task] = {}

    def started(self, task: progress.Task) -> None:
        self.names.append(task.name)
        self.advances[task.name] = 0

    def advanced(self, task: progress.Task) -> None:
        self.advances[task.name] += 1

    def finished(self, task: progress.Task) -> None:
        self.ended[task.name] = task


def test_no_listener_means_tasks_are_silent_no_ops() -> None:
    with progress.track("work", unit="requests", total=2) as task:
        task.advance()
        assert task.step("value") == "value"
    assert task.done == 2


def test_a_run_reports_pages_and_requests_that_match_the_raw_tables(tmp_path: Path) -> None:
    dataset = generate_dataset(seed=5, orders=80)
    local = tmp_path / "local_orders.csv"
    dataset.write_local_orders(local)
    db = tmp_path / "recon.duckdb"
    recorder = Recorder()
    with (
        serve(dataset, rate_limits=RateLimits.unlimited()) as simulator,
        progress.listening(recorder),
    ):
        outcome = materialize_all(runnable, simulator_resources(simulator, db, local), db_path=db)
    assert outcome.success, outcome.failures
    expected = {"esimtrade_orders", "pressone_orders", "esimtrade_order_syncs", "pressone_usage"}
    assert set(recorder.names) == expected
    assert set(recorder.ended) == expected

    requests = dict(
        query(db, "SELECT asset, requests FROM raw.ingest_log WHERE requests IS NOT NULL")
    )
    for name in ("esimtrade_order_syncs", "pressone_usage"):
        task = recorder.ended[name]
        assert task.unit == "requests"
        assert task.total == task.done == requests[name] > 0
        assert recorder.advances[name] == task.done

    [(esimtrade_rows,)] = query(db, "SELECT count(*) FROM raw.esimtrade_orders")
    [(pressone_orders,)] = query(db, "SELECT count(DISTINCT order_id) FROM raw.pressone_orders")
    assert recorder.ended["esimtrade_orders"].items == esimtrade_rows
    assert recorder.ended["pressone_orders"].items == pressone_orders
    for name in ("esimtrade_orders", "pressone_orders"):
        task = recorder.ended[name]
        assert task.unit == "pages" and task.done >= 1 and task.total is None


def test_a_listener_is_gone_after_its_block() -> None:
    recorder = Recorder()
    with progress.listening(recorder), progress.track("inside", unit="pages") as task:
        task.advance(items=3)
    with progress.track("outside", unit="pages") as task:
        task.advance()
    assert recorder.names == ["inside"]
    assert recorder.ended["inside"].items == 3


class Broken:
    def started(self, task: progress.Task) -> None:
        pass

    def advanced(self, task: progress.Task) -> None:
        raise RuntimeError("display gone")

    def finished(self, task: progress.Task) -> None:
        raise RuntimeError("display gone")


def test_a_failing_listener_never_fails_the_work() -> None:
    with progress.listening(Broken()), progress.track("work", unit="requests") as task:
        task.advance()
        task.advance()
    assert task.done == 2
