"""`serve` end to end in headless Chromium, against a sandbox the test starts: the sample roster
uploaded with one column renamed (remapped on the Columns page) and one phone number broken
(fixed in the grid), planned, applied (the sandbox then holds exactly what the CLI makes of the
same roster), rolled back (exactly the seed again); an export downloaded and uploaded back plans
no change.

With BULK_CONTACTS_SCREENSHOTS=docs the screenshots go to docs/ (the README shows them);
otherwise to the test's temporary folder.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from bulk_contacts.cli import main
from tests.serving import ROOT, SAMPLES, contacts_of, start_web, wait_for

BROKEN_PHONE, FIXED_PHONE = "867 5309", "+1 202 867 5309"


def roster_to_fix(folder: Path) -> Path:
    """The sample roster with its Phone column renamed to a header the reader does not know and
    row 4's phone number cut short."""
    with (SAMPLES / "roster.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][4] == "Phone" and rows[3][1] == "HD-003" and rows[3][4] == FIXED_PHONE
    rows[0][4] = "Telefono"
    rows[3][4] = BROKEN_PHONE
    path = folder / "roster-to-fix.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


@pytest.fixture
def seeded(start_sandbox):
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


@pytest.fixture
def web(tmp_path):
    server = start_web(tmp_path)
    yield server
    server.stop()


def shoot(browser, name: str, tmp_path: Path) -> None:
    folder = ROOT / "docs" if os.environ.get("BULK_CONTACTS_SCREENSHOTS") == "docs" else tmp_path
    browser.save_screenshot(str(folder / f"serve-{name}.png"))


def cards(browser) -> dict[str, int]:
    return {
        card.get_attribute("data-count"): int(card.find_element(By.TAG_NAME, "b").text)
        for card in browser.find_elements(By.CSS_SELECTOR, "li.card")
    }


def connect(browser, web, sandbox) -> None:
    """The environment's settings, changed in the page: the sandbox's URL, dealer, client and a
    secret typed in (kept by the server, never shown again)."""
    browser.get(web.url)
    assert browser.current_url.endswith("/connect")  # the token is gone from the address
    for name, value in (
        ("api_url", sandbox.url),
        ("dealer", "12345"),
        ("client_id", "sandbox-client"),
        ("client_secret", "sandbox-secret"),
    ):
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.ID, "use-settings").click()
    wait_for(lambda: "dealer 12345: 13 sites" in browser.page_source, what="the check")
    assert "sandbox-secret" not in browser.page_source


def upload(browser, web, path: Path) -> None:
    go(browser, web, "upload")
    browser.find_element(By.ID, "roster-file").send_keys(str(path))
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: browser.current_url.endswith("/columns"), what="the columns page")


def go(browser, web, page: str) -> None:
    browser.get(f"{web.base}/{page}")


def make_plan(browser) -> dict[str, int]:
    browser.find_element(By.ID, "make-plan").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "li.card"), what="the plan")
    return cards(browser)


def finished_run(browser) -> str:
    return wait_for(
        lambda: browser.find_element(By.ID, "run-outcome").text, timeout=30, what="the run"
    )


