"""Values that differ between two vintages (releases) of the same series: the ``revisions``
table. The one comparator of the project: :mod:`~canada_asylum_data.normalize` runs it on
every pair of consecutive vintages, and the tests run it on pairs of parsed files.

It compares like periods only:

* detail rows are matched on their dimension columns (everything that is not a count, a
  locator or a note; or the ``key_columns`` given), which include the period columns
  (``month``, ``quarter``, ``year``, ``half``, ``period_start``, ``period_end``), so a row
  is only ever compared with the row of the same period;
* printed totals are matched on their scope plus their printed label (``published_total``)
  and compared only when the detail rows under them cover the same periods in both
  releases: a "2024 Total" that covered January-February in the older release and the whole
  year in the newer one is a longer period, not a revision;
* rows of different tables never meet: a first half (``unhcr_asylum_applications_h1``) is
  never compared with a full year (``unhcr_asylum_applications``).

A value the newer release no longer prints is ``removed`` only when the newer release still
covers that period in that table (for a total: every period under it). Values only the newer
release has (new months, a new year) are not revisions; :mod:`coverage` lists them.

Vintages sort as versions (``2023.6.0`` < ``2023.12.0``), see :func:`vintage_order`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from .cells import Count
from .errors import ValidationError
from .parsers.base import Parsed

#: Columns that say which period a row covers.
PERIOD_COLUMNS = ("month", "quarter", "year", "half", "period_start", "period_end")
#: Columns that never identify a row.
NON_KEY = {"source_locator", "notes", "vintage", "source_id"}

Period = tuple  # ((column, value), ...) of the period columns a row has


@dataclass
class Cells:
    """Every compared value of one parsed vintage, keyed for comparison (picklable: made in
    the parse workers and kept in the parse cache)."""

    #: (table, row key as JSON, measure) -> (value as the CSV holds it, source locator)
    values: dict[tuple[str, str, str], tuple[object, str]] = field(default_factory=dict)
    #: same key -> the periods the value covers (one for a detail row; for a printed total,
    #: every period of the detail rows in its scope)
    periods: dict[tuple[str, str, str], frozenset] = field(default_factory=dict)
    #: table -> every period its detail rows cover
    table_periods: dict[str, frozenset] = field(default_factory=dict)


def _csv(v: object) -> object:
    """What the CSV would hold: a number, or the publisher's marker."""
    return v.csv if isinstance(v, Count) else v


def _key_json(d: dict) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False, default=str)


def period_of(row: dict) -> Period:
    """The period a row covers: its period columns and their values."""
    return tuple((c, row[c]) for c in PERIOD_COLUMNS if c in row)


