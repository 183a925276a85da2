"""Measuring benchmark children: wall time and peak RSS of a fresh process, medians, results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
RESULT_MARKER = "BENCH-RESULT "
# Versions recorded with every result file.
MEASURED_PACKAGES = (
    "httpx",
    "duckdb",
    "polars",
    "pyarrow",
    "dlt",
    "uvicorn",
    "starlette",
    "dagster",
)


@dataclass(frozen=True)
class Measured:
    """One child process: its wall time, its peak RSS and what it reported."""

    wall_s: float
    peak_rss_mb: float
    returncode: int
    report: dict[str, Any]
    stderr_tail: str
    stdout: str


def measure(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Measured:
    """Run `cmd` in a fresh process; its peak RSS is the child's own, read with os.wait4.

    The child may print one line `BENCH-RESULT {json}` to stdout (see `emit`): its report.
    """
    started = time.perf_counter()
    with (
        open(os.devnull, "rb") as stdin,
        _temp_output() as out,
        _temp_output() as err,
    ):
        proc = subprocess.Popen(
            list(cmd),
            cwd=str(cwd or PROJECT_ROOT),
            env={**os.environ, **(env or {})},
            stdin=stdin,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    report: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            report = json.loads(line[len(RESULT_MARKER) :])
    return Measured(
        wall_s=wall,
        peak_rss_mb=usage.ru_maxrss / 1024.0,  # kilobytes on Linux
        returncode=proc.returncode,
        report=report,
        stderr_tail="\n".join(stderr.splitlines()[-15:]),
        stdout=stdout,
    )


def _temp_output() -> Any:
    return tempfile.TemporaryFile()


def emit(report: Mapping[str, Any]) -> None:
    """A child's report to its parent (see `run_child`)."""
    print(RESULT_MARKER + json.dumps(report, default=str), flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def figure(name: str, value: float, unit: str, target: str, met: bool | None) -> dict[str, Any]:
    """One reported number against its target (`met` None: no target, information only)."""
    return {"name": name, "value": round(value, 3), "unit": unit, "target": target, "met": met}


def write_results(
    name: str,
    figures: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    **extra: Any,
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "benchmark": name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
        "runs": runs,
        **extra,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for name in MEASURED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "load_average": os.getloadavg(),
    }


def python() -> str:
    return sys.executable
