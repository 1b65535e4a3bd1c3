"""Which periods each series has, and which are missing.

One row per source (present, superseded by a newer vintage, or missing because we hold no
copy), plus one row per gap inside a series (a month, quarter or year between its first
and last period that no source covers).
"""

from __future__ import annotations

import calendar
from datetime import date
from pathlib import Path

from .sources import Source

def _period_of(row: dict, table: str, granularities: dict[str, str]) -> str:
    if row.get("half"):
        return f"{row['year']}-{row['half']}"
    if "month" in row and row["month"]:
        return str(row["month"])
    if granularities.get(table) == "quarter":
        return str(row["period_end"])[:7]
    if "year" in row and row["year"] not in (None, ""):
        return str(row["year"])
    return str(row.get("period_end", ""))[:7]


def _granularity(table: str, periods: set[str], granularities: dict[str, str]) -> str:
    if table in granularities:
        return granularities[table]
    sample = next(iter(periods), "")
    if "-H" in sample:
        return "half"
    return "month" if len(sample) == 7 else "year"


def _expected(first: str, last: str, granularity: str) -> list[str]:
    if granularity == "year":
        return [str(y) for y in range(int(first), int(last) + 1)]
    if granularity == "half":  # first halves only (UNHCR publishes no second half)
        return [f"{y}-H1" for y in range(int(first[:4]), int(last[:4]) + 1)]
    y, m = int(first[:4]), int(first[5:7])
    step = 3 if granularity == "quarter" else 1
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        m += step
        while m > 12:
            m -= 12
            y += 1
    return out


def _bounds(period: str, granularity: str) -> tuple[str, str]:
    if granularity == "year":
        return f"{period}-01-01", f"{period}-12-31"
    if granularity == "half":
        return (f"{period[:4]}-01-01", f"{period[:4]}-06-30") if period.endswith("H1") else \
            (f"{period[:4]}-07-01", f"{period[:4]}-12-31")
    y, m = int(period[:4]), int(period[5:7])
    if granularity == "quarter":
        start = date(y if m > 2 else y - 1, (m - 3) % 12 + 1, 1).isoformat()
    else:
        start = date(y, m, 1).isoformat()
    return start, date(y, m, calendar.monthrange(y, m)[1]).isoformat()


def coverage_rows(sources: list[Source], raw_files: dict[str, Path], tables: dict[str, list[dict]],
                  newest: set[str], granularities: dict[str, str] | None = None) -> list[dict]:
    """``granularities``: table -> the schema's ``granularity`` where it sets one."""
    granularities = granularities or {}
    out: list[dict] = []
    by_source: dict[str, dict[str, set[str]]] = {}
    series_periods: dict[str, set[str]] = {}
    for table, rows in tables.items():
        for row in rows:
            sid = row.get("source_id")
            if not sid or table in ("published_totals",):
                continue
            period = _period_of(row, table, granularities)
            by_source.setdefault(sid, {}).setdefault(table, set()).add(period)
            series_periods.setdefault(table, set()).add(period)

    vintage_urls = {s.url for s in sources if not s.live and s.sha256}
    vintage_links = {s.options.get("live_series") for s in sources if not s.live}
    vintage_groups = {s.options.get("vintage_of") for s in sources if not s.live and s.sha256}
    for s in sources:
        if s.parser == "none":
            continue
        if s.live and (s.url in vintage_urls or s.id in vintage_links
                       or s.options.get("new_vintage_of") in vintage_groups - {None}):
            continue  # its versions are listed as their own (snapshot) sources
        found = by_source.get(s.id, {})
        for table, periods in sorted(found.items()):
            gran = _granularity(table, periods, granularities)
            first, last = min(periods), max(periods)
            out.append(_row(table, s.id, gran, _bounds(first, gran)[0], _bounds(last, gran)[1],
                            "present", len(periods), ""))
        if s.id in raw_files:
            status = "superseded" if s.id not in newest else "present"
            note = ("an older release: the figures shown come from the newest release; where "
                    "this one said something else, the revisions table lists both"
                    if status == "superseded" else "file held, no rows read from it")
            for series in s.series.split(","):
                if series.strip() in found:
                    continue
                out.append(_row(series.strip(), s.id, "", s.period_start or "", s.period_end or "",
                                status, 0, note))
        else:
            note = ("the publisher's file for this period is not held, so its figures are not "
                    "in this package yet")
            for series in s.series.split(","):
                out.append(_row(series.strip(), s.id, "", s.period_start or "", s.period_end or "",
                                "missing", 0, note))

    for table, periods in sorted(series_periods.items()):
        gran = _granularity(table, periods, granularities)
        expected = _expected(min(periods), max(periods), gran)
        for period in expected:
            if period not in periods:
                start, end = _bounds(period, gran)
                note = ("no figures for this quarter: the publisher replaces its page every "
                        "quarter and no archived copy of this one was found" if gran == "quarter"
                        else f"no figures for this {'half year' if gran == 'half' else gran}: "
                        "none of the publisher's files held here covers it")
                out.append(_row(table, "", gran, start, end, "missing", 0, note))
    return out


def _row(series, source_id, gran, start, end, status, periods, notes) -> dict:
    return {"series": series, "source_id": source_id, "granularity": gran, "period_start": start,
            "period_end": end, "status": status, "periods": periods, "notes": notes}
