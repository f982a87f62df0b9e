"""Sandbox throughput: contact creates and site lists per second with no injected latency.

The sandbox runs in its own process; a pool of client threads over one httpx.Client keeps
requests in flight. The baseline is the same requests made one at a time.

    python benchmarks/sandbox_bench.py [--requests 3000] [--threads 16]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

import httpx
from _common import report, sandbox_process, timed, token_for

SITES = "/partner/v1/dealers/12345/sites"


def run(client: httpx.Client, kind: str, count: int, threads: int, site: int) -> float:
    def create(n: int) -> None:
        body = {
            "external_contact_id": f"{kind}{n}",
            "first_name": "Ann",
            "last_name": "Lee",
            "phone_number": "+12025550143",
            "email": "ann@example.com",
        }
        client.post(f"{SITES}/{site}/contacts", json=body).raise_for_status()

    def list_contacts(_: int) -> None:
        client.get(f"{SITES}/{site}/contacts").raise_for_status()

    work = create if kind.startswith("create") else list_contacts
    with timed() as elapsed:
        if threads == 1:
            for n in range(count):
                work(n)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(work, range(count)))
    return count / elapsed[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    with sandbox_process() as url:
        headers = {"Authorization": f"Bearer {token_for(url)}"}
        limits = httpx.Limits(max_connections=args.threads)
        with httpx.Client(base_url=url, headers=headers, limits=limits) as client:

            def new_site(name: str) -> int:
                body = {"external_site_id": name, "name": name, "timezone": "UTC"}
                return client.post(SITES, json=body).json()["site_id"]

            # The listed site holds 20 contacts, a realistic call list; creates go elsewhere.
            listed, written = new_site("listed"), new_site("written")
            run(client, "create-seed", 20, 1, listed)
            rows = []
            for kind, site in (("create", written), ("list", listed)):
                sequential = run(client, f"{kind}-seq", args.requests // 3, 1, site)
                concurrent = run(client, f"{kind}-par", args.requests, args.threads, site)
                rows.append(
                    {
                        "operation": kind,
                        "requests_per_s": round(concurrent),
                        "baseline_sequential_per_s": round(sequential),
                        "ratio": round(concurrent / sequential, 2),
                        "target_per_s": 800,
                    }
                )
    report("sandbox: requests per second, no latency", rows)


if __name__ == "__main__":
    main()
