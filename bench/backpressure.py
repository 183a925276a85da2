"""What backpressure costs: the pipeline against a provider that limits its rate, fails 40 % of
its requests or fails its list pages for long, each compared with a clean, unlimited run.

    .venv/bin/python -m bench.backpressure [--orders 40]

Prints one line per case: requests the simulator served (and how many answered 429), the extra
requests over the clean run, the run's wall time and the extra time, and whether the reports
equal the clean run's. The figures in docs/faults.md ("Backpressure") come from this script; the
cases are the ones of tests/reliability/test_backpressure.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipelines.simulator import generate_dataset
from tests.reliability._support import reports, run_pipeline
from tests.reliability.test_backpressure import (
    LATENCY_MS,
    LIMITED,
    SMALL,
    forty_percent_failing,
    lists_failing_beyond_a_syncs_attempts,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cases", help="Comma-separated case numbers to run (default: all).")
    args = parser.parse_args()
    world_args = {"seed": args.seed, "orders": args.orders, "drift_orders": 4}
    cases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("clean, unlimited", dict),
        ("clean, 50 ms latency", lambda: {"latency_ms": LATENCY_MS}),
        ("429 beyond 20/s, 50 ms", lambda: {"rate_limits": LIMITED, "latency_ms": LATENCY_MS}),
        ("40% failing", lambda: {"faults": forty_percent_failing()}),
        ("lists failing 8x/page", lambda: {"faults": lists_failing_beyond_a_syncs_attempts()}),
    ]
    if args.cases:  # the clean run (case 0) is always run: it is the baseline
        chosen = {0} | {int(number) for number in args.cases.split(",")}
        cases = [case for number, case in enumerate(cases) if number in chosen]
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["DAGSTER_HOME"] = scratch
        Path(scratch, "dagster.yaml").write_text(Path("dagster.yaml").read_text())
        # One throwaway run first: the first run of a process pays Dagster's cold start.
        run_pipeline(generate_dataset(**world_args), Path(scratch) / "warm", **SMALL)
        baseline: dict[str, Any] = {}
        for index, (name, options) in enumerate(cases):
            began = time.monotonic()
            run = run_pipeline(
                generate_dataset(**world_args),
                Path(scratch) / str(index),
                check=False,
                **SMALL,
                **options(),
            )
            seconds = time.monotonic() - began
            requests = sum(run.stats.requests.values())
            if not baseline:
                baseline = {"reports": reports(run.db), "requests": requests, "seconds": seconds}
            same = run.outcome.success and reports(run.db) == baseline["reports"]
            faults = sum(run.stats.faults.values())
            print(
                f"{name:24} requests {requests:5} (429: {run.stats.responses_429:4}, "
                f"+{requests - baseline['requests']:4})  {seconds:6.1f} s "
                f"(+{seconds - baseline['seconds']:5.1f} s)  faults {faults:4}"
                f"  reports equal: {'yes' if same else 'NO'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
