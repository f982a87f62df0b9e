"""`serve`'s Connect step in headless Chromium: a profile of the settings file picked, the
`check` command's steps shown (DNS, TCP, token, site list, each with its time; a failing one
with its fix), a secret typed in the page stored in the keychain (keyring's documented
`set_keyring`, with an in-memory backend: `serve` runs in this process) and never sent back to
the browser; and the Plan step's --allow-unreachable, --exact-ids and --repair-ids."""

from __future__ import annotations

import socket

import keyring
import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from bulk_contacts.cli import main
from tests.serving import SAMPLES, start_web, wait_for
from tests.test_profiles import MemoryKeyring

SECRET = "sandbox-secret"


@pytest.fixture
def seeded(start_sandbox):
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


@pytest.fixture
def web(tmp_path):
    server = start_web(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def keychain() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)  # conftest's own_settings restores the no-backend one
    return backend


def add_profile(name: str, url: str) -> None:
    result = CliRunner().invoke(
        main,
        ["profiles", "add", name, "--api-url", url, "--dealer", "12345",
         "--client-id", "sandbox-client"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def step_rows(browser) -> dict[str, str]:
    return {
        row.get_attribute("data-step"): row.text
        for row in browser.find_elements(By.CSS_SELECTOR, "#check-steps tr[data-step]")
    }


def connect_with(browser, web, profile: str, secret: str = "") -> None:
    browser.get(web.url)
    Select(browser.find_element(By.ID, "profile")).select_by_value(profile)
    if secret:
        browser.find_element(By.ID, "client_secret").send_keys(secret)
    browser.find_element(By.ID, "use-settings").click()


def test_a_profile_picked_its_secret_kept_in_the_keychain_and_the_check_shown(
    web, seeded, browser, keychain
) -> None:
    add_profile("rehearsal", seeded.url)
    browser.get(web.url)
    listed = browser.find_element(By.ID, "profiles").text
    assert "rehearsal" in listed and seeded.url in listed and "no secret stored" in listed

    connect_with(browser, web, "rehearsal", SECRET)
    wait_for(lambda: browser.find_elements(By.ID, "check-summary"), what="the check")
    steps = step_rows(browser)
    assert list(steps) == ["DNS", "TCP", "token", "site list"]
    assert all("passed" in text and " ms" in text for text in steps.values())
    assert "dealer 12345: 13 sites" in steps["site list"]
    summary = browser.find_element(By.ID, "check-summary").text
    assert summary.startswith("13 sites; rate limit: ") and "clock offset: " in summary
    assert "stored in the keychain for profile rehearsal" in browser.page_source
    assert keychain.items == {("bulk-contacts", "rehearsal"): SECRET}
    assert SECRET not in browser.page_source
    assert "(profile rehearsal)" in browser.find_element(By.ID, "check-h").text

    # the next session: the profile alone, its secret from the keychain
    browser.get(web.url)
    assert "secret in the keychain" in browser.find_element(By.ID, "profiles").text
    assert (
        Select(browser.find_element(By.ID, "profile")).first_selected_option.get_attribute("value")
        == "rehearsal"
    )
    connect_with(browser, web, "rehearsal")
    wait_for(lambda: browser.find_elements(By.ID, "check-summary"), what="the second check")
    assert SECRET not in browser.page_source


def test_without_a_keychain_the_typed_secret_stays_in_memory_and_says_so(
    web, seeded, browser
) -> None:
    add_profile("rehearsal", seeded.url)
    connect_with(browser, web, "rehearsal", SECRET)
    wait_for(lambda: browser.find_elements(By.ID, "check-summary"), what="the check")
    assert "no keychain on this machine" in browser.page_source
    assert "stays in this program's memory" in browser.page_source
    assert SECRET not in browser.page_source


def test_a_stopped_api_shows_the_failing_step_and_its_fix_fast(
    web, browser, keychain, monkeypatch
) -> None:
    """Fast: the refused connection is not tried again after a pause (seen as the waits asked
    for, not as the time the page took)."""
    from tests.test_writes_qa import record_waits

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    add_profile("stopped", f"http://127.0.0.1:{port}")
    keychain.set_password("bulk-contacts", "stopped", SECRET)
    waits = record_waits(monkeypatch)
    connect_with(browser, web, "stopped")
    wait_for(lambda: "TCP" in step_rows(browser), what="the failed check")
    assert not [w for w in waits if w >= 0.5], waits  # no retry after a backoff
    tcp = step_rows(browser)["TCP"]
    assert "failed" in tcp and f"nothing is listening at http://127.0.0.1:{port}" in tcp
    assert "Fix: is the sandbox running? start it with: bulk-contacts sandbox" in tcp
    assert not browser.find_elements(By.CSS_SELECTOR, "a.next[href='/upload']")


def test_the_sandbox_choice_shows_the_same_steps(web, browser) -> None:
    browser.get(web.url)
    browser.find_element(By.ID, "use-sandbox").click()
    wait_for(lambda: browser.find_elements(By.ID, "check-summary"), timeout=30, what="check")
    assert list(step_rows(browser)) == ["DNS", "TCP", "token", "site list"]


def test_the_plan_form_passes_allow_unreachable_exact_ids_and_repair_ids(
    web, seeded, browser, tmp_path
) -> None:
    roster = tmp_path / "roster.csv"
    text = (SAMPLES / "roster.csv").read_text(encoding="utf-8-sig")
    roster.write_text(text.rstrip("\n") + "\n10-4471,HD-NEW,Ann,Lee,,,\n", encoding="utf-8")
    browser.get(web.url)
    for name, value in (
        ("api_url", seeded.url),
        ("dealer", "12345"),
        ("client_id", "sandbox-client"),
        ("client_secret", SECRET),
    ):
        browser.find_element(By.ID, name).send_keys(value)
    browser.find_element(By.ID, "use-settings").click()
    wait_for(lambda: browser.find_elements(By.ID, "check-summary"), what="the check")
    browser.get(f"{web.base}/upload")
    browser.find_element(By.ID, "roster-file").send_keys(str(roster))
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: browser.current_url.endswith("/columns"), what="the columns page")
    browser.get(f"{web.base}/plan")

    def plan_with(*boxes: str) -> dict[str, int]:
        for box in ("opt-allow-unreachable", "opt-exact-ids", "opt-repair-ids"):
            element = browser.find_element(By.ID, box)
            if element.is_selected() != (box in boxes):
                element.click()
        old = browser.find_elements(By.CSS_SELECTOR, "li.card")
        browser.find_element(By.ID, "make-plan").click()
        wait_for(
            lambda: (
                browser.find_elements(By.CSS_SELECTOR, "li.card")
                and (not old or not _attached(old[0]))
            ),
            what="the plan",
        )
        return {
            card.get_attribute("data-count"): int(card.find_element(By.TAG_NAME, "b").text)
            for card in browser.find_elements(By.CSS_SELECTOR, "li.card")
        }

    refused = plan_with()
    assert refused["invalid"] == 1 and web.workspace.plan.refusals  # no phone, no e-mail
    allowed = plan_with("opt-allow-unreachable")
    assert allowed["invalid"] == 0 and not web.workspace.plan.refusals
    assert web.workspace.plan.options["allow_unreachable"]
    assert browser.find_element(By.ID, "opt-allow-unreachable").is_selected()  # kept
    plan_with("opt-allow-unreachable", "opt-exact-ids")
    assert web.workspace.plan.options["exact_ids"] and not web.workspace.plan.options["repair_ids"]
    plan_with("opt-allow-unreachable", "opt-repair-ids")
    assert web.workspace.plan.options["repair_ids"] and not web.workspace.plan.options["exact_ids"]


def _attached(element) -> bool:
    try:
        element.is_displayed()
    except Exception:
        return False
    return True
