"""`plan` end to end: the sample roster against a seeded sandbox over 127.0.0.1, its output,
exit codes and reports (the HTML one in headless Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from bulk_contacts.cli import main
from bulk_contacts.sandbox import SandboxServer

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"


@pytest.fixture
def seeded(start_sandbox) -> SandboxServer:
    return start_sandbox(seed=SAMPLES / "sandbox-seed.json")


@pytest.fixture
def env(seeded) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": seeded.url,
        "CHEKT_DEALER_ID": "12345",
    }


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


def test_plan_shows_the_summary_the_diffs_and_what_it_leaves_alone(env) -> None:
    result = run(env, "plan", str(SAMPLES / "roster.xlsx"), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "create 46   update 2   delete 1   unchanged 1   conflict 1   invalid 0" in result.output
    assert (
        "~ update row 3     HD-002  phone_number: '+12025550100' -> '+12025550187'" in result.output
    )
    assert "- delete row 52    RX-009  Former Manager" in result.output
    assert "holds 2 contacts with external_contact_id 'NW-001'" in result.output
    assert "1 unmanaged" in result.output and "1 not in the roster" in result.output
    assert "nothing was written" in result.output


def test_plan_writes_nothing(env, seeded) -> None:
    before = seeded.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    run(env, "plan", str(SAMPLES / "roster.xlsx"), "--prune")
    assert seeded.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == before


def test_detailed_exit_codes(env, tmp_path) -> None:
    roster = str(SAMPLES / "roster.csv")
    assert run(env, "plan", roster, "--detailed-exitcode", "-q").exit_code == 3
    same = tmp_path / "same.csv"
    same.write_text(
        "Account #,External ID,First Name,Last Name,Phone,E-mail\n"
        "10-4471,HD-001,John,Doe,(202) 555-0143,john.doe@harbordental.example.com\n"
    )
    result = run(env, "plan", str(same), "--detailed-exitcode")
    assert result.exit_code == 0 and "No changes" in result.output
    result = run(env, "plan", str(SAMPLES / "roster-with-mistakes.csv"), "--detailed-exitcode")
    assert result.exit_code == 1 and "rows are invalid" in result.output


def test_invalid_rows_stop_the_plan_unless_skipped(env) -> None:
    mistakes = str(SAMPLES / "roster-with-mistakes.csv")
    stopped = run(env, "plan", mistakes)
    assert stopped.exit_code == 1 and "REFUSED: 10 rows are invalid" in stopped.output
    skipped = run(env, "plan", mistakes, "--skip-invalid")
    assert skipped.exit_code == 0, skipped.output
    # and CB-101, with neither phone nor e-mail: judged once the contacts are read
    assert "Invalid rows (11), not planned" in skipped.output
    assert "invalid 11" in skipped.output


def test_unknown_sites_are_invalid_rows(env, tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("Account #,External ID,First Name,Last Name\n10-4471,z1,A,B\nNOPE,z2,C,D\n")
    result = run(env, "plan", str(path))
    assert result.exit_code == 1
    assert "account_number 'NOPE' is not a site of dealer 12345" in result.output


def test_guards_refuse_with_exit_code_1(env, tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "Account #,External ID,First Name,Last Name,Action\n"
        "10-4474,RX-009,,,delete\n10-4474,RX-002,,,delete\n"
    )
    result = run(env, "plan", str(path))
    assert result.exit_code == 1 and "would leave the site with no contacts" in result.output
    assert "(--allow-empty-sites)" in result.output  # the command line names the flag
    assert run(env, "plan", str(path), "--allow-empty-sites").exit_code == 0
    result = run(env, "plan", str(SAMPLES / "roster.csv"), "--prune", "--max-deletes", "1")
    assert result.exit_code == 1 and "deletes 2 contacts, past the limit of 1" in result.output
    assert "(--force, --max-deletes N)" in result.output
    assert (
        run(
            env, "plan", str(SAMPLES / "roster.csv"), "--prune", "--max-deletes", "1", "--force"
        ).exit_code
        == 0
    )


def test_a_dealer_out_of_scope_and_missing_settings(env) -> None:
    result = run({**env, "CHEKT_DEALER_ID": "999"}, "plan", str(SAMPLES / "roster.csv"))
    assert result.exit_code == 1 and "dealer 999 is outside the scope" in result.output
    result = run({**env, "CHEKT_CLIENT_ID": ""}, "plan", str(SAMPLES / "roster.csv"))
    assert result.exit_code == 2 and "CHEKT_CLIENT_ID" in result.output
    result = run({**env, "CHEKT_DEALER_ID": ""}, "plan", str(SAMPLES / "roster.csv"))
    assert result.exit_code == 2 and "CHEKT_DEALER_ID" in result.output


def test_reports_json_csv_xlsx(env, tmp_path) -> None:
    paths = {s: tmp_path / f"plan.{s}" for s in ("json", "csv", "xlsx")}
    result = run(
        env,
        "plan",
        str(SAMPLES / "roster.xlsx"),
        "--prune",
        "-o",
        str(tmp_path / "out.json"),
        *[f"--report={p}" for p in paths.values()],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(paths["json"].read_text())
    assert body["summary"]["create"] == 46 and body["summary"]["delete"] == 2
    assert json.loads((tmp_path / "out.json").read_text())["sites"] == body["sites"]
    table = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False)
    assert len(table) == 50 and set(table["action"]) == {"create", "update", "delete"}
    workbook = openpyxl.load_workbook(paths["xlsx"])
    assert workbook.sheetnames == ["Summary", "Changes", "Conflicts", "Invalid rows", "Left alone"]
    changes = workbook["Changes"]
    header = [c.value for c in changes[1]]
    update = next(r for r in changes.iter_rows(min_row=2) if r[0].value == "update")
    phone = update[header.index("phone_number")]
    assert phone.value == "+12025550187" and phone.comment.text == "was: +12025550100"
    assert phone.fill.fgColor.rgb.endswith("FFEB9C")
    assert update[header.index("first_name")].fill.fgColor.rgb in (None, "00000000")
    assert workbook["Conflicts"].max_row == 2


def test_the_xlsx_report_lists_a_rows_problems_without_escaped_line_ends(env, tmp_path) -> None:
    roster = tmp_path / "multi.csv"
    roster.write_text(
        "account_number,external_contact_id,first_name,last_name,phone_number,email\n"
        "10-4471,M1,,,12,bad@@x\n10-4471,OK-1,Plain,Person,+12025550113,c@example.com\n"
    )
    report = tmp_path / "m.xlsx"
    result = run(env, "plan", str(roster), "--skip-invalid", "-q", "--report", str(report))
    assert result.exit_code == 0, result.output
    problems = openpyxl.load_workbook(report)["Invalid rows"]["C2"].value
    assert "'first_name'" in problems and "'last_name'" in problems and "\\x0a" not in problems


def test_the_html_report_renders_and_filters_in_chromium(env, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By

    report = tmp_path / "plan.html"
    assert (
        run(env, "plan", str(SAMPLES / "roster.xlsx"), "--prune", "--report", str(report)).exit_code
        == 0
    )
    page = report.read_text()
    assert "http://" not in page.replace("http://127.0.0.1", "") and "https://" not in page
    browser.get(report.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
    assert len(rows) == 50

    def visible() -> list[str]:
        return [r.get_attribute("data-action") for r in rows if r.is_displayed()]

    assert len(visible()) == 50
    for box in browser.find_elements(By.CSS_SELECTOR, ".action-filter"):
        if box.get_attribute("value") == "create":
            box.click()
    assert sorted(set(visible())) == ["delete", "update"] and len(visible()) == 4
    browser.find_element(By.ID, "search").send_keys("Nowak")
    assert visible() == []  # Nowak is in a conflict, not a change
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys("HD-0")
    assert sorted(visible()) == ["delete", "update"]
    assert "2 of 50 changes shown" in browser.find_element(By.ID, "shown").text


def test_the_html_report_template_is_compiled_once_a_process(monkeypatch, tmp_path) -> None:
    """`serve` and scripts write report after report: the template is compiled once (about
    10 ms of CPU each time it was)."""
    import jinja2

    from bulk_contacts import plan_report

    from .planning import Model, plan_for, roster

    compiled: list[str | None] = []
    real = jinja2.Environment.compile

    def compile(self, source, name=None, *args, **kwargs):
        compiled.append(name)
        return real(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", compile)
    plan_report._html_template.cache_clear()
    plan = plan_for(
        roster([["1001", "c1", "Ann", "Lee", "2025550143", "", "", ""]]), Model({1001: []})
    )
    pages = []
    for number in range(3):
        path = tmp_path / f"plan{number}.html"
        plan_report.write_plan_report(plan, path)
        pages.append(path.read_text())
    assert compiled == ["plan.html.j2"]
    assert all("Ann" in page and page.rstrip().endswith("</html>") for page in pages)


def test_the_log_file_has_exchanges_and_decisions_without_secrets(env, tmp_path) -> None:
    log = tmp_path / "log.jsonl"
    result = run(env, "plan", str(SAMPLES / "roster.xlsx"), "--prune", "--log-file", str(log))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = {line["kind"] for line in lines}
    assert kinds == {"http", "decision"}
    decisions = [line for line in lines if line["kind"] == "decision"]
    assert {d["action"] for d in decisions} == {"create", "update", "delete", "conflict"}
    assert "sandbox-secret" not in log.read_text()
    assert "Kwame" not in log.read_text()  # contact values only with -v


def test_a_roster_may_name_its_dealer_per_row(start_sandbox, tmp_path) -> None:
    server = start_sandbox(dealers=(12345, 555))
    for dealer, site in ((12345, 1), (555, 2)):
        server.store.create_site(dealer, {"site_id": site, "name": f"S{site}", "timezone": "UTC"})
    path = tmp_path / "two.csv"
    path.write_text(
        "dealer_id,site_id,external_contact_id,first_name,last_name,phone\n"
        "12345,1,a,Ann,Lee,2025550143\n555,2,b,Bo,Ng,2025550144\n"
    )
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
    }
    result = run(env, "apply", str(path), "--yes", "--results", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    held = server.store.db.execute("SELECT site_id, external_contact_id FROM contacts")
    assert sorted(tuple(r) for r in held) == [(1, "a"), (2, "b")]
    path.write_text("dealer_id,site_id,external_contact_id,first_name,last_name\n999,1,a,Ann,Lee\n")
    result = run(env, "plan", str(path))
    assert result.exit_code == 1 and "dealer 999 is outside the scope" in result.output


def test_a_saved_plan_with_a_byte_order_mark_is_applied(env, tmp_path) -> None:
    """Notepad saves UTF-8 with a byte order mark: the plan is the same JSON, and its checksum
    (over the parsed content) still refuses an edit made with it."""
    saved = tmp_path / "plan.json"
    made = run(env, "plan", str(SAMPLES / "roster.csv"), "-q", "-o", str(saved))
    assert made.exit_code == 0, made.output
    text = saved.read_text(encoding="utf-8")
    assert '"Kwame"' in text
    edited = tmp_path / "edited.json"
    edited.write_bytes(b"\xef\xbb\xbf" + text.replace("Kwame", "Kwami", 1).encode())
    refused = run(env, "apply", str(edited), "--yes", "--results", str(tmp_path / "e.csv"))
    assert refused.exit_code == 2, refused.output
    assert "the plan was edited after it was made" in refused.output
    noted = tmp_path / "notepad.json"
    noted.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    applied = run(env, "apply", str(noted), "--yes", "--results", str(tmp_path / "r.csv"))
    assert applied.exit_code == 0, applied.output
    results = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert len(results) > 0 and set(results["status"]) == {"ok"}, results
    undo = run(env, "rollback", str(noted), "--yes")  # a plan, not a journal: told so
    assert undo.exit_code == 2 and "is a plan" in undo.output, undo.output


@pytest.mark.parametrize(("encoding", "named"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_a_saved_plan_in_utf16_is_refused_saying_how_to_save_it(
    env, tmp_path, encoding: str, named: str
) -> None:
    """Notepad's "Unicode" is UTF-16 with a byte order mark: refused (nothing sent), one line
    naming the encoding and what to do, not Python's codec error ("'utf-8' codec can't decode
    byte 0xff in position 0")."""
    saved = tmp_path / "plan.json"
    assert run(env, "plan", str(SAMPLES / "roster.csv"), "-q", "-o", str(saved)).exit_code == 0
    unicode = tmp_path / "unicode.json"
    unicode.write_text(saved.read_text(encoding="utf-8"), encoding=encoding)
    refused = run(env, "apply", str(unicode), "--yes", "--results", str(tmp_path / "r.csv"))
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (
        f"error: {unicode}: saved as {named}, not as the UTF-8 a plan is written in; save it "
        f"again as UTF-8 (the plan is the same), or make a new plan with `bulk-contacts plan "
        f"... -o PLAN.json`\n"
    )
    assert "codec" not in refused.output
