"""Compare two vintages of one series: every value that differs becomes a ``revisions`` row.

Rows are matched on their dimension columns (everything that is not a count, a locator or
a note); totals on (fact table, measure, scope). A value the newer vintage dropped is listed
as ``removed``; values only the newer vintage has (new months) are not revisions and are
left to ``coverage``.
"""

from __future__ import annotations

import json

from .cells import Count
from .parsers import Parsed
from .sources import Source

NON_KEY = {"source_locator", "notes", "vintage", "source_id"}


#: (table, row key as JSON, measure) -> (value as the CSV holds it, source locator)
Cells = dict[tuple[str, str, str], tuple[object, str]]


def vintage_cells(parsed: Parsed) -> Cells:
    """Every count and printed total of one parsed vintage, keyed for comparison."""
    out: Cells = {}
    for table, rows in parsed.tables.items():
        for row in rows:
            key = {k: v for k, v in row.items() if k not in NON_KEY and not isinstance(v, Count)}
            key_json = json.dumps(key, sort_keys=True, ensure_ascii=False, default=str)
            for measure, value in row.items():
                if isinstance(value, Count):
                    out[(table, key_json, measure)] = (value.csv, row.get("source_locator", ""))
    for total in parsed.totals:
        key_json = json.dumps({"published_total": total.label, **total.scope}, sort_keys=True,
                              ensure_ascii=False, default=str)
        out[(total.fact_table, key_json, total.measure)] = (total.value.csv, total.source_locator)
    return out


def compare_vintages(old: Source, before: Cells, old_vintage: str | None,
                     new: Source, after: Cells, new_vintage: str | None) -> list[dict]:
    """``revisions`` rows for two vintages' :func:`vintage_cells`, older first."""
    rows = []
    for key in sorted(set(before) | set(after)):
        a = before.get(key)
        b = after.get(key)
        if (a and b and a[0] == b[0]) or not a:
            continue
        table, key_json, measure = key
        kind = "changed" if b else "removed"
        rows.append({
            "table_name": table,
            "row_key": key_json,
            "measure": measure,
            "change": kind,
            "old_value": a[0] if a else "",
            "new_value": b[0] if b else "",
            "old_source_id": old.id,
            "old_vintage": old_vintage or "",
            "old_locator": a[1] if a else "",
            "new_source_id": new.id,
            "new_vintage": new_vintage or "",
            "new_locator": b[1] if b else "",
        })
    return rows
