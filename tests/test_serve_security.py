"""`serve` can write to CHeKT, so only its own pages, in the browser of the person who started
it, may use it: the token, the session cookie, the CSRF header, the Host check, no CORS, private
uploads, no secret or token ever sent to the browser, every spreadsheet value shown as text."""

from __future__ import annotations

import stat

import httpx
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from bulk_contacts.web.workspace import safe_file_name
from tests.serving import SAMPLES, confirm_apply, csrf, session_client, start_web, wait_for

PAGES = ("/connect", "/upload", "/columns", "/fix", "/plan", "/apply", "/runs", "/export")


@pytest.fixture
def web(tmp_path):
    server = start_web(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def client(web):
    with session_client(web) as client:
        yield client


def test_it_listens_on_127_0_0_1_only(web) -> None:
    assert web.server.servers[0].sockets[0].getsockname()[0] == "127.0.0.1"
    assert web.url.startswith(f"http://127.0.0.1:{web.session.port}/?token=")


@pytest.mark.parametrize("path", [*PAGES, "/fix/rows", "/run/events", "/static/app.js"])
def test_no_token_no_session_403(web, path) -> None:
    assert httpx.get(web.base + path).status_code == 403
    wrong = httpx.get(f"{web.base}{path}?token=not-the-token")
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    forged = httpx.get(web.base + path, cookies={web.session.cookie_name: web.session.token})
    assert forged.status_code == 403


def test_the_token_url_sets_a_strict_http_only_cookie_and_leaves_the_address_bar(web) -> None:
    answer = httpx.get(web.url.replace("/?", "/plan?"))
    assert answer.status_code == 303 and answer.headers["location"] == "/plan"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{web.session.cookie_name}={web.session.cookie_value};")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert web.session.token not in cookie


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1",
        "127.0.0.1:1",
        "localhost:1",
        "[::1]:{port}",
    ],
)
def test_a_wrong_host_header_is_refused_even_with_the_session(web, client, host) -> None:
    header = {"Host": host.format(port=web.session.port)}
    assert client.get("/connect", headers=header).status_code == 400
    assert client.get(web.url, headers=header).status_code == 400  # nor can it get the cookie
    assert (
        client.get("/connect", headers={"Host": f"localhost:{web.session.port}"}).status_code == 200
    )


@pytest.mark.parametrize(
    "path", ["/connect/sandbox", "/plan", "/apply", "/fix/cell", "/run/stop", "/upload"]
)
def test_a_post_without_the_csrf_header_is_refused(web, client, path) -> None:
    assert client.post(path).status_code == 403
    assert client.post(path, headers={"X-CSRF-Token": "guess"}).status_code == 403
    assert web.workspace.connection is None and web.workspace.upload is None


