"""A workbook whose write fails (a full disk, a file-size limit: the export or a report that
`serve` writes to its downloads folder, or the command line's `-o` / `--report`) leaves nothing
open and nothing behind: every file descriptor xlsxwriter opened is closed at once (not when the
garbage collector gets to it) and its temporary files are removed, as the half-written output
is. The failure is real: the writer runs in a process of its own under a file-size limit
(RLIMIT_FSIZE, SIGXFSZ ignored), so the kernel refuses the write (EFBIG) as a full disk would."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

from . import warm

SCRIPT = textwrap.dedent(
    """
    import gc, json, os, resource, signal, sys, tempfile
    from pathlib import Path

    from bulk_contacts.export import Export, write_export
    from bulk_contacts.models import Contact, Site
    from bulk_contacts.plan import Change, Plan, SitePlan
    from bulk_contacts.plan_report import write_plan_report
    from bulk_contacts.roster import read_roster
    from bulk_contacts.schema import validate_roster
    from bulk_contacts.validation_report import write_validation_report

    gc.disable()  # what the writer leaves open stays open: nothing collects it meanwhile
    root = Path(sys.argv[1])
    sites = [Site(s, f"Site {s}", f"ext-{s}", f"AC-{s}") for s in range(1, 30)]
    people = {
        s.site_id: [
            Contact(s.site_id * 100 + i, "Ann" * 5, "Lee" * 5, f"E{s.site_id}-{i}", "+12025550100")
            for i in range(40)
        ]
        for s in sites
    }
    export = Export(12345, sites, people, "2026-11-27T00:00:00Z")
    changes = [
        Change("create", 12345, 1, 2 + i, f"N{i}", None, {}, {"first_name": "Ann" * 20})
        for i in range(2000)
    ]
    plan = Plan(sites=[SitePlan(12345, 1, "Site 1", "AC-1", "ext-1", "f" * 32, 0, changes)])
    roster = root / "roster.csv"
    roster.write_text(
        "site_id,external_contact_id,first_name,last_name,phone_number\\n"
        + "".join(f"1,E{i},Ann,Lee,+1202555{i % 10000:04d}\\n" for i in range(3000))
    )
    validated = validate_roster(read_roster(roster))

    def write(kind, path):
        if kind == "export":
            write_export(export, path, overwrite=True)
        elif kind == "plan":
            write_plan_report(plan, path, overwrite=True)
        else:
            write_validation_report(validated, path, overwrite=True)

    found, written = {}, set()
    for case in sys.argv[2:]:
        kind, limit = case.split(":")
        folder, scratch = root / f"out-{kind}-{limit}", root / f"tmp-{kind}-{limit}"
        folder.mkdir()
        scratch.mkdir()
        tempfile.tempdir = str(scratch)  # where xlsxwriter keeps its temporary files
        if kind not in written:  # the modules loaded, and the file written whole once a kind
            write(kind, folder / "whole.xlsx")
            os.unlink(folder / "whole.xlsx")
            written.add(kind)
        before = sorted(os.listdir("/dev/fd"))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.RLIM_INFINITY))
        errors = []
        for _ in range(3):
            try:
                write(kind, folder / "out.xlsx")
            except OSError as error:
                errors.append(error.errno)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        after = sorted(os.listdir("/dev/fd"))
        opened = []
        for fd in set(after) - set(before):
            try:
                os.fstat(int(fd))
            except OSError:  # the listing's own descriptor, closed since
                continue
            try:
                opened.append(os.readlink(f"/dev/fd/{fd}"))
            except OSError:
                opened.append(fd)
        found[case] = {"errors": errors, "opened": opened}
    print(json.dumps(found))
    """
)


KINDS = ["export", "plan", "report"]
LIMITS = [2_000, 20_000]


@pytest.fixture(scope="module")
def failed_writes(tmp_path_factory):
    """Every kind under every limit, in one process (its imports and its three workbooks' data
    are most of its CPU): each case in folders of its own, its descriptors counted around it."""
    root = tmp_path_factory.mktemp("workbooks")
    cases = [f"{kind}:{limit}" for kind in KINDS for limit in LIMITS]
    done = warm.run(
        [sys.executable, "-c", SCRIPT, str(root), *cases],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return root, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("limit", LIMITS)
def test_a_failed_workbook_write_leaves_no_descriptor_and_no_temporary_file(
    failed_writes, kind, limit
) -> None:
    root, results = failed_writes
    found = results[f"{kind}:{limit}"]
    assert found["errors"] == [27, 27, 27], found  # EFBIG, three times: the writes failed
    assert found["opened"] == [], found  # every descriptor closed at once
    assert sorted(os.listdir(root / f"tmp-{kind}-{limit}")) == []  # xlsxwriter's temporary files
    assert sorted(os.listdir(root / f"out-{kind}-{limit}")) == []  # no half-written output
