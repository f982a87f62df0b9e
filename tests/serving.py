"""Helpers for the `serve` tests: the web interface in a thread, headless Chromium, and what a
sandbox holds."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

from bulk_contacts.web.server import WebServer

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"


def start_web(tmp_path: Path) -> WebServer:
    """The interface on a free port, its runs and saved mappings under `tmp_path`."""
    return WebServer(
        0, runs_dir=tmp_path / "runs", mappings_file=tmp_path / "config" / "mappings.json"
    ).start()


@contextmanager
def session_client(server: WebServer) -> Iterator[httpx.Client]:
    """An HTTP client that opened the token URL (so it holds the session cookie)."""
    with httpx.Client(base_url=server.base, timeout=30) as client:
        answer = client.get(server.url)
        assert answer.status_code == 303
        yield client


def csrf(server: WebServer) -> dict[str, str]:
    return {"X-CSRF-Token": server.session.csrf}


def shown_plan(client: httpx.Client) -> str:
    """The plan the Apply page asks to confirm (its form's hidden `plan` field)."""
    found = re.search(r'name="plan" value="([^"]*)"', client.get("/apply").text)
    assert found, "no plan to confirm on the Apply page"
    return found.group(1)


def confirm_apply(client: httpx.Client, server: WebServer, plan: str | None = None):
    """Press Apply on the Apply page: the plan it shows (or `plan`, as another tab shows it)."""
    form = {"plan": shown_plan(client) if plan is None else plan}
    return client.post("/apply", data=form, headers=csrf(server))


def chromium(tmp_path: Path, downloads: Path | None = None):
    """Headless Chromium as the HTML report's test starts it, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(flag)
    if downloads is not None:
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": str(downloads), "download.prompt_for_download": False},
        )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


class SharedChromium:
    """One headless Chromium for the whole run (a start costs about a second of CPU), handed to
    each test as if fresh (`page`): no cookie, cache or storage of an earlier test, no log line,
    no open dialog or extra window, and downloads into the test's own folder. A browser that died
    is started again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.driver: Any = None

    def page(self, downloads: Path):
        if self.driver is not None:
            try:
                self.driver.get("about:blank")
            except Exception:  # crashed or left in a state it cannot leave: a new one
                self.quit()
        if self.driver is None:
            self.driver = chromium(self.folder)
        driver = self.driver
        for handle in driver.window_handles[1:]:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(driver.window_handles[0])
        driver.get("about:blank")
        for command in ("Network.clearBrowserCookies", "Network.clearBrowserCache"):
            driver.execute_cdp_cmd(command, {})
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": "*", "storageTypes": "all"})
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        driver.get_log("browser")  # an earlier test's lines are not this one's
        assert driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"] == []
        driver.downloads = downloads
        return driver

    def quit(self) -> None:
        if self.driver is not None:
            with suppress(Exception):  # already gone
                self.driver.quit()
            self.driver = None


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll until `condition()` is truthy; its value. Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page is being replaced: try again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.05)


def contacts_of(sandbox) -> list[tuple]:
    """Every contact the sandbox holds, by site and identity, ids aside (a re-created contact
    gets a new id)."""
    return sorted(
        tuple("" if value is None else value for value in row)
        for row in sandbox.store.db.execute(
            "SELECT site_id, external_contact_id, first_name, last_name, phone_number, email "
            "FROM contacts"
        )
    )
