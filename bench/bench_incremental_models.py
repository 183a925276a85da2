"""Benchmark 6: the dbt build step on the touched orders only, beside a full refresh.

    python -m bench.bench_incremental_models [--rows 1000000] [--quick] [--workdir DIR]

On the models benchmark's synthetic data (`bench._models_data`, `rows` orders), each measured
thing runs in a fresh child process, on its own copy of one file:

- full refresh: the Dagster step (`assets.models.sql_models`: one `dbt build` of every seed,
  model and test, through dagster-dbt) on a file never built (the first build is a full refresh);
- incremental 1% / 0.1%: the same step after that full refresh was recorded and a new ingestion
  run added a sync (eSIMTrade) or usage fetch (PressOne) with more data used for 1% / 0.1% of
  the orders;
- nothing changed: the same step after a run that added no raw row (no order touched): the
  step's floor, what every build pays before it reads an order;
- bare: the one DuckDB statement classifying the same findings (bench_models' reference), three
  times (`--bare-runs`); the median is what the builds are compared with;
- datacompy: PolarsCompare of the same two flat tables (bench_models' reference, in its own
  environment; `--no-datacompy` leaves it out).

The machine's load (`uptime`) is taken before each measurement. `--quick` is 100k orders.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._measure import emit, measure, write_results

NAME = "bench_incremental_models"

# A new ingestion run touching `$per_million` orders in a million: more data used.
CHANGE_SQL = (
    """
    insert into raw.esimtrade_order_syncs by name
    select
        'bench-change' as run_id,
        timestamptz '2026-11-02 11:30:00+00' as fetched_at,
        '/portal/orders' as source_endpoint,
        'esimtrade' as provider,
        order_no as requested_order_no,
        'ok' as outcome,
        200 as http_status,
        'T' || cast(i as varchar) as esim_tran_no,
        order_no,
        iccid,
        'IN_USE' as esim_status,
        'ENABLED' as smdp_status,
        total_mb * 1048576 as total_volume,
        (used_mb + 1) * 1048576 as order_usage,
        package_code,
        '{}' as payload
    from bench.provider_rows
    where provider = 'esimtrade' and hash(i, 'change') % 1000000 < $per_million
    """,
    """
    insert into raw.pressone_usage by name
    select
        'bench-change' as run_id,
        timestamptz '2026-11-02 11:30:00+00' as fetched_at,
        '/customer/v2/sims/usage' as source_endpoint,
        'pressone' as provider,
        iccid,
        order_no as order_code,
        'ok' as outcome,
        200 as http_status,
        'ACTIVE' as usage_status,
        cast(total_mb as double) as total_mb,
        cast(total_mb - used_mb - 1 as double) as remaining_mb,
        false as is_unlimited,
        '{}' as payload
    from bench.provider_rows
    where provider = 'pressone' and hash(i, 'change') % 1000000 < $per_million
    """,
)


def _child_generate(db: Path, rows: int) -> None:
    import duckdb

    from bench._models_data import generate

    con = duckdb.connect(str(db))
    try:
        generate(con, rows)
    finally:
        con.close()
    emit({"rows": rows})


def _child_change(db: Path, per_million: int) -> None:
    import duckdb

    con = duckdb.connect(str(db))
    try:
        for statement in CHANGE_SQL:
            con.execute(statement, {"per_million": per_million})
    finally:
        con.close()
    emit({"per_million": per_million})


def _child_step(db: Path) -> None:
    import dagster as dg
    import duckdb

    from assets.models import sql_models
    from pipelines.incremental import last_build
    from pipelines.resources import WarehouseResource

    resource = WarehouseResource(database=str(db))
    started = time.perf_counter()
    result = dg.materialize([sql_models], resources={"warehouse": resource})
    work = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("the dbt build step failed")
    con = duckdb.connect(str(db), read_only=True)
    try:
        recorded = last_build(con) or {}
        rows = con.execute("select count(*) from reports.reconciliation").fetchone()
    finally:
        con.close()
    emit(
        {
            "work_s": work,
            "kind": recorded.get("kind"),
            "touched_orders": recorded.get("touched_orders"),
            "rebuilt_all": recorded.get("rebuilt_all"),
            "reconciliation_rows": rows[0] if rows else 0,
        }
    )


def _self(*args: str) -> list[str]:
    return [sys.executable, "-m", f"bench.{NAME}", *args]


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _checked(command: list[str]) -> Any:
    result = measure(command)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[3:5])} failed:\n{result.stderr_tail}")
    return result


def _measured(label: str, command: list[str]) -> dict[str, Any]:
    load = _uptime()
    result = _checked(command)
    run = {
        "label": label,
        "uptime": load,
        "wall_s": round(result.wall_s, 2),
        "peak_rss_mb": round(result.peak_rss_mb),
        **result.report,
    }
    print(f"{label}: {run.get('work_s', 0):.2f} s, {load}", flush=True)
    return run


def _bare_median(base: Path, times: int) -> dict[str, Any]:
    """The bare query `times` times, each in a fresh process: the median run, with every time.

    On this machine one run of it moves by half between passes; the ratios divide by it."""
    bares = [
        _measured(f"bare query ({n + 1} of {times})", _self("--child", "bare", str(base)))
        for n in range(times)
    ]
    times_s = [bare["work_s"] for bare in bares]
    median = sorted(bares, key=lambda bare: bare["work_s"])[len(bares) // 2]
    return {**median, "label": "bare query", "of_runs_s": times_s}


def _datacompy(base: Path) -> dict[str, Any] | None:
    """datacompy's PolarsCompare of the same two flat tables (bench_models' reference)."""
    from bench._models_data import LOCAL_SELECT, PROVIDER_SELECT
    from bench.bench_models import BENCH_DIR, _datacompy_python

    interpreter = _datacompy_python()
    if interpreter is None:
        return None
    script = str(BENCH_DIR / "_datacompy_ref.py")
    return _measured("datacompy", [interpreter, script, str(base), LOCAL_SELECT, PROVIDER_SELECT])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the files here (default: a temporary folder); a generated file and a full "
        "refresh already there are re-used, so the incremental builds can be measured again",
    )
    parser.add_argument("--no-datacompy", action="store_true")
    parser.add_argument(
        "--bare-runs", type=int, default=3, help="runs of the bare query; its median is the base"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, db, *rest = args.child
        if kind == "generate":
            _child_generate(Path(db), int(rest[0]))
        elif kind == "change":
            _child_change(Path(db), int(rest[0]))
        elif kind == "step":
            _child_step(Path(db))
        elif kind == "bare":
            from bench.bench_models import _child_bare

            _child_bare(Path(db))
        return 0
    rows = 100_000 if args.quick else args.rows
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-incr-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / f"base_{rows}.duckdb"
        full = folder / f"full_{rows}.duckdb"
        if not base.exists():
            _checked(_self("--child", "generate", str(base), str(rows)))
        if not full.exists():
            # named `full_*` only once built: an interrupted build is never re-used
            building = full.with_suffix(".building")
            shutil.copy(base, building)
            runs.append(_measured("full refresh", _self("--child", "step", str(building))))
            building.rename(full)
        steps = (("incremental 1%", 10_000), ("incremental 0.1%", 1_000), ("nothing changed", 0))
        for label, per_million in steps:
            db = folder / f"incr_{per_million}.duckdb"
            shutil.copy(full, db)
            _checked(_self("--child", "change", str(db), str(per_million)))
            # the copy's pages are written out first, not during the measured build
            os.sync()
            runs.append(_measured(label, _self("--child", "step", str(db))))
            db.unlink()
            shutil.rmtree(folder / f"{db.name}.tmp", ignore_errors=True)
        runs.append(_bare_median(base, args.bare_runs))
        if not args.no_datacompy and (compared := _datacompy(base)) is not None:
            runs.append(compared)
    bare = next(r for r in runs if r["label"] == "bare query")["work_s"]
    for run in runs:
        run["vs_bare"] = round(run["work_s"] / bare, 2) if bare else None
    write_results(NAME, [], runs, rows=rows)
    for run in runs:
        print(
            f"{run['label']:>18}: {run['work_s']:7.2f} s  x{run['vs_bare']:<6} "
            f"touched={run.get('touched_orders')}  peak RSS {run.get('peak_rss_mb', '?')} MB  "
            f"[{run['uptime']}]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
