"""The command line starts light: importing it (what every `bulk-contacts` run and every shell
completion does) loads none of the heavy libraries; a command imports what it needs when run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pandas", "numpy", "openpyxl", "python_calamine", "httpx", "pydantic", "jinja2")


@pytest.mark.parametrize(
    "module", ["bulk_contacts.cli", "bulk_contacts.terminal", "bulk_contacts.site_layouts"]
)
def test_importing_loads_no_heavy_library(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert found.stdout.strip() == "[]", found.stdout


def test_one_header_key_for_every_reader() -> None:
    from bulk_contacts import columns, layouts, roster, site_layouts

    assert layouts.header_key is columns.header_key
    assert roster.ALIAS_KEYS is columns.ALIAS_KEYS
    assert not hasattr(site_layouts, "_key") and not hasattr(site_layouts, "_KNOWN")
    assert columns.header_key(" E-Mail ") == columns.header_key("email") == "email"


def test_validating_does_not_import_hypothesis() -> None:
    """A command runs as in a user's install, without hypothesis (installed here for the
    tests, which pandera imports for data synthesis the tool never uses): the checks pandera
    runs still find a bad value (`tests/user_install`)."""
    code = (
        "import sys, pathlib; from bulk_contacts import schema, roster;"
        "r = schema.validate_roster(roster.read_roster(pathlib.Path(sys.argv[1])));"
        "print(sorted({i.code for i in r.errors}), sys.modules.get('hypothesis') is not None)"
    )
    mistakes = str(Path(__file__).parent.parent / "sample_data" / "roster-with-mistakes.csv")
    found = subprocess.run(
        [sys.executable, "-c", code, mistakes], capture_output=True, text=True, timeout=60
    )
    assert found.stdout.endswith("] False\n"), found.stdout + found.stderr
    assert "'invalid_phone'" in found.stdout and "'bad_action'" in found.stdout, found.stdout


def test_a_validation_without_an_xlsx_report_loads_no_xlsx_writer(tmp_path: Path) -> None:
    report = tmp_path / "report.csv"
    code = (
        "import sys, runpy\nsys.argv[0] = 'bulk-contacts'\n"
        "try: runpy.run_module('bulk_contacts', run_name='__main__')\n"
        "except SystemExit: print('xlsxwriter' in sys.modules)"
    )
    roster = str(Path(__file__).parent.parent / "sample_data" / "roster.csv")
    found = subprocess.run(
        [sys.executable, "-c", code, "validate", roster, "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.stdout.split()[-1] == "False", found.stdout + found.stderr
    assert report.read_text(encoding="utf-8-sig").startswith("row,column,"), found.stdout


def test_the_api_client_does_not_import_trio(sandbox) -> None:
    """A command runs as in a user's install, without trio (installed here with selenium,
    which httpcore imports for an async backend the tool never uses): the client still talks to
    the API (`tests/user_install`)."""
    code = (
        "import sys; from bulk_contacts.auth import TokenSource; import bulk_contacts.client;"
        "import httpx;"
        "answer = httpx.post(sys.argv[1] + '/oauth/token', data={'grant_type': "
        "'client_credentials', 'client_id': 'sandbox-client', 'client_secret': 'sandbox-secret'});"
        "print(answer.status_code, sys.modules.get('trio') is not None)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code, sandbox.url], capture_output=True, text=True, timeout=60
    )
    assert found.stdout.split() == ["200", "False"], found.stdout + found.stderr
