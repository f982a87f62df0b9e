"""Helpers for the `serve` tests: the web interface in a thread, headless Chromium, and what a
sandbox holds."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
