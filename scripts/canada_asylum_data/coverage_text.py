"""Where each series starts and ends, in a reader's words, from the generated ``coverage``
table: the sentence shown on every table, view, canned query and chart page that shows the
series (metadata.yml), and the period column of the README's "What is in it" table (a test
checks it against :func:`period_phrase`).
"""

from __future__ import annotations

import html
import re
from calendar import month_name
from collections import defaultdict
from pathlib import Path

from .package_io import iter_rows

DB = "canada_asylum"

#: Who publishes each series, as a reader names them.
PUBLISHERS = {"irb_": "IRB", "rcmp_": "RCMP", "cbsa_": "canada.ca (IRCC/CBSA)",
              "ircc_": "IRCC", "unhcr_": "UNHCR"}


def load_coverage(datapackage_dir: Path) -> dict[str, list[dict]]:
    """coverage rows by series (empty when the table has not been generated yet)."""
    path = datapackage_dir / "data" / "coverage.csv"
    out: dict[str, list[dict]] = defaultdict(list)
    if not path.exists():
        return out
    for row in iter_rows(path):
        out[row["series"]].append(row)
    return out


def publisher(series: str) -> str:
    return next((name for prefix, name in PUBLISHERS.items() if series.startswith(prefix)),
                "the publisher")


def _month(date: str) -> str:
    return f"{month_name[int(date[5:7])]} {date[:4]}"


def _point(date: str, gran: str, end: bool) -> str:
    """One end of a period, as a reader says it."""
    if gran == "year":
        return date[:4]
    if gran == "half":
        return f"the first half of {date[:4]}" if date[5:7] in ("01", "06") else \
            f"the second half of {date[:4]}"
    if gran == "quarter":  # named by the month it ends in
        if not end:
            y, m = int(date[:4]), int(date[5:7]) + 2
            date = f"{y + (m > 12):04d}-{(m - 1) % 12 + 1:02d}"
        return f"the quarter ending {_month(date)}"
    return _month(date)


def _years(spans: list[tuple[str, str]]) -> str:
    """Years covered by (start, end) dates, with runs collapsed: 2013-2016, 2024-2025."""
    years = sorted({y for s, e in spans for y in range(int(s[:4]), int(e[:4]) + 1)})
    runs: list[list[int]] = []
    for y in years:
        if runs and y == runs[-1][1] + 1:
            runs[-1][1] = y
        else:
            runs.append([y, y])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _span(rows: list[dict]) -> tuple[str, str, str] | None:
    present = [r for r in rows if r["status"] == "present" and r["granularity"]]
    if not present:
        return None
    gran = present[0]["granularity"]
    return gran, min(r["period_start"] for r in present), max(r["period_end"] for r in present)


def period_phrase(series: str, coverage: dict[str, list[dict]]) -> str:
    """Short form for tables of contents: "2013-2023, yearly", "January 2017 to December
    2023, monthly"."""
    span = _span(coverage.get(series, []))
    if span is None:
        return "no figures held"
    gran, first, last = span
    every = {"year": "yearly", "month": "monthly", "quarter": "quarterly snapshots",
             "half": "first halves (January-June)"}[gran]
    if gran in ("year", "half"):
        return f"{first[:4]}-{last[:4]}, {every}"
    if gran == "quarter":
        return (f"{every}, quarters ending {_point(first, gran, False).removeprefix('the quarter ending ')}"
                f" to {_point(last, gran, True).removeprefix('the quarter ending ')}")
    return f"{_point(first, gran, False)} to {_point(last, gran, True)}, {every}"


