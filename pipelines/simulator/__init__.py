"""Provider simulator: a deterministic fake of eSIMTrade and PressOne for tests and the demo.

- ``generate_dataset(seed, orders)`` builds a world with planted disagreements and its ground
  truth (``Dataset.ground_truth()``), following docs/reconciliation-rules.md independently of the
  pipeline's own code.
- ``serve(dataset, ...)`` answers both providers' HTTP APIs on loopback, with optional latency,
  rate limits and reproducible faults (``FaultConfig``).
- ``simulate_main(...)`` is the ``esim-recon simulate`` command.
"""

from pipelines.simulator.app import Credentials, SimulatorStats
from pipelines.simulator.dataset import LOCAL_ORDERS_HEADER, Dataset, generate_dataset
from pipelines.simulator.faults import FaultConfig, FaultKind, Limit, RateLimits, Spoil, SpoilKind
from pipelines.simulator.server import RunningSimulator, run_forever, serve, simulate_main

__all__ = [
    "LOCAL_ORDERS_HEADER",
    "Credentials",
    "Dataset",
    "FaultConfig",
    "FaultKind",
    "Limit",
    "RateLimits",
    "RunningSimulator",
    "SimulatorStats",
    "Spoil",
    "SpoilKind",
    "generate_dataset",
    "run_forever",
    "serve",
    "simulate_main",
]
