"""Reading count cells and labels as publishers print them.

One reader for every source, so the same marker means the same thing everywhere:

* a plain count (``1,165``, ``\u200b39``, ``898\u00a0``, ``46 Footnote *``) -> its integer;
* the suppression marker ``--`` (also ``-`` and ``\u200b--``) -> no value, marker ``--``;
* an empty cell -> no value, marker ``""`` (nothing printed);
* anything else (``v``, ``--3``, ``---``, ``-5``, ``abc``) -> no value, marker ``""`` and a
  note saying what the cell held. It never guesses a number.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

#: Characters publishers leave inside cells that carry no meaning.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
#: Spaces that are not U+0020.
ODD_SPACES = "\u00a0\u2007\u202f\u2009\u3000"
#: The publishers' mark for a suppressed (or 1-to-4) value.
SUPPRESSED = "--"
#: Variants of the suppression mark seen in sources, read as ``--``.
SUPPRESSED_VARIANTS = frozenset({"--", "-", "\u2013\u2013", "\u2014", "\u2013"})
#: Marker kept in the CSV for a cell that holds no number we can trust.
UNREADABLE = ""

_FOOTNOTE = re.compile(r"\s*(footnote\s*\S*|\*+|\([a-z0-9]\))\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")
_MAX_DIGITS = 12
#: A cell that is nothing but an ASCII count (``1165``, ``1,165``): most cells of every source.
#: :func:`read_count` reads these without the general clean-up (same result, much faster).
_PLAIN_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+|\d+", re.ASCII)
#: For :meth:`str.translate`: invisible characters dropped, odd spaces made plain spaces.
_CLEAN_TABLE = str.maketrans({**{ch: None for ch in INVISIBLE}, **{ch: " " for ch in ODD_SPACES}})


@dataclass(frozen=True)
class Count:
    """A count cell: ``value`` when readable, else ``marker`` (and ``note`` if unreadable)."""

    value: int | None
    marker: str | None = None
    note: str | None = None

    @property
    def csv(self) -> int | str:
        """What the CSV holds: the number, or the publisher's marker."""
        return self.value if self.value is not None else (self.marker or "")

    @property
    def suppressed(self) -> bool:
        return self.marker == SUPPRESSED


#: Every suppressed cell reads the same, and so does every empty one (Count is immutable, so
#: one instance serves all).
_SUPPRESSED_CELL = Count(None, SUPPRESSED)
_EMPTY_CELL = Count(None, UNREADABLE)


@functools.lru_cache(maxsize=4096)
def _number(value: int) -> Count:
    """The Count of a readable number, shared by the cells that hold the same number (Count is
    immutable): building a frozen dataclass costs more than the rest of reading the cell."""
    return Count(value)


def clean_text(raw: object) -> str:
    """Drop zero-width characters, turn odd spaces into spaces, collapse runs of spaces."""
    if raw is None:
        return ""
    text = str(raw)
    if not text.isascii():  # every character cleaned out or replaced is non-ASCII
        text = text.translate(_CLEAN_TABLE)
    return " ".join(text.split())


def read_count(raw: object) -> Count:
    """Read one count cell. Never raises; never turns a marker into a number."""
    if raw is None:
        return _EMPTY_CELL
    if isinstance(raw, bool):
        return Count(None, UNREADABLE, f"cell held {raw!r}, not a count")
    if isinstance(raw, int):
        if raw < 0:
            return Count(None, UNREADABLE, f"cell held negative number {raw}")
        return Count(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):  # NaN (R's NA) or an infinity
            return _EMPTY_CELL
        if raw.is_integer() and raw >= 0:
            return _number(int(raw))
        return Count(None, UNREADABLE, f"cell held {raw!r}, not a whole non-negative count")
    if isinstance(raw, str):
        # Fast paths for the two commonest cells; they give what the general reading below
        # gives (clean_text leaves such cells as they are), without its clean-up.
        if _PLAIN_NUMBER.fullmatch(raw):
            digits = raw.replace(",", "")
            if len(digits) <= _MAX_DIGITS:
                return _number(int(digits))
        elif raw in SUPPRESSED_VARIANTS:
            return _SUPPRESSED_CELL
    text = clean_text(raw)
    if text == "":
        return _EMPTY_CELL
    if text in SUPPRESSED_VARIANTS:
        return _SUPPRESSED_CELL
    stripped = _FOOTNOTE.sub("", text).strip()
    stripped = stripped.replace(" ", "")
    if _NUMBER.match(stripped) and len(stripped.replace(",", "")) <= _MAX_DIGITS:
        return _number(int(stripped.replace(",", "")))
    shown = text if len(text) <= 40 else text[:37] + "..."
    return Count(None, UNREADABLE, f"cell held {shown!r}, not a count; left empty")
