"""`check` against the sandbox, healthy and broken, and the diagnostics of a connection that
cannot work: nothing listening (fast, no retries, the sandbox command suggested), a name that
does not resolve, a certificate not trusted (a local TLS server with its own CA; --ca-bundle
and CHEKT_CA_BUNDLE), a proxy answering HTML, and an API URL ending in /partner/v1."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from click.testing import CliRunner

from bulk_contacts import retries
from bulk_contacts.check import run_check
from bulk_contacts.cli import main
from bulk_contacts.sandbox import SandboxConfig
from bulk_contacts.settings import resolve_settings

SAMPLE_SEED = Path(__file__).parent.parent / "sample_data"


def sandbox_env(url: str, **more: str) -> dict[str, str]:
    return {
        "CHEKT_API_URL": url,
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": "12345",
        **more,
    }


def run(env: dict[str, str], *args: str):
    """The command's result, with what it did on the network counted, not timed: `connections`,
    the connections it opened or tried to (the client's and the check's own probes all go
    through `socket.create_connection`), and `waits`, every retry's or pacer's wait (all go
    through `retries.sleep`; recorded here, not slept). "Fast, without retries" is no wait and
    one connection: a wall-clock bound measured the loaded machine (imports, a busy core), not
    the command."""
    connections: list[tuple] = []
    waits: list[float] = []
    connect = socket.create_connection

    def counted(address, *more, **options):
        connections.append(address)
        return connect(address, *more, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "create_connection", counted)
        patch.setattr(retries, "sleep", waits.append)
        result = CliRunner().invoke(main, list(args), env=env)
    result.connections = connections  # type: ignore[attr-defined]  # counted here
    result.waits = waits  # type: ignore[attr-defined]  # recorded here
    return result


def at_once(result) -> bool:
    """Failed at its first connection, with no retry and no wait."""
    return len(result.connections) == 1 and result.waits == []


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeApi(BaseHTTPRequestHandler):
    """A token and an empty site list, with a rate limit; or, `html`, a proxy's login page."""

    html = False

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if self.html:
            body = b"<html><head><title>Proxy Login</title></head><body>Sign in</body></html>"
            kind = "text/html; charset=utf-8"
            status = 200
        elif self.path.endswith("/oauth/token"):
            body, kind, status = (
                json.dumps({"access_token": "t", "expires_in": 60}).encode(),
                ("application/json"),
                200,
            )
        else:
            body, kind, status = b"[]", "application/json", 200
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.send_header("X-RateLimit-Limit", "600")
        self.send_header("X-RateLimit-Remaining", "599")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


class HtmlPage(FakeApi):
    html = True


