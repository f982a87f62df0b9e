"""`bulk-contacts validate` on a 100,000-row xlsx over 20,000 sites, as a whole process, against
hand-written baselines in the same run: pandas.read_excel with openpyxl (pandas' default reader),
and with calamine (the fast reader a careful user would pick), then phonenumbers and
email-validator row by row. Each figure is the median of `--runs` runs (default 3).

    python benchmarks/validate_bench.py [--rows 100000] [--sites 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _common import median_of, report, run_measured
from roster_gen import write_roster

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roster = write_roster(Path(tmp) / "roster.xlsx", args.rows, args.sites)

        def measure(*command: str):
            return median_of(args.runs, lambda: run_measured([sys.executable, *command]))

        ours, our_peak, code = measure("-m", "bulk_contacts", "validate", str(roster), "-q")
        naive = str(HERE / "_naive_validate.py")
        baselines = {
            engine: measure(naive, str(roster), engine) for engine in ("openpyxl", "calamine")
        }
    report(
        "validate: 100,000-row xlsx, whole process",
        [
            {
                "rows": args.rows,
                "runs": args.runs,
                "seconds": round(ours, 2),
                "peak_mb": round(our_peak),
                "exit_code": code,
                "baseline": f"pandas.read_excel({engine}) + row by row",
                "baseline_seconds": round(seconds, 2),
                "baseline_peak_mb": round(peak),
                "ratio": round(seconds / ours, 1),
                "target": ">= 6x, < 500 MB (against openpyxl)",
            }
            for engine, (seconds, peak, _) in baselines.items()
        ],
    )


if __name__ == "__main__":
    main()
