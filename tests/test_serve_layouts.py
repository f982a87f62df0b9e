"""`serve` reads rosters laid out as people keep them, with the command line's layout options
(read by the command line's own parser), and never shows a passcode column's values on any
page, in any JSON or in any file it writes."""

from __future__ import annotations

import io
import json
import re
import zipfile
from html import unescape
from pathlib import Path

import openpyxl
import pytest

from tests.serving import confirm_apply, csrf, session_client, start_web, wait_for


@pytest.fixture
def web(tmp_path):
    server = start_web(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def client(web):
    with session_client(web) as client:
        yield client


def post(client, web, path: str, **kwargs):
    answer = client.post(path, headers=csrf(web), **kwargs)
    assert answer.status_code in (200, 204, 303), answer.text
    return answer


def upload(client, web, name: str, body: bytes) -> str:
    headers = {"X-File-Name": name, **csrf(web)}
    return client.post("/upload", content=body, headers=headers).json().get("redirect", "")


def messages(page: str) -> list[str]:
    return [
        unescape(re.sub(r"<[^>]+>", "", m)).strip()
        for m in re.findall(r'<p class="message[^"]*"[^>]*>(.*?)</p>', page, flags=re.S)
    ]


def tabs_workbook() -> bytes:
    """The sample sites' tabs, each `Name | Phone`: John Doe is a contact of 10-4471."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in {
        "10-4475": [["Name", "Phone"], ["Ann Lee", "2135550111"], ["Bo Ng", "2135550112"]],
        "10-4471": [["Name", "Phone"], ["JOHN DOE", "(202) 555-0999"]],
    }.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    body = io.BytesIO()
    book.save(body)
    return body.getvalue()


def test_the_upload_form_takes_the_layout_options_of_the_command_line(web, client) -> None:
    post(client, web, "/connect/sandbox")
    assert upload(client, web, "tabs2.xlsx", tabs_workbook()) == "/columns"
    ws = web.workspace
    assert ws.roster is None  # one sheet, no site column, no id column: the reader's error
    page = client.get("/upload").text
    for name in ("header_row", "phone_columns", "name_case", "all_sheets", "site", "account",
                 "external_site_id", "match_by"):  # fmt: skip
        assert f'name="{name}"' in page, name
    options = {"all_sheets": "1", "match_by": "name", "name_case": "title", "region": "US"}
    post(client, web, "/upload/options", data=options)
    assert ws.read.all_sheets and ws.read.match_by == "name" and ws.read.name_case == "title"
    assert ws.roster is not None, ws.roster_error
    assert len(ws.validated.rows) == 3 and ws.counts()["errors"] == 0
    page = unescape(client.get("/upload").text)
    assert "site from the sheet's name: '10-4475', '10-4471'" in page
    assert 'id="all_sheets" name="all_sheets" type="checkbox" value="1" checked' in page
    post(client, web, "/plan", data={"prune": "no"})
    plan = ws.plan
    summary = plan.summary()
    assert (summary["create"], summary["update"], summary["conflict"]) == (2, 1, 0)
    assert plan.sheets == ("10-4475", "10-4471")
    notes = sorted(plan.derived.values())
    assert notes[0].startswith("external_contact_id bcn-") and "generated from the" in notes[0]
    assert notes[2] == (
        "matched to contact_id 1 (external_contact_id 'HD-001') by first and last name "
        "(--match-by name)"
    )
    html = unescape(client.get("/plan/download/html").text)
    assert "'10-4471' row 2" in html and "generated from the dealer, the site" in html

    # The command line's parser: its ranges, its one-site rule, its messages.
    post(client, web, "/upload/options", data={**options, "header_row": "0"})
    shown = " ".join(messages(client.get("/upload").text))
    assert "--header-row" in shown and "0 is not in the range x>=1" in shown
    post(client, web, "/upload/options", data={**options, "site": "105", "account": "10-4475"})
    shown = " ".join(messages(client.get("/upload").text))
    assert "give the file's site once, with one of --site, --account or --external-site-id" in (
        shown
    )
    assert ws.read.all_sheets and ws.read.site is None  # the options refused change nothing
    one_site = {"account": "10-4475", "match_by": "name", "phone_columns": "Phone"}
    post(client, web, "/upload/options", data={**one_site, "sheet": "10-4475"})
    assert ws.read.site == ("account_number", "10-4475") and not ws.read.all_sheets
    assert len(ws.validated.rows) == 2 and ws.counts()["errors"] == 0


SECRET = "S3CRET-7731"


def test_a_passcode_is_on_no_page_json_or_file_of_serve(web, client, tmp_path) -> None:
    post(client, web, "/connect/sandbox")
    roster = (
        "account_number,external_contact_id,first_name,last_name,phone_number,Alarm PIN,"
        "Verbal Password\n"
        f"10-4475,SM-001,Haruto,Sato,(213) 555-0171,{SECRET}a,{SECRET}b\n"
        f"10-4475,SM-901,New,Person,(213) 555-0172,{SECRET}c,\n"
        f"10-4475,SM-902,Bad,Phone,12,{SECRET}d,\n"
    )
    assert upload(client, web, "pins.csv", roster.encode()) == "/columns"
    shown: list[bytes] = []
    for path in ("/upload", "/columns", "/fix", "/fix/rows", "/fix/corrected.xlsx"):
        shown.append(client.get(path).content)
    columns = unescape(shown[1].decode())
    assert "Alarm PIN" in columns and "hidden: a passcode column" in columns
    answer = client.post(
        "/fix/check", headers=csrf(web), json={"row": 4, "field": "phone_number", "value": "13"}
    )
    shown.append(answer.content)
    post(client, web, "/plan", data={"prune": "no", "skip_invalid": "1"})
    shown.append(client.get("/plan").content)
    for kind in ("json", "xlsx", "html", "csv"):
        shown.append(client.get(f"/plan/download/{kind}").content)
    assert confirm_apply(client, web).status_code == 200
    run = web.workspace.run
    wait_for(lambda: not run.running, what="the run")
    with client.stream("GET", "/run/events") as events:
        shown.append(events.read())
    shown += [client.get("/apply").content, client.get("/runs").content]
    for which in ("results", "journal", "failed"):
        shown.append(client.get(f"/runs/{run.folder.name}/{which}").content)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    private = Path(web.workspace.folder)  # the upload itself is the user's file, kept as is
    files += [p for p in private.rglob("*") if p.is_file() and "uploads" not in p.parts]
    assert any(p.name.endswith("journal.jsonl") for p in files), files
    shown += [path.read_bytes() for path in files]
    for body in list(shown):
        if zipfile.is_zipfile(io.BytesIO(body)):  # xlsx: every part of it
            with zipfile.ZipFile(io.BytesIO(body)) as archive:
                shown += [archive.read(member) for member in archive.namelist()]
    assert len(shown) > 30
    assert not [body[:200] for body in shown if SECRET.encode() in body]
    sandbox = web.workspace.connection.sandbox
    stored = sandbox.store.db.execute("SELECT * FROM contacts").fetchall()
    assert SECRET not in repr([tuple(row) for row in stored])


def test_the_grid_never_shows_an_internal_key(web, client) -> None:
    """--match-by name on a file whose id column is blank on some rows: the grid shows the
    blank, never the name key the reader carries for it."""
    roster = "Account,External ID,First Name,Last Name,Phone\n"
    roster += "10-4475,SM-1,Ann,Lee,2135550111\n10-4475,,Bo,Ng,2135550112\n"
    assert upload(client, web, "ids.csv", roster.encode()) == "/columns"
    post(client, web, "/upload/options", data={"match_by": "name"})
    grid = client.get("/fix/rows").json()
    assert [row["external_contact_id"] for row in grid["rows"]] == ["SM-1", ""]
    assert "~name:" not in json.dumps(grid)


def test_the_layout_options_in_chromium(web, browser, tmp_path) -> None:
    """The upload form as a person uses it: the tabs file dropped in, one tab per site and
    matching by name ticked, read again: every tab's rows are the roster."""
    from selenium.webdriver.common.by import By

    path = tmp_path / "tabs2.xlsx"
    path.write_bytes(tabs_workbook())
    browser.get(web.url)
    browser.get(f"{web.base}/upload")
    browser.find_element(By.ID, "roster-file").send_keys(str(path))
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: browser.current_url.endswith("/columns"), what="the columns page")
    browser.get(f"{web.base}/upload")
    for box in ("all_sheets", "match_by"):
        browser.find_element(By.ID, box).click()
    browser.find_element(By.XPATH, "//button[text()='Read again with these options']").click()
    wait_for(lambda: browser.current_url.endswith("/columns"), what="read again")
    ws = web.workspace
    assert ws.read.all_sheets and ws.read.match_by == "name"
    assert ws.roster is not None and len(ws.roster.frame) == 3, ws.roster_error
    browser.get(f"{web.base}/upload")
    assert browser.find_element(By.ID, "all_sheets").is_selected()


def test_serve_warns_of_other_sheets_that_look_like_rosters(web, client) -> None:
    """As the command line's `other_sheets`: only the first tab is read, and the page says the
    others look like rosters too, with what to do."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    header = ["account_number", "external_contact_id", "first_name", "last_name", "phone"]
    for name, row in {
        "East": ["10-4475", "SM-801", "Ann", "Lee", "2135550111"],
        "West": ["10-4471", "HD-801", "Bo", "Ng", "2025550112"],
    }.items():
        sheet = book.create_sheet(name)
        sheet.append(header)
        sheet.append(row)
    body = io.BytesIO()
    book.save(body)
    post(client, web, "/connect/sandbox")
    upload(client, web, "two-tabs.xlsx", body.getvalue())
    assert web.workspace.validated is not None, web.workspace.roster_error
    warning = "only sheet 'East' is read, but 'West' look like rosters too"
    for path in ("/fix", "/upload"):
        shown = " ".join(messages(client.get(path).text))
        assert warning in shown and "--all-sheets" in shown, (path, shown)
    assert web.workspace.counts()["warnings"] == 1
    post(client, web, "/upload/options", data={"all_sheets": "1"})
    assert warning not in " ".join(messages(client.get("/fix").text))
