"""Benchmark 1: list paging of PressOne orders from the simulator at 20 ms latency per request.

Three contenders, each a whole process, side by side in one run (interleaved, several runs):

- ``esim-recon ingest``: the ``pressone_orders`` asset's body (client, row mapping, batched
  DuckDB writes, default settings) as its own process, ``bench/_recon_ingest.py``;
- ``esim-recon run``: ``esim-recon run --select pressone_orders``, the same plus the CLI and
  the Dagster run around it (instance, event log, run machinery);
- ``dlt``: a dlt ``rest_api`` pipeline loading the same endpoint into DuckDB
  (``bench/_dlt_pressone.py``);
- ``plain``: a sequential httpx loop that only decodes the pages (``bench/_plain_pressone.py``).

Every contender must end with the same number of distinct orders as the simulator serves.
Target: the client+ingest at least 5x faster than dlt. ``--profile`` also profiles the esim-recon
ingest in-process (cProfile) into ``bench/results/bench_paging_profile.txt``.

    .venv/bin/python -m bench.bench_paging [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import httpx

from bench._common import RESULTS, Figure, SimInfo, run_process, simulator, write_results
from bench._measure import median

PAGE_SIZE = 50  # esim-recon's default PressOne page size, used by every contender


def _token(sim: SimInfo) -> str:
    env = sim.env
    response = httpx.post(
        env["PRESSONE_BASE_URL"] + "/customer/v2/token",
        data={
            "client_id": env["PRESSONE_CLIENT_ID"],
            "client_secret": env["PRESSONE_CLIENT_SECRET"],
            "grant_type": "client_credentials",
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["data"]["access_token"])


def _recon_env(sim: SimInfo, work: Path, home: Path) -> dict[str, str]:
    pressone = {name: value for name, value in sim.env.items() if name.startswith("PRESSONE_")}
    return {
        **pressone,
        "ESIMTRADE_BASE_URL": "",
        "ESIM_RECON_LOCAL_ORDERS": sim.local_orders,
        "ESIM_RECON_DB": str(work / "esim_recon.duckdb"),
        "ESIM_RECON_EXPORT_DIR": str(work / "exports"),
        "DAGSTER_HOME": str(home),
    }


def run_recon(sim: SimInfo, home: Path) -> dict[str, Any]:
    """A fresh database each run; one Dagster home for all runs, as a deployment keeps it."""
    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        work = Path(tmp)
        command = [str(Path(sys.executable).parent / "esim-recon"), "run"]
        env = _recon_env(sim, work, home)
        result = run_process([*command, "--select", "pressone_orders"], env)
        con = duckdb.connect(str(work / "esim_recon.duckdb"), read_only=True)
        try:
            row = con.execute("SELECT count(DISTINCT order_id) FROM raw.pressone_orders").fetchone()
        finally:
            con.close()
    del result["stdout"]
    return result | {"orders": row[0] if row else 0}


def run_ingest(sim: SimInfo) -> dict[str, Any]:
    """The client and ingest alone: ``bench/_recon_ingest.py`` on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        pressone = {k: v for k, v in sim.env.items() if k.startswith("PRESSONE_")}
        env = {**pressone, "ESIM_RECON_DB": str(Path(tmp) / "esim_recon.duckdb")}
        result = run_process([sys.executable, "-m", "bench._recon_ingest"], env)
    return result | json.loads(result.pop("stdout").strip().splitlines()[-1])