def test_the_whole_job_in_a_browser(web, seeded, browser, start_sandbox, tmp_path) -> None:
    before = contacts_of(seeded)
    connect(browser, web, seeded)

    upload(browser, web, roster_to_fix(tmp_path))
    telefono = Select(browser.find_element(By.CSS_SELECTOR, "select[data-header=Telefono]"))
    assert telefono.first_selected_option.text == "(not sent)"
    telefono.select_by_value("phone_number")
    shoot(browser, "columns", tmp_path)
    browser.find_element(By.ID, "columns-submit").click()
    wait_for(lambda: browser.current_url.endswith("/fix"), what="the fix page")

    grid = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "#grid[data-ready=yes]"), what="the grid"
    )
    counts = browser.find_element(By.ID, "counts")
    assert counts.text.startswith("51 rows: 1 errors in 1 rows")
    bad = grid.find_element(By.CSS_SELECTOR, ".tabulator-cell.cell-error")
    assert bad.text.endswith(BROKEN_PHONE) and "not a valid phone number" in bad.get_attribute(
        "title"
    )
    assert grid.find_elements(By.CSS_SELECTOR, ".tabulator-cell[tabindex='0']")  # Tab reaches it
    shoot(browser, "fix", tmp_path)
    browser.find_element(By.ID, "next-problem").click()  # the keyboard's way into the error
    editor = wait_for(
        lambda: grid.find_element(By.CSS_SELECTOR, ".tabulator-cell input"), what="the editor"
    )
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys("202 867")
    typing = browser.find_element(By.ID, "typing-check")
    wait_for(lambda: "not a valid phone number" in typing.text, what="the check as typed")
    editor.send_keys(" 5309")
    wait_for(lambda: "no problem in this cell" in typing.text, what="the check as typed")
    editor.send_keys(Keys.ENTER)
    wait_for(lambda: counts.text.startswith("51 rows: 0 errors"), what="the whole roster again")
    assert not grid.find_elements(By.CSS_SELECTOR, ".tabulator-cell.cell-error")

    go(browser, web, "plan")
    summary = make_plan(browser)
    assert summary == {
        "create": 46,
        "update": 2,
        "delete": 1,
        "unchanged": 1,
        "conflict": 1,
        "invalid": 0,
    }
    diffs = [
        (li.find_element(By.TAG_NAME, "del").text, li.find_element(By.TAG_NAME, "ins").text)
        for li in browser.find_elements(By.CSS_SELECTOR, "ul.diff li")
    ]
    assert ("+12025550100", "+12025550187") in diffs  # HD-002's old and new number
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Former Manager" in page and "NW-001" in page  # the delete; the conflict
    browser.execute_script("document.getElementById('summary-h').scrollIntoView()")
    shoot(browser, "plan", tmp_path)
    browser.find_element(By.ID, "to-apply").click()
    assert (
        "Apply 46 creates, 2 updates and 1 delete"
        in browser.find_element(By.ID, "confirm-text").text
    )
    browser.find_element(By.ID, "apply-confirm").click()
    assert finished_run(browser).endswith("apply: 49 done, 0 failed, 0 skipped.")
    assert browser.find_element(By.ID, "run-progress").get_attribute("value") == "49"
    shoot(browser, "apply", tmp_path)

    # Exactly what the command line makes of the same (corrected) roster, on a twin sandbox.
    twin = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    corrected = tmp_path / "corrected.csv"
    corrected.write_text(
        roster_to_fix(tmp_path).read_text(encoding="utf-8").replace(BROKEN_PHONE, FIXED_PHONE)
    )
    env = {
        "CHEKT_API_URL": twin.url,
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": "12345",
    }
    args = ["apply", str(corrected), "--map", "Telefono=phone_number", "--yes", "--no-progress"]
    (tmp_path / "cli").mkdir()
    args += ["--results", str(tmp_path / "cli" / "results.csv")]
    assert CliRunner().invoke(main, args, env=env).exit_code == 0
    after = contacts_of(seeded)
    assert after == contacts_of(twin)
    assert len(after) == len(before) + 46 - 1
    assert (101, "HD-003", "Kwame", "Mensah", "+12028675309", "") in after

    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and re.fullmatch(r"\d{8}T\d{6}Z-apply", runs[0].name)
    assert {p.name for p in runs[0].iterdir()} == {"results.csv", "journal.jsonl"}

    go(browser, web, "runs")
    browser.find_element(By.CSS_SELECTOR, f"tr[data-run='{runs[0].name}'] a.button").click()
    assert "Undo 49 changes" in browser.find_element(By.ID, "rollback-text").text
    browser.find_element(By.ID, "rollback-confirm").click()
    assert finished_run(browser).endswith("rollback: 49 done, 0 failed, 0 skipped.")
    assert contacts_of(seeded) == before

    go(browser, web, "export")
    browser.find_element(By.ID, "export-download").click()
    exported = wait_for(
        lambda: [p for p in browser.downloads.glob("*.xlsx")], what="the downloaded export"
    )[0]
    upload(browser, web, exported)
    browser.find_element(By.ID, "columns-submit").click()
    wait_for(lambda: browser.current_url.endswith("/fix"), what="the fix page")
    go(browser, web, "plan")
    summary = make_plan(browser)
    assert summary["create"] == summary["update"] == summary["delete"] == 0
    assert "No changes: CHeKT already matches the roster." in browser.page_source
    assert contacts_of(seeded) == before
    assert "sandbox-secret" not in browser.page_source
