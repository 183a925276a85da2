"""Benchmark 4: refreshing every SQL model on synthetic 1M and 10M local x provider rows.

    python -m bench.bench_models [--quick] [--sizes 1000000,10000000] [--runs 3]

For each size, one child process generates the raw tables into a DuckDB file (see
`bench._models_data`); then each measured thing runs in a fresh child process, whose wall time
and peak RSS (os.wait4) are recorded:

- project: the Dagster step that builds the dbt project (`assets.models.sql_models`: one
  `dbt build` of every seed, model and test, through dagster-dbt), materialized in-process on
  a fresh copy of the generated file;
- bare: one DuckDB full-outer-join statement classifying the same row-level findings;
- datacompy: `PolarsCompare` of the same two tables, in its own environment (see
  `bench/datacompy.txt`, installed into
  `bench/.venv-datacompy` on first use).

Times are the child's own work (connect to results), without interpreter start and imports;
the process wall time is kept in the runs too. `--quick` is 100k rows, one run each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._measure import (
    BENCH_DIR,
    RESULTS_DIR,
    emit,
    figure,
    measure,
    median,
    python,
    write_results,
)

NAME = "bench_models"
RESULT_FILE = RESULTS_DIR / f"{NAME}.json"
DATACOMPY_REQUIREMENTS = BENCH_DIR / "datacompy.txt"
DATACOMPY_VENV = BENCH_DIR / ".venv-datacompy"
TARGET_VS_BARE = 2.5
TARGET_VS_DATACOMPY = 8.0
TARGET_RSS_MB = 2.5 * 1024


# --- children -------------------------------------------------------------------------------


def _child_generate(db: Path, rows: int) -> None:
    import duckdb

    from bench._models_data import generate

    started = time.perf_counter()
    con = duckdb.connect(str(db))
    try:
        generate(con, rows)
        counts = dict(
            con.execute(
                "select 'local_rows', count(*) from bench.local_rows union all "
                "select 'provider_rows', count(*) from bench.provider_rows"
            ).fetchall()
        )
    finally:
        con.close()
    emit({"work_s": time.perf_counter() - started, **counts})


def _child_project(db: Path) -> None:
    import dagster as dg

    from assets.models import sql_models
    from pipelines.resources import WarehouseResource

    resource = WarehouseResource(database=str(db))
    started = time.perf_counter()
    # The Dagster step as a run executes it: one `dbt build` (seeds, models, tests) through
    # dagster-dbt, then the row counts and findings metadata.
    result = dg.materialize([sql_models], resources={"warehouse": resource})
    work = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("the dbt build step failed")
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    with resource.connect() as con:
        findings = dict(
            con.execute(
                "select discrepancy_type, count(*) from reports.discrepancies group by 1"
            ).fetchall()
        )
        rows = con.execute("select count(*) from reports.reconciliation").fetchone()
    emit(
        {
            "work_s": work,
            "failed_checks": failed,
            "findings": findings,
            "reconciliation_rows": rows[0] if rows else 0,
        }
    )


def _child_bare(db: Path) -> None:
    import duckdb

    from bench._models_data import BARE_SQL

    started = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute(BARE_SQL)
        findings = dict(
            con.execute(
                "select discrepancy_type, count(*) from bare_findings group by 1"
            ).fetchall()
        )
    finally:
        con.close()
    emit({"work_s": time.perf_counter() - started, "findings": findings})


# --- the parent ------------------------------------------------------------------------------


def _uv() -> list[str]:
    """uv as installed here: on PATH, else as a module of the system Python."""
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def _datacompy_python() -> str | None:
    """The interpreter of datacompy's own virtualenv (bench/.venv-datacompy), made when missing."""
    interpreter = DATACOMPY_VENV / "bin" / "python"
    try:
        if not interpreter.exists():
            subprocess.run([*_uv(), "venv", "--quiet", str(DATACOMPY_VENV)], check=True)
        subprocess.run(
            [
                *_uv(),
                "pip",
                "install",
                "--quiet",
                "--python",
                str(interpreter),
                "-r",
                str(DATACOMPY_REQUIREMENTS),
            ],
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"datacompy environment unavailable: {exc}", file=sys.stderr)
        return None
    return str(interpreter)


def _self(*args: str) -> list[str]:
    return [python(), "-m", "bench.bench_models", *args]


def _record(kind: str, rows: int, run: int, measured: Any) -> dict[str, Any]:
    if measured.returncode != 0:
        raise RuntimeError(f"{kind} at {rows} rows failed:\n{measured.stderr_tail}")
    entry = {
        "kind": kind,
        "rows": rows,
        "run": run,
        "work_s": measured.report.get("work_s"),
        "process_wall_s": measured.wall_s,
        "peak_rss_mb": measured.peak_rss_mb,
        **{k: v for k, v in measured.report.items() if k != "work_s"},
    }
    print(
        f"  {kind:<9} {rows:>10,} rows run {run}: {entry['work_s']:.2f} s, "
        f"peak RSS {measured.peak_rss_mb:,.0f} MB",
        flush=True,
    )
    return entry


def _size_label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


