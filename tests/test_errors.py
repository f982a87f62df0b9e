"""One error boundary: the library's errors become one line and their exit code at the command
line (input and configuration 2, API errors and refusals 1, Ctrl-C 130), with the flag of the
setting they are about; and no error is swallowed on the way."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openpyxl
import pytest
from click.testing import CliRunner

from bulk_contacts import errors
from bulk_contacts.apply import RunFiles, apply_plan
from bulk_contacts.cli import main
from bulk_contacts.client import ChektClient
from bulk_contacts.errors import ExitCode
from bulk_contacts.plan import Change, Plan, SitePlan
from bulk_contacts.runlog import RunLog
from bulk_contacts.settings import resolve_settings

SAMPLES = Path(__file__).parent.parent / "sample_data"
DEALER = 12345


def environment(server=None, **more: str) -> dict[str, str]:
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_DEALER_ID": str(DEALER),
        **more,
    }
    if server is not None:
        env["CHEKT_API_URL"] = server.url
    return env


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_every_error_class_has_its_exit_code() -> None:
    usage = {errors.ConfigError, errors.InputError, errors.SandboxError, errors.SeedError}
    for cls in [errors.BulkContactsError, *_subclasses(errors.BulkContactsError)]:
        expected = ExitCode.USAGE if cls in usage or issubclass(cls, tuple(usage)) else 1
        assert cls.exit_code == expected, cls


def _subclasses(cls: type) -> list[type]:
    return [sub for child in cls.__subclasses__() for sub in (child, *_subclasses(child))]


def test_a_bad_setting_is_one_line_with_its_flag_and_exit_2(tmp_path) -> None:
    roster = tmp_path / "r.csv"
    roster.write_text("Account #,External ID,First Name,Last Name\nA1,c1,Ann,Lee\n")
    result = run(environment(CHEKT_DEALER_ID="abc"), "plan", str(roster))
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: the dealer id must be a number of at most 18 digits (0-9), got 'abc' "
        "(CHEKT_DEALER_ID) (--dealer)"
    ]
    result = run(environment(), "validate", str(roster), "--region", "XX")
    assert result.exit_code == 2 and error_lines(result) == [
        "error: 'XX' is not a region code; use a two-letter code such as US, CA, GB or DE "
        "(--region)"
    ]


def test_an_api_url_holding_a_password_or_a_query_is_refused_without_showing_it() -> None:
    """A password in the API URL (`https://user:pw@host`) or a token in its query was printed
    wherever the URL is (`check`'s first line, the run lock's warning, the journal's header).
    No CHeKT URL has one (the client id and secret are their own settings): refused, one
    line, exit 2, the secret not shown."""
    for url in (
        "http://user:s3cret@127.0.0.1:1",
        "http://s3cret@127.0.0.1:1",
        "http://127.0.0.1:1/?token=s3cret",
        "https://api.chekt.com#s3cret",
    ):
        result = run(environment(CHEKT_API_URL=url), "check")
        assert result.exit_code == 2, (url, result.output)
        assert error_lines(result) == [
            "error: the API URL (CHEKT_API_URL) must be the address alone, without a user "
            "name, password, query (?...) or fragment (#...), which it holds: write it as "
            "https://host (with :port and a path if it has them); the client id and secret "
            "are settings of their own (--api-url)"
        ], url
        assert "s3cret" not in result.output


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999",
        "http://127.0.0.1:abc",
        "http://127.0.0.1:-1",
        "http://127.0.0.1:0",
        "http://[::1",
        "http://:8787",
        "https://",
    ],
)
def test_an_api_url_without_a_host_or_with_a_bad_port_is_one_line(url: str) -> None:
    """A malformed API URL (a port past 65535 or not a number, an unclosed IPv6 bracket, no
    host) was a traceback (ValueError: Port out of range, httpx.InvalidURL, Invalid IPv6 URL),
    or `plain http:// to None`. Now one line naming the URL, exit 2."""
    for command in (("check",), ("export", "-o", "x.csv")):
        result = run(environment(CHEKT_API_URL=url), *command)
        assert result.exit_code == 2, (url, command, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), url
        assert error_lines(result) == [
            f"error: the API URL must be an http(s) URL: a scheme, a host and perhaps a port "
            f"(1 to 65535), got {url.rstrip('/')!r} (CHEKT_API_URL) (--api-url)"
        ], result.output


@pytest.mark.parametrize(
    "dealer", ["1234567890123456789", "99999999999999999999", "\u00b2", "\u0661\u0662"]
)
def test_a_dealer_id_of_19_digits_or_other_digits_is_one_line(
    start_sandbox, tmp_path, dealer: str
) -> None:
    """A dealer id of 19 digits or more was taken, but the plan reads a dealer's sites only for
    ids of at most 18 digits (as a roster's dealer_id column allows): every row of the roster
    vanished, `0 sites, invalid 0`, "No changes: CHeKT already matches the roster", exit 0.
    `²` (a digit to str.isdigit, not to int) was a traceback. Now one line, exit 2."""
    server = start_sandbox()
    roster = tmp_path / "r.csv"
    roster.write_text(
        "Account #,External ID,First Name,Last Name,Phone\nA1,c1,Ann,Lee,2025550143\n"
    )
    result = run(environment(server, CHEKT_DEALER_ID=dealer), "plan", str(roster))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert error_lines(result) == [
        f"error: the dealer id must be a number of at most 18 digits (0-9), got {dealer!r} "
        f"(CHEKT_DEALER_ID) (--dealer)"
    ]


def test_an_unreadable_file_is_2_and_an_empty_roster_is_1(tmp_path) -> None:
    result = run(environment(), "validate", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and len(error_lines(result)) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("Account #,External ID,First Name,Last Name\n")
    result = run(environment(), "validate", str(empty))
    assert result.exit_code == 1
    assert error_lines(result) == [
        f"error: {empty}: no rows below the header (row 1): nothing to check or send"
    ]
    assert "Traceback" not in result.output


def test_an_api_error_is_1(start_sandbox, tmp_path) -> None:
    server = start_sandbox()
    result = run(
        environment(server, CHEKT_DEALER_ID="999"), "export", "-o", str(tmp_path / "x.csv")
    )
    assert result.exit_code == 1 and len(error_lines(result)) == 1
    assert "HTTP 403" in result.stderr


def test_ctrl_c_outside_a_run_is_130(monkeypatch, tmp_path) -> None:
    """Ctrl-C while the roster is being read (a KeyboardInterrupt anywhere but in a run, which
    stops by itself and records what it did): one line, exit 130."""
    import bulk_contacts.pipeline

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bulk_contacts.pipeline, "load_validated", interrupted)
    result = run(environment(), "validate", str(SAMPLES / "roster.csv"))
    assert result.exit_code == 130 and error_lines(result) == []
    assert result.stderr.strip() == "interrupted: nothing was written"


def test_an_unexpected_error_in_apply_keeps_its_traceback_in_the_log(tmp_path) -> None:
    """A bug met while sending a change (here the transport itself breaks with a ValueError, as
    no sandbox can): the change fails with its own outcome, the run goes on, and the log file has
    the traceback to report."""

    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        raise ValueError("a bug in the transport")

    settings = resolve_settings(
        api_url="https://api.test",
        env={"CHEKT_CLIENT_ID": "c", "CHEKT_CLIENT_SECRET": "s"},
        require_dealer=False,
    )
    change = Change("create", DEALER, 101, 2, "x1", None, {}, {"first_name": "A", "last_name": "B"})
    site = SitePlan(DEALER, 101, "S", None, None, "f", 0, changes=[change])
    log_path = tmp_path / "log.jsonl"
    with (
        RunLog(log_path) as log,
        ChektClient(settings, transport=httpx.MockTransport(broken), log=log) as client,
    ):
        files = RunFiles.choose(tmp_path / "results.csv", tmp_path / "journal.jsonl")
        report = apply_plan(client, Plan([site]), files, verify=False)
    assert report.counts["failed"] == 1 and report.exit_code == ExitCode.FAILED
    entries = [json.loads(line) for line in log_path.read_text().splitlines()]
    (error,) = [e for e in entries if e["kind"] == "error"]
    assert error["error"] == "ValueError" and error["site_id"] == 101
    assert "raise ValueError" in error["traceback"] and "_send_and_judge" in error["traceback"]


def test_a_damaged_export_snapshot_is_a_warning_that_the_merge_is_two_way(
    start_sandbox, tmp_path
) -> None:
    """With its snapshot, an export whose contact changed in CHeKT since plans no change (the
    reviewer did not touch it); with the snapshot damaged, the file is read as a plain roster, so
    the file's older value would be sent back: the user is told, not left to find out."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    env = environment(server)
    path = tmp_path / "contacts.xlsx"
    assert run(env, "export", "-o", str(path)).exit_code == 0
    server.store.db.execute(
        "UPDATE contacts SET first_name='Jon' WHERE external_contact_id='HD-001'"
    )
    intact = run(env, "plan", str(path), "--detailed-exitcode")
    assert intact.exit_code == 0, intact.output
    workbook = openpyxl.load_workbook(path)
    workbook["bulk-contacts snapshot"]["A3"] = '[[1, "Jo'  # cut short: not JSON any more
    workbook.save(path)
    validated = run(env, "validate", str(path))
    assert validated.exit_code == 0, validated.output
    assert "warning snapshot_damaged: 1" in validated.output
    assert "two-way" in validated.output
    damaged = run(env, "plan", str(path), "--detailed-exitcode")
    assert damaged.exit_code == 3 and "snapshot_damaged" in damaged.output
    assert "'Jon' -> 'John'" in damaged.output
