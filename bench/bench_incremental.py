"""Benchmark 3: a re-run with nothing changed, on a dataset where 90 % of the eSIMTrade eSIMs
are terminal. ``esim-recon run --incremental`` twice on one database (the whole pipeline, as a
scheduler runs it); the figure is the second run's syncs as a share of the first's, against
the share of eSIMs that are not terminal (target: at most that share + 2 points).

The simulator runs in its own process, without rate limits (the figure counts requests, it
does not time them). ``--quick`` uses a small dataset.

    .venv/bin/python -m bench.bench_incremental [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from bench._common import Figure, SimInfo, run_process, simulator, write_results
from bench._measure import median


def _env(sim: SimInfo, work: Path) -> dict[str, str]:
    return {
        **sim.env,
        "ESIM_RECON_LOCAL_ORDERS": sim.local_orders,
        "ESIM_RECON_DB": str(work / "esim_recon.duckdb"),
        "ESIM_RECON_EXPORT_DIR": str(work / "exports"),
        "DAGSTER_HOME": str(work / "dagster_home"),
        # The simulator has no quota here; short waits keep its planted failures quick.
        "ESIMTRADE_REQUESTS_PER_MINUTE": "600000",
        "ESIM_RECON_MAX_CONCURRENCY": "16",
        "ESIM_RECON_RETRY_INITIAL_WAIT": "0.02",
        "ESIM_RECON_RETRY_MAX_WAIT": "0.2",
    }


def _per_run(database: Path) -> list[dict[str, Any]]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        esimtrade = con.execute(
            "SELECT run_id, count(DISTINCT requested_order_no) FROM raw.esimtrade_order_syncs "
            "GROUP BY run_id ORDER BY min(fetched_at)"
        ).fetchall()
        usage = dict(
            con.execute(
                "SELECT run_id, count(DISTINCT iccid) FROM raw.pressone_usage GROUP BY run_id"
            ).fetchall()
        )
    finally:
        con.close()
    return [
        {"run_id": run_id, "esimtrade_syncs": syncs, "pressone_usage": usage.get(run_id, 0)}
        for run_id, syncs in esimtrade
    ]


def one_pair(sim: SimInfo) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        work = Path(tmp)
        (work / "dagster_home").mkdir()
        command = [str(Path(sys.executable).parent / "esim-recon"), "run", "--incremental"]
        walls = []
        requests = []
        for _ in range(2):
            before = sim.stats()["requests"]
            walls.append(run_process(command, _env(sim, work))["wall_seconds"])
            after = sim.stats()["requests"]
            requests.append(
                {
                    name: after.get(name, 0) - before.get(name, 0)
                    for name in ("esimtrade.sync", "pressone.usage")
                }
            )
        first, second = _per_run(work / "esim_recon.duckdb")
    return {
        "first_syncs": first["esimtrade_syncs"],
        "second_syncs": second["esimtrade_syncs"],
        "first_usage": first["pressone_usage"],
        "second_usage": second["pressone_usage"],
        "first_http": requests[0],
        "second_http": requests[1],
        "first_wall_seconds": walls[0],
        "second_wall_seconds": walls[1],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--terminal-share", type=float, default=0.9)
    args = parser.parse_args(argv)
    orders = 1_000 if args.quick else 10_000
    runs = args.runs or (1 if args.quick else 2)
    records = []
    with simulator(orders=orders, terminal_share=args.terminal_share) as sim:
        for number in range(runs):
            record = one_pair(sim) | {"run": number + 1}
            record["active_share"] = 1 - sim.esimtrade_terminal / record["first_syncs"]
            record["rerun_share"] = record["second_syncs"] / record["first_syncs"]
            print(record, flush=True)
            records.append(record)
    active = median([r["active_share"] for r in records])
    share = median([r["rerun_share"] for r in records])
    usage_share = median([r["second_usage"] / max(r["first_usage"], 1) for r in records])
    figures = [
        Figure(
            "re-run syncs / first run syncs",
            share * 100,
            "%",
            f"<= {(active + 0.02) * 100:.1f} %",
            share <= active + 0.02,
        ),
        Figure("active (not terminal) share of eSIMs", active * 100, "%", "report", None),
        Figure(
            "first run syncs", median([r["first_syncs"] for r in records]), "syncs", "report", None
        ),
        Figure(
            "re-run syncs", median([r["second_syncs"] for r in records]), "syncs", "report", None
        ),
        Figure("PressOne usage re-run / first run", usage_share * 100, "%", "report", None),
        Figure(
            "re-run wall (whole pipeline)",
            median([r["second_wall_seconds"] for r in records]),
            "s",
            "report",
            None,
        ),
    ]
    write_results(
        "bench_incremental",
        figures=figures,
        runs=records,
        params={"orders": orders, "terminal_share": args.terminal_share, "runs": runs},
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
