"""`bulk-contacts validate` on a 100,000-row xlsx over 20,000 sites, as a whole process, against
a hand-written baseline in the same run (pandas.read_excel with openpyxl, then phonenumbers and
email-validator row by row).

    python benchmarks/validate_bench.py [--rows 100000] [--sites 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import report, run_measured
from roster_gen import write_roster

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roster = write_roster(Path(tmp) / "roster.xlsx", args.rows, args.sites)
        ours, our_peak, code = run_measured(
            [sys.executable, "-m", "bulk_contacts", "validate", str(roster), "-q"]
        )
        naive, naive_peak, _ = run_measured(
            [sys.executable, str(HERE / "_naive_validate.py"), str(roster)]
        )
    report(
        "validate: 100,000-row xlsx, whole process",
        [
            {
                "rows": args.rows,
                "seconds": round(ours, 2),
                "peak_mb": round(our_peak),
                "exit_code": code,
                "baseline_seconds": round(naive, 2),
                "baseline_peak_mb": round(naive_peak),
                "ratio": round(naive / ours, 1),
                "target": ">= 6x, < 500 MB",
            }
        ],
    )


if __name__ == "__main__":
    main()
