"""Run the pipeline against the simulator at several fault rates and compare with a clean run.

    .venv/bin/python -m bench.fault_matrix [--orders 100]

Prints one line per configuration: faults injected, extra requests over the clean run (the
retries and re-read pages), wall time, and whether the reports equal the clean run's. The
numbers in docs/faults.md come from this script.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from pipelines.simulator import FaultConfig, FaultKind, generate_dataset
from tests.reliability._support import reports, run_pipeline
from tests.reliability.test_fault_matrix import FAMILIES, twenty_percent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    world_args = {"seed": 23, "orders": args.orders, "drift_orders": max(2, args.orders // 30)}
    configs: list[tuple[str, FaultConfig | None]] = [
        ("0%", None),
        ("5% uniform", FaultConfig.uniform(0.05, stall_seconds=1.5)),
        ("20% mix (test)", twenty_percent()),
        ("20% uniform", FaultConfig.uniform(0.2, stall_seconds=1.5)),
        ("40% uniform", FaultConfig.uniform(0.4, stall_seconds=1.5)),
    ]
    configs += [
        (f"family {name}", FaultConfig(rates=rates, stall_seconds=1.5))
        for name, rates in sorted(FAMILIES.items())
    ]
    configs.append(("token expiry 20%", FaultConfig.only(FaultKind.TOKEN_EXPIRY, rate=0.2)))
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["DAGSTER_HOME"] = scratch
        Path(scratch, "dagster.yaml").write_text(Path("dagster.yaml").read_text())
        clean_requests = 0
        clean = None
        for index, (name, faults) in enumerate(configs):
            began = time.monotonic()
            run = run_pipeline(
                generate_dataset(**world_args),
                Path(scratch) / str(index),
                faults=faults,
                check=False,
                timeout_seconds=1.0,
                page_size=20,
            )
            seconds = time.monotonic() - began
            requests = sum(run.stats.requests.values())
            injected = sum(run.stats.faults.values())
            if faults is None:
                clean, clean_requests = reports(run.db), requests
            same = run.outcome.success and reports(run.db) == clean
            failure = "" if run.outcome.success else f" failed: {run.outcome.failures[0][:120]}"
            print(
                f"{name:22} faults {injected:5}  requests {requests:5} "
                f"(+{requests - clean_requests:4})  {seconds:6.1f} s  "
                f"reports equal: {'yes' if same else 'NO'}{failure}",
                flush=True,
            )


if __name__ == "__main__":
    main()
