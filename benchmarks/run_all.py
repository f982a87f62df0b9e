"""Run every benchmark and print one table: figure, baseline, ratio, peak memory.

    python benchmarks/run_all.py            # about 15 minutes on a 2-core machine
    python benchmarks/run_all.py --quick    # smaller workloads, same scripts (a smoke run)

Each benchmark prints `RESULT {json}` lines; this collects them. The README's table comes from
this output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {
    "sandbox_bench.py": [],
    "client_bench.py": [],
    "async_bench.py": [],
    "validate_bench.py": [],
    "small_bench.py": [],
    "plan_bench.py": [],
    "apply_bench.py": [],
    "export_bench.py": [],
    "serve_bench.py": [],
}
QUICK = {
    "sandbox_bench.py": ["--requests", "600"],
    "client_bench.py": ["--creates", "200", "--sequential", "30", "--limited", "60"],
    "async_bench.py": ["--creates", "200", "--runs", "1"],
    "validate_bench.py": ["--rows", "10000", "--sites", "2000", "--runs", "1"],
    "small_bench.py": ["--runs", "1", "--calls", "5"],
    "plan_bench.py": ["--rows", "10000", "--sites", "2000", "--fetch-sites", "100"],
    "apply_bench.py": ["--creates", "200", "--limited", "60", "--big", "5000"],
    "export_bench.py": ["--contacts", "10000", "--sites", "2000", "--runs", "1"],
    "serve_bench.py": ["--rows", "2000", "--sites", "400", "--repeat", "1"],
}
FIGURES = ("seconds", "requests_per_s", "per_s", "creates_per_s", "sites_per_s")


def run(script: str, args: list[str]) -> list[dict]:
    completed = subprocess.run(
        [sys.executable, str(HERE / script), *args], capture_output=True, text=True, cwd=HERE.parent
    )
    if completed.returncode != 0:
        print(f"{script} failed:\n{completed.stderr[-3000:]}", file=sys.stderr)
        return []
    return [
        json.loads(line[7:]) for line in completed.stdout.splitlines() if line.startswith("RESULT ")
    ]


def row(result: dict) -> tuple[str, str, str, str, str]:
    name = result.get("case") or result.get("operation") or ""
    figure_key = next((k for k in FIGURES if k in result), "")
    figure = f"{result.get(figure_key, '')} {figure_key}".strip()
    baseline_key = next(
        (k for k in result if k.startswith("baseline") and k != "baseline"),
        next((k for k in result if k.startswith("thread_pool_per_s")), ""),
    )
    baseline = f"{result.get(baseline_key, '')} {baseline_key}".strip()
    if "baseline" in result:  # which baseline, when a benchmark has several
        baseline = f"{result['baseline']}: {baseline}"
    extra = (
        result.get("share_of_ceiling")
        or result.get("share_of_limit")
        or result.get("time_over_ideal")
    )
    ratio = str(result.get("ratio", extra if extra is not None else ""))
    peak = str(result.get("peak_mb", ""))
    return f"{result['benchmark']}: {name}", figure, baseline, ratio, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = []
    for script in BENCHMARKS:
        print(f"running {script} ...", file=sys.stderr, flush=True)
        rows += [row(r) for r in run(script, QUICK[script] if args.quick else BENCHMARKS[script])]
    header = ("benchmark", "figure", "baseline (same run)", "ratio", "peak MB")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for line in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
