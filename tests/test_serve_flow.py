"""`serve` step by step over HTTP (the browser test covers the pages themselves): the embedded
sandbox, columns chosen and saved, refusals with the option that passes them, Stop and the
server's own exit during a run (in-flight changes finish, the journal is complete), live
progress as server-sent events, stale plans, rollback against another CHeKT refused, and the
`serve` command itself."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from bulk_contacts.journal import read_journal
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster
from bulk_contacts.web.server import WebServer
from tests.serving import (
    SAMPLES,
    confirm_apply,
    csrf,
    session_client,
    shown_plan,
    start_web,
    wait_for,
)

from . import warm


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
    assert answer.status_code in (200, 204), answer.text
    return answer


def upload(client, web, name: str, body: bytes) -> str:
    headers = {"X-File-Name": name, **csrf(web)}
    return client.post("/upload", content=body, headers=headers).json().get("redirect", "")


def messages(page: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m).split(":", 1)[-1].strip()
        for m in re.findall(r'<p class="message[^"]*"[^>]*>(.*?)</p>', page, flags=re.S)
    ]


def connect_to(client, web, sandbox) -> None:
    form = {
        "api_url": sandbox.url,
        "dealer": "12345",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    post(client, web, "/connect/settings", data=form)


def test_the_embedded_sandbox_and_its_sample_roster(web, client) -> None:
    post(client, web, "/connect/sandbox")
    page = client.get("/connect").text
    assert "dealer 12345: 13 sites" in page and page.count("passed") == 4  # DNS, TCP, token, sites
    assert web.workspace.connection.sandbox.url.startswith("http://127.0.0.1:")
    assert post(client, web, "/upload/sample").headers["hx-redirect"] == "/columns"
    post(client, web, "/plan", data={"prune": "yes"})
    cards = dict(re.findall(r'data-count="(\w+)"><b>(\d+)</b>', client.get("/plan").text))
    assert cards == {  # the demo's plan
        "create": "46",
        "update": "2",
        "delete": "2",
        "unchanged": "1",
        "conflict": "1",
        "invalid": "0",
    }
    sandbox = web.workspace.connection.sandbox
    web.stop()
    assert sandbox.store is None  # stopped with serve


def test_a_missing_setting_is_named_and_nothing_is_connected(web, client, monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("CHEKT_")]:
        monkeypatch.delenv(name)
    post(client, web, "/connect/settings", data={"api_url": "https://chekt.invalid"})
    assert "no credentials: set CHEKT_CLIENT_ID" in " ".join(messages(client.get("/connect").text))
    assert web.workspace.connection is None


def test_columns_remapped_not_sent_refused_saved_and_reused(web, client) -> None:
    body = (SAMPLES / "roster.csv").read_bytes().replace(b"Phone", b"Rufnummer", 1)
    assert upload(client, web, "roster.csv", body) == "/columns"
    ws = web.workspace
    assert ws.choices[4] is None and ws.roster.columns.get("phone_number") is None
    post(client, web, "/columns", data={"col-4": "phone_number"})
    assert ws.roster.columns["phone_number"] == ("E", "Rufnummer")
    assert ws.counts()["errors"] == 0
    post(client, web, "/columns/save", data={"name": "dealer 7"})
    saved = json.loads(ws.mappings_file.read_text())
    assert saved["dealer 7"]["Rufnummer"] == "phone_number"

    post(client, web, "/columns", data={"col-5": ""})  # e-mail: not sent
    assert "email" not in ws.roster.columns
    assert [i.column for i in ws.validated.issues if i.code == "unknown_column"] == [
        "F 'E-mail (not sent)'"
    ]
    post(client, web, "/columns", data={"col-3": "first_name"})  # two first names: the reader
    page = client.get("/columns").text
    assert "both mean first_name; rename or delete one of them" in page
    assert ws.roster is None and ws.validated is None

    assert upload(client, web, "again.csv", body) == "/columns"
    post(client, web, "/columns/use", data={"name": "dealer 7"})
    assert ws.roster.columns["phone_number"] == ("E", "Rufnummer")


def test_an_unreadable_file_gets_the_readers_message(web, client) -> None:
    assert upload(client, web, "roster.xlsx", b"") == "/upload"
    shown = " ".join(messages(client.get("/upload").text))
    assert "roster.xlsx" in shown and "bulk-contacts-serve-" not in shown  # no private path
    assert web.workspace.upload is None


def test_a_date_typed_again_is_no_longer_a_date(web, client) -> None:
    """A phone number Excel turned into a date, typed again in the grid."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Account #", "External Contact ID", "First Name", "Last Name", "Phone"])
    sheet.append(["10-4471", "HD-001", "John", "Doe", "(202) 555-0143"])
    sheet.append(["10-4471", "HD-002", "Ann", "Lee", None])
    sheet["E3"].value = __import__("datetime").datetime(2024, 1, 5)
    workbook.save(web.folder / "dates.xlsx")
    upload(client, web, "dates.xlsx", (web.folder / "dates.xlsx").read_bytes())
    assert web.workspace.issues[3]["phone_number"][0][0] == "error"
    answer = post(
        client, web, "/fix/cell", json={"row": 3, "field": "phone_number", "value": "2025550199"}
    )
    assert answer.json()["rows"] == [{"_row": 3, "_issues": {}, "_worst": ""}]
    assert answer.json()["counts"]["errors"] == 0
    uploaded = web.workspace.upload.path
    assert uploaded.read_bytes() == (web.folder / "dates.xlsx").read_bytes()  # never changed
    corrected = client.get("/fix/corrected.xlsx")
    assert corrected.status_code == 200
    path = web.folder / "corrected.xlsx"
    path.write_bytes(corrected.content)
    again = validate_roster(read_roster(path))
    assert again.valid and again.roster.frame.at[3, "phone_number"] == "2025550199"


