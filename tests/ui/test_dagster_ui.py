"""The Dagster UI in a real browser: the webserver on loopback, the asset graph in Chromium.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing). Without
them the test skips on a developer machine and fails under CI (CI=true).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# `dagster dev` / `dagster-webserver` in the project root load this location from pyproject.toml.
CODE_LOCATION = "esim_recon"
READY_SECONDS = 90
RENDER_SECONDS = 60
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2400",
)
# Asset names per group page of the graph; each must be drawn in the browser.
EXPECTED = {
    "ingest": ["local_orders", "esimtrade_orders", "esimtrade_order_syncs", "pressone_orders"],
    "reports": ["reconciliation", "discrepancies", "usage", "report_exports"],
}

pytestmark = pytest.mark.slow


def _require_browser() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _webserver_binary() -> str:
    local = Path(sys.executable).with_name("dagster-webserver")
    return str(local) if local.exists() else "dagster-webserver"


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"the webserver exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    tail = log.read_text()[-3000:]
    pytest.fail(f"the webserver did not answer within {READY_SECONDS} s:\n{tail}")


@contextmanager
def _webserver(tmp_path: Path, home: Path) -> Iterator[str]:
    """The webserver as the README starts it: in the project root, no flags."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESIM", "PRESSONE"))}
    env["DAGSTER_HOME"] = str(home)
    port = _free_port()
    log = tmp_path / "webserver.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [_webserver_binary(), "-h", "127.0.0.1", "-p", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(process, url, log)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _fresh_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    with _webserver(tmp_path, _fresh_home(tmp_path)) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tmp_path / "chromium_profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _page_text_once_rendered(driver: object, names: list[str]) -> str:
    """The page's visible text once every name is drawn (the UI renders in JavaScript)."""
    deadline = time.monotonic() + RENDER_SECONDS
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text  # type: ignore[attr-defined]
        if all(name in text.split() for name in names):
            return text
        time.sleep(0.5)
    return text


def test_the_asset_graph_shows_the_project_assets(
    webserver: str, browser: object, tmp_path: Path
) -> None:
    for group, names in EXPECTED.items():
        browser.get(f"{webserver}/locations/{CODE_LOCATION}/asset-groups/{group}")  # type: ignore[attr-defined]
        text = _page_text_once_rendered(browser, names)
        screenshot = tmp_path / f"asset_graph_{group}.png"
        browser.save_screenshot(str(screenshot))  # type: ignore[attr-defined]
        missing = [name for name in names if name not in text.split()]
        assert not missing, f"{group} graph lacks {missing}; page text: {text[:2000]}"
        assert screenshot.stat().st_size > 10_000
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _text_once_shown(
    driver: object, url: str, wanted: list[str], *, absent: tuple[str, ...] = ()
) -> str:
    driver.get(url)  # type: ignore[attr-defined]
    deadline = time.monotonic() + RENDER_SECONDS
    text = ""
    while time.monotonic() < deadline:
        text = driver.find_element("tag name", "body").text  # type: ignore[attr-defined]
        if all(item in text for item in wanted) and not any(item in text for item in absent):
            break
        time.sleep(0.5)
    return text


def test_a_cli_run_with_a_failed_provider_shows_as_its_job_and_a_red_asset(
    browser: object, tmp_path: Path
) -> None:
    from pipelines.simulator import RateLimits, generate_dataset, serve
    from tests.reliability._support import cli_env, run_cli

    home = _fresh_home(tmp_path)
    world = generate_dataset(seed=5, orders=40, drift_orders=4)
    local = tmp_path / "local.csv"
    world.write_local_orders(local)
    with serve(world, rate_limits=RateLimits.unlimited()) as simulator:
        env = cli_env(
            simulator,
            tmp_path,
            local_orders=local,
            # Rejected credentials fail the provider's asset (a list that merely could not be
            # loaded keeps the previous load and does not fail the run).
            PRESSONE_CLIENT_SECRET="not-the-secret",
            ESIM_RECON_RETRY_ATTEMPTS="2",
            DAGSTER_HOME=str(home),
        )
        result = run_cli(["run"], tmp_path, env)
    assert result.returncode == 1, result.stderr[-2000:]

    with _webserver(tmp_path, home) as url:
        runs = _graphql(
            url,
            "{ runsOrError { ... on Runs { results { pipelineName status "
            "repositoryOrigin { repositoryLocationName repositoryName } } } } }",
        )["runsOrError"]["results"]
        # The run and the rebuild after it, both filed under the job the CLI launched.
        assert {run["pipelineName"] for run in runs} == {"full_reconciliation"}
        assert {run["repositoryOrigin"]["repositoryLocationName"] for run in runs} == {
            CODE_LOCATION
        }
        assert sorted(run["status"] for run in runs) == ["FAILURE", "SUCCESS"]

        # What the UI colours an asset by: a partitioned asset is red when a partition failed
        # or a check of its latest state failed (or could not run).
        nodes = _graphql(
            url,
            '{ assetNodes(assetKeys: [{path: ["pressone_orders"]}, {path: ["esimtrade_orders"]}])'
            " { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name "
            "executionForLatestMaterialization { status } } } } } }",
        )["assetNodes"]
        status = {
            node["assetKey"]["path"][0]: {
                check["name"]: (check["executionForLatestMaterialization"] or {}).get("status")
                for check in node["assetChecksOrError"]["checks"]
            }
            for node in nodes
        }
        assert status["pressone_orders"]["list_load_completed"] == "EXECUTION_FAILED"
        assert status["esimtrade_orders"]["list_load_completed"] == "SUCCEEDED"

        timeline = _text_once_shown(
            browser, f"{url}/overview/activity/timeline", ["full_reconciliation"]
        )
        browser.save_screenshot(str(tmp_path / "timeline.png"))  # type: ignore[attr-defined]
        assert "full_reconciliation" in timeline, timeline[:2000]

        lineage = _text_once_shown(
            browser,
            f"{url}/locations/{CODE_LOCATION}/asset-groups/ingest",
            ["pressone_orders", "esimtrade_orders"],
            absent=("Loading",),  # the nodes' live status has arrived
        )
        browser.save_screenshot(str(tmp_path / "ingest_lineage.png"))  # type: ignore[attr-defined]
        # pressone_orders' node turns red on its failed check; esimtrade_orders' passed.
        assert "0 / 1 Passed" in lineage and "1 / 1 Passed" in lineage, lineage[:2000]

        checks_page = _text_once_shown(
            browser, f"{url}/assets/pressone_orders?view=checks", ["list_load_completed", "failed"]
        )
        browser.save_screenshot(str(tmp_path / "pressone_orders_checks.png"))  # type: ignore[attr-defined]
        assert "list_load_completed" in checks_page, checks_page[:2000]
        assert "Execution failed" in checks_page, checks_page[:2000]
