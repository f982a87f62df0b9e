"""Writing 100,000 contacts to xlsx: the export's writer (xlsxwriter, constant memory, text
cells, a Sites sheet and the hidden snapshot) against pandas.DataFrame.to_excel with openpyxl
(pandas' default) and with xlsxwriter (the fast writer a careful user would pick), each in its
own process (for its peak memory), same run; each figure the median of `--runs` runs (default 3).

    python benchmarks/export_bench.py [--contacts 100000] [--sites 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import median_of, report, run_measured

WRITER = """
import sys, time
from bulk_contacts.export import Export, write_export
from bulk_contacts.models import Contact, Site
count, sites, kind, out, timing = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                   sys.argv[4], sys.argv[5])
site_list = [Site(n, f"Site {n}", f"EXT-{n}", f"A-{n}", "UTC") for n in range(1, sites + 1)]
contacts = {s.site_id: [] for s in site_list}
for n in range(count):
    contacts[1 + n % sites].append(Contact(n + 1, "Zoë", f"Müller {n}", f"C{n:07d}",
                                           "+12025550143", f"z{n}@example.com"))
export = Export(12345, site_list, contacts, "2026-01-01T00:00:00Z")
started = time.perf_counter()
if kind == "ours":
    write_export(export, __import__("pathlib").Path(out))
else:
    import pandas as pd
    pd.DataFrame(export.rows()).to_excel(out, engine=kind, index=False, sheet_name="Contacts")
open(timing, "w").write(str(time.perf_counter() - started))
"""


def measure(kind: str, args, directory: Path) -> tuple[float, float]:
    """(seconds spent writing, peak RSS of the whole process in MB)."""
    script = directory / "writer.py"
    script.write_text(WRITER)
    timing = directory / f"{kind}.seconds"
    _, peak, _ = run_measured(
        [
            sys.executable,
            str(script),
            str(args.contacts),
            str(args.sites),
            kind,
            str(directory / f"{kind}.xlsx"),
            str(timing),
        ]
    )
    return float(timing.read_text()), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            kind: median_of(args.runs, lambda kind=kind: measure(kind, args, Path(tmp)))
            for kind in ("ours", "openpyxl", "xlsxwriter")
        }
    ours, our_peak = figures.pop("ours")
    report(
        "export: 100,000 contacts to xlsx",
        [
            {
                "contacts": args.contacts,
                "runs": args.runs,
                "seconds": round(ours, 2),
                "peak_mb": round(our_peak),
                "baseline": f"pandas.DataFrame.to_excel({engine})",
                "baseline_seconds": round(seconds, 2),
                "baseline_peak_mb": round(peak),
                "ratio": round(seconds / ours, 1),
                "target": ">= 2x, < 400 MB (against openpyxl)",
            }
            for engine, (seconds, peak) in figures.items()
        ],
    )


if __name__ == "__main__":
    main()