def test_a_refusal_names_the_option_that_passes_it(web, client, start_sandbox) -> None:
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "yes", "max_deletes": "1"})
    page = client.get("/plan").text
    assert "Refused: the plan deletes 2 contacts, past the limit of 1" in page
    assert '<a href="#opt-force">Force past the delete guard (--force)</a>' in page
    assert 'id="opt-force"' in page and 'id="to-apply"' not in page
    assert confirm_apply(client, web, "").headers["hx-redirect"] == "/plan"
    assert web.workspace.run is None
    post(client, web, "/plan", data={"prune": "yes", "max_deletes": "1", "force": "1"})
    assert 'id="to-apply"' in client.get("/plan").text


def test_a_plan_gone_stale_applies_nothing(web, client, start_sandbox) -> None:
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    sandbox.store.db.execute(
        "UPDATE contacts SET first_name='Jon' WHERE external_contact_id='HD-001'"
    )
    sandbox.store.db.commit()
    assert confirm_apply(client, web).headers["hx-redirect"] == "/plan"
    shown = " ".join(messages(client.get("/plan").text))
    assert "1 site changed in CHeKT since the plan was made" in shown
    assert "nothing was applied" in shown and web.workspace.run is None


def test_a_plan_applied_meanwhile_is_not_applied_again(web, client, start_sandbox) -> None:
    """Site 101 changes meanwhile into exactly what the plan makes of it (the CLI's 'already
    applied'): the page, which applies the plan as made, must not send its creates again."""
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    site = next(s for s in web.workspace.plan.sites if s.site_id == 101)
    for change in site.changes:
        if change.action == "create":
            sandbox.store.create_contact(101, dict(change.after))
        elif change.action == "update":
            sandbox.store.update_contact(101, change.contact_id, dict(change.after))
    before = sandbox.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    assert confirm_apply(client, web).headers["hx-redirect"] == "/plan"
    shown = " ".join(messages(client.get("/plan").text))
    assert "1 site changed in CHeKT since the plan was made" in shown
    assert web.workspace.run is None
    assert sandbox.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == before


def test_apply_applies_the_plan_its_page_showed_not_another_tabs(
    web, client, start_sandbox
) -> None:
    """QA (two tabs): tab A shows the plan of one roster and its Apply button; tab B uploads
    another roster and plans it with prune. Apply pressed in tab A must not apply tab B's plan,
    which nobody confirmed there."""
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    tab_a = shown_plan(client)  # tab A's confirmation: the creates and updates of roster.xlsx
    one_row = "account_number,external_contact_id,first_name,last_name,phone_number\n"
    one_row += "10-4471,HD-001,John,Doe,+12025550143\n"
    upload(client, web, "one.csv", one_row.encode())  # tab B
    post(client, web, "/plan", data={"prune": "yes", "allow_empty_sites": "1", "force": "1"})
    before = sandbox.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]
    assert confirm_apply(client, web, tab_a).headers["hx-redirect"] == "/plan"
    assert web.workspace.run is None
    shown = " ".join(messages(client.get("/plan").text))
    assert "nothing was applied" in shown and "another" in shown
    assert sandbox.store.db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0] == before
    assert confirm_apply(client, web).status_code == 200  # tab B's own button applies its plan
    wait_for(lambda: not web.workspace.run.running, what="the apply")
    assert web.workspace.run.report.counts["ok"] > 0