def series_sentence(series: str, coverage: dict[str, list[dict]]) -> str:
    """"IRB figures run from 2013 to 2023; 2024-2025 not yet published here (...)"."""
    rows = coverage.get(series, [])
    span = _span(rows)
    who = publisher(series)
    if span is None:
        return f"{series}: no figures are held yet."
    gran, first, last = span
    text = (f"{series}: {who} figures run from {_point(first, gran, False)} to "
            f"{_point(last, gran, True)}")
    not_held = [(r["period_start"], r["period_end"]) for r in rows
                if r["status"] == "missing" and r["source_id"] and r["period_start"]]
    later = [(s, e) for s, e in not_held if s > last]
    other = [(s, e) for s, e in not_held if s <= last]
    parts = []
    if later:
        parts.append(f"{_years(later)} not yet published here (the publisher's files for "
                     f"{'that year' if len(later) == 1 else 'those years'} are not held)")
    if other:
        parts.append(f"{_years(other)} not here (no copy of the publisher's files for "
                     f"{'that year' if len(other) == 1 else 'those years'} could be found)")
    gaps = [r for r in rows if r["status"] == "missing" and not r["source_id"]]
    if gaps:
        shown = ", ".join(_point(r["period_end"], r["granularity"], True).removeprefix("the ")
                          for r in gaps[:6])
        more = f" and {len(gaps) - 6} more" if len(gaps) > 6 else ""
        parts.append(f"no figures for {len(gaps)} period(s) in between ({shown}{more})")
    return text + ("; " + "; ".join(parts) if parts else "") + "."


def coverage_link(series: str) -> str:
    return f"/{DB}/coverage?series={series}"


def series_in_sql(sql: str, coverage: dict[str, list[dict]]) -> list[str]:
    """The series (fact tables with coverage rows) an SQL text reads, in order of the text."""
    found = []
    for name in coverage:
        m = re.search(rf"\b{re.escape(name)}\b", sql)
        if m:
            found.append((m.start(), name))
    return [name for _, name in sorted(found)]


def series_of(sql: str, view_sql: dict[str, str], coverage: dict[str, list[dict]]) -> list[str]:
    """:func:`series_in_sql`, where a view the SQL reads counts as the tables it reads."""
    for _ in range(3):  # views of views
        for view, text in view_sql.items():
            if re.search(rf"\b{re.escape(view)}\b", sql) and text not in sql:
                sql += "\n" + text
    return series_in_sql(sql, coverage)


def coverage_text(series: list[str], coverage: dict[str, list[dict]]) -> str:
    """The plain-text paragraph appended to a description."""
    if not series:
        return ""
    return "Periods: " + " ".join(
        f"{series_sentence(s, coverage)} (details: {coverage_link(s)})" for s in series)


def description_html(description: str, series: list[str], coverage: dict[str, list[dict]]) -> str:
    """The description as HTML paragraphs, with the coverage sentences linked."""
    paras = [f"<p>{html.escape(p.strip())}</p>" for p in description.split("\n\n") if p.strip()
             and not p.startswith("Periods: ")]
    if series:
        items = "".join(f'<li>{html.escape(series_sentence(s, coverage))} '
                        f'<a href="{coverage_link(s)}">Coverage of {s}</a></li>' for s in series)
        paras.append(f'<div class="series-coverage"><p><strong>Periods</strong></p>'
                     f"<ul>{items}</ul></div>")
    return "\n".join(paras)


def annotate(entry: dict, series: list[str], coverage: dict[str, list[dict]]) -> dict:
    """Add the periods of ``series`` to a metadata.yml entry (table, view or canned query):
    a plain-text paragraph in ``description`` and the linked HTML in ``description_html``."""
    if not series:
        return entry
    entry["description"] = entry["description"].rstrip() + "\n\n" + coverage_text(series, coverage)
    entry["description_html"] = description_html(entry["description"], series, coverage)
    return entry


def annotate_dashboards(dashboards: dict, view_sql: dict[str, str],
                        coverage: dict[str, list[dict]]) -> dict:
    """Each dashboard's description ends with where the series of its charts start and end
    (a chart reading a view reads the view's tables)."""
    for board in dashboards.values():
        series: list[str] = []
        for chart in (board.get("charts") or {}).values():
            series += [x for x in series_of(chart.get("query", ""), view_sql, coverage)
                       if x not in series]
        if series:
            lines = " ".join(f"{series_sentence(s, coverage)} (details: {coverage_link(s)})"
                             for s in series)
            board["description"] = (board.get("description", "").rstrip()
                                     + " Where each series starts and ends: " + lines)
    return dashboards
