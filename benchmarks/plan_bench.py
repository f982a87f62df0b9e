"""Planning speed.

1. Reconciling 100,000 rows against 20,000 sites in memory (site resolution and reconcile, the
   roster already validated): target under 2 s. Baseline, same run: a naive reconcile that scans
   each site's contacts for every row and parses phone numbers with phonenumbers as it compares.
2. The fetch phase against the sandbox at 50 ms latency: sites read per second with the default
   concurrency, against the ceiling that concurrency allows (in flight / latency): target 80%.
   Baseline, same run: one site at a time.

    python benchmarks/plan_bench.py [--rows 100000] [--sites 20000] [--fetch-sites 600]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import phonenumbers
from _common import report, sandbox_process
from roster_gen import write_roster

from bulk_contacts.client import DEFAULT_CONCURRENCY, ChektClient
from bulk_contacts.fetch import fetch_contacts
from bulk_contacts.models import Contact, Site
from bulk_contacts.reconcile import PlanOptions, reconcile, resolve_sites
from bulk_contacts.roster import read_roster
from bulk_contacts.schema import validate_roster
from bulk_contacts.settings import resolve_settings

DEALER = 12345


def remote_state(validated, sites: int, rng: random.Random):
    """CHeKT holding most of the roster already: 80% of the rows, a fifth of them with another
    phone number, plus one contact per site that the roster does not name."""
    site_list = [Site(n + 1, f"Site {n}", account_number=f"ACCT-{n:05d}") for n in range(sites)]
    contacts: dict[tuple[int, int], list[Contact]] = {(DEALER, s.site_id): [] for s in site_list}
    ids = iter(range(1, 10**9))
    rows = validated.rows
    for account, ext, first, last, phone, email in zip(
        rows["account_number"],
        rows["external_contact_id"],
        rows["first_name"],
        rows["last_name"],
        rows["phone_number"],
        rows["email"],
        strict=True,
    ):
        if rng.random() < 0.2:
            continue
        if rng.random() < 0.2:
            phone = "+12025550100"
        key = (DEALER, int(account[5:]) + 1)
        contacts[key].append(Contact(next(ids), first, last, ext, phone or None, email or None))
    for key in contacts:
        contacts[key].append(Contact(next(ids), "Not", "Listed", f"X{key[1]}"))
    return {DEALER: site_list}, contacts


def naive_reconcile(validated, placement, contacts) -> int:
    """Every row against every contact of its site, phones parsed as they are compared."""
    changes = 0
    for row, ext, phone in zip(
        validated.rows.index,
        validated.rows["external_contact_id"],
        validated.rows["phone_number"],
        strict=True,
    ):
        found = [c for c in contacts[placement[row]] if c.external_contact_id == ext]
        if not found:
            changes += 1
            continue
        held = found[0].phone_number or ""
        if phone and held:
            a = phonenumbers.format_number(phonenumbers.parse(phone, "US"), 0)
            b = phonenumbers.format_number(phonenumbers.parse(held, "US"), 0)
            changes += a != b
    return changes


def in_memory(rows: int, sites: int, directory: Path) -> dict[str, object]:
    path = write_roster(directory / "roster.xlsx", rows, sites)
    validated = validate_roster(read_roster(path))
    sites_by_dealer, contacts = remote_state(validated, sites, random.Random(3))
    site_index = {(DEALER, s.site_id): s for s in sites_by_dealer[DEALER]}
    started = time.perf_counter()
    placement, issues = resolve_sites(validated, sites_by_dealer, DEALER)
    plan = reconcile(
        validated,
        placement,
        site_index,
        contacts,
        PlanOptions(dealer_id=DEALER, skip_invalid=True),
        issues,
    )
    ours = time.perf_counter() - started
    started = time.perf_counter()
    naive_reconcile(validated, placement, contacts)
    naive = time.perf_counter() - started
    summary = plan.summary()
    return {
        "case": f"reconcile {rows:,} rows over {sites:,} sites in memory",
        "seconds": round(ours, 2),
        "baseline_seconds": round(naive, 2),
        "ratio": round(naive / ours, 1),
        "target": "< 2 s",
        "plan": f"{summary['create']} create, {summary['update']} update, "
        f"{summary['unchanged']} unchanged",
    }


def fetch(site_count: int, directory: Path) -> dict[str, object]:
    seed = directory / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "dealers": [
                    {
                        "dealer_id": DEALER,
                        "sites": [
                            {
                                "site_id": n,
                                "name": f"S{n}",
                                "contacts": [
                                    {
                                        "external_contact_id": f"c{n}-{k}",
                                        "first_name": "Ann",
                                        "last_name": "Lee",
                                        "phone_number": "+12025550143",
                                    }
                                    for k in range(4)
                                ],
                            }
                            for n in range(1, site_count + 1)
                        ],
                    }
                ]
            }
        )
    )
    env = {"CHEKT_CLIENT_ID": "sandbox-client", "CHEKT_CLIENT_SECRET": "sandbox-secret"}
    keys = [(DEALER, n) for n in range(1, site_count + 1)]
    with sandbox_process("--latency-ms", "50", seed=seed) as url:
        settings = resolve_settings(api_url=url, dealer=DEALER, env=env)
        with ChektClient(settings) as client:
            client.list_sites(DEALER)  # token and connections warmed up, as in a real plan
            started = time.perf_counter()
            fetched = fetch_contacts(client, keys)
            rate = len(fetched) / (time.perf_counter() - started)
        with ChektClient(settings, concurrency=1) as client:
            client.list_sites(DEALER)
            started = time.perf_counter()
            fetch_contacts(client, keys[:60])
            sequential = 60 / (time.perf_counter() - started)
    ceiling = DEFAULT_CONCURRENCY / 0.050
    return {
        "case": f"fetch {site_count} sites at 50 ms, concurrency {DEFAULT_CONCURRENCY}",
        "sites_per_s": round(rate),
        "ceiling_per_s": round(ceiling),
        "share_of_ceiling": f"{rate / ceiling:.0%}",
        "target": ">= 80%",
        "baseline_sequential_per_s": round(sequential, 1),
        "ratio": round(rate / sequential, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--sites", type=int, default=20_000)
    parser.add_argument("--fetch-sites", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [in_memory(args.rows, args.sites, Path(tmp)), fetch(args.fetch_sites, Path(tmp))]
    report("plan: reconcile and fetch", rows)


if __name__ == "__main__":
    main()