def test_a_tab_showing_another_roster_changes_nothing(web, client) -> None:
    """QA (two tabs): tab A shows the Fix grid of one roster; tab B uploads another. A cell
    corrected or a column chosen in tab A must not land in tab B's roster (same row number,
    someone else's contact)."""
    assert upload(client, web, "a.csv", (SAMPLES / "roster.csv").read_bytes()) == "/columns"
    tab_a = re.search(r'data-roster="([0-9]+)"', client.get("/fix").text).group(1)
    other = "account_number,external_contact_id,first_name,last_name,phone_number\n"
    other += "10-4471,HD-001,John,Doe,+12025550143\n"
    assert upload(client, web, "b.csv", other.encode()) == "/columns"  # tab B
    ws = web.workspace
    headers = {**csrf(web), "X-Roster": tab_a}
    cell = {"row": 2, "field": "first_name", "value": "Mallory"}
    answer = client.post("/fix/cell", json=cell, headers=headers)
    assert answer.status_code == 409 and "another tab" in answer.json()["error"]
    assert ws.roster.frame.loc[2, "first_name"] == "John"
    answer = client.post("/columns", data={"col-2": ""}, headers=headers)
    assert answer.headers["hx-redirect"] == "/columns"
    assert "first_name" in ws.roster.columns
    assert "another tab" in " ".join(messages(client.get("/columns").text))
    tab_b = re.search(r'data-roster="([0-9]+)"', client.get("/fix").text).group(1)
    answer = client.post("/fix/cell", json=cell, headers={**csrf(web), "X-Roster": tab_b})
    assert answer.status_code == 200 and ws.roster.frame.loc[2, "first_name"] == "Mallory"


def held_sandbox(start_sandbox):
    """A sandbox whose first write passes and whose next ones wait (`hold_writes`) until the
    test releases them: a run stopped there is stopped mid-way, whatever the machine's speed."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    return server, server.hold_writes(after=1)


def journal_is_complete(folder) -> list[dict]:
    records = read_journal(folder / "journal.jsonl")
    intents = {r["n"] for r in records if r.get("type") == "intent"}
    outcomes = [r for r in records if r.get("type") == "outcome"]
    assert intents <= {r["n"] for r in outcomes}  # every write sent has its outcome
    return outcomes


def test_stop_finishes_the_changes_in_flight_and_skips_the_rest(web, client, start_sandbox):
    sandbox, hold = held_sandbox(start_sandbox)
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    assert confirm_apply(client, web).status_code == 200
    run = web.workspace.run
    hold.wait_held(1)  # the first change made, the next in flight
    assert client.post("/run/stop", headers=csrf(web)).status_code == 204
    hold.release()
    with client.stream("GET", "/run/events") as events:
        lines = [line for line in events.iter_lines() if line]
    snapshots = [json.loads(line[6:]) for line in lines if line.startswith('data: {"')]
    assert lines[-2:] == ["event: finished", "data: {}"]
    last = snapshots[-1]
    assert last["finished"] and last["interrupted"] and last["total"] == 49
    assert last["ok"] > 0 and last["skipped"] > 0 and last["ok"] + last["skipped"] == 49
    outcomes = journal_is_complete(run.folder)
    assert len(outcomes) == 49
    assert "Stopped: the changes not started are recorded as skipped" in client.get("/apply").text


def test_a_page_run_is_warned_of_a_command_line_run_for_its_dealer(
    web, client, start_sandbox, tmp_path
) -> None:
    """The run lock (one per dealer and API URL, README "Another run at the same time") is the
    page's too: before, a run started from the page took no lock, so it went on side by side
    with an `apply` of the same dealer in a terminal without a word. Now the page says so (and
    goes on, as `apply` without --wait does)."""
    from .test_writes import finish, hold_dealer_lock

    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    holder = hold_dealer_lock(tmp_path, sandbox.url.replace("127.0.0.1", "localhost"))
    try:
        connect_to(client, web, sandbox)
        upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
        post(client, web, "/plan", data={"prune": "no"})
        assert confirm_apply(client, web).status_code == 200
        shown = " ".join(messages(client.get("/apply").text))
        wait_for(lambda: not web.workspace.run.running, what="the apply")
    finally:
        holder.kill()
        finish(holder)
    assert f"another bulk-contacts run writes to dealer 12345 at {sandbox.url}" in shown
    assert f"(pid {holder.pid}" in shown
    assert web.workspace.run.report.counts["ok"] > 0


def test_a_command_line_run_is_warned_of_a_page_run_for_its_dealer(
    web, client, start_sandbox
) -> None:
    """The other way round: a run in a terminal while the page's run writes to its dealer is
    warned of it; the page's run releases the lock when it ends."""
    from bulk_contacts.lock import DealerLocks

    sandbox, hold = held_sandbox(start_sandbox)
    connect_to(client, web, sandbox)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    assert confirm_apply(client, web).status_code == 200
    hold.wait_held(1)  # the page's run is writing
    told: list[str] = []
    try:
        with DealerLocks([12345], sandbox.url + "/").acquire(False, told.append):
            pass
    finally:
        hold.release()
    wait_for(lambda: not web.workspace.run.running, what="the apply")
    assert len(told) == 1 and told[0].startswith(
        f"warning: another bulk-contacts run writes to dealer 12345 at {sandbox.url}/ (pid "
    ), told
    told.clear()
    with DealerLocks([12345], sandbox.url).acquire(False, told.append):
        pass
    assert told == []  # released when the run ended