def vintage_order(vintage: str | None) -> tuple:
    """Sort key of a vintage: numbers compare as numbers (``2023.6.0`` before ``2023.12.0``,
    ``2024-02-29`` before ``2025-07-31``)."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p)
                 for p in re.findall(r"\d+|[^\d.\-_ ]+", vintage or ""))


def vintage_cells(parsed: Parsed, *, table: str | None = None,
                  key_columns: Iterable[str] | None = None,
                  measure: str | None = None) -> Cells:
    """The comparable values of one parsed vintage: counts (``Count`` cells, or ``measure``)
    of every table (or of ``table``), rows keyed on their dimension columns (or on
    ``key_columns``), and the printed totals."""
    out = Cells()
    keys = list(key_columns) if key_columns is not None else None
    by_table_rows: dict[str, list[dict]] = {}
    for name, rows in parsed.tables.items():
        if table is not None and name != table:
            continue
        by_table_rows[name] = rows
        where: dict[str, str] = {}
        periods = set()
        for row in rows:
            if keys is not None:
                missing = [k for k in keys if k not in row]
                if missing:
                    raise ValidationError(f"a {name} row lacks key column(s) {missing}",
                                          f"at {row.get('source_locator')}")
                key = {k: row[k] for k in keys}
            else:
                key = {k: v for k, v in row.items()
                       if k not in NON_KEY and not isinstance(v, Count)}
            key_json = _key_json(key)
            locator = row.get("source_locator", "")
            if key_json in where:
                raise ValidationError(f"two {name} rows have the same key {key_json}",
                                      f"at {where[key_json]} and {locator}",
                                      "the table's key misses a column; fix the parser")
            where[key_json] = locator
            period = period_of(row)
            periods.add(period)
            measures = [measure] if measure is not None else [
                m for m, v in row.items() if isinstance(v, Count)]
            for m in measures:
                if m in row:
                    out.values[(name, key_json, m)] = (_csv(row[m]), locator)
                    out.periods[(name, key_json, m)] = frozenset([period])
        out.table_periods[name] = frozenset(periods)

    scoped: dict[tuple, dict[tuple, set]] = {}  # (table, scope columns) -> scope values -> periods
    seen: dict[tuple, str] = {}
    for total in parsed.totals:
        if (table is not None and total.fact_table != table) or \
                (measure is not None and total.measure != measure):
            continue
        rows = by_table_rows.get(total.fact_table) or parsed.tables.get(total.fact_table, [])
        cols = tuple(sorted(total.scope))
        if (total.fact_table, cols) not in scoped:
            index: dict[tuple, set] = defaultdict(set)
            for r in rows:
                index[tuple(r.get(c) for c in cols)].add(period_of(r))
            scoped[(total.fact_table, cols)] = index
        under = scoped[(total.fact_table, cols)].get(tuple(total.scope[c] for c in cols), set())
        key = (total.fact_table, _key_json({"published_total": total.label, **total.scope}),
               total.measure)
        if key in seen:
            raise ValidationError(f"printed total {key[1]} of {total.fact_table} appears twice",
                                  f"at {seen[key]} and {total.source_locator}",
                                  "the parser must give each printed total its own label/scope")
        seen[key] = total.source_locator
        out.values[key] = (total.value.csv, total.source_locator)
        out.periods[key] = frozenset(under)
    return out


def compare_vintages(old_source_id: str, before: Cells, old_vintage: str | None,
                     new_source_id: str, after: Cells, new_vintage: str | None) -> list[dict]:
    """``revisions`` rows for two vintages' :func:`vintage_cells`, older first: only values
    of the same table, key and period."""
    rows = []
    for key in sorted(before.values):
        a = before.values[key]
        b = after.values.get(key)
        table = key[0]
        old_periods = before.periods[key]
        if b is None:
            # removed only if the newer release still covers every period under the value
            if not old_periods or not old_periods <= after.table_periods.get(table, frozenset()):
                continue
            change = "removed"
        else:
            if after.periods[key] != old_periods:
                continue  # a total over other periods (e.g. January-February vs a year)
            if a[0] == b[0]:
                continue
            change = "changed"
        rows.append({
            "table_name": table,
            "row_key": key[1],
            "measure": key[2],
            "change": change,
            "old_value": "" if a[0] is None else str(a[0]),
            "new_value": "" if b is None or b[0] is None else str(b[0]),
            "old_source_id": old_source_id,
            "old_vintage": old_vintage or "",
            "old_locator": a[1],
            "new_source_id": new_source_id,
            "new_vintage": new_vintage or "",
            "new_locator": b[1] if b else "",
        })
    return rows


def revisions(old: Parsed, new: Parsed, table: str | None = None,
              key_columns: Iterable[str] | None = None, measure: str | None = None, *,
              old_source_id: str | None = None,
              new_source_id: str | None = None) -> list[dict]:
    """:func:`compare_vintages` of two parsed files (optionally one table, one measure, rows
    keyed on ``key_columns``). Source ids default to the rows' ``source_id``, vintages to
    ``file_facts["vintage"]``."""

    def sid(given: str | None, parsed: Parsed) -> str:
        if given is not None:
            return given
        for rows in parsed.tables.values():
            for row in rows:
                if row.get("source_id"):
                    return row["source_id"]
        return ""

    before = vintage_cells(old, table=table, key_columns=key_columns, measure=measure)
    after = vintage_cells(new, table=table, key_columns=key_columns, measure=measure)
    return compare_vintages(sid(old_source_id, old), before, old.file_facts.get("vintage"),
                            sid(new_source_id, new), after, new.file_facts.get("vintage"))
