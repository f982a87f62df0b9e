"""Pausing the cyclic garbage collector around the steps that build large, acyclic data.

Reading a 100,000-row roster or planning it allocates hundreds of thousands of small objects
(cells, rows, changes) and no reference cycles; the collector's passes over them cost about a
third of the time (measured: planning 100,000 rows takes 1.8 s with it and 1.2 s without).
Reference counting still frees everything; the collector runs again afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Usable as `with gc_paused():` or as a decorator `@gc_paused()`."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
