"""The simulator in its own process for the benchmarks, so that its CPU does not share the
client's event loop. Prints one JSON line (base URLs, credentials, local orders file) once it
listens, then serves until SIGINT/SIGTERM.

    python -m bench._simserver --orders 10000 --latency-ms 20 --esimtrade-rps 50
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
from pathlib import Path

from pipelines.simulator import (
    Limit,
    RateLimits,
    RunningSimulator,
    generate_dataset,
    run_forever,
    truth,
)


def _limit(rps: float) -> Limit | None:
    # A token bucket of one second's worth of requests, refilled at rps.
    return Limit(max(1, round(rps)), max(1, round(rps)) / rps) if rps > 0 else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drift-orders", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--esimtrade-rps", type=float, default=0.0, help="0: no limit")
    parser.add_argument("--pressone-rps", type=float, default=0.0, help="0: no limit")
    parser.add_argument("--terminal-share", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    dataset = generate_dataset(
        args.seed,
        args.orders,
        drift_orders=args.drift_orders,
        esimtrade_terminal_share=args.terminal_share,
    )
    # The dataset lives as long as the server: keep the collector from walking its millions of
    # objects again and again (at 100,000 orders that made every answer several times slower).
    gc.collect()
    gc.freeze()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-sim-"))
    local = dataset.write_local_orders(out / "local_orders.csv").resolve()
    limits = RateLimits(
        esimtrade=_limit(args.esimtrade_rps),
        pressone=_limit(args.pressone_rps),
        pressone_usage_per_iccid=None,
        pressone_token=None,
    )

    def ready(running: RunningSimulator) -> None:
        info = {
            "base_url": running.base_url,
            "env": running.env(),
            "local_orders": str(local),
            "esimtrade_orders": len(dataset.esimtrade),
            "pressone_orders": len(dataset.pressone),
            # eSIMTrade eSIMs in a terminal state by the simulator's own rules, whose sync
            # succeeds: what an incremental re-run may skip.
            "esimtrade_terminal": sum(
                1
                for esim in dataset.esimtrade
                if truth.esimtrade_state(esim.esim_status) in truth.TERMINAL_STATES
                and not esim.poisoned
            ),
        }
        print(json.dumps(info), flush=True)

    run_forever(
        dataset,
        port=0,
        latency_ms=args.latency_ms,
        rate_limits=limits,
        on_ready=ready,
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
