"""End to end: `recommender app` served for real, driven by headless Chromium through Selenium.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); skipped
with the reason when they are missing. ``APP_SCREENSHOT=docs/screenshot.png`` also saves the
screenshot there (how the README's picture is made).
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
from typing import Any

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1500,1900")
RECOMMENDATION_WAIT_S = 300  # first recommendation: imports, meta-model fit, maybe a calibration


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"headless Chromium not found ({CHROMIUM}); install the Debian package `chromium`"
    if not Path(CHROMEDRIVER).exists():
        return f"chromedriver not found ({CHROMEDRIVER}); install the Debian package `chromium-driver`"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> float:
    """Seconds until ``/_stcore/health`` answers ``ok``."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().decode().strip() == "ok":
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app at {url} was not healthy after {timeout:.0f}s")


def app_server_command(port: int) -> list[str]:
    script = Path(sys.executable).parent / "recommender"
    base = [str(script)] if script.exists() else [sys.executable, "-m", "recommender.cli"]
    return [*base, "app", "--port", str(port)]


def start_server(port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(app_server_command(port), stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=env or os.environ.copy())


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_driver(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROME_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


# --- page helpers (shared with benchmarks/app.py) ----------------------------------------------
def body_text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def wait_for_text(driver: Any, text: str, timeout: float) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    start = time.perf_counter()
    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: text in body_text(d))
    return time.perf_counter() - start


def script_running(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']"))


def wait_idle(driver: Any, timeout: float) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: not script_running(d))


def widget(driver: Any, testid: str, label: str) -> Any:
    from selenium.webdriver.common.by import By

    matches = [e for e in driver.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']") if label in e.text]
    assert matches, f"no {testid} labelled {label!r}"
    return matches[0]


def choose_option(driver: Any, label: str, option: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = widget(driver, "stSelectbox", label)
    box.click()
    field = box.find_element(By.TAG_NAME, "input")
    field.send_keys(option)
    field.send_keys(Keys.ENTER)


def type_number(driver: Any, label: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = widget(driver, "stNumberInput", label).find_element(By.TAG_NAME, "input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)
    field.send_keys(Keys.ENTER)


def wait_for_chart(driver: Any, timeout: float) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stPlotlyChart'] .main-svg"))


# --- the test ----------------------------------------------------------------------------------
@pytest.fixture
def served_app(tmp_path) -> Iterator[str]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    proc = start_server(port, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_server(proc)


def test_recommendation_in_a_real_browser(served_app, tmp_path):
    from selenium.webdriver.common.by import By

    driver = make_driver(tmp_path / "chromium-profile")
    try:
        driver.get(served_app)
        wait_for_text(driver, "Recommend a fine-tuning strategy", 60)
        wait_for_text(driver, "Recommendations for", RECOMMENDATION_WAIT_S)
        choose_option(driver, "Bundled task", "glue_rte")
        wait_for_text(driver, "Recommendations for glue_rte", RECOMMENDATION_WAIT_S)
        type_number(driver, "Latency (ms per batch)", "150")
        time.sleep(0.5)
        wait_idle(driver, 120)
        text = body_text(driver)
        assert "Top pick" in text and "Why" in text and "Nearest past tasks" in text, text[-2000:]
        assert driver.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']"), "no candidates table"
        assert "Traceback" not in text
        wait_for_chart(driver, 60)
        time.sleep(1.0)  # let the chart finish drawing
        shot = tmp_path / "recommend.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        if os.environ.get("APP_SCREENSHOT"):
            shutil.copy(shot, os.environ["APP_SCREENSHOT"])
        for page in ("Search", "Runs", "Export"):  # every page loads in the browser too
            links = driver.find_elements(By.CSS_SELECTOR, "a[data-testid='stSidebarNavLink']")
            next(a for a in links if a.text.strip().endswith(page)).click()
            wait_for_text(driver, {"Search": "Budgeted search", "Runs": "Measured runs",
                                   "Export": "Export a configuration"}[page], 60)
            wait_idle(driver, 60)
            assert "Traceback" not in body_text(driver)
    finally:
        driver.quit()


def test_server_binds_localhost_only(served_app):
    port = int(served_app.rsplit(":", 1)[1])
    addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in addresses:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((address, port)) != 0, f"the app answers on {address}"
