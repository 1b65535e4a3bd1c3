"""What the IRB parsers share (irb_stat_html, irb_irregular_mhtml, irb_rpd_xlsx): header
normalisation, the HTML helpers, the captioned-table lookup, the layout declaration, the
pending-header check, the total-first row walk and the publisher-inconsistency flags.

Every IRB table is printed the same way: a caption naming the table, two header rows
(measures, then the finalisation breakdown), a "Pending" last column, a first data row that
is the total, then one row per country. A parser declares its columns as a
:class:`Layout` and walks its rows with :func:`walk_rows`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Iterator

import lxml.etree
import lxml.html

from ..cells import Count, clean_text, read_count
from ..limits import check_html_depth
from ..sources import Source
from .base import Total, fail

PENDING = re.compile(r"^pending \(as of (\d{4})/(\d{1,2})/(\d{1,2})\)$")
TOTAL_LABELS = frozenset({"total"})


def norm_header(raw: object) -> str:
    """Header text in a comparable form (see module docstring)."""
    text = clean_text(raw).casefold()
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("&", " and ")
    text = " ".join(text.split())
    text = re.sub(r"\s*-\s*", "-", text)
    text = re.sub(r"\s*\(\s*", " (", text).strip()
    return text


@dataclass(frozen=True)
class Layout:
    """An IRB table's columns as printed: header row 1 before the Pending column, the
    accepted spellings of header row 2, and per data cell its measure and printed label."""

    row1: tuple[str, ...]
    row2: tuple[tuple[str, ...], ...]
    measures: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def ncells(self) -> int:
        """Cells in a data row: the country label and one per measure."""
        return len(self.measures) + 1

    def row1_matches(self, row1: list[str]) -> bool:
        expected = [norm_header(h) for h in self.row1]
        return row1[:-1] == expected and len(row1) == len(expected) + 1

    def row2_matches(self, row2: list[str]) -> bool:
        return any(row2 == [norm_header(h) for h in spelling] for spelling in self.row2)


def find_captioned_table(doc, key: str, source: Source, name: str, missing: str,
                         many: str) -> tuple[object, str, str]:
    """The one table whose caption contains ``key`` (casefolded): (table, where, caption).
    ``missing`` is the error when there is none, ``many`` (formatted with ``n``) when there
    are several."""
    tables = list(doc.iter("table"))
    found = []
    for i, table in enumerate(tables, start=1):
        cap = table.find("caption")
        if cap is not None and key in clean_text(cap.text_content()).casefold():
            found.append((i, table, clean_text(cap.text_content())))
    if not found:
        raise fail(source, f"{name} ({len(tables)} tables)", missing)
    if len(found) > 1:
        raise fail(source, name, many.format(n=len(found)))
    tindex, table, caption = found[0]
    return table, f'table {tindex} "{caption}"', caption


def pending_as_of(printed: object, year: int, source: Source, where: str, year_error: str) -> dt.date:
    """The date of a 'Pending (as of YYYY/MM/DD)' header as ``printed``, whose year must be
    ``year`` (else the error ``year_error``, formatted with ``found`` and ``year``)."""
    m = PENDING.match(norm_header(printed))
    if not m:
        raise fail(source, where, f"header {clean_text(printed)!r} is not 'Pending (as of YYYY/MM/DD)'")
    if int(m.group(1)) != year:
        raise fail(source, where, year_error.format(found=m.group(1), year=year))
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as exc:
        raise fail(source, where, f"pending header date is not a date ({exc})") from exc


@dataclass
class BodyRow:
    index: int          # 1-based position among the body rows
    label: str          # the country label (footnote marks removed)
    printed: str        # the label as printed
    texts: list[str]    # every cell's text, the label cell first
    is_total: bool


def walk_rows(body, source: Source, where: str, ncells: int, is_total: Callable[[str], bool],
              total_name: str, label_of: Callable[[str], str] = lambda printed: printed,
              total_after: str = "a 'Total' row after the first data row") -> Iterator[BodyRow]:
    """The non-empty body rows of an IRB table, checked: each has ``ncells`` cells and a
    label, the first is the total row (and only the first), no country is listed twice,
    and there is a total and at least one country."""
    seen: dict[str, int] = {}
    got_total = False
    for rindex, tr in enumerate(body, start=1):
        cells = cells_of(tr)
        texts = [cell_text(c) for c in cells]
        if not any(clean_text(t) for t in texts):
            continue
        printed = clean_text(texts[0]) if texts else ""
        label = label_of(printed)
        rwhere = f"{where} row {rindex}" + (f" ({label!r})" if label else "")
        if len(cells) != ncells:
            raise fail(source, rwhere, f"row has {len(cells)} cells; expected {ncells}")
        if not label:
            raise fail(source, rwhere, "row has numbers but no country label")
        if is_total(label):
            if got_total or seen:
                raise fail(source, rwhere, total_after)
            got_total = True
            yield BodyRow(rindex, label, printed, texts, True)
            continue
        if not got_total:
            raise fail(source, rwhere, f"the first data row is not the {total_name} row")
        if label in seen:
            raise fail(source, rwhere, f"country {label!r} listed twice (also row {seen[label]})")
        seen[label] = rindex
        yield BodyRow(rindex, label, printed, texts, False)
    if not got_total:
        raise fail(source, where, f"no {total_name} row")
    if not seen:
        raise fail(source, where, "no country rows")


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
