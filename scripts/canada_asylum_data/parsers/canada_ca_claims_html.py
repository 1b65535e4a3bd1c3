"""canada.ca "Asylum claims by year - YYYY" pages (IRCC): RCMP interceptions and CBSA/IRCC
asylum claimants by office and province/territory, one page per calendar year.

Each page holds nine captioned ``<table>``s, found here by caption keywords (never by
position):

1. ``RCMP Interceptions`` -> ``rcmp_interceptions`` (exact counts). The ``Total - RCMP``
   row and the ``Total`` column are printed totals -> ``parsed.totals``.
2. ``Air Ports of Entry``, 3. ``Land Ports of Entry``, 4. ``Marine Ports of Entry``,
   6. ``Inland Offices`` (CBSA) and 8. ``... processed by Immigration, Refugees and
   Citizenship Canada (IRCC) ...`` -> ``cbsa_ircc_claimants`` detail rows (rounded to 5,
   ``--`` = 1 to 4).
5. ``All Ports of Entry (Air, Land and Marine)``, 7. ``Summary of Asylum Claimants processed
   by the ... (CBSA) ...`` and 9. ``Total Asylum Claimants processed by the CBSA and IRCC ...``
   are sums of the detail tables -> ``parsed.totals`` only, as are every table's Total row
   and Total column.

Layout checks (a failure raises ParseError naming the table caption and row): every table
present exactly once; header = label column, the 12 months Jan..Dec in order (any of the
spellings in MONTH_NAMES) and ``Total``; every row has as many cells as the header; row
labels are the expected provinces/offices; one Total row, last; years in captions and the
page title equal the source's period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import lxml.etree
import lxml.html

from ..cells import Count, clean_text, read_count
from ..provinces import resolve_province
from .base import Parsed, Total, fail, read_bytes
from ..limits import MB, Limits

RCMP = "rcmp_interceptions"
#: Caps checked before lxml parses the page (limits.check_raw): the real pages are at most
#: 51 KiB and nest elements 14 deep.
LIMITS = Limits("html", max_bytes=8 * MB, max_html_depth=200)
CLAIMS = "cbsa_ircc_claimants"

#: Month header spellings seen on the pages (Jun/June, Sep/Sept, Mar/March ...).
MONTH_NAMES = {
    "jan": 1, "jan.": 1, "january": 1,
    "feb": 2, "feb.": 2, "february": 2,
    "mar": 3, "mar.": 3, "march": 3,
    "apr": 4, "apr.": 4, "april": 4,
    "may": 5,
    "jun": 6, "jun.": 6, "june": 6,
    "jul": 7, "jul.": 7, "july": 7,
    "aug": 8, "aug.": 8, "august": 8,
    "sep": 9, "sep.": 9, "sept": 9, "sept.": 9, "september": 9,
    "oct": 10, "oct.": 10, "october": 10,
    "nov": 11, "nov.": 11, "november": 11,
    "dec": 12, "dec.": 12, "december": 12,
}
TOTAL_HEADER = "total"

#: The 13 provinces and territories every CBSA/IRCC table lists, in any order.
PT_CODES = frozenset({"NL", "PE", "NS", "NB", "QC", "ON", "MB", "SK", "AB", "BC", "YT", "NT", "NU"})

#: office code -> (agency, office_group)
OFFICES = {
    "air_poe": ("CBSA", "poe"),
    "land_poe": ("CBSA", "poe"),
    "marine_poe": ("CBSA", "poe"),
    "cbsa_inland": ("CBSA", "inland"),
    "ircc": ("IRCC", "ircc"),
}

#: Rows of the CBSA summary table (7): printed label -> the scope it totals.
SUMMARY_ROWS = {
    "air ports of entry": {"office": "air_poe"},
    "land ports of entry": {"office": "land_poe"},
    "marine ports of entry": {"office": "marine_poe"},
    "all ports of entry (air, land and marine)": {"office_group": "poe"},
    "inland offices": {"office": "cbsa_inland"},
}

_PROVINCE_HEADER = re.compile(r"^provinces?(\s*/\s*territor(y|ies))?$")
_SUMMARY_HEADER = re.compile(r"ports? of entry.*inland offices?")
_YEAR = re.compile(r"\b(19|20)\d{2}\b")
_QUOTES = re.compile(r"^[\"\u201c\u201d]\s*([\d,]+)\s*[\"\u201c\u201d]")

#: Known caption errors: (page year, table key, text in caption) -> note.
CAPTION_ERRATA = {
    (2023, "total", "January - January 2024"): (
        'caption printed as "January - January 2024"; the table covers January-December 2023 '
        "like every other table on the 2023 page (publisher typo)"
    ),
}

#: Known publisher inconsistencies explained by other evidence: (page year, province) -> note.
RCMP_ROW_NOTES = {
    (2018, "SK"): (
        "the 2018 Saskatchewan row (1, 2, 0, 1 in Jul-Oct = 4) is identical to the 2019 "
        "Saskatchewan row and is not included in the 2018 Total - RCMP row (an older 2018 "
        "page showed Saskatchewan all zeros with the same totals); probably copied from 2019 "
        "by the publisher"
    ),
}


@dataclass(frozen=True)
class TableSpec:
    key: str
    number: int  # the table's order on the page, used in locators and messages only
    name: str  # what the caption says, for error messages
    required: tuple[str, ...]  # every keyword must be in the lower-cased caption
    forbidden: tuple[str, ...] = ()
    kind: str = "pt"  # "rcmp", "pt" (13 P/T rows), "pt_xo" (13 P/T + Outside Canada), "summary"
    office: str | None = None  # detail table: office code of its cells
    scope: dict | None = None  # totals-only table: scope every cell totals (plus month/province)


TABLES = (
    TableSpec("rcmp", 1, "RCMP Interceptions", ("rcmp", "intercept"), kind="rcmp"),
    TableSpec("air", 2, "Air Ports of Entry", ("air ports of entry",), ("summary",),
              office="air_poe"),
    TableSpec("land", 3, "Land Ports of Entry", ("land ports of entry",), ("summary",),
              office="land_poe"),
    TableSpec("marine", 4, "Marine Ports of Entry", ("marine ports of entry",), ("summary",),
              office="marine_poe"),
    TableSpec("all_poe", 5, "All Ports of Entry (Air, Land and Marine)", ("all ports of entry",),
              ("summary",), scope={"office_group": "poe"}),
    TableSpec("inland", 6, "Inland Offices", ("inland offices",), ("summary", "ports of entry"),
              office="cbsa_inland"),
    TableSpec("summary", 7, "Summary of Asylum Claimants processed by the CBSA",
              ("summary", "claimants"), kind="summary",
              scope={"agency": "CBSA"}),
    TableSpec("ircc", 8, "Asylum Claimants processed by IRCC",
              ("claimants", "ircc"), ("summary", "cbsa"), kind="pt_xo", office="ircc"),
    TableSpec("total", 9, "Total Asylum Claimants processed by the CBSA and IRCC",
              ("total", "claimants", "cbsa", "ircc"), ("summary",), kind="pt_xo", scope={}),
)


def _match(spec: TableSpec, caption: str) -> bool:
    low = caption.lower()
    return all(k in low for k in spec.required) and not any(k in low for k in spec.forbidden)


def _cell_text(cell) -> str:
    return clean_text(cell.text_content())


#: Footnote links inside a cell (compiled once: it is evaluated on every cell).
_FOOTNOTE_LINKS = lxml.etree.XPath(".//a[starts-with(@href, '#')]")


def _footnotes(cell, doc) -> list[str]:
    """Footnote references inside a cell -> 'footnote *: <text>' for each."""
    out = []
    for link in _FOOTNOTE_LINKS(cell):
        target = link.get("href")[1:]
        mark = clean_text(link.text_content()).replace("Footnote", "").strip() or target
        found = doc.xpath("//*[@id=$i]", i=target)
        text = ""
        if found:
            paras = [clean_text(p.text_content()) for p in found[0].xpath(".//p")]
            paras = [p for p in paras if p and not p.lower().startswith("return to footnote")]
            text = " ".join(paras) or clean_text(found[0].text_content())
        out.append(f"footnote {mark}: " + (f'"{text}"' if text else "(text not found on the page)"))
    return out


def _read_cell(cell, doc) -> tuple[Count, list[str]]:
    """Read one count cell; notes for footnotes and quirks found in it."""
    text = _cell_text(cell)
    notes = _footnotes(cell, doc)
    unquoted = _QUOTES.sub(r"\1", text)
    if unquoted != text:
        notes.append(f"cell printed as {text!r} with quotation marks; read as a number")
    return read_count(unquoted), notes


def _page_year(source, path) -> int:
    start, end = source.period_start, source.period_end
    if not start or not end or start[:4] != end[:4]:
        raise fail(source, str(path), "the source record must give period_start and period_end "
                   f"within one calendar year (got {start!r}..{end!r})")
    return int(start[:4])


def _load(path: Path, source):
    data = read_bytes(path, source)
    head = data[:2048].lstrip().lower()
    if data[:2] == b"PK" or data[:4] == b"%PDF" or data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise fail(source, path.name, "the raw file is not an HTML page (binary file: zip/xlsx, "
                   "PDF or old Excel)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(source, f"{path.name} byte {exc.start}",
                   "the raw file is not UTF-8 text (expected a saved canada.ca HTML page)") from exc
    if b"<html" not in head and b"<!doctype html" not in head and b"<table" not in data.lower():
        raise fail(source, path.name, "the raw file is not an HTML page (no <html> or <table>)")
    if "</html>" not in text[-4096:].lower():
        raise fail(source, path.name, "the HTML page is truncated (no closing </html> tag)")
    try:
        return lxml.html.document_fromstring(data, parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError) as exc:
        raise fail(source, path.name, f"the HTML page cannot be parsed ({exc})") from exc


def _find_tables(doc, source) -> dict[str, tuple[TableSpec, object, str]]:
    found: dict[str, tuple[TableSpec, object, str]] = {}
    for index, table in enumerate(doc.xpath("//table"), start=1):
        caps = table.xpath("./caption")
        caption = clean_text(caps[0].text_content()) if caps else ""
        if not caption:
            raise fail(source, f"table {index} (no caption)", "a table on the page has no caption")
        hits = [s for s in TABLES if _match(s, caption)]
        if len(hits) != 1:
            names = ", ".join(h.name for h in hits)
            raise fail(source, f'table {index} "{caption}"',
                       "unknown table caption" if not hits else
                       f"caption matches several expected tables ({names})")
        spec = hits[0]
        if spec.key in found:
            raise fail(source, f'table {index} "{caption}"',
                       f'a second "{spec.name}" table (first: "{found[spec.key][2]}")')
        found[spec.key] = (spec, table, caption)
    missing = [s.name for s in TABLES if s.key not in found]
    if missing:
        raise fail(source, "the page's tables", "table(s) missing: " + "; ".join(
            f'"{m}"' for m in missing))
    return found


def _caption_note(source, spec: TableSpec, caption: str, year: int) -> str | None:
    for (y, key, text), note in CAPTION_ERRATA.items():
        if y == year and key == spec.key and text in caption:
            return note
    years = {int(m.group(0)) for m in _YEAR.finditer(caption)}
    if years - {year}:
        raise fail(source, f'table {spec.number} "{caption}"',
                   f"caption year(s) {sorted(years)} differ from the source period {year}")
    return None


def _header(source, spec: TableSpec, table, caption: str) -> list[str]:
    """Check the header row; return the printed month headers (12)."""
    where = f'table {spec.number} "{caption}" header'
    rows = table.xpath("./thead/tr")
    if len(rows) != 1:
        raise fail(source, where, f"expected one header row in <thead>, found {len(rows)}")
    heads = [_cell_text(c) for c in rows[0].xpath("./th|./td")]
    if len(heads) != 14:
        raise fail(source, where, f"expected 14 columns (label, Jan..Dec, Total), found "
                   f"{len(heads)}: {heads}")
    label = heads[0].lower()
    ok = (_SUMMARY_HEADER.search(label) if spec.kind == "summary"
          else _PROVINCE_HEADER.match(label))
    if not ok:
        raise fail(source, f"{where} col 1", f"unexpected label column header {heads[0]!r}")
    for i, head in enumerate(heads[1:13], start=1):
        if MONTH_NAMES.get(head.lower()) != i:
            raise fail(source, f"{where} col {i + 1}",
                       f"expected month {i} header, found {head!r}")
    if heads[13].lower() != TOTAL_HEADER:
        raise fail(source, f"{where} col 14", f"expected 'Total', found {heads[13]!r}")
    return heads[1:13]


def _body_rows(source, spec: TableSpec, table, caption: str):
    """(row number, label, cells) for every body row; the Total row is returned separately."""
    rows = table.xpath("./tbody/tr|./tfoot/tr|./tr")
    out = []
    for n, tr in enumerate(rows, start=1):
        cells = tr.xpath("./td|./th")
        where = f'table {spec.number} "{caption}" row {n}'
        if not cells:
            continue
        label = _cell_text(cells[0])
        if len(cells) != 14:
            raise fail(source, f"{where} ({label})",
                       f"expected 14 cells (label, 12 months, Total), found {len(cells)}")
        out.append((n, label, cells[1:]))
    if not out:
        raise fail(source, f'table {spec.number} "{caption}"', "the table has no rows")
    totals = [r for r in out if r[1].lower().startswith("total")]
    if len(totals) != 1 or totals[0] is not out[-1]:
        raise fail(source, f'table {spec.number} "{caption}"',
                   "expected exactly one Total row, as the last row "
                   f"(found {[r[1] for r in totals]})")
    return out[:-1], out[-1]


def _row_key(source, spec: TableSpec, caption: str, n: int, label: str) -> str:
    where = f'table {spec.number} "{caption}" row {n} ({label})'
    if spec.kind == "summary":
        key = label.lower()
        if key not in SUMMARY_ROWS:
            raise fail(source, where, f"unknown row label {label!r}")
        return key
    code = resolve_province(label)
    allowed = PT_CODES | ({"XO"} if spec.kind == "pt_xo" else set())
    if code is None or code not in allowed:
        raise fail(source, where, f"unknown row label {label!r} (expected a province/territory"
                   + (" or 'Outside Canada')" if spec.kind == "pt_xo" else ")"))
    return code


def _check_row_set(source, spec: TableSpec, caption: str, keys: list[str]) -> None:
    where = f'table {spec.number} "{caption}"'
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise fail(source, where, f"row(s) listed twice: {', '.join(dup)}")
    if spec.kind == "rcmp":
        return  # only the provinces with interceptions are listed (2020 adds NL)
    expected = (set(SUMMARY_ROWS) if spec.kind == "summary"
                else PT_CODES | ({"XO"} if spec.kind == "pt_xo" else set()))
    missing = sorted(expected - set(keys))
    if missing:
        raise fail(source, where, f"row(s) missing: {', '.join(missing)}")


def _join(notes) -> str | None:
    notes = [n for n in notes if n]
    return "; ".join(dict.fromkeys(notes)) or None


def _parse_table(parsed: Parsed, source, doc, spec: TableSpec, table, caption: str,
                 year: int) -> None:
    caption_note = _caption_note(source, spec, caption, year)
    months = _header(source, spec, table, caption)
    detail, total_row = _body_rows(source, spec, table, caption)
    keys = [_row_key(source, spec, caption, n, label) for n, label, _ in detail]
    _check_row_set(source, spec, caption, keys)

    fact = RCMP if spec.kind == "rcmp" else CLAIMS
    measure = "interceptions" if fact == RCMP else "claimants"
    base = {} if spec.scope is None else dict(spec.scope)
    if spec.office:
        base = {"office": spec.office}

    def loc(n, label, col):
        return f'table {spec.number} "{caption}" row {n} ({label}) col {col}'

    def add_total(scope, cell, label, locator, extra=()):
        value, notes = _read_cell(cell, doc)
        parsed.totals.append(Total(fact, measure, scope, value, label, locator,
                                   _join([caption_note, *notes, *extra])))

    for (n, label, cells), key in zip(detail, keys):
        if spec.kind == "summary":
            row_scope = dict(SUMMARY_ROWS[key])
        else:
            row_scope = {**base, "province_code": key}
        for i, head in enumerate(months):
            month = f"{year}-{i + 1:02d}"
            locator = loc(n, label, head)
            is_detail = spec.office is not None or spec.kind == "rcmp"
            if is_detail:
                value, notes = _read_cell(cells[i], doc)
                row = {"month": month, "year": year, "province_code": key}
                if fact == RCMP:
                    row["interceptions"] = value
                    notes.append(RCMP_ROW_NOTES.get((year, key)))
                else:
                    agency, group = OFFICES[spec.office]
                    row.update(office=spec.office, office_group=group, agency=agency,
                               claimants=value)
                row["source_locator"] = locator
                row["notes"] = _join(notes)
                parsed.add(fact, row)
            else:
                add_total({"month": month, **row_scope}, cells[i], f"{label} / {head}", locator)
        add_total({"year": year, **row_scope}, cells[12], f"{label} / Total",
                  loc(n, label, "Total"))

    n, label, cells = total_row
    for i, head in enumerate(months):
        month = f"{year}-{i + 1:02d}"
        add_total({"month": month, **base}, cells[i], f"{label} / {head}", loc(n, label, head))
    add_total({"year": year, **base}, cells[12], f"{label} / Total", loc(n, label, "Total"))


def _check_rcmp(parsed: Parsed, year: int) -> None:
    """RCMP counts are exact: note every printed total the printed cells do not reproduce."""
    rows = parsed.tables.get(RCMP, [])
    totals = [t for t in parsed.totals if t.fact_table == RCMP]
    for total in totals:
        if total.value.value is None:
            continue
        members = [r for r in rows if all(r.get(k) == v for k, v in total.scope.items())]
        known = [r["interceptions"].value for r in members]
        if None in known:
            continue
        got = sum(known)
        notes = []
        if got != total.value.value:
            # read by normalize (published_totals.publisher_inconsistent): the detail rows
            # do not reproduce this total
            total.inconsistent = True
            notes.append(f"publisher inconsistency: the province cells as printed sum to "
                         f"{got:,}, the printed total is {total.value.value:,} "
                         f"(difference {got - total.value.value:+,})")
            if (year, "SK") in RCMP_ROW_NOTES:
                sk = sum(r["interceptions"].value for r in members if r["province_code"] == "SK")
                if sk:
                    notes.append(f"the Saskatchewan row, identical to the {year + 1} row and left "
                                 f"out of the printed total, accounts for {sk:,} of it")
        if total.scope == {"year": year}:
            # the grand total cell against the Total row's own months
            month_totals = [t.value.value for t in totals
                            if set(t.scope) == {"month"} and t.value.value is not None]
            if len(month_totals) == 12 and sum(month_totals) != total.value.value:
                notes.append(f"publisher inconsistency: the Total row's monthly cells sum to "
                             f"{sum(month_totals):,}, its Total cell is {total.value.value:,}")
        if notes:
            # (the 2023 grand total is only noted: the province rows do add up to it)
            total.notes = _join([total.notes, *notes])


def parse(path: Path, source) -> Parsed:
    year = _page_year(source, path)
    doc = _load(path, source)
    title = clean_text(" ".join(doc.xpath("//title//text()")))
    title_years = {int(m.group(0)) for m in _YEAR.finditer(title)}
    if title_years - {year}:
        raise fail(source, f"page title {title!r}",
                   f"page year(s) {sorted(title_years)} differ from the source period {year}")
    found = _find_tables(doc, source)
    parsed = Parsed()
    for spec in TABLES:
        _spec, table, caption = found[spec.key]
        _parse_table(parsed, source, doc, spec, table, caption, year)
    _check_rcmp(parsed, year)
    modified = doc.xpath('//meta[@name="dcterms.modified"]/@content')
    if modified and re.fullmatch(r"\d{4}-\d{2}-\d{2}", modified[0].strip()):
        parsed.file_facts["vintage"] = modified[0].strip()
    return parsed
