"""Counts in words: "1 site", "2 sites"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str = "") -> str:
    """`count` and the noun, singular for exactly one: plural(1, "site") is "1 site",
    plural(3, "entry", "entries") is "3 entries"."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def rollback_command(journal: object) -> str:
    """The command that undoes a run, its journal quoted for a shell (a path with a space)."""
    import shlex

    return f"bulk-contacts rollback {shlex.quote(str(journal))}"