def test_a_cross_origin_request_is_refused_and_no_cors_header_is_ever_sent(web, client) -> None:
    evil = {"Origin": "http://evil.example", **csrf(web)}
    assert client.post("/run/stop", headers=evil).status_code == 403
    preflight = client.options(
        "/plan", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    same = client.post("/run/stop", headers={"Origin": web.base, **csrf(web)})
    assert same.status_code == 204
    for answer in (preflight, same, client.get("/connect")):
        assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_every_answer_carries_the_security_headers(client) -> None:
    page = client.get("/connect")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # every script is a file of the package


def test_uploads_live_in_a_private_folder_removed_at_exit(tmp_path) -> None:
    server = start_web(tmp_path)
    folder = server.folder
    try:
        body = (SAMPLES / "roster.csv").read_bytes()
        headers = {"X-File-Name": "..%2F..%2Fescape%2Froster.csv", **csrf(server)}
        with session_client(server) as client:
            answer = client.post("/upload", content=body, headers=headers)
        assert answer.json() == {"redirect": "/columns"}
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        saved = server.workspace.upload.path
        assert saved.parent.parent.parent == folder and saved.name == "roster.csv"
        assert saved.read_bytes() == body
    finally:
        server.stop()
    assert not folder.exists()


def test_upload_names_are_never_paths() -> None:
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("C:\\Users\\a\\roster.xlsx") == "roster.xlsx"
    assert safe_file_name("..") == "roster"
    assert safe_file_name("ro<s>ter.csv") == "ro_s_ter.csv"


def test_the_secret_and_the_access_token_never_reach_the_browser(
    web, client, start_sandbox
) -> None:
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    form = {
        "api_url": sandbox.url,
        "dealer": "12345",
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
    }
    assert client.post("/connect/settings", data=form, headers=csrf(web)).status_code == 200
    assert web.workspace.checks and all(step.ok for step in web.workspace.checks)
    client.post(
        "/upload",
        content=(SAMPLES / "roster.xlsx").read_bytes(),
        headers={"X-File-Name": "roster.xlsx", **csrf(web)},
    )
    assert client.post("/plan", data={"prune": "no"}, headers=csrf(web)).status_code == 200
    seen = [client.get(f"/plan/download/{kind}") for kind in ("json", "xlsx", "html", "csv")]
    seen.append(client.get("/plan"))
    assert confirm_apply(client, web).status_code == 200
    wait_for(lambda: not web.workspace.run.running, what="the apply")
    token = web.workspace.connection.client.tokens.current()
    run = web.workspace.run.folder.name
    seen += [client.get(path) for path in PAGES]
    seen += [client.get(path) for path in ("/fix/rows", "/run/events", f"/runs/{run}/rollback")]
    seen += [client.get(f"/runs/{run}/{which}") for which in ("results", "journal")]
    seen.append(client.get("/export/contacts.xlsx"))
    assert [answer.status_code for answer in seen] == [200] * len(seen)
    for answer in seen:
        assert b"sandbox-secret" not in answer.content
        assert token.encode() not in answer.content


HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_LAST = "<script>window.pwned=1</script>"


def test_a_script_in_a_name_never_runs(web, start_sandbox, browser, tmp_path) -> None:
    sandbox = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    roster = tmp_path / "hostile.csv"
    roster.write_text(
        "Account #,External Contact ID,First Name,Last Name,Phone,<b>Notes</b>\n"
        f'10-4471,HD-777,"{HOSTILE_NAME}","{HOSTILE_LAST}",+12025550177,<i>x</i>\n',
        encoding="utf-8",
    )
    browser.get(web.url)
    browser.find_element(By.ID, "api_url").send_keys(sandbox.url)
    browser.find_element(By.ID, "dealer").send_keys("12345")
    browser.find_element(By.ID, "client_id").send_keys("sandbox-client")
    browser.find_element(By.ID, "client_secret").send_keys("sandbox-secret")
    browser.find_element(By.ID, "use-settings").click()
    wait_for(lambda: "13 sites" in browser.page_source, what="the check")
    browser.get(f"{web.base}/upload")
    browser.find_element(By.ID, "roster-file").send_keys(str(roster))
    browser.find_element(By.ID, "upload-button").click()
    wait_for(lambda: browser.current_url.endswith("/columns"), what="the columns page")
    main = browser.find_element(By.TAG_NAME, "main")
    assert HOSTILE_NAME in main.text and "<b>Notes</b>" in main.text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script, td b, td i")
    browser.find_element(By.ID, "columns-submit").click()
    grid = wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "#grid[data-ready=yes]"), what="grid"
    )
    texts = [cell.text for cell in grid.find_elements(By.CSS_SELECTOR, ".tabulator-cell")]
    assert HOSTILE_NAME in texts and HOSTILE_LAST in texts
    browser.get(f"{web.base}/plan")
    browser.find_element(By.ID, "make-plan").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "li.card"), what="the plan")
    assert f"{HOSTILE_NAME} {HOSTILE_LAST}" in browser.find_element(By.TAG_NAME, "main").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script")
    assert browser.execute_script("return window.pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert is open
    violations = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert violations == []  # nothing was even tried: every value was text
