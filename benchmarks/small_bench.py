"""The fixed CPU cost of validating a small roster in a warm process (what `serve` pays for each
upload and a script for each roster it checks): `load_validated` of the 51-row sample roster,
CSV and xlsx, against a hand-written baseline in the same run: pandas reads the file (calamine
for the xlsx), then phonenumbers and email-validator check every row. CPU time per call, the
median of `--runs` rounds of `--calls` calls each, after one warm-up call.

    python benchmarks/small_bench.py [--runs 5] [--calls 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from _common import report
from _naive_validate import bad_rows

from bulk_contacts.pipeline import load_validated

SAMPLES = Path(__file__).parent.parent / "sample_data"


def naive(path: Path) -> int:
    """The baseline: read with pandas, then each phone and e-mail by the libraries."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    else:  # calamine: the fast reader a careful user picks
        frame = pd.read_excel(path, engine="calamine", dtype=str, keep_default_na=False)
    return bad_rows(frame)


def cpu_ms(call: Callable[[], object], runs: int, calls: int) -> float:
    """CPU milliseconds per call: the median round."""
    call()
    rounds = []
    for _ in range(runs):
        started = time.process_time()
        for _ in range(calls):
            call()
        rounds.append((time.process_time() - started) / calls * 1000)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for name in ("roster.csv", "roster.xlsx"):
        path = SAMPLES / name
        ours = cpu_ms(lambda p=path: load_validated(p), args.runs, args.calls)
        baseline = cpu_ms(lambda p=path: naive(p), args.runs, args.calls)
        rows.append(
            {
                "file": f"sample_data/{name} (51 rows)",
                "ms_cpu_per_call": round(ours, 1),
                "baseline": "pandas reads it, then phonenumbers and email-validator row by row",
                "baseline_ms_cpu_per_call": round(baseline, 1),
                "ratio": round(baseline / ours, 2),
            }
        )
    report("validate a small roster: CPU per call, warm, in process", rows)


if __name__ == "__main__":
    main()