def test_the_server_stopping_mid_run_stops_it_as_ctrl_c_does(tmp_path, start_sandbox) -> None:
    server = start_web(tmp_path)
    with session_client(server) as client:
        sandbox, hold = held_sandbox(start_sandbox)
        connect_to(client, server, sandbox)
        upload(client, server, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
        post(client, server, "/plan", data={"prune": "no"})
        assert confirm_apply(client, server).status_code == 200
    run = server.workspace.run
    hold.wait_held(1)  # the first change made, the next in flight
    stopping = threading.Thread(target=server.stop)
    stopping.start()
    assert run.stop.wait(timeout=30), "the stop was not asked of the run"
    hold.release()  # the change in flight is answered once the stop was asked
    stopping.join(timeout=30)
    assert not run.running and run.report.interrupted
    assert len(journal_is_complete(run.folder)) == 49
    assert not server.folder.exists()


def test_a_rollback_against_another_chekt_is_refused(web, client, start_sandbox) -> None:
    first = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    connect_to(client, web, first)
    upload(client, web, "roster.xlsx", (SAMPLES / "roster.xlsx").read_bytes())
    post(client, web, "/plan", data={"prune": "no"})
    assert confirm_apply(client, web).status_code == 200
    wait_for(lambda: not web.workspace.run.running, what="the apply")
    name = web.workspace.run.folder.name
    assert name in client.get("/runs").text
    connect_to(client, web, start_sandbox(seed=SAMPLES / "sandbox-seed.json"))
    page = client.get(f"/runs/{name}/rollback").text
    assert f"this run wrote to {first.url}, but you are connected to" in page
    assert (
        client.post(f"/runs/{name}/rollback", headers=csrf(web)).headers["hx-redirect"] == "/runs"
    )
    assert client.get("/runs/../../etc/journal").status_code == 404


def test_the_serve_command_prints_its_url_and_stops_on_ctrl_c(tmp_path) -> None:
    process = warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", "serve", "--port", "0", "--no-browser"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{40,}", line)
        assert url, line + process.stderr.read()
        import httpx

        assert httpx.get(url.group(0)).status_code == 303
        assert httpx.get(url.group(0).split("?")[0]).status_code == 403
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
    finally:
        process.kill()
        process.communicate()


def test_a_port_in_use_is_a_clear_error(tmp_path) -> None:
    """In this process (the serve command's own process is another test's)."""
    from click.testing import CliRunner

    from bulk_contacts.cli import main

    server = WebServer(0, runs_dir=tmp_path / "runs", mappings_file=tmp_path / "m.json")
    try:
        result = CliRunner().invoke(main, ["serve", "--port", str(server.session.port)])
    finally:
        server.close()
    assert result.exit_code == 2, result.output
    assert f"port {server.session.port} on 127.0.0.1 is already in use" in result.stderr
