"""A small demo warehouse built once per test module: the simulator, the real assets, two runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.definitions import runnable
from pipelines.runner import materialize_all
from pipelines.simulator import RateLimits, generate_dataset, serve
from tests.pipeline.helpers import simulator_resources


def build_demo_db(folder: Path, *, orders: int = 80, runs: int = 2, seed: int = 7) -> Path:
    """Run the whole graph `runs` times against the simulator; the world moves on in between."""
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "dagster_home"
    home.mkdir(exist_ok=True)
    project_yaml = Path(__file__).resolve().parents[1] / "dagster.yaml"
    (home / "dagster.yaml").write_text(project_yaml.read_text(encoding="utf-8"), encoding="utf-8")
    dataset = generate_dataset(seed=seed, orders=orders, drift_orders=orders // 50)
    local = folder / "local_orders.csv"
    dataset.write_local_orders(local)
    db = folder / "esim_recon.duckdb"
    with (
        pytest.MonkeyPatch.context() as patch,
        serve(dataset, rate_limits=RateLimits.unlimited()) as simulator,
    ):
        patch.setenv("DAGSTER_HOME", str(home))
        for number in range(runs):
            if number:
                dataset.advance()
            outcome = materialize_all(
                runnable, simulator_resources(simulator, db, local), db_path=db
            )
            assert outcome.success, outcome.failures
    return db
