"""The Dagster UI in a real browser: the webserver on loopback, the asset graph in Chromium.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them when missing). Without
them the test skips on a developer machine and fails under CI (CI=true).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CODE_LOCATION = "pipelines.definitions"
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


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESIM", "PRESSONE"))}
    env["DAGSTER_HOME"] = str(home)
    port = _free_port()
    log = tmp_path / "webserver.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [_webserver_binary(), "-m", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(port)],
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
