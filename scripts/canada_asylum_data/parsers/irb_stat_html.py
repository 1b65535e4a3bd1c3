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

import datetime as dt
import re
from pathlib import Path

import lxml.etree
import lxml.html

from ..cells import Count, clean_text, read_count
from ..sources import Source
from .base import Parsed, Total, fail, read_bytes
from ..limits import MB, Limits, check_html_depth

RAD = "irb_rad_appeals"
#: Caps checked before lxml parses the page (limits.check_raw): the real pages are at most
#: 112 KiB and nest elements 25 deep (libxml2 silently drops what is nested past 256).
LIMITS = Limits("html", max_bytes=8 * MB, max_html_depth=200)
RPD = "irb_rpd_claims"

CAPTION_KEY = "by country of alleged persecution"
PENDING = re.compile(r"^pending \(as of (\d{4})/(\d{1,2})/(\d{1,2})\)$")
TOTAL_LABELS = frozenset({"total"})
YEAR = re.compile(r"(?<!\d)((?:19|20)\d{2})(?!\d)")


def norm_header(raw: object) -> str:
    """Header text in a comparable form (see module docstring)."""
    text = clean_text(raw).casefold()
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("&", " and ")
    text = " ".join(text.split())
    text = re.sub(r"\s*-\s*", "-", text)
    text = re.sub(r"\s*\(\s*", " (", text).strip()
    return text


#: Per table: (first-row headers before Pending, second-row headers, measure per data cell).
LAYOUTS: dict[str, dict] = {
    RAD: {
        "key": "filed",
        "row1": ["", "Filed", "Non-Merit", "Merit", "Total Finalizations"],
        "row2": ["Dismissed - Lack of RAD Jurisdiction", "Dismissed - Appeal not Perfected",
                 "Dismissed \u2013 Withdrawn, Abandoned & Other", "Dismissed - Confirmed RPD",
                 "Allowed - Referred Back", "Allowed - Substituted Determination"],
        "measures": ["filed", "dismissed_no_jurisdiction", "dismissed_not_perfected",
                     "dismissed_withdrawn_abandoned_other", "dismissed_confirmed_rpd",
                     "allowed_referred_back", "allowed_substituted", "finalized", "pending"],
        "labels": ["Filed", "Dismissed - Lack of RAD Jurisdiction", "Dismissed - Appeal not Perfected",
                   "Dismissed - Withdrawn, Abandoned & Other", "Dismissed - Confirmed RPD",
                   "Allowed - Referred Back", "Allowed - Substituted Determination",
                   "Total Finalizations", "Pending"],
    },
    RPD: {
        "key": "referred",
        "row1": ["", "Referred", "Finalized"],
        "row2": ["Accepted", "Rejected", "Abandoned", "Withdrawn and Other", "Total"],
        "measures": ["referred", "accepted", "rejected", "abandoned", "withdrawn_other",
                     "finalized", "pending"],
        "labels": ["Referred", "Accepted", "Rejected", "Abandoned", "Withdrawn and Other",
                   "Finalized Total", "Pending"],
    },
}
_MALFORMED_SUPPRESSION = re.compile(r"^-{3,}$|^-{2,}\d+$|^\d+-{2,}$")


