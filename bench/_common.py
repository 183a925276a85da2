"""What the network benchmarks share: the simulator in a subprocess and their result files.

Measuring a child process, medians and machine facts come from `bench._measure`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench._measure import machine, measure

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class SimInfo:
    base_url: str
    env: dict[str, str]
    local_orders: str
    esimtrade_orders: int
    pressone_orders: int
    esimtrade_terminal: int
    pid: int

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.base_url + "/_sim/stats", timeout=10).json()


@contextmanager
def simulator(
    *,
    orders: int,
    latency_ms: float = 0.0,
    esimtrade_rps: float = 0.0,
    pressone_rps: float = 0.0,
    terminal_share: float | None = None,
    seed: int = 7,
    out: Path | None = None,
) -> Iterator[SimInfo]:
    """Start ``bench._simserver`` in its own process; stop it when the block ends."""
    command = [
        sys.executable,
        "-m",
        "bench._simserver",
        f"--orders={orders}",
        f"--seed={seed}",
        f"--latency-ms={latency_ms}",
        f"--esimtrade-rps={esimtrade_rps}",
        f"--pressone-rps={pressone_rps}",
    ]
    if terminal_share is not None:
        command.append(f"--terminal-share={terminal_share}")
    if out is not None:
        command.append(f"--out={out}")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process ended before it listened")
        info = SimInfo(**json.loads(line), pid=process.pid)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(info.base_url + "/_sim/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield info
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured process: this one's, plus ``extra``, with bytecode
    caching on (an installed package has its .pyc files; without them every process would
    compile dagster or dlt from source, which is not what a user's run pays)."""
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "", **(extra or {})}


def run_process(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``command`` to its end: wall seconds, peak RSS (MB) of that process, its stdout."""
    measured = measure(command, env=child_env(env), cwd=ROOT)
    if measured.returncode != 0:
        raise RuntimeError(
            f"{list(command)[:4]} failed ({measured.returncode}): {measured.stderr_tail}"
        )
    return {
        "wall_seconds": measured.wall_s,
        "peak_rss_mb": measured.peak_rss_mb,
        "stdout": measured.stdout,
    }


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: str
    met: bool | None


def write_results(
    name: str,
    *,
    figures: Sequence[Figure],
    runs: Sequence[dict[str, Any]],
    params: dict[str, Any],
    quick: bool,
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    body = {
        "name": name,
        "quick": quick,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "params": params,
        "figures": [asdict(figure) for figure in figures],
        "runs": list(runs),
    }
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    for figure in figures:
        mark = {True: "met", False: "MISSED", None: ""}[figure.met]
        print(f"{figure.name}: {figure.value:.4g} {figure.unit} (target {figure.target}) {mark}")
    print(f"wrote {path}")
    return path
