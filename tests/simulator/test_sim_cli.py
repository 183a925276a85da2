"""``simulate_main`` (the ``esim-recon simulate`` command) in a real process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx

from pipelines.simulator import LOCAL_ORDERS_HEADER, generate_dataset

SCRIPT = (
    "import sys; from pipelines.simulator import simulate_main; "
    "simulate_main(port=0, orders=200, seed=7, out_dir=sys.argv[1], latency_ms=0, "
    "fault_rate=0.0, envelope='plain')"
)


def test_simulate_main_writes_files_prints_env_and_serves(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("# Ctrl-C"):
                break
        exports = dict(
            line[len("export ") :].split("=", 1) for line in lines if line.startswith("export ")
        )
        assert set(exports) == {
            "PRESSONE_BASE_URL",
            "PRESSONE_CLIENT_ID",
            "PRESSONE_CLIENT_SECRET",
            "ESIMTRADE_BASE_URL",
            "ESIMTRADE_ACCESS_CODE",
            "ESIMTRADE_SECRET_KEY",
            "ESIM_RECON_LOCAL_ORDERS",
        }
        local = tmp_path / "local_orders.csv"
        assert exports["ESIM_RECON_LOCAL_ORDERS"] == str(local.resolve())
        assert local.read_text().splitlines()[0] == ",".join(LOCAL_ORDERS_HEADER)
        truth = json.loads((tmp_path / "ground_truth.json").read_text())
        expected = generate_dataset(7, 200, drift_orders=4)
        assert truth == expected.ground_truth()

        answer = httpx.get(
            exports["ESIMTRADE_BASE_URL"] + "/reseller/orders",
            headers={
                "x-access-code": exports["ESIMTRADE_ACCESS_CODE"],
                "x-secret-key": exports["ESIMTRADE_SECRET_KEY"],
            },
        )
        assert (
            answer.status_code == 200
            and answer.json()["total"] == truth["counts"]["esimtrade_list_orders"]
        )
        root = exports["ESIMTRADE_BASE_URL"].split("/esimtrade/")[0]
        stats = httpx.get(root + "/_sim/stats").json()  # the printed stats command works
        assert stats["requests"] == {"esimtrade.list": 1} and stats["statuses"] == {"200": 1}
        assert httpx.post(root + "/_sim/advance").json() == {"epoch": 1}
        assert json.loads((tmp_path / "ground_truth.json").read_text())["epoch"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if shutdown hangs
            process.kill()
            raise
    assert process.returncode == 0, process.stderr.read()
