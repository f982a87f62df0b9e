"""Counts in words: "1 site", "2 sites"; values quoted in messages, shortened when long."""

from __future__ import annotations


def plural(count: int, noun: str, many: str = "") -> str:
    """`count` and the noun, singular for exactly one: plural(1, "site") is "1 site",
    plural(3, "entry", "entries") is "3 entries"."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def rollback_command(journal: object) -> str:
    """The command that undoes a run, its journal quoted for a shell (a path with a space)."""
    import shlex

    return f"bulk-contacts rollback {shlex.quote(str(journal))}"


# A value from a file or from CHeKT quoted in a message shows this many characters at most: a
# 100 KB header or cell is its start, "…" and its length, never the whole of it on one line.
QUOTED_LENGTH = 60


def _shortened(text: str) -> tuple[str, str]:
    if len(text) <= QUOTED_LENGTH:
        return text, ""
    return text[:QUOTED_LENGTH] + "…", f" ({len(text):,} characters)"


def quoted(text: str) -> str:
    """`'text'`, as messages quote a header: `'HHH…' (100,000 characters)` past
    QUOTED_LENGTH."""
    shown, length = _shortened(text)
    return f"'{shown}'{length}"


def quoted_repr(text: object) -> str:
    """`repr(text)`, as messages quote a cell's value (`{value!r}`), shortened as `quoted` (a
    value that is no text: its repr)."""
    if not isinstance(text, str):
        return repr(text)
    shown, length = _shortened(text)
    return repr(shown) + length


def column_label(letter: str, header: str) -> str:
    """A column as messages name it: `C 'First Name'`."""
    return f"{letter} {quoted(header)}"


class Quoted(str):
    """A text detail of a message: `{value!r}` in a template quotes it shortened
    (`quoted_repr`); `{value}` gives it whole."""

    __slots__ = ()

    def __repr__(self) -> str:
        return quoted_repr(str(self))
