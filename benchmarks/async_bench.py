"""The client's design choice, measured: a thread pool over one connection pool (what
`ChektClient` is) against an `httpx.AsyncClient` doing the same creates, against the sandbox at
50 ms latency, same run. The AsyncClient sends bare requests (no pacing, no log, no replay
checks), so it has the advantage; each figure is the median of `--runs` runs (default 3).

    python benchmarks/async_bench.py [--creates 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import report, sandbox_process, token_for
from client_bench import DEALER, ENV, seed_file

from bulk_contacts.client import ChektClient
from bulk_contacts.models import NewContact
from bulk_contacts.settings import resolve_settings

SITES = 50


def contact(prefix: str, n: int) -> NewContact:
    return NewContact(f"{prefix}-{n}", "Ann", f"Lee {n}", "+12025550143")


def thread_pool(url: str, count: int, workers: int) -> float:
    """Creates per second through `ChektClient`, `workers` threads."""
    prefix = uuid.uuid4().hex[:8]
    settings = resolve_settings(api_url=url, dealer=DEALER, env=ENV)
    with ChektClient(settings, concurrency=workers) as client, ThreadPoolExecutor(workers) as pool:
        client.tokens.current()
        started = time.perf_counter()
        list(
            pool.map(
                lambda n: client.create_contact(DEALER, 1 + n % SITES, contact(prefix, n)),
                range(count),
            )
        )
        return count / (time.perf_counter() - started)


def async_client(url: str, count: int, in_flight: int) -> float:
    """Creates per second through one `httpx.AsyncClient`, at most `in_flight` at once."""
    prefix, token = uuid.uuid4().hex[:8], token_for(url)

    async def run() -> float:
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        headers = {"Authorization": f"Bearer {token}"}
        gate = asyncio.Semaphore(in_flight)
        async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers) as client:

            async def one(n: int) -> None:
                path = f"/partner/v1/dealers/{DEALER}/sites/{1 + n % SITES}/contacts"
                async with gate:
                    response = await client.post(
                        path,
                        json=contact(prefix, n).payload(),
                        headers={"Idempotency-Key": f"{prefix}-{n}"},
                    )
                response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(one(n) for n in range(count)))
            return count / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "ChektClient, thread pool of 32 (the default)": lambda url: thread_pool(
            url, args.creates, 32
        ),
        "httpx.AsyncClient, 32 in flight": lambda url: async_client(url, args.creates, 32),
        "httpx.AsyncClient, 64 in flight": lambda url: async_client(url, args.creates, 64),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = seed_file(Path(tmp), SITES)
        with sandbox_process("--latency-ms", "50", seed=seed) as url:
            figures = {
                case: [measure(url) for _ in range(args.runs)] for case, measure in cases.items()
            }
    ours = statistics.median(next(iter(figures.values())))
    for case, rates in figures.items():
        rate = statistics.median(rates)
        rows.append(
            {
                "case": f"creates at 50 ms: {case}",
                "requests": args.creates,
                "runs": args.runs,
                "per_s": round(rate, 1),
                "thread_pool_per_s": round(ours, 1),
                "thread_pool_ratio": round(ours / rate, 2),
            }
        )
    report("client: thread pool against httpx.AsyncClient", rows)


if __name__ == "__main__":
    main()
