"""How many examples a Hypothesis property runs: a fifth of its full count (at least 10) in the
default run, so the suite stays quick; the full count with `HYPOTHESIS_PROFILE=thorough` (the
README's thorough run). The examples that once failed are kept in the checkout's example
database and replayed first in every run, whichever the count."""

from __future__ import annotations

import os

THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"


def examples(full: int) -> int:
    """`full` in a thorough run, else a fifth of it (at least 10, at most `full`)."""
    return full if THOROUGH else min(full, max(10, full // 5))