def serve(handler: type, context: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if context else "http"
    yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_api(ca) -> Iterator[str]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    yield from serve(FakeApi, context)


@pytest.fixture
def html_proxy() -> Iterator[str]:
    yield from serve(HtmlPage)


# check, healthy and broken


def test_check_passes_against_a_healthy_sandbox(start_sandbox) -> None:
    server = start_sandbox(SandboxConfig(seed=SAMPLE_SEED / "sandbox-seed.json", rate_limit=600))
    result = run(sandbox_env(server.url), "check")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for name in ("DNS", "TCP", "token", "site list"):
        assert any(line.strip().startswith(f"ok   {name}") and " ms " in line for line in lines)
    assert "dealer 12345: 13 sites" in result.output and "sites: 13" in result.output
    assert "rate limit: 600 requests per window" in result.output
    offset = next(line for line in lines if line.startswith("clock offset: "))
    assert abs(int(offset.split()[2])) <= 2  # the sandbox runs on this machine's clock
    assert "All checks passed." in result.output and "sandbox-secret" not in result.output


def test_check_of_a_stopped_sandbox_fails_at_tcp_fast_naming_the_sandbox_command() -> None:
    result = run(sandbox_env(f"http://127.0.0.1:{closed_port()}"), "check")
    assert result.exit_code == 1 and at_once(result), (result.connections, result.waits)
    assert "FAIL TCP" in result.output
    assert "nothing is listening at http://127.0.0.1:" in result.output
    assert "fix: is the sandbox running? start it with: bulk-contacts sandbox" in result.output
    assert "check failed at: TCP" in result.stderr


def test_check_quiet_prints_nothing_on_stdout_and_a_failing_step_on_stderr(start_sandbox) -> None:
    server = start_sandbox(SandboxConfig(seed=SAMPLE_SEED / "sandbox-seed.json"))
    passed = run(sandbox_env(server.url), "check", "-q")
    assert passed.exit_code == 0 and passed.stdout == "" and passed.stderr == "", passed.output
    failed = run(sandbox_env(f"http://127.0.0.1:{closed_port()}"), "check", "--quiet")
    assert failed.exit_code == 1 and failed.stdout == "", failed.stdout
    assert "FAIL TCP" in failed.stderr and "fix: is the sandbox running?" in failed.stderr
    assert "check failed at: TCP" in failed.stderr


def test_check_with_a_wrong_secret_fails_at_the_token(sandbox) -> None:
    result = run(sandbox_env(sandbox.url, CHEKT_CLIENT_SECRET="wrong"), "check")
    assert result.exit_code == 1
    assert "FAIL token" in result.output and "refused the credentials" in result.output
    assert "fix: check CHEKT_CLIENT_ID and CHEKT_CLIENT_SECRET" in result.output
    assert "wrong" not in result.output.replace("wrong client secret", "")


def test_check_with_a_wrong_dealer_fails_at_the_site_list(sandbox) -> None:
    result = run(sandbox_env(sandbox.url), "check", "--dealer", "999")
    assert result.exit_code == 1 and "ok   token" in result.output
    assert "FAIL site list" in result.output
    assert "dealer 999 is not reachable with these credentials (HTTP 403" in result.output
    assert "fix: check the dealer id" in result.output


def test_check_without_a_dealer_says_where_to_give_one(sandbox) -> None:
    env = sandbox_env(sandbox.url)
    del env["CHEKT_DEALER_ID"]
    result = run(env, "check")
    assert result.exit_code == 1 and "FAIL site list" in result.output
    assert "--dealer, CHEKT_DEALER_ID, or the profile's dealer" in result.output


def test_run_check_is_a_library_call(sandbox) -> None:
    report = run_check(resolve_settings(env=sandbox_env(sandbox.url)))
    assert report.ok and report.sites == 0
    assert [s.name for s in report.steps] == ["DNS", "TCP", "token", "site list"]


# diagnostics of the commands that talk to CHeKT


def test_nothing_listening_fails_at_the_first_attempt_without_retries(tmp_path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = run(sandbox_env(url), "export", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 1 and at_once(result), (result.connections, result.waits)
    error = result.stderr.strip()
    assert error.startswith("error: POST /oauth/token: nothing is listening at " + url)
    assert "start it with: bulk-contacts sandbox" in error and "attempts" not in error


def test_a_host_that_does_not_resolve_is_its_own_message(tmp_path) -> None:
    env = sandbox_env("https://chekt.invalid")
    result = run(env, "export", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 1 and at_once(result), (result.connections, result.waits)
    assert "the host chekt.invalid was not found (DNS lookup failed)" in result.stderr
    assert "HTTPS_PROXY" in result.stderr and "attempts" not in result.stderr
    checked = run(env, "check")
    assert checked.exit_code == 1 and "FAIL DNS" in checked.output
    assert "chekt.invalid was not found" in checked.output


def test_an_untrusted_certificate_suggests_the_ca_bundle(tls_api, ca, tmp_path) -> None:
    result = run(sandbox_env(tls_api), "export", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 1 and at_once(result), (result.connections, result.waits)
    assert "the TLS certificate of 127.0.0.1 could not be verified" in result.stderr
    assert "--ca-bundle FILE or CHEKT_CA_BUNDLE" in result.stderr
    assert "SSL_CERT_FILE" in result.stderr and "attempts" not in result.stderr
    checked = run(sandbox_env(tls_api), "check")
    assert checked.exit_code == 1 and "FAIL TLS" in checked.output
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    trusted = run(sandbox_env(tls_api), "check", "--ca-bundle", str(bundle))
    assert trusted.exit_code == 0, trusted.output
    assert "ok   TLS" in trusted.output and f"trusting {bundle}" in trusted.output
    assert "rate limit: 600 requests per window, 599 left now" in trusted.output
    by_variable = run(sandbox_env(tls_api, CHEKT_CA_BUNDLE=str(bundle)), "check")
    assert by_variable.exit_code == 0, by_variable.output
    by_ssl_cert_file = run(sandbox_env(tls_api, SSL_CERT_FILE=str(bundle)), "check")
    assert by_ssl_cert_file.exit_code == 0, by_ssl_cert_file.output


def test_a_ca_bundle_that_is_not_there_is_a_setting_error(tmp_path) -> None:
    result = run(sandbox_env("https://api.chekt.com"), "check", "--ca-bundle", "nope.pem")
    assert result.exit_code == 2
    assert "--ca-bundle nope.pem: no such file" in result.output
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = run(
        sandbox_env("https://api.chekt.com", CHEKT_CA_BUNDLE=str(tmp_path / "bad.pem")), "check"
    )
    assert bad.exit_code == 2 and "not a PEM file of certificates" in bad.output


def test_an_html_page_where_the_api_should_be_is_its_own_message(html_proxy, tmp_path) -> None:
    result = run(sandbox_env(html_proxy), "export", "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 1 and at_once(result), (result.connections, result.waits)
    assert 'answered an HTML page "Proxy Login" (text/html, HTTP 200)' in result.stderr
    assert "a proxy or captive portal answered" in result.stderr
    assert "refused the credentials" not in result.stderr and "attempts" not in result.stderr


def test_http_proxy_is_honoured_and_its_html_page_named(html_proxy, sandbox, tmp_path) -> None:
    env = sandbox_env(sandbox.url, HTTP_PROXY=html_proxy, NO_PROXY="")
    result = run(env, "check")
    assert result.exit_code == 1
    assert f"the proxy {html_proxy}/" in result.output or f"the proxy {html_proxy}" in result.output
    assert "FAIL token" in result.output and "answered an HTML page" in result.output


def test_an_api_url_ending_in_partner_v1_is_corrected_with_a_note(sandbox, tmp_path) -> None:
    result = run(
        sandbox_env(sandbox.url + "/partner/v1/"), "export", "-o", str(tmp_path / "x.xlsx")
    )
    assert result.exit_code == 0, result.output
    assert "note: the API URL is the host without /partner/v1" in result.stderr
    assert f"using {sandbox.url} instead of {sandbox.url}/partner/v1" in result.stderr