def run_dlt(sim: SimInfo, token: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as tmp:
        env = {
            "BENCH_PRESSONE_URL": sim.env["PRESSONE_BASE_URL"],
            "BENCH_TOKEN": token,
            "BENCH_DB": str(Path(tmp) / "dlt.duckdb"),
            "BENCH_PAGE_SIZE": str(PAGE_SIZE),
            "DLT_DATA_DIR": str(Path(tmp) / "dlt_data"),
            "RUNTIME__LOG_LEVEL": "WARNING",
        }
        result = run_process([sys.executable, "-m", "bench._dlt_pressone"], env)
    return result | json.loads(result.pop("stdout").strip().splitlines()[-1])


def run_plain(sim: SimInfo, token: str) -> dict[str, Any]:
    env = {
        "BENCH_PRESSONE_URL": sim.env["PRESSONE_BASE_URL"],
        "BENCH_TOKEN": token,
        "BENCH_PAGE_SIZE": str(PAGE_SIZE),
    }
    result = run_process([sys.executable, "-m", "bench._plain_pressone"], env)
    return result | json.loads(result.pop("stdout").strip().splitlines()[-1])


def profile_recon(sim: SimInfo, home: Path) -> Path:
    """cProfile of the pressone_orders asset in this process (imports excluded)."""
    import cProfile
    import pstats

    with tempfile.TemporaryDirectory(prefix="bench-recon-prof-") as tmp:
        work = Path(tmp)
        os.environ.update(_recon_env(sim, work, home))
        from pipelines.definitions import runnable
        from pipelines.resources import resources_from_settings
        from pipelines.runner import materialize_all
        from pipelines.settings import load_settings

        settings = load_settings()
        resources = resources_from_settings(settings)
        profiler = cProfile.Profile()
        profiler.enable()
        outcome = materialize_all(
            runnable, resources, db_path=settings.esim_recon_db, selection="pressone_orders"
        )
        profiler.disable()
        assert outcome.success, outcome.failures
    path = RESULTS / "bench_paging_profile.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        stats = pstats.Stats(profiler, stream=handle)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(30)
    print(f"wrote {path}")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    pressone_orders = 5_000 if args.quick else 50_000
    runs = args.runs or (1 if args.quick else 3)
    records: list[dict[str, Any]] = []
    with (
        simulator(orders=pressone_orders * 2, latency_ms=args.latency_ms) as sim,
        tempfile.TemporaryDirectory(prefix="bench-dagster-home-") as home_dir,
    ):
        home = Path(home_dir)
        expected = sim.pressone_orders
        token = _token(sim)
        contenders = {
            "esim-recon ingest": lambda: run_ingest(sim),
            "esim-recon run": lambda: run_recon(sim, home),
            "dlt": lambda: run_dlt(sim, token),
            "plain": lambda: run_plain(sim, token),
        }
        # Untimed warm-ups: bytecode caches written, Dagster home set up, files cached (dlt's
        # by importing what it runs, a whole dlt run taking the longest by far).
        for name in ("esim-recon ingest", "esim-recon run", "plain"):
            print(f"warm-up {name}: {contenders[name]()}", flush=True)
        dlt_modules = "import dlt, dlt.destinations, dlt.sources.rest_api, dlt.extract, "
        dlt_modules += "dlt.normalize, dlt.load, dlt.pipeline.pipeline, duckdb"
        run_process([sys.executable, "-c", dlt_modules])
        for number in range(runs):
            for name, run in contenders.items():
                record = run() | {"contender": name, "run": number + 1}
                print(record, flush=True)
                if record["orders"] != expected:
                    raise SystemExit(f"{name} loaded {record['orders']} orders, not {expected}")
                records.append(record)
        if args.profile:
            profile_recon(sim, home)

    # Bounded memory: the same ingest on a list ten times longer must not need ten times the
    # memory (pages are written in batches as they come, never all held).
    memory = []
    for size in (pressone_orders // 5, pressone_orders * 2):
        with simulator(orders=size * 2, latency_ms=0) as sim:
            record = run_ingest(sim) | {"contender": "memory", "pressone_orders": size}
        print(record, flush=True)
        memory.append(record)
    records.extend(memory)
    small, large = memory
    growth = large["peak_rss_mb"] / small["peak_rss_mb"]

    def wall(name: str) -> float:
        return median([r["wall_seconds"] for r in records if r["contender"] == name])

    def rss(name: str) -> float:
        return median([r["peak_rss_mb"] for r in records if r["contender"] == name])

    speedup = wall("dlt") / wall("esim-recon ingest")
    speedup_run = wall("dlt") / wall("esim-recon run")
    figures = [
        Figure("esim-recon client+ingest wall", wall("esim-recon ingest"), "s", "report", None),
        Figure(
            "esim-recon run --select pressone_orders wall",
            wall("esim-recon run"),
            "s",
            "report",
            None,
        ),
        Figure("dlt rest_api wall", wall("dlt"), "s", "report", None),
        Figure("plain sequential httpx wall", wall("plain"), "s", "report", None),
        Figure("client+ingest speed-up over dlt", speedup, "x", ">= 5", speedup >= 5),
        Figure("CLI run speed-up over dlt", speedup_run, "x", "report", None),
        Figure(
            "client+ingest speed-up over plain loop",
            wall("plain") / wall("esim-recon ingest"),
            "x",
            "report",
            None,
        ),
        Figure("esim-recon client+ingest peak RSS", rss("esim-recon ingest"), "MB", "report", None),
        Figure("dlt peak RSS", rss("dlt"), "MB", "report", None),
        Figure("rows equal (orders each)", expected, "orders", "all equal", True),
        Figure(
            f"ingest peak RSS at {small['pressone_orders']:,} orders",
            small["peak_rss_mb"],
            "MB",
            "report",
            None,
        ),
        Figure(
            f"ingest peak RSS at {large['pressone_orders']:,} orders",
            large["peak_rss_mb"],
            "MB",
            "report",
            None,
        ),
        Figure("peak RSS growth for 10x the orders", growth, "x", "bounded (< 2)", growth < 2),
    ]
    write_results(
        "bench_paging",
        figures=figures,
        runs=records,
        params={
            "pressone_orders": expected,
            "page_size": PAGE_SIZE,
            "latency_ms": args.latency_ms,
            "runs": runs,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
