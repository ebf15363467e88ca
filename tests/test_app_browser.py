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


def widget(driver: Any, testid: str, label: str, timeout: float = 60) -> Any:
    """The first ``testid`` element labelled ``label``, waiting for the page to draw it."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def find(d: Any) -> Any:
        found = [e for e in d.find_elements(By.CSS_SELECTOR, f"[data-testid='{testid}']") if label in e.text]
        return found[0] if found else False

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(find)
    except TimeoutException:
        raise AssertionError(f"no {testid} labelled {label!r} after {timeout:.0f}s") from None


def choose_option(driver: Any, label: str, option: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = widget(driver, "stSelectbox", label)
    box.click()
    field = box.find_element(By.TAG_NAME, "input")
    field.send_keys(option)
    field.send_keys(Keys.ENTER)


def type_number(driver: Any, label: str, value: str, commit: str = "enter") -> None:
    """Type ``value`` into a number input; ``commit="tab"`` inside a form (Enter would submit it)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = widget(driver, "stNumberInput", label).find_element(By.TAG_NAME, "input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value)
    field.send_keys(Keys.ENTER if commit == "enter" else Keys.TAB)


def click_button(driver: Any, label: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def button(d: Any) -> Any:
        found = [b for b in d.find_elements(By.TAG_NAME, "button") if b.text.strip().endswith(label)]
        return found[0] if found else False

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(button).click()


def click_radio(driver: Any, label: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def option(d: Any) -> Any:
        found = [o for o in d.find_elements(By.CSS_SELECTOR, "[data-testid='stRadio'] label")
                 if o.text.strip() == label]
        return found[0] if found else False

    WebDriverWait(driver, timeout, poll_frequency=0.1).until(option).click()


def open_page(driver: Any, page: str, title: str, timeout: float = 120) -> None:
    from selenium.webdriver.common.by import By

    links = driver.find_elements(By.CSS_SELECTOR, "a[data-testid='stSidebarNavLink']")
    next(a for a in links if a.text.strip().endswith(page)).click()
    wait_for_text(driver, title, timeout)
    wait_idle(driver, timeout)


def upload_file(driver: Any, path: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "[data-testid='stFileUploader'] input[type='file']").send_keys(str(path))


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
        wait_for_text(driver, "latency ≤ 150 ms at batch 1", 120)  # the new budget's recommendation
        wait_idle(driver, 120)
        text = body_text(driver)
        assert "Top pick" in text and "Why" in text and "Nearest past tasks" in text, text[-2000:]
        assert driver.find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame']"), "no candidates table"
        assert "Traceback" not in text
        wait_for_chart(driver, 60)
        time.sleep(1.0)  # let the chart finish drawing
        wait_idle(driver, 60)
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


def review_rows(n: int) -> str:
    """A CSV of ``n`` short reviews whose column names the library cannot guess (mapping needed)."""
    words = ["great", "awful", "fine", "boring", "lovely", "dull", "superb", "weak"]
    return "body,stars\n" + "".join(f"{words[i % 8]} film number {i} with {words[(i * 3) % 8]} acting,"
                                     f"{'pos' if i % 8 in (0, 2, 4, 6) else 'neg'}\n" for i in range(n))


def assert_recommend_kept(driver: Any) -> None:
    """Back on Recommend: the upload, its mapping and the budgets are all still there."""
    from selenium.webdriver.common.by import By

    open_page(driver, "Recommend", "Recommend a fine-tuning strategy", RECOMMENDATION_WAIT_S)
    wait_for_text(driver, "Recommendations for reviews.csv", RECOMMENDATION_WAIT_S)
    text = body_text(driver)
    assert "uploaded earlier in this session" in text and "latency ≤ 500 ms at batch 1" in text, text[:3000]
    tasks = widget(driver, "stNumberInput", "Tasks to serve").find_element(By.TAG_NAME, "input")
    assert tasks.get_attribute("value") == "20"


@pytest.mark.slow
def test_the_whole_flow_in_a_real_browser(tmp_path):
    """upload -> recommend with budgets -> search from the recommendation (tiny budgets) -> watch
    the running trial -> runs -> export the winner -> its train.py --help runs; what was entered
    survives every page change."""
    import io
    import zipfile

    from selenium.webdriver.common.by import By

    reason = _missing()
    if reason:
        pytest.skip(reason)
    home = tmp_path / "home"
    data = tmp_path / "reviews.csv"
    data.write_text(review_rows(400), encoding="utf-8")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    port = free_port()
    env = {**os.environ, "RECOMMENDER_HOME": str(home), "RECOMMENDER_APP_WARMUP": "0"}
    proc = start_server(port, tmp_path / "server.log", env)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc)
        driver = make_driver(tmp_path / "profile")
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(url)
        wait_for_text(driver, "Recommend a fine-tuning strategy", 60)
        # upload, map the columns, recommend with budgets
        click_radio(driver, "Upload a file")
        wait_for_text(driver, "Task data: CSV, TSV or JSONL", 60)
        upload_file(driver, data)
        wait_for_text(driver, "400 rows", 120)
        choose_option(driver, "Text column", "body")
        wait_idle(driver, 120)
        choose_option(driver, "Label column", "stars")
        wait_for_text(driver, "Recommendations for reviews.csv", RECOMMENDATION_WAIT_S)
        type_number(driver, "Tasks to serve", "20")
        wait_idle(driver, 120)
        type_number(driver, "Latency (ms per batch)", "500")
        wait_for_text(driver, "latency ≤ 500 ms at batch 1", 120)
        wait_idle(driver, 120)
        assert "Traceback" not in body_text(driver)

        # search from the recommendation: it arrives with the task, the methods and the budgets
        click_button(driver, "Verify with a search")
        wait_for_text(driver, "From your recommendation", 120)
        wait_idle(driver, 120)
        text = body_text(driver)
        assert "reviews.csv (your upload)" in text, text[:3000]
        latency = widget(driver, "stNumberInput", "Latency budget (ms)").find_element(By.TAG_NAME, "input")
        assert float(latency.get_attribute("value")) == 500
        click_radio(driver, "Search")  # it arrives set to race the portfolio; one Optuna trial here
        type_number(driver, "Total time budget (s)", "120", commit="tab")
        type_number(driver, "Trial budget (number of trials)", "1", commit="tab")
        type_number(driver, "Time per trial (s)", "30", commit="tab")
        type_number(driver, "At most N training examples", "64", commit="tab")
        type_number(driver, "At most N dev examples", "32", commit="tab")
        click_button(driver, "Start search")
        wait_for_text(driver, "started (pid", 120)
        # watch the trial while it runs, then the finished search
        wait_for_text(driver, "Trial #0 running:", 240)
        assert "Time left" in body_text(driver)
        wait_for_text(driver, "Best feasible so far", 400)
        assert "Traceback" not in body_text(driver)
        assert_recommend_kept(driver)

        open_page(driver, "Runs", "Measured runs")
        assert "Traceback" not in body_text(driver)

        open_page(driver, "Export", "Export a configuration")
        click_radio(driver, "A trial of a search")
        widget(driver, "stSelectbox", "Trial")  # the trial's choices are drawn, not the recommendation's
        wait_idle(driver, 60)
        click_button(driver, "Build the bundle")
        wait_for_text(driver, "Bundle ready", 240)
        click_button(driver, "Download the bundle")
        deadline = time.time() + 60
        while time.time() < deadline and not list(downloads.glob("*.zip")):
            time.sleep(0.5)
        bundle_zip = next(downloads.glob("*.zip"))
        zipfile.ZipFile(io.BytesIO(bundle_zip.read_bytes())).extractall(tmp_path / "bundle")
        script = next((tmp_path / "bundle").rglob("train.py"))
        run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert run.returncode == 0 and "--data" in run.stdout, run.stderr[-2000:]

        assert_recommend_kept(driver)
    except Exception:
        if driver is not None:  # what the page showed, for the failure report
            (tmp_path / "page.txt").write_text(body_text(driver), encoding="utf-8")
            driver.save_screenshot(str(tmp_path / "page.png"))
        raise
    finally:
        if driver is not None:
            driver.quit()
        stop_server(proc)
        from recommender.search.background import list_searches, stop_search

        os.environ["RECOMMENDER_HOME"], previous = str(home), os.environ["RECOMMENDER_HOME"]
        try:
            for record in list_searches():
                if record["alive"]:
                    stop_search(record["study"])
        finally:
            os.environ["RECOMMENDER_HOME"] = previous


def test_server_binds_localhost_only(served_app):
    port = int(served_app.rsplit(":", 1)[1])
    addresses = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in addresses:
        with socket.socket() as s:
            s.settimeout(1)
            assert s.connect_ex((address, port)) != 0, f"the app answers on {address}"
