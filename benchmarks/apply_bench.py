"""`bulk-contacts apply` as a whole process against the sandbox.

1. 1000 creates over 50 sites at 50 ms latency, against the reference's own Python example
   (requests.post, one contact after the other) in a loop, same sandbox, same run. The loop is
   timed on its first 200 contacts and its rate extrapolated: at 19 creates/s, the full 1000
   would add a minute for nothing.
2. Under --rate-limit 1200 --burst 20: 300 creates; the time against the limit's ideal time for
   every API call the run makes, and the share of calls answered 429.
3. Peak memory of a 100,000-change apply (results and journal streamed), no latency.

    python benchmarks/apply_bench.py [--creates 1000] [--limited 300] [--big 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import requests
from _common import report, run_measured, sandbox_process, token_for

DEALER = 12345


def seed(path: Path, sites: int) -> Path:
    path.write_text(
        json.dumps(
            {
                "dealers": [
                    {
                        "dealer_id": DEALER,
                        "sites": [
                            {
                                "site_id": n,
                                "name": f"Site {n}",
                                "account_number": f"A-{n}",
                                "timezone": "UTC",
                            }
                            for n in range(1, sites + 1)
                        ],
                    }
                ]
            }
        )
    )
    return path


def roster(path: Path, count: int, sites: int, prefix: str) -> Path:
    lines = ["account_number,external_contact_id,first_name,last_name,phone_number,email"]
    lines += [
        f"A-{1 + n % sites},{prefix}{n},Ann,Lee {n},+1 202 555 {n % 10000:04d},ann{n}@example.com"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def apply_process(url: str, path: Path, directory: Path, *extra: str) -> tuple[float, float]:
    env = {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": url,
        "CHEKT_DEALER_ID": str(DEALER),
    }
    os.environ.update(env)
    seconds, peak, code = run_measured(
        [
            sys.executable,
            "-m",
            "bulk_contacts",
            "apply",
            str(path),
            "--yes",
            "--no-progress",
            "-q",
            "--results",
            str(directory / f"{path.stem}-results.csv"),
            *extra,
        ]
    )
    if code != 0:
        raise RuntimeError(f"apply failed with exit code {code}")
    return seconds, peak


def reference_loop(url: str, count: int, sites: int) -> float:
    """The reference's Python example, contact after contact."""
    access_token = token_for(url)
    started = time.perf_counter()
    for n in range(count):
        response = requests.post(
            f"{url}/partner/v1/dealers/{DEALER}/sites/{1 + n % sites}/contacts",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {access_token}",
                "x-partner-trace-id": "550e8400-e29b-41d4-a716-123456789000",
            },
            json={
                "external_contact_id": f"ref{n}",
                "first_name": "John",
                "last_name": "Doe",
                "phone_number": "1234567890",
                "email": "john.doe@example.com",
            },
        )
        response.raise_for_status()
    return count / (time.perf_counter() - started)


def throughput(args, directory: Path) -> dict[str, object]:
    with sandbox_process("--latency-ms", "50", seed=seed(directory / "seed.json", 50)) as url:
        seconds, peak = apply_process(
            url, roster(directory / "r1.csv", args.creates, 50, "c"), directory
        )
        baseline = reference_loop(url, 200, 50)
    ours = args.creates / seconds
    return {
        "case": f"apply {args.creates} creates over 50 sites at 50 ms (whole process)",
        "seconds": round(seconds, 1),
        "creates_per_s": round(ours, 1),
        "baseline_creates_per_s": round(baseline, 1),
        "baseline_seconds_for_all": round(args.creates / baseline, 1),
        "ratio": round(ours / baseline, 1),
        "peak_mb": round(peak),
        "target": ">= 15x",
    }


def rate_limited(args, directory: Path) -> dict[str, object]:
    log = directory / "requests.jsonl"
    with sandbox_process(
        "--rate-limit",
        "1200",
        "--burst",
        "20",
        "--request-log",
        str(log),
        seed=seed(directory / "seed2.json", 50),
    ) as url:
        seconds, _ = apply_process(
            url, roster(directory / "r2.csv", args.limited, 50, "l"), directory
        )
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    calls = [e for e in entries if e["path"].startswith("/partner/")]
    ideal = len(calls) / 20
    limited = sum(e["status"] == 429 for e in calls)
    return {
        "case": f"apply {args.limited} creates under --rate-limit 1200 --burst 20",
        "seconds": round(seconds, 1),
        "api_calls": len(calls),
        "ideal_seconds_at_limit": round(ideal, 1),
        "time_over_ideal": round(seconds / ideal, 2),
        "answered_429": limited,
        "share_429": f"{limited / len(calls):.2%}",
        "target": "<= 1.2x, < 2% 429",
    }


def big(args, directory: Path) -> dict[str, object]:
    with sandbox_process(seed=seed(directory / "seed3.json", 2000)) as url:
        seconds, peak = apply_process(
            url, roster(directory / "r3.csv", args.big, 2000, "b"), directory
        )
    return {
        "case": f"apply {args.big:,} creates over 2,000 sites, no latency",
        "seconds": round(seconds, 1),
        "peak_mb": round(peak),
        "target": "< 500 MB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--limited", type=int, default=300, help="0 skips the rate-limit run")
    parser.add_argument("--big", type=int, default=100_000, help="0 skips the memory run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [throughput(args, Path(tmp))]
        if args.limited:
            rows.append(rate_limited(args, Path(tmp)))
        if args.big:
            rows.append(big(args, Path(tmp)))
    report("apply: whole process against the sandbox", rows)


if __name__ == "__main__":
    main()
