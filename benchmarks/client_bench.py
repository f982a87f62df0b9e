"""Client throughput against the sandbox at 50 ms latency, and pacing under a rate limit.

1. 1000 contact creates with the client's default concurrency (a thread pool over one
   connection pool) against a sequential loop (one request at a time), same sandbox, same run.
   Other concurrency levels are measured too, to show why the default is what it is.
2. Under `--rate-limit 1200 --burst 20`: the share of the limit sustained, and the share of
   requests answered 429.

    python benchmarks/client_bench.py [--creates 1000] [--sequential 100] [--limited 300]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import report, sandbox_process

from bulk_contacts.client import DEFAULT_CONCURRENCY, ChektClient
from bulk_contacts.models import NewContact
from bulk_contacts.runlog import RunLog
from bulk_contacts.settings import resolve_settings

DEALER = 12345
ENV = {"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": "sandbox-secret"}


def seed_file(directory: Path, sites: int) -> Path:
    path = directory / "seed.json"
    data = {
        "dealers": [
            {
                "dealer_id": DEALER,
                "sites": [
                    {"site_id": n, "name": f"Site {n}", "timezone": "UTC"}
                    for n in range(1, sites + 1)
                ],
            }
        ]
    }
    path.write_text(json.dumps(data))
    return path


def creates(client: ChektClient, count: int, workers: int, prefix: str, sites: int) -> float:
    def one(n: int) -> None:
        contact = NewContact(f"{prefix}-{n}", "Ann", f"Lee {n}", "+12025550143")
        client.create_contact(DEALER, 1 + n % sites, contact)

    started = time.perf_counter()
    if workers == 1:
        for n in range(count):
            one(n)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(count)))
    return count / (time.perf_counter() - started)


def throughput(args: argparse.Namespace, directory: Path) -> list[dict[str, object]]:
    rows = []
    with sandbox_process("--latency-ms", "50", seed=seed_file(directory, 50)) as url:
        settings = resolve_settings(api_url=url, dealer=DEALER, env=ENV)
        with ChektClient(settings, concurrency=1) as client:
            sequential = creates(client, args.sequential, 1, "seq", 50)
        for level in sorted({8, 16, DEFAULT_CONCURRENCY, 64}):
            count = args.creates if level == DEFAULT_CONCURRENCY else args.creates // 2
            with ChektClient(settings, concurrency=level) as client:
                rate = creates(client, count, level, f"c{level}", 50)
            rows.append(
                {
                    "case": f"creates at 50 ms, concurrency {level}"
                    + (" (default)" if level == DEFAULT_CONCURRENCY else ""),
                    "requests": count,
                    "per_s": round(rate, 1),
                    "baseline_sequential_per_s": round(sequential, 1),
                    "ratio": round(rate / sequential, 1),
                }
            )
    return rows


def rate_limited(args: argparse.Namespace, directory: Path) -> dict[str, object]:
    log_path = directory / "client.jsonl"
    options = ("--rate-limit", "1200", "--burst", "20")
    with sandbox_process(*options, seed=seed_file(directory, 50)) as url:
        settings = resolve_settings(api_url=url, dealer=DEALER, env=ENV)
        with RunLog(log_path) as log, ChektClient(settings, log=log) as client:
            rate = creates(client, args.limited, client.concurrency, "rl", 50)
    statuses = [json.loads(line)["status"] for line in log_path.read_text().splitlines()]
    api_calls = [s for s in statuses if s is not None]
    limit = 1200 / 60
    return {
        "case": "creates under --rate-limit 1200 --burst 20",
        "requests": args.limited,
        "per_s": round(rate, 1),
        "limit_per_s": limit,
        "share_of_limit": f"{rate / limit:.1%}",
        "answered_429": f"{api_calls.count(429) / len(api_calls):.2%}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--limited", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = throughput(args, Path(tmp))
        rows.append(rate_limited(args, Path(tmp)))
    report("client: creates per second against the sandbox", rows)


if __name__ == "__main__":
    main()
