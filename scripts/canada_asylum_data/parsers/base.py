"""What every parser returns, and small helpers they share.

A parser is a function ``parse(path: Path, source: Source) -> Parsed``. It reads one raw
file and returns:

* ``tables``: fact table name -> list of row dicts. Count columns hold
  :class:`~canada_asylum_data.cells.Count` objects (the packaging step writes the number or
  the publisher's marker and collects notes); every row has ``source_locator`` (where in the
  file: ``Sheet3!A57``, ``table 1 "RCMP Interceptions" row 4``...) and may have ``notes``.
  ``source_id`` and ``vintage`` are filled in by :mod:`canada_asylum_data.normalize`.
  Rows about a country carry the label as printed (cleaned) in ``country_label``; the
  country code is resolved centrally through ``country_aliases``.
* ``totals``: every total or subtotal the publisher printed, as :class:`Total`, so
  validation can reconcile the detail rows against it. Totals never go into fact tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..cells import Count
from ..errors import ParseError

if TYPE_CHECKING:  # pragma: no cover
    from ..sources import Source


@dataclass
class Total:
    """One printed total: ``measure`` summed over the ``fact_table`` rows matching ``scope``."""

    fact_table: str
    measure: str
    scope: dict  # column -> value the detail rows must match, e.g. {"month": "2017-01"}
    value: Count
    label: str  # the row/column label as printed, e.g. "Total - RCMP"
    source_locator: str
    notes: str | None = None
    #: True where the publisher's own detail does not reproduce this total (see notes).
    inconsistent: bool = False


@dataclass
class Parsed:
    tables: dict[str, list[dict]] = field(default_factory=dict)
    totals: list[Total] = field(default_factory=list)
    #: Facts about the file itself read from it (e.g. {"vintage": "2024-02-29"}).
    file_facts: dict = field(default_factory=dict)

    def add(self, table: str, row: dict) -> None:
        self.tables.setdefault(table, []).append(row)

    def extend(self, other: "Parsed") -> None:
        for table, rows in other.tables.items():
            self.tables.setdefault(table, []).extend(rows)
        self.totals.extend(other.totals)
        self.file_facts.update(other.file_facts)


ParserFn = Callable[[Path, "Source"], Parsed]


def fail(source: "Source", where: str, what: str, hint: str | None = None) -> ParseError:
    """Build a ParseError naming the source id and the location in the file."""
    return ParseError(what, f"in source {source.id} ({source.mirror_name}) at {where}", hint)


def read_bytes(path: Path, source: "Source") -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(source, str(path), f"cannot read the raw file ({exc.strerror})") from exc
    if not data:
        raise fail(source, str(path), "the raw file is empty (0 bytes)")
    return data
