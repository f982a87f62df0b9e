"""Reading CHeKT's current state: the dealers' site lists, and the contacts of the sites a roster
names, concurrently, over the one client."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed

from .client import ChektClient
from .errors import PermissionDenied
from .models import Contact, Site, SiteKey


def fetch_sites(client: ChektClient, dealers: Iterable[int]) -> dict[int, list[Site]]:
    """Each dealer's sites. A dealer outside the credentials' scope is a PermissionDenied that
    says so."""
    found = {}
    for dealer in sorted(set(dealers)):
        try:
            found[dealer] = client.list_sites(dealer)
        except PermissionDenied as error:
            error.message = (
                f"dealer {dealer} is outside the scope of these credentials "
                f"(CHeKT answered 403); check the dealer id, or use credentials "
                f"that reach it"
            )
            raise
    return found


def fetch_contacts(
    client: ChektClient,
    sites: Iterable[SiteKey],
    progress: Callable[[int], None] | None = None,
) -> dict[SiteKey, list[Contact]]:
    """The contacts of each site, fetched `client.concurrency` at a time; `progress(1)` after
    each site."""
    keys = sorted(set(sites))
    found: dict[SiteKey, list[Contact]] = {}
    with ThreadPoolExecutor(max(1, min(client.concurrency, len(keys)))) as pool:
        futures = {pool.submit(client.list_contacts, *key): key for key in keys}
        try:
            for future in as_completed(futures):
                found[futures[future]] = future.result()
                if progress is not None:
                    progress(1)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return found