def decode_html(data: bytes, source: Source, where: str) -> str:
    if data[:2] == b"PK" or b"\x00" in data[:1024]:
        raise fail(source, where, "the file is binary (not an HTML page)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(source, where, f"the page is not valid UTF-8 (byte {exc.start})") from exc
    return text


def parse_document(text: str, source: Source, where: str, max_depth: int | None = None):
    if max_depth:  # decoded text that limits.check_raw could not see (an MHTML part)
        check_html_depth(text, source, where, max_depth)
    try:
        return lxml.html.document_fromstring(text)
    except (lxml.etree.ParserError, ValueError, lxml.etree.XMLSyntaxError) as exc:
        raise fail(source, where, f"cannot parse the HTML ({exc})") from exc


def cells_of(tr) -> list:
    return [c for c in tr if isinstance(c.tag, str) and c.tag in ("td", "th")]


def cell_text(cell) -> str:
    return cell.text_content()


def date_modified(doc) -> str | None:
    for t in doc.iter("time"):
        if t.get("property") == "dateModified":
            text = clean_text(t.text_content())
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return text
    return None


def cell_note(measure: str, raw: str, count: Count) -> str | None:
    """Extra words for the row notes about an unreadable cell. The cell's own note
    (``Count.note``) is added by the normalize stage, so it is not repeated here."""
    if not count.note:
        return None
    if _MALFORMED_SUPPRESSION.match(clean_text(raw)):
        return f"{measure}: probably a malformed suppression mark '--' (value unknown)"
    return None


def country_row(period: dict, label: str, measures: list[str], cells: list[str], locator: str,
                notes: list[str] | None = None) -> dict:
    """One fact row of an IRB table: the period, the country label, a Count per measure
    (in column order) and the notes about unreadable cells."""
    fact: dict = {**period, "country_label": label}
    notes = list(notes or [])
    for measure, raw in zip(measures, cells):
        count = read_count(raw)
        fact[measure] = count
        note = cell_note(measure, raw, count)
        if note:
            notes.append(note)
    fact["source_locator"] = locator
    fact["notes"] = "; ".join(notes) or None
    return fact


def split_rows(table, source: Source, where: str) -> tuple[list, list]:
    """(header rows, body rows) of a table."""
    thead = table.find("thead")
    if thead is not None:
        head = [tr for tr in thead.iter("tr")]
        body = [tr for tb in table.findall("tbody") for tr in tb.findall("tr")]
        if not body:
            body = [tr for tr in table.findall("tr")]
    else:
        rows = [tr for tr in table.iter("tr")]
        head, body = rows[:2], rows[2:]
    if len(head) != 2:
        raise fail(source, where, f"expected 2 header rows, found {len(head)}")
    return head, body


def parse(path: Path, source: Source) -> Parsed:
    data = read_bytes(path, source)
    name = path.name
    text = decode_html(data, source, name)
    if "</html>" not in text.lower():
        raise fail(source, name, "the page is truncated (no closing </html>)")
    doc = parse_document(text, source, name)

    tables = list(doc.iter("table"))
    matching = []
    for i, table in enumerate(tables, start=1):
        cap = table.find("caption")
        if cap is not None and CAPTION_KEY in clean_text(cap.text_content()).casefold():
            matching.append((i, table, clean_text(cap.text_content())))
    if not matching:
        raise fail(source, f"{name} ({len(tables)} tables)",
                   "no table with a caption '... by Country of Alleged Persecution ...'")
    if len(matching) > 1:
        raise fail(source, name, f"{len(matching)} tables captioned '... by Country of Alleged "
                                 "Persecution ...'; expected one")
    tindex, table, caption = matching[0]
    where = f'table {tindex} "{caption}"'

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
    kind = next((k for k, lay in LAYOUTS.items() if len(row1) > 1 and row1[1] == lay["key"]), None)
    if kind is None:
        shown = clean_text(cell_text(cells_of(head[0])[1])) if len(row1) > 1 else ""
        raise fail(source, f"{where} header row 1 col 2",
                   f"header {shown!r} is neither 'Filed' (RAD) nor 'Referred' (RPD)")
    if source.series in LAYOUTS and source.series != kind:
        raise fail(source, where, f"the page is a {kind} table but the source record feeds {source.series}")
    layout = LAYOUTS[kind]
    expected1 = [norm_header(h) for h in layout["row1"]]
    if row1[:-1] != expected1 or len(row1) != len(expected1) + 1:
        raise fail(source, f"{where} header row 1",
                   f"headers {[clean_text(cell_text(c)) for c in cells_of(head[0])]} differ from "
                   f"{layout['row1'] + ['Pending (as of YYYY/12/31)']}")
    expected2 = [norm_header(h) for h in layout["row2"]]
    if kind == RPD:
        alt = [norm_header(h) for h in ("Accepted", "Rejected", "Abandoned", "Withdrawn & Other", "Total")]
        ok2 = row2 in (expected2, alt)
    else:
        ok2 = row2 == expected2
    if not ok2:
        raise fail(source, f"{where} header row 2",
                   f"headers {[clean_text(cell_text(c)) for c in cells_of(head[1])]} differ from {layout['row2']}")
    m = PENDING.match(row1[-1])
    if not m:
        raise fail(source, f"{where} header row 1 col {len(row1)}",
                   f"header {clean_text(cell_text(cells_of(head[0])[-1]))!r} is not 'Pending (as of YYYY/MM/DD)'")
    if int(m.group(1)) != year:
        raise fail(source, f"{where} header row 1 col {len(row1)}",
                   f"pending header year {m.group(1)} differs from the caption year {year}")
    try:
        as_of = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise fail(source, f"{where} header row 1", f"pending header date is not a date ({exc})") from exc

    out = Parsed()
    modified = date_modified(doc)
    if modified:
        out.file_facts["vintage"] = modified
    measures, labels = layout["measures"], layout["labels"]
    ncells = len(measures) + 1
    period = {"year": year, "period_start": f"{year}-01-01", "period_end": as_of.isoformat()}
    seen: dict[str, int] = {}
    got_total = False
    for rindex, tr in enumerate(body, start=1):
        cells = cells_of(tr)
        texts = [cell_text(c) for c in cells]
        if not any(clean_text(t) for t in texts):
            continue
        label = clean_text(texts[0]) if texts else ""
        rwhere = f"{where} row {rindex}" + (f" ({label!r})" if label else "")
        if len(cells) != ncells:
            raise fail(source, rwhere, f"row has {len(cells)} cells; expected {ncells}")
        if not label:
            raise fail(source, rwhere, "row has numbers but no country label")
        if label.casefold() in TOTAL_LABELS:
            if got_total or seen:
                raise fail(source, rwhere, "a 'Total' row after the first data row")
            got_total = True
            for measure, col, raw in zip(measures, labels, texts[1:]):
                out.totals.append(Total(kind, measure, {"year": year}, read_count(raw), label,
                                        f"{where} row {rindex} col {col}"))
            continue
        if not got_total:
            raise fail(source, rwhere, "the first data row is not the 'Total' row")
        if label in seen:
            raise fail(source, rwhere, f"country {label!r} listed twice (also row {seen[label]})")
        seen[label] = rindex
        out.add(kind, country_row(period, label, measures, texts[1:], f"{where} row {rindex}"))
    if not got_total:
        raise fail(source, where, "no 'Total' row")
    if not seen:
        raise fail(source, where, "no country rows")
    flag_inconsistencies(out.tables[kind], out.totals, layout["measures"][1:-2])
    return out


def _append(note: str | None, extra: str) -> str:
    return f"{note}; {extra}" if note else extra


def flag_inconsistencies(rows: list[dict], totals: list[Total], components: list[str],
                         finalized: str = "finalized") -> None:
    """Write publisher arithmetic inconsistencies into row and Total notes (never fix them).

    * a row whose readable components do not add up to its printed ``finalized``;
    * the Total row likewise;
    * a column whose country cells (all readable) do not add up to the printed total, or
      whose readable cells add up to MORE than the total when some are suppressed; such a
      Total also gets ``inconsistent = True`` (what the central reconciliation checks).
    """
    for row in rows:
        vals = [row[c].value for c in components]
        fin = row[finalized].value
        if fin is not None and all(v is not None for v in vals) and sum(vals) != fin:
            row["notes"] = _append(row.get("notes"),
                                   f"publisher inconsistency: {' + '.join(components)} = {sum(vals):,} "
                                   f"but {finalized} is printed as {fin:,}")
    by_measure = {t.measure: t for t in totals}
    if finalized in by_measure and all(c in by_measure for c in components):
        vals = [by_measure[c].value.value for c in components]
        fin_t = by_measure[finalized]
        if fin_t.value.value is not None and all(v is not None for v in vals) and sum(vals) != fin_t.value.value:
            fin_t.notes = _append(fin_t.notes,
                                  f"publisher inconsistency: the total row's {' + '.join(components)} = "
                                  f"{sum(vals):,} but its {finalized} is printed as {fin_t.value.value:,}")
    for measure, total in by_measure.items():
        if total.value.value is None:
            continue
        readable = [r[measure].value for r in rows if r[measure].value is not None]
        hidden = len(rows) - len(readable)
        s = sum(readable)
        if hidden == 0 and s != total.value.value:
            # read by normalize (published_totals.publisher_inconsistent): validation then
            # reports this total as a known discrepancy instead of a failure.
            total.inconsistent = True
            total.notes = _append(total.notes,
                                  f"publisher inconsistency: the country rows sum to {s:,}, "
                                  f"{abs(s - total.value.value):,} {'more' if s > total.value.value else 'less'} "
                                  "than this printed total")
        elif hidden and s > total.value.value:
            total.inconsistent = True
            total.notes = _append(total.notes,
                                  f"publisher inconsistency: the readable country rows alone sum to {s:,}, "
                                  f"more than this printed total")
