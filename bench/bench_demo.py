"""Benchmark 5: `esim-recon demo` from a cold start.

    python -m bench.bench_demo [--quick] [--runs 3] [--no-profile]

Each run is a fresh process (`.venv/bin/esim-recon demo`, default options) with a fresh demo
folder and a fresh DAGSTER_HOME, so nothing is warm but the OS file cache. The figure is the
median wall time of the whole process. One more run goes under pyinstrument; its text profile is
written to bench/results/bench_demo_profile.txt and the heaviest stages are kept in the result
file. `--quick`: one timed run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench._measure import RESULTS_DIR, figure, measure, median, write_results

NAME = "bench_demo"
TARGET_S = 30.0
PROFILE = RESULTS_DIR / "bench_demo_profile.txt"


def _demo_command(demo_dir: Path) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "demo", "--dir", str(demo_dir)]


def _cold_env(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    return {"DAGSTER_HOME": str(home), "NO_COLOR": "1"}


def timed_run(run: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        root = Path(tmp)
        measured = measure(_demo_command(root / "demo"), env=_cold_env(root / "dagster_home"))
    if measured.returncode != 0:
        raise RuntimeError(f"demo run {run} failed:\n{measured.stderr_tail}")
    print(f"  demo run {run}: {measured.wall_s:.1f} s, peak RSS {measured.peak_rss_mb:,.0f} MB")
    return {
        "kind": "demo",
        "run": run,
        "wall_s": measured.wall_s,
        "peak_rss_mb": measured.peak_rss_mb,
    }


_FRAME = re.compile(r"^[\s│├└─]*([\d.]+)\s+(.+?)\s{2,}(\S+)$")


def profiled_run() -> dict[str, Any]:
    """One run under pyinstrument; returns the profile's top-level stages."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        root = Path(tmp)
        command = [
            sys.executable,
            "-m",
            "pyinstrument",
            "--renderer",
            "text",
            "--outfile",
            str(PROFILE),
            "-m",
            "pipelines.cli",
            "demo",
            "--dir",
            str(root / "demo"),
        ]
        measured = measure(command, env=_cold_env(root / "dagster_home"))
    if measured.returncode != 0:
        raise RuntimeError(f"profiled demo run failed:\n{measured.stderr_tail}")
    print(f"  profiled run: {measured.wall_s:.1f} s; profile in {PROFILE}")
    return {"kind": "profiled", "wall_s": measured.wall_s, "profile": str(PROFILE)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_demo")
    parser.add_argument("--quick", action="store_true", help="one timed run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    options = parser.parse_args(argv)
    count = 1 if options.quick else options.runs
    runs = [timed_run(run) for run in range(1, count + 1)]
    if not options.no_profile:
        runs.append(profiled_run())
    wall = median([r["wall_s"] for r in runs if r["kind"] == "demo"])
    rss = median([r["peak_rss_mb"] for r in runs if r["kind"] == "demo"])
    figures = [
        figure("demo cold start: wall time", wall, "s", f"<= {TARGET_S:.0f}", wall <= TARGET_S),
        figure("demo cold start: peak RSS", rss, "MB", "", None),
    ]
    path = write_results(NAME, figures, runs, quick=options.quick, timed_runs=count)
    print(f"demo cold start: median {wall:.1f} s of {count} run(s); wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
