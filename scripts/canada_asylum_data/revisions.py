"""Values that differ between two vintages (releases) of the same series.

:func:`revisions` compares two :class:`~canada_asylum_data.parsers.base.Parsed` results of one
series - e.g. IRCC ``EN_ODP-Asylum-OfficeType_Prov.xlsx`` of February 2024 and of July 2025,
or two UNHCR releases - and returns one row per value that changed or disappeared, in the
shape of the ``revisions`` table (datapackage/schemas/revisions.yaml).

Both the detail rows of one fact table and the printed totals of that table are compared:

* detail rows are matched on ``key_columns``;
* totals are matched on their scope plus their printed label (``published_total``), and only
  when both totals cover the same periods. A "2024 Total" that covered January-February in the
  older release and the whole year in the newer one is not a revision, it is a longer period.

A value the newer release no longer prints is reported as ``removed`` when the newer release
still covers that period (it has rows for the same ``period_columns`` values). Values only the
newer release has are never listed (new months are coverage, not revisions).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable

from .cells import Count
from .parsers.base import Parsed, Total

#: Columns that say which period a row covers, in the order they are looked for.
PERIOD_COLUMNS = ("month", "year", "period_start", "period_end")


def _value(v: object) -> object:
    """What the CSV would hold: a number, or the publisher's marker."""
    if isinstance(v, Count):
        return v.csv
    return v


def _str(v: object) -> str | None:
    v = _value(v)
    return None if v is None else str(v)


def _key_json(d: dict) -> str:
    return json.dumps(d, sort_keys=True, ensure_ascii=False, default=str)


def _index_rows(rows: Iterable[dict], key_columns: list[str], table: str, which: str) -> dict:
    out: dict[str, dict] = {}
    for row in rows:
        missing = [k for k in key_columns if k not in row]
        if missing:
            raise ValueError(f"{which} {table} row lacks key column(s) {missing}: {row}")
        key = _key_json({k: row[k] for k in key_columns})
        if key in out:
            raise ValueError(f"{which} {table}: key {key} is not unique")
        out[key] = row
    return out


class _Coverage:
    """Which period values the detail rows matching a total's scope cover."""

    def __init__(self, rows: list[dict], period_columns: tuple[str, ...]):
        self.rows = rows
        self.period_columns = period_columns
        self._by_keys: dict[tuple, dict] = {}
        self.all_periods = {self._period(r) for r in rows}

    def _period(self, row: dict) -> tuple:
        return tuple(row.get(c) for c in self.period_columns)

    def periods(self, scope: dict) -> frozenset:
        keys = tuple(sorted(scope))
        if keys not in self._by_keys:
            index: dict[tuple, set] = defaultdict(set)
            for r in self.rows:
                index[tuple(r.get(k) for k in keys)].add(self._period(r))
            self._by_keys[keys] = index
        return frozenset(self._by_keys[keys].get(tuple(scope[k] for k in keys), ()))


def _index_totals(totals: Iterable[Total], table: str, measure: str, which: str) -> dict:
    out: dict[str, Total] = {}
    for t in totals:
        if t.fact_table != table or t.measure != measure:
            continue
        key = _key_json({**t.scope, "published_total": t.label})
        if key in out:
            raise ValueError(f"{which} {table}: printed total {key} appears twice "
                             f"({out[key].source_locator}, {t.source_locator})")
        out[key] = t
    return out


def revisions(old: Parsed, new: Parsed, table: str, key_columns: list[str], measure: str,
              *, old_source_id: str | None = None, new_source_id: str | None = None,
              totals: bool = True, period_columns: tuple[str, ...] | None = None) -> list[dict]:
    """Rows for the ``revisions`` table: every ``measure`` value of ``table`` that differs
    between the ``old`` and ``new`` vintage (``changed``) or that ``new`` no longer prints for a
    period it still covers (``removed``); printed totals too unless ``totals=False``.

    ``key_columns`` identify a detail row (the table's primary key without source/vintage).
    Source ids default to the rows' ``source_id`` and vintages to ``file_facts["vintage"]``.
    """
    if period_columns is None:
        period_columns = tuple(c for c in PERIOD_COLUMNS if c in key_columns) or tuple(
            c for c in PERIOD_COLUMNS)
    old_rows = old.tables.get(table, [])
    new_rows = new.tables.get(table, [])
    old_by_key = _index_rows(old_rows, key_columns, table, "old")
    new_by_key = _index_rows(new_rows, key_columns, table, "new")
    new_cov = _Coverage(new_rows, period_columns)
    old_cov = _Coverage(old_rows, period_columns)
    base = {
        "table_name": table, "measure": measure,
        "old_vintage": old.file_facts.get("vintage"), "new_vintage": new.file_facts.get("vintage"),
    }

    def sid(given: str | None, row: dict | None) -> str | None:
        return given if given is not None else (row or {}).get("source_id")

    any_new = new_rows[0] if new_rows else None
    any_old = old_rows[0] if old_rows else None
    out: list[dict] = []
    for key, orow in old_by_key.items():
        nrow = new_by_key.get(key)
        if nrow is None:
            if tuple(orow.get(c) for c in period_columns) not in new_cov.all_periods:
                continue  # the newer release does not cover this period at all
            change, nval, nloc = "removed", None, None
        else:
            if _value(orow.get(measure)) == _value(nrow.get(measure)):
                continue
            change, nval, nloc = "changed", _str(nrow.get(measure)), nrow.get("source_locator")
        out.append({
            **base, "row_key": key, "change": change,
            "old_value": _str(orow.get(measure)), "new_value": nval,
            "old_source_id": sid(old_source_id, orow),
            "new_source_id": sid(new_source_id, nrow or any_new),
            "old_locator": orow.get("source_locator"), "new_locator": nloc,
        })
    if totals:
        old_t = _index_totals(old.totals, table, measure, "old")
        new_t = _index_totals(new.totals, table, measure, "new")
        for key, ot in old_t.items():
            o_periods = old_cov.periods(ot.scope)
            nt = new_t.get(key)
            if nt is None:
                if not o_periods or not o_periods <= new_cov.all_periods:
                    continue
                change, nval, nloc = "removed", None, None
            else:
                if o_periods != new_cov.periods(nt.scope):
                    continue  # e.g. a partial-year total: not the same period in both releases
                if _value(ot.value) == _value(nt.value):
                    continue
                change, nval, nloc = "changed", _str(nt.value), nt.source_locator
            out.append({
                **base, "row_key": key, "change": change,
                "old_value": _str(ot.value), "new_value": nval,
                "old_source_id": sid(old_source_id, any_old),
                "new_source_id": sid(new_source_id, any_new),
                "old_locator": ot.source_locator, "new_locator": nloc,
            })
    return out
