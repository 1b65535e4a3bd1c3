"""IRB statistics pages "... by Country of Alleged Persecution - YYYY" (one HTML table).

One template, two tables (see shared/sources/irb/SOURCES.md, section 2):

* RAD ``RADStatYYYY.aspx`` -> ``irb_rad_appeals``. Header row 1: (blank) | Filed |
  Non-Merit (3) | Merit (3) | Total Finalizations | Pending (as of YYYY/12/31); row 2: the
  six "Dismissed - ..." / "Allowed - ..." columns. Data rows have 10 cells.
* RPD ``RPDStatYYYY.aspx`` -> ``irb_rpd_claims``. Header row 1: (blank) | Referred |
  Finalized (5) | Pending (as of YYYY/12/31); row 2: Accepted | Rejected | Abandoned |
  Withdrawn and Other | Total. Data rows have 8 cells. (No real page is mirrored yet; the
  parser is tested on a hand-written fixture in the same template.)

Which one a page is, is decided from the header row (``Filed`` vs ``Referred``) and must
agree with ``source.series``. Header text is compared after :func:`clean_text`,
case-insensitively, with en/em dashes read as hyphens, ``&`` as ``and`` and spaces around
hyphens and before ``(`` ignored. The year comes from the caption and must equal the
source record's period and the pending header's year; ``period_end`` is the pending
header's "as of" date.

The first data row is the bold ``Total`` row -> :class:`Total` (scope ``{"year": Y}``).
Cells such as ``--<br>``, ``\\u200b20<br>``, ``3,910`` go through :func:`read_count`;
unreadable cells (``--3``, ``---``) stay empty with a note in the row.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..cells import clean_text, read_count
from ..limits import MB, Limits
from ..sources import Source
from .base import Parsed, Total, fail, read_bytes
from .irb_common import (TOTAL_LABELS, Layout, cell_text, cells_of, country_row, date_modified,
                         decode_html, find_captioned_table, flag_inconsistencies, norm_header,
                         parse_document, pending_as_of, split_rows, walk_rows)

RAD = "irb_rad_appeals"
#: Caps checked before lxml parses the page (limits.check_raw): the real pages are at most
#: 112 KiB and nest elements 25 deep (libxml2 silently drops what is nested past 256).
LIMITS = Limits("html", max_bytes=8 * MB, max_html_depth=200)
RPD = "irb_rpd_claims"

CAPTION_KEY = "by country of alleged persecution"
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


#: Per table: which page it is is told by header row 1 column 2 (Filed or Referred).
LAYOUTS: dict[str, Layout] = {
    RAD: Layout(
        row1=("", "Filed", "Non-Merit", "Merit", "Total Finalizations"),
        row2=(("Dismissed - Lack of RAD Jurisdiction", "Dismissed - Appeal not Perfected",
               "Dismissed \u2013 Withdrawn, Abandoned & Other", "Dismissed - Confirmed RPD",
               "Allowed - Referred Back", "Allowed - Substituted Determination"),),
        measures=("filed", "dismissed_no_jurisdiction", "dismissed_not_perfected",
                  "dismissed_withdrawn_abandoned_other", "dismissed_confirmed_rpd",
                  "allowed_referred_back", "allowed_substituted", "finalized", "pending"),
        labels=("Filed", "Dismissed - Lack of RAD Jurisdiction", "Dismissed - Appeal not Perfected",
                "Dismissed - Withdrawn, Abandoned & Other", "Dismissed - Confirmed RPD",
                "Allowed - Referred Back", "Allowed - Substituted Determination",
                "Total Finalizations", "Pending")),
    RPD: Layout(
        row1=("", "Referred", "Finalized"),
        row2=(("Accepted", "Rejected", "Abandoned", "Withdrawn and Other", "Total"),
              ("Accepted", "Rejected", "Abandoned", "Withdrawn & Other", "Total")),
        measures=("referred", "accepted", "rejected", "abandoned", "withdrawn_other",
                  "finalized", "pending"),
        labels=("Referred", "Accepted", "Rejected", "Abandoned", "Withdrawn and Other",
                "Finalized Total", "Pending")),
}
def parse(path: Path, source: Source) -> Parsed:
    data = read_bytes(path, source)
    name = path.name
    text = decode_html(data, source, name)
    if "</html>" not in text.lower():
        raise fail(source, name, "the page is truncated (no closing </html>)")
    doc = parse_document(text, source, name)
    table, where, caption = find_captioned_table(
        doc, CAPTION_KEY, source, name,
        missing="no table with a caption '... by Country of Alleged Persecution ...'",
        many="{n} tables captioned '... by Country of Alleged Persecution ...'; expected one")

    years = sorted(set(YEAR.findall(caption)))
    if len(years) != 1:
        raise fail(source, where, f"caption names {len(years)} years ({', '.join(years) or 'none'}); expected one")
    year = int(years[0])
    for field in ("period_start", "period_end"):
        value = getattr(source, field)
        if value and int(str(value)[:4]) != year:
            raise fail(source, where, f"caption year {year} differs from the source record's "
                                      f"{field} {value}")

    head, body = split_rows(table, source, where)
    row1 = [norm_header(cell_text(c)) for c in cells_of(head[0])]
    row2 = [norm_header(cell_text(c)) for c in cells_of(head[1])]
    kind = next((k for k, lay in LAYOUTS.items() if len(row1) > 1 and row1[1] == norm_header(lay.row1[1])), None)
    if kind is None:
        shown = clean_text(cell_text(cells_of(head[0])[1])) if len(row1) > 1 else ""
        raise fail(source, f"{where} header row 1 col 2",
                   f"header {shown!r} is neither 'Filed' (RAD) nor 'Referred' (RPD)")
    if source.series in LAYOUTS and source.series != kind:
        raise fail(source, where, f"the page is a {kind} table but the source record feeds {source.series}")
    layout = LAYOUTS[kind]
    if not layout.row1_matches(row1):
        raise fail(source, f"{where} header row 1",
                   f"headers {[clean_text(cell_text(c)) for c in cells_of(head[0])]} differ from "
                   f"{list(layout.row1) + ['Pending (as of YYYY/12/31)']}")
    if not layout.row2_matches(row2):
        raise fail(source, f"{where} header row 2",
                   f"headers {[clean_text(cell_text(c)) for c in cells_of(head[1])]} differ from {list(layout.row2[0])}")
    as_of = pending_as_of(cell_text(cells_of(head[0])[-1]), year, source, f"{where} header row 1 col {len(row1)}",
                          "pending header year {found} differs from the caption year {year}")

    out = Parsed()
    modified = date_modified(doc)
    if modified:
        out.file_facts["vintage"] = modified
    measures, labels = list(layout.measures), layout.labels
    period = {"year": year, "period_start": f"{year}-01-01", "period_end": as_of.isoformat()}
    for row in walk_rows(body, source, where, layout.ncells, lambda label: label.casefold() in TOTAL_LABELS,
                         "'Total'"):
        if row.is_total:
            for measure, col, raw in zip(measures, labels, row.texts[1:]):
                out.totals.append(Total(kind, measure, {"year": year}, read_count(raw), row.label,
                                        f"{where} row {row.index} col {col}"))
        else:
            out.add(kind, country_row(period, row.label, measures, row.texts[1:], f"{where} row {row.index}"))
    flag_inconsistencies(out.tables[kind], out.totals, measures[1:-2])
    return out