def bench_size(
    rows: int,
    runs: int,
    bare_runs: int,
    datacompy_runs: int,
    workdir: Path,
    dc_python: str | None,
) -> list[dict[str, Any]]:
    base = workdir / f"raw_{rows}.duckdb"
    print(f"generating {rows:,} rows ...", flush=True)
    generated = measure(_self("generate", str(base), str(rows)))
    results = [_record("generate", rows, 1, generated)]
    for run in range(1, runs + 1):
        copy = workdir / f"project_{rows}_{run}.duckdb"
        shutil.copyfile(base, copy)
        results.append(_record("project", rows, run, measure(_self("project", str(copy)))))
        copy.unlink()
        shutil.rmtree(workdir / f"{copy.name}.tmp", ignore_errors=True)
    for run in range(1, bare_runs + 1):
        results.append(_record("bare", rows, run, measure(_self("bare", str(base)))))
    if dc_python:
        from bench._models_data import LOCAL_SELECT, PROVIDER_SELECT

        script = str(BENCH_DIR / "_datacompy_ref.py")
        for run in range(1, datacompy_runs + 1):
            measured = measure([dc_python, script, str(base), LOCAL_SELECT, PROVIDER_SELECT])
            results.append(_record("datacompy", rows, run, measured))
    base.unlink()
    return results


def _figures(runs: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    figures = []
    for rows in sizes:
        label = _size_label(rows)

        def of(kind: str, key: str, rows: int = rows) -> float:
            return median([r[key] for r in runs if r["kind"] == kind and r["rows"] == rows])

        project_s = of("project", "work_s")
        bare_s = of("bare", "work_s")
        project_rss = of("project", "peak_rss_mb")
        figures.append(figure(f"models {label}: refresh every model", project_s, "s", "", None))
        figures.append(figure(f"models {label}: bare full-outer-join query", bare_s, "s", "", None))
        figures.append(
            figure(
                f"models {label}: project / bare query",
                project_s / bare_s,
                "x",
                f"<= {TARGET_VS_BARE}",
                project_s / bare_s <= TARGET_VS_BARE,
            )
        )
        dc = [r for r in runs if r["kind"] == "datacompy" and r["rows"] == rows]
        if dc:
            dc_s = of("datacompy", "work_s")
            figures.append(figure(f"models {label}: datacompy PolarsCompare", dc_s, "s", "", None))
            figures.append(
                figure(
                    f"models {label}: speed-up over datacompy",
                    dc_s / project_s,
                    "x",
                    f">= {TARGET_VS_DATACOMPY}",
                    dc_s / project_s >= TARGET_VS_DATACOMPY,
                )
            )
            figures.append(
                figure(
                    f"models {label}: datacompy peak RSS",
                    of("datacompy", "peak_rss_mb"),
                    "MB",
                    "",
                    None,
                )
            )
        figures.append(
            figure(
                f"models {label}: project peak RSS",
                project_rss,
                "MB",
                f"<= {TARGET_RSS_MB:.0f}",
                project_rss <= TARGET_RSS_MB,
            )
        )
        figures.append(
            figure(
                f"models {label}: bare query peak RSS", of("bare", "peak_rss_mb"), "MB", "", None
            )
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in {"generate", "project", "bare"}:
        kind, db = args[0], Path(args[1])
        if kind == "generate":
            _child_generate(db, int(args[2]))
        elif kind == "project":
            _child_project(db)
        else:
            _child_bare(db)
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.bench_models")
    parser.add_argument("--quick", action="store_true", help="100k rows, one run of each")
    parser.add_argument("--sizes", help="comma-separated row counts (default 1M,10M)")
    parser.add_argument("--runs", type=int, help="project runs per size (default 3)")
    parser.add_argument("--bare-runs", type=int, default=3, help="bare query runs per size")
    parser.add_argument("--datacompy-runs", type=int, help="datacompy runs per size")
    parser.add_argument("--no-datacompy", action="store_true")
    parser.add_argument("--workdir", type=Path, help="where the DuckDB files go (default: tmp)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs of other sizes from the existing result file",
    )
    options = parser.parse_args(args)
    if options.quick:
        sizes, runs, dc_runs = [100_000], 1, 1
        options.bare_runs = 1
    else:
        sizes, runs, dc_runs = [1_000_000, 10_000_000], 3, 1
    if options.sizes:
        sizes = [int(s) for s in options.sizes.split(",")]
    runs = options.runs or runs
    dc_runs = options.datacompy_runs or dc_runs
    dc_python = None if options.no_datacompy else _datacompy_python()
    all_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-models-", dir=options.workdir) as tmp:
        for rows in sizes:
            all_runs.extend(
                bench_size(rows, runs, options.bare_runs, dc_runs, Path(tmp), dc_python)
            )
    if options.merge and RESULT_FILE.exists():
        previous = json.loads(RESULT_FILE.read_text(encoding="utf-8"))
        kept = [r for r in previous.get("runs", []) if r["rows"] not in sizes]
        all_runs = kept + all_runs
        sizes = sorted({r["rows"] for r in all_runs})
    figures = _figures(all_runs, sizes)
    path = write_results(
        NAME,
        figures,
        all_runs,
        sizes=sizes,
        runs_per_size={
            str(rows): {
                kind: sum(1 for r in all_runs if r["rows"] == rows and r["kind"] == kind)
                for kind in ("project", "bare", "datacompy")
            }
            for rows in sizes
        },
        quick=options.quick,
    )
    for item in figures:
        print(f"{item['name']}: {item['value']} {item['unit']} (target {item['target'] or '-'})")
    print(f"wrote {path}")
    print(json.dumps([f for f in figures if f["met"] is False]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
