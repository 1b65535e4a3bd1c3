"""IRB RPD "Claims (New System) by Country of Alleged Persecution", 2013-2023, as a
third-party Excel transcription (one sheet per year, the IRB web table pasted in).

Layout (see shared/sources/irb/SOURCES.md, section 1):

* sheets ``Sheet1`` .. ``Sheet11`` = 2013 .. 2023 (sheet names carry no year);
* row 1 = ``Countries | Referred | Accepted | Rejected | Abandoned | Withdrawn & Other |
  Total | Pending (as of YYYY/12/31)`` (``Withdrawn and Other`` in 2023; the pending header
  is EMPTY on Sheet4..Sheet6, whose years are then known from sheet order only);
* row 2 = the ``Total`` row (``\\u200bTotal`` in 2022, ``Total\\u200b`` in 2023) -> Totals;
* then one row per country, then junk rows (empty, only U+200B, a truncated footer).

Quirks handled here, before :func:`read_count`: a single ``-`` is read as the suppression
mark (read_count does that) and flagged in the row notes, as is the lone ``v`` (2013,
Mozambique, Rejected), which stays empty.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..cells import Count, clean_text, read_count
from ..limits import MB, Limits
from ..sources import Source
from .base import Parsed, Total, fail, read_bytes
from .irb_common import TOTAL_LABELS, flag_inconsistencies, norm_header, pending_as_of

TABLE = "irb_rpd_claims"
#: Caps checked before openpyxl opens the file (limits.check_raw): the real workbook is
#: 97 KiB, unpacks to 0.6 MiB at 8:1, 11 sheets of at most 181 rows x 8 columns.
LIMITS = Limits("workbook", max_bytes=16 * MB, max_unpacked_bytes=64 * MB, max_ratio=100,
                max_members=200, max_rows=10_000, max_cols=100)

#: Sheet -> year (sheet names carry no year).
SHEET_YEARS: dict[str, int] = {f"Sheet{i}": 2012 + i for i in range(1, 12)}
#: Sheet4..Sheet6 (2016-2018) have an empty pending header: their year is known from sheet
#: order only, which every row and total of such a sheet says in its notes.

#: (column letter, measure, accepted header spellings after normalisation)
COLUMNS: list[tuple[str, str, tuple[str, ...]]] = [
    ("B", "referred", ("referred",)),
    ("C", "accepted", ("accepted",)),
    ("D", "rejected", ("rejected",)),
    ("E", "abandoned", ("abandoned",)),
    ("F", "withdrawn_other", ("withdrawn and other",)),  # "&" reads as "and"
    ("G", "finalized", ("total",)),
]
LABEL_HEADERS = ("countries", "country")
#: Footer text pasted below the table (sometimes truncated), skipped as junk.
FOOTER_PREFIX = "due to privacy considerations"
N_COLS = 8


def _cell_note(column: str, raw: object, count: Count) -> str | None:
    """Extra words for the row notes about a cell read_count did not take at face value."""
    if isinstance(raw, str) and clean_text(raw) == "-":
        return f"{column}: the transcription holds a single '-', read as the suppression mark '--'"
    if count.note:  # the cell's own note is added by the normalize stage
        return f"{column}: transcription glitch in the third-party workbook (value unknown)"
    return None


def _open(path: Path, source: Source):
    import openpyxl  # local import: only this parser needs it

    data = read_bytes(path, source)
    if not data.startswith(b"PK"):
        raise fail(source, str(path.name), "the file is not an Excel .xlsx workbook (no zip signature)")
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError, EOFError) as exc:
        raise fail(source, str(path.name), f"cannot open the workbook ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # openpyxl/zlib/xml raise assorted errors on damaged files
        raise fail(source, str(path.name), f"cannot open the workbook ({type(exc).__name__}: {exc})") from exc


def parse(path: Path, source: Source) -> Parsed:
    wb = _open(path, source)
    try:
        names = list(wb.sheetnames)
        missing = [s for s in SHEET_YEARS if s not in names]
        if missing:
            raise fail(source, f"workbook (sheets {names})", f"sheet(s) {', '.join(missing)} missing")
        extra = [s for s in names if s not in SHEET_YEARS]
        if extra:
            raise fail(source, f"workbook (sheets {names})",
                       f"unexpected sheet(s) {', '.join(extra)}; the sheet -> year mapping would be unsafe")
        out = Parsed()
        for sheet, year in SHEET_YEARS.items():
            try:
                rows = [tuple(r) for r in wb[sheet].iter_rows(values_only=True)]
            except Exception as exc:  # damaged sheet XML
                raise fail(source, f"sheet {sheet}", f"cannot read the sheet ({type(exc).__name__}: {exc})") from exc
            _parse_sheet(rows, sheet, year, source, out)
        return out
    finally:
        wb.close()


def _parse_sheet(rows: list[tuple], sheet: str, year: int, source: Source, out: Parsed) -> None:
    if len(rows) < 3:
        raise fail(source, f"sheet {sheet}", f"sheet has {len(rows)} rows; expected a header, a Total row and countries")
    header = list(rows[0]) + [None] * max(0, N_COLS - len(rows[0]))
    if norm_header(header[0]) not in LABEL_HEADERS:
        raise fail(source, f"{sheet}!A1", f"header {clean_text(header[0])!r} is not 'Countries'")
    for letter, measure, allowed in COLUMNS:
        idx = ord(letter) - ord("A")
        if norm_header(header[idx]) not in allowed:
            raise fail(source, f"{sheet}!{letter}1",
                       f"header {clean_text(header[idx])!r} where {allowed[0]!r} ({measure}) was expected")
    extra = [i for i, v in enumerate(header[N_COLS:], N_COLS) if clean_text(v)]
    if extra:
        raise fail(source, f"{sheet}!{chr(ord('A') + extra[0])}1",
                   f"unexpected extra column {clean_text(header[extra[0]])!r}")
    notes: list[str] = []
    if norm_header(header[7]):
        as_of = pending_as_of(header[7], year, source, f"{sheet}!H1",
                              "pending header says {found} but " + sheet + " is mapped to {year}")
        if (as_of.month, as_of.day) != (12, 31):
            raise fail(source, f"{sheet}!H1",
                       f"pending header date {as_of:%Y/%m/%d} is not the year end")
    else:
        notes.append(f"year {year} inferred from sheet order ({sheet}); the pending header of the "
                     "transcription is empty")
    period = {"year": year, "period_start": f"{year}-01-01", "period_end": f"{year}-12-31"}
    note_text = "; ".join(notes) or None

    # Row 2: the Total row -> published totals.
    first_total = len(out.totals)
    total_row = list(rows[1]) + [None] * N_COLS
    if norm_header(total_row[0]) not in TOTAL_LABELS:
        raise fail(source, f"{sheet}!A2", f"row 2 label {clean_text(total_row[0])!r} is not 'Total'")
    for idx, measure in _measures():
        count = read_count(total_row[idx])
        out.totals.append(Total(TABLE, measure, {"year": year}, count, clean_text(total_row[0]),
                                f"{sheet}!{chr(ord('A') + idx)}2", note_text))

    first_row = len(out.tables.get(TABLE, []))
    seen: dict[str, int] = {}
    for rnum, raw in enumerate(rows[2:], start=3):
        row = list(raw) + [None] * max(0, N_COLS - len(raw))
        label = clean_text(row[0])
        values = [v for v in row[1:] if clean_text(v)]
        if not label and not values:
            continue  # empty or U+200B-only junk row
        if label.casefold().startswith(FOOTER_PREFIX) and not values:
            continue  # the (truncated) privacy footer pasted below the table
        if not label:
            raise fail(source, f"{sheet}!A{rnum}", "row has numbers but no country label")
        if norm_header(label) in TOTAL_LABELS:
            raise fail(source, f"{sheet}!A{rnum}", "a second 'Total' row inside the country rows")
        if not values:
            raise fail(source, f"{sheet}!A{rnum}", f"row {label!r} has a label but no cells")
        if any(clean_text(v) for v in row[N_COLS:]):
            raise fail(source, f"{sheet}!A{rnum}", f"row {label!r} has cells beyond column H")
        if label in seen:
            raise fail(source, f"{sheet}!A{rnum}", f"country {label!r} listed twice (also row {seen[label]})")
        seen[label] = rnum
        fact: dict = {**period, "country_label": label}
        row_notes = list(notes)
        for idx, measure in _measures():
            count = read_count(row[idx])
            fact[measure] = count
            extra_note = _cell_note(measure, row[idx], count)
            if extra_note:
                row_notes.append(extra_note)
        fact["source_locator"] = f"{sheet}!A{rnum}"
        fact["notes"] = "; ".join(row_notes) or None
        out.add(TABLE, fact)
    if not seen:
        raise fail(source, f"sheet {sheet}", "no country rows below the Total row")
    flag_inconsistencies(out.tables[TABLE][first_row:], out.totals[first_total:],
                         ["accepted", "rejected", "abandoned", "withdrawn_other"])


def _measures() -> list[tuple[int, str]]:
    return [(ord(letter) - ord("A"), m) for letter, m, _ in COLUMNS] + [(7, "pending")]
