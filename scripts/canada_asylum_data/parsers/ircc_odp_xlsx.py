"""IRCC open data "Asylum Claimants - Monthly IRCC Updates" workbooks (open.canada.ca dataset
b6cbcf4d-f763-4924-a2fb-8cc4a06e3de4): ``EN_ODP-Asylum-*.xlsx``.

One small layout reader is shared by all ten workbooks; a :class:`Kind` per workbook says
what its sheet, corner labels and row labels mean. Layout (every file has one sheet)::

    row 1  title  "Canada - Asylum Claimants by ..., January 2015 - February 2024"
    row 3  corner label(s) in A (and B), then the year band: year label only in the first
           column of each year (forward-filled here)
    row 4  monthly layout:   Jan .. Dec, "2015 Total" (or "2015 - Total")
           quarterly layout: "Q1" .. "Q4" band and "2015 Total"; row 5 holds
                             Jan, Feb, Mar, "Q1 Total", Apr, ... "Q4 Total"
           annual layout (secondary migration): row 3 itself holds "2015" .. "2023",
                             "Jan 2024 - Feb 2024"
    body   detail rows: col A '' or None, label in col B; the GROUP label sits on the
           subtotal row BELOW its members (col A, e.g. "Airport - Total", "Quebec Total",
           "(1) Mexico"); some groups are a single row without members ("Other Offices",
           "Other Countries", "Outside Canada Total"); the grand total is "Total"
           (sometimes "Total " with a trailing space).
    footer notes, then "Source: IRCC, February 29, 2024" -> file_facts["vintage"].

Every cell is a string ("1,165", "--", "0"). "--" is 1 to 4; all other values are rounded to
the nearest 5, totals rounded separately. In the last (partial) year the quarter and year
totals cover only the months present.

Detail month cells go to the fact tables; every total column (quarter, year) and every
total/subtotal row goes to ``parsed.totals``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from python_calamine import CalamineWorkbook
from openpyxl.utils import get_column_letter

from ..cells import SUPPRESSED, Count, clean_text, read_count
from ..provinces import resolve_province
from .base import Parsed, Total, fail, read_bytes
from ..limits import MB, Limits

if TYPE_CHECKING:  # pragma: no cover
    from ..sources import Source

MEASURE = "claimants"
#: Caps checked before calamine opens the file (limits.check_raw): the real workbooks are
#: at most 176 KiB, unpack to at most 3.2 MiB at 20:1, one sheet of at most 276 rows x 183
#: columns (12 more a year). calamine is native code: its parse runs where an abort is
#: caught (native=True).
LIMITS = Limits("workbook", max_bytes=16 * MB, max_unpacked_bytes=64 * MB, max_ratio=100,
                max_members=200, max_rows=5_000, max_cols=1_000, native=True)
#: IRCC writes every count cell itself (numbers or "--"); anything else in a count cell means
#: the layout moved, so it is an error here rather than a note on the row.
STRICT_COUNTS = True

MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
MONTHS.update({m: i for i, m in enumerate(
    ["January", "February", "March", "April", "May", "June", "July", "August", "September",
     "October", "November", "December"], 1)})
MONTHS["Sept"] = 9

TITLE = re.compile(
    r"^(?:Canada - )+Asylum Claimants by (?P<what>.+), "
    r"(?P<m0>[A-Z][a-z]+) (?P<y0>\d{4}) - (?P<m1>[A-Z][a-z]+) (?P<y1>\d{4})$")
FOOTER = re.compile(r"^Source:\s*IRCC,\s*(?P<date>[A-Z][a-z]+\.? \d{1,2}, \d{4})\.?$")
YEAR = re.compile(r"^(\d{4})$")
YEAR_TOTAL = re.compile(r"^(\d{4}) ?(?:- ?)?Total$")
QUARTER = re.compile(r"^Q([1-4])$")
QUARTER_TOTAL = re.compile(r"^Q([1-4]) ?(?:- ?)?Total$")
PART_YEAR = re.compile(r"^([A-Z][a-z]+) (\d{4}) - ([A-Z][a-z]+) (\d{4})$")
RANKED = re.compile(r"^\((\d{1,3})\)\s*(.+)$")
GROUP_TOTAL = re.compile(r"^(.+?)(?: - | )Total$")
RANKING = re.compile(r"\((?P<basis>\d{4}|[A-Z][a-z]+) ranking\)")
GRAND_TOTAL = "Total"
NOT_BROKEN_DOWN = "not_broken_down"

OFFICE_TYPES = {"airport": "airport", "border": "border", "inland": "inland",
                "other offices": "other_offices"}
GENDERS = {"female": "female", "male": "male", "another gender": "another_gender",
           "gender not stated": "not_stated"}
AGE_GROUPS = {
    "0 to 14 years of age": "0-14",
    "15 to 29 years of age": "15-29",
    "30 to 44 years of age": "30-44",
    "45 to 59 years of age": "45-59",
    "60 to 74 years of age": "60-74",
    "75 years of age and above": "75+",
    "age not stated": "not_stated",
}

TABLE_OFFICE = "ircc_claimants_office_province"
TABLE_GENDER = "ircc_claimants_gender"
TABLE_AGE = "ircc_claimants_age"
TABLE_TOP25 = "ircc_claimants_top25_citizenship"
TABLE_MIGRATION = "ircc_claimants_secondary_migration"


# --------------------------------------------------------------------------------------
# Label readers (return dims or None when the label is not one of theirs)

def _province(label: str) -> str | None:
    return resolve_province(label)


def _strip_total(label: str) -> str | None:
    m = GROUP_TOTAL.match(label)
    return m.group(1).strip() if m else None


def _office_type(label: str) -> str | None:
    return OFFICE_TYPES.get(label.casefold())


def _office_group(label: str) -> dict | None:
    base = _strip_total(label)
    code = _office_type(base) if base else None
    return {"office_type": code} if code else None


def _office_single(label: str) -> dict | None:
    if label.casefold() == "other offices":
        return {"office_type": "other_offices", "province_code": "XN"}
    return None


def _province_group(column: str) -> Callable[[str], dict | None]:
    def read(label: str) -> dict | None:
        base = _strip_total(label)
        code = _province(base) if base else None
        return {column: code} if code else None
    return read


def _mapped(column: str, mapping: dict[str, str]) -> Callable[[str], dict | None]:
    def read(label: str) -> dict | None:
        code = mapping.get(label.casefold())
        return {column: code} if code else None
    return read


def _province_member(column: str) -> Callable[[str], dict | None]:
    def read(label: str) -> dict | None:
        code = _province(label)
        return {column: code} if code else None
    return read


def _country_group(label: str) -> dict | None:
    m = RANKED.match(label)
    if not m:
        return None
    return {"rank": int(m.group(1)), "country_label": clean_text(m.group(2))}


def _country_single(label: str) -> dict | None:
    if label.casefold() == "other countries":
        return {"rank": None, "country_label": "Other Countries",
                "breakdown_value": NOT_BROKEN_DOWN}
    return None


def _breakdown_office(label: str) -> dict | None:
    code = _office_type(label)
    return {"breakdown_value": code} if code else None


def _breakdown_province(label: str) -> dict | None:
    code = _province(label)
    return {"breakdown_value": code} if code else None


def _no_single(label: str) -> dict | None:
    return None


@dataclass(frozen=True)
class Kind:
    """What one workbook's sheet, corner labels and row labels mean."""

    key: str
    table: str
    sheet: str
    title_what: str  # the part of the title between "Asylum Claimants by " and the period
    corner: str  # A3 as printed (cleaned)
    member: Callable[[str], dict | None]  # detail row label (col B) -> dims
    group: Callable[[str], dict | None]  # subtotal row label (col A) -> dims
    single: Callable[[str], dict | None]  # row without members (col A) -> full dims
    not_broken_down: dict  # member dims for a group label printed without member rows
    layouts: tuple[str, ...] = ("monthly", "quarterly")
    corner_b: str | None = None  # B3 as printed, when the file has one
    file_dims: dict = field(default_factory=dict)
    ranking: str | None = None  # top-25: "last_year" or "last_month"
    single_note: str | None = None
    scope_exclude: frozenset = frozenset({"rank"})


def _top25(key: str, sheet: str, breakdown: str, ranking: str) -> Kind:
    office = breakdown == "office_type"
    return Kind(
        key=key, table=TABLE_TOP25, sheet=sheet,
        title_what=("Top Twenty-Five Countries of Citizenship ({ranking}), "
                    + ("Claim Office Type" if office else "Province/Territory* of Claim")
                    + " and Claim Year"),
        corner="Country of Citizenship and " + ("Office Type" if office else "Province/Territory"),
        member=_breakdown_office if office else _breakdown_province,
        group=_country_group, single=_country_single,
        not_broken_down={"breakdown_value": NOT_BROKEN_DOWN},
        file_dims={"ranking": ranking, "breakdown": breakdown}, ranking=ranking,
        single_note="'Other Countries' is published as one row, without a breakdown by "
                    + ("office type" if office else "province/territory"),
    )


KINDS: dict[str, Kind] = {k.key: k for k in [
    Kind(key="office_province", table=TABLE_OFFICE, sheet="Asylum Claimants - Office Type",
         title_what="Claim Office Type, Province/Territory* of Claim and Claim Year",
         corner="Claim Office Type and Province/Territory of Claim",
         member=_province_member("province_code"), group=_office_group, single=_office_single,
         not_broken_down={"province_code": "XN"},
         single_note="'Other Offices' is published as one row, without a province/territory "
                     "breakdown; province_code XN stands for that"),
    Kind(key="gender", table=TABLE_GENDER, sheet="Asylum Claimants - Gender",
         title_what="Province/Territory* of Claim, Gender and Claim Year",
         corner="Province/Territory and Gender",
         member=_mapped("gender", GENDERS), group=_province_group("province_code"),
         single=_no_single, not_broken_down={"gender": NOT_BROKEN_DOWN}),
    Kind(key="age", table=TABLE_AGE, sheet="Asylum Claimants - Age",
         title_what="Province/Territory* of Claim, Age and Claim Year",
         corner="Province/Territory and Age",
         member=_mapped("age_group", AGE_GROUPS), group=_province_group("province_code"),
         single=_no_single, not_broken_down={"age_group": NOT_BROKEN_DOWN}),
    _top25("top25_office_type_last_month", "Asylum Claimants - Office month", "office_type",
           "last_month"),
    _top25("top25_office_type_last_year", "Asylum Claimants - Office year", "office_type",
           "last_year"),
    _top25("top25_province_last_month", "Asylum Claimants - PT month", "province", "last_month"),
    _top25("top25_province_last_year", "Asylum Claimants - PT year", "province", "last_year"),
    Kind(key="secondary_migration", table=TABLE_MIGRATION, sheet="Asylum Claimants - Migration",
         title_what="Province/Territory of Claim Received*, Province/Territory of Last Known "
                    "Address and Claim Year",
         corner="Province/Territory of Claim",
         corner_b="Province/Territory of Last Known Address",
         member=_province_member("address_province_code"),
         group=_province_group("claim_province_code"), single=_no_single,
         not_broken_down={"address_province_code": "XN"}, layouts=("annual",)),
]}


# --------------------------------------------------------------------------------------
# Layout reader

@dataclass
class Column:
    index: int  # 0-based column index in the sheet
    kind: str  # month | quarter_total | year_total | period
    header: str
    year: int
    month: int | None = None
    quarter: int | None = None
    period_start: str | None = None
    period_end: str | None = None
    partial_note: str | None = None  # totals covering fewer months than their label says

    @property
    def is_total(self) -> bool:
        return self.kind in ("quarter_total", "year_total")

    def detail_dims(self) -> dict:
        if self.kind == "period":
            return {"period_start": self.period_start, "period_end": self.period_end,
                    "year": self.year}
        return {"month": f"{self.year:04d}-{self.month:02d}", "year": self.year,
                "quarter": self.quarter}

    def scope(self) -> dict:
        if self.kind == "month":
            return {"month": f"{self.year:04d}-{self.month:02d}"}
        if self.kind == "quarter_total":
            return {"year": self.year, "quarter": self.quarter}
        if self.kind == "year_total":
            return {"year": self.year}
        return {"period_start": self.period_start, "period_end": self.period_end}


@dataclass
class BodyRow:
    index: int  # 0-based row index
    label: str
    cells: list[Count]


@dataclass
class Layout:
    sheet: str
    title: str
    layout: str  # monthly | quarterly | annual
    columns: list[Column]
    groups: list[tuple[BodyRow, list[BodyRow]]]
    grand_total: BodyRow
    vintage: str
    period_start: str
    period_end: str
    title_what: str


def cell_ref(row: int, col: int) -> str:
    """A1 reference from 0-based indexes."""
    return f"{get_column_letter(col + 1)}{row + 1}"


def _last_day(year: int, month: int) -> date:
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def _get(rows: list[list], r: int, c: int) -> object:
    if r >= len(rows) or c >= len(rows[r]):
        return None
    return rows[r][c]


def _text(rows: list[list], r: int, c: int) -> str:
    return clean_text(_get(rows, r, c))


def load_rows(path: Path, source: "Source", sheet: str | None) -> tuple[str, list[list]]:
    """Open the workbook (read-only) and return (sheet name, all rows as lists).

    ``sheet=None`` takes the only/first sheet. Every library error becomes a ParseError.
    """
    data = read_bytes(path, source)
    where = f"workbook {path.name}"
    if not data.startswith(b"PK"):
        raise fail(source, where, f"not a readable .xlsx workbook (it starts with {data[:12]!r}, "
                   "not a zip container)",
                   "check that the file is the Excel workbook and not a truncated or HTML copy")
    try:
        wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:  # CalamineError, zip errors, XML errors
        raise fail(source, where, f"not a readable .xlsx workbook ({type(exc).__name__}: {exc})",
                   "check that the file is the Excel workbook and not a truncated or HTML copy") from exc
    names = list(wb.sheet_names)
    if sheet is None:
        if not names:
            raise fail(source, where, "the workbook has no sheets")
        sheet = names[0]
    if sheet not in names:
        raise fail(source, where, f"sheet {sheet!r} not found (sheets: {', '.join(map(repr, names))})")
    try:
        grid = wb.get_sheet_by_name(sheet).to_python(skip_empty_area=False)
    except Exception as exc:  # truncated members surface here
        raise fail(source, f"{where} sheet {sheet!r}",
                   f"cannot read the sheet ({type(exc).__name__}: {exc})") from exc
    # Empty cells as None and rows without trailing empties, as the layout reader expects.
    rows = []
    for raw in grid:
        row = [None if v == "" else v for v in raw]
        while row and row[-1] is None:
            row.pop()
        rows.append(row)
    while rows and not rows[-1]:
        rows.pop()
    if not rows:
        raise fail(source, f"{where} sheet {sheet!r}", "the sheet is empty")
    return sheet, rows


def _parse_title(source: "Source", sheet: str, rows: list[list], kind: Kind) -> tuple[re.Match, str]:
    title = _text(rows, 0, 0)
    m = TITLE.match(title)
    where = f"sheet {sheet!r} cell A1"
    if not m:
        raise fail(source, where, f"title row is not 'Canada - Asylum Claimants by ..., <Month> "
                                  f"<year> - <Month> <year>' (found {title[:120]!r})")
    what = m.group("what")
    expected = kind.title_what
    if kind.ranking:
        r = RANKING.search(what)
        if not r:
            raise fail(source, where, f"title has no '(... ranking)' (found {title[:160]!r})")
        expected = expected.replace("{ranking}", r.group(0)[1:-1])
    if what != expected:
        raise fail(source, where, f"title describes {what!r}, expected {expected!r}")
    for part in ("m0", "m1"):
        if m.group(part) not in MONTHS:
            raise fail(source, where, f"title month {m.group(part)!r} is not a month name")
    return m, title


def _check_corner(source: "Source", sheet: str, rows: list[list], kind: Kind) -> None:
    a, b = _text(rows, 2, 0), _text(rows, 2, 1)
    if a != kind.corner:
        raise fail(source, f"sheet {sheet!r} cell A3",
                   f"header changed: expected {kind.corner!r}, found {a!r}")
    if b != (kind.corner_b or ""):
        raise fail(source, f"sheet {sheet!r} cell B3",
                   f"header changed: expected {kind.corner_b or ''!r}, found {b!r}")


def _month_columns(source: "Source", sheet: str, rows: list[list], layout: str,
                   y0: int, m0: int, y1: int, m1: int) -> list[Column]:
    """Read the year band (row 3) and the month/total header rows of a monthly or
    quarterly layout, checking the sequence: Jan..Dec (+ quarter totals) + year total."""
    band_row, head_row = 2, 3
    sub_row = 4 if layout == "quarterly" else None
    width = max(len(rows[band_row]), len(rows[head_row]), len(rows[sub_row]) if sub_row else 0)
    cols: list[Column] = []
    year: int | None = None
    closed = True
    months: list[int] = []
    quarter_band: int | None = None
    quarter_totals: set[int] = set()
    last_col = 1

    def where(c: int, r: int = head_row) -> str:
        return f"sheet {sheet!r} cell {cell_ref(r, c)}"

    for c in range(2, width):
        yl = _text(rows, band_row, c)
        h = _text(rows, head_row, c)
        s = _text(rows, sub_row, c) if sub_row else ""
        if not (yl or h or s):
            continue  # checked below: nothing may follow an empty header column
        if c != last_col + 1:
            raise fail(source, where(last_col + 1), "header column is empty between data columns")
        last_col = c
        if yl:
            if not YEAR.match(yl):
                raise fail(source, where(c, band_row), f"year band holds {yl!r}, not a year")
            if not closed:
                raise fail(source, where(c, band_row), f"year {year} has no total column before {yl}")
            new_year = int(yl)
            expect = y0 if year is None else year + 1
            if new_year != expect:
                raise fail(source, where(c, band_row), f"year {new_year} found where {expect} was expected")
            year, closed, months, quarter_band, quarter_totals = new_year, False, [], None, set()
        if year is None or closed:
            raise fail(source, where(c), f"column header {h or s!r} is outside any year")
        if layout == "monthly":
            label = h
        else:
            if QUARTER.match(h):
                quarter_band = int(QUARTER.match(h).group(1))
                label = s
            elif YEAR_TOTAL.match(h) and not s:
                label = h
            elif h:
                raise fail(source, where(c), f"unexpected quarter header {h!r}")
            else:
                label = s
        ym = YEAR_TOTAL.match(label)
        qm = QUARTER_TOTAL.match(label)
        if label in MONTHS:
            month = MONTHS[label]
            if month != len(months) + 1:
                raise fail(source, where(c, sub_row or head_row),
                           f"month {label!r} found where {list(MONTHS)[len(months)]!r} was expected")
            q = (month - 1) // 3 + 1
            if layout == "quarterly" and (quarter_band != q or q in quarter_totals):
                raise fail(source, where(c, sub_row), f"month {label!r} is not under quarter Q{q}")
            months.append(month)
            cols.append(Column(c, "month", label, year, month=month, quarter=q))
        elif qm and layout == "quarterly":
            q = int(qm.group(1))
            if q != quarter_band or not months or (months[-1] - 1) // 3 + 1 != q or q in quarter_totals:
                raise fail(source, where(c, sub_row), f"{label!r} does not follow the months of Q{q}")
            quarter_totals.add(q)
            covered = [m for m in months if (m - 1) // 3 + 1 == q]
            cols.append(Column(c, "quarter_total", label, year, quarter=q,
                               partial_note=_partial(year, covered, 3)))
        elif ym:
            if int(ym.group(1)) != year:
                raise fail(source, where(c), f"{label!r} sits under year {year}")
            if not months:
                raise fail(source, where(c), f"{label!r} has no month columns before it")
            if layout == "quarterly":
                missing = {(m - 1) // 3 + 1 for m in months} - quarter_totals
                if missing:
                    raise fail(source, where(c), f"year {year} lacks a 'Q{min(missing)} Total' column")
            cols.append(Column(c, "year_total", label, year, partial_note=_partial(year, months, 12)))
            closed = True
        else:
            raise fail(source, where(c, sub_row if layout == "quarterly" and s else head_row),
                       f"unexpected column header {label!r}")
    if year is None:
        raise fail(source, f"sheet {sheet!r} row 3", "no year columns found")
    if not closed:
        raise fail(source, f"sheet {sheet!r} row 3", f"year {year} has no total column")
    for col in cols:
        if col.kind == "year_total" and col.year != y1 and col.partial_note:
            raise fail(source, where(col.index), f"year {col.year} does not have 12 months")
    if year != y1 or months[-1] != m1 or cols[0].month != m0:
        raise fail(source, f"sheet {sheet!r} rows 3-5",
                   f"columns run to {year}-{months[-1]:02d} but the title says {y1}-{m1:02d}")
    return cols


def _partial(year: int, months: list[int], full: int) -> str | None:
    if len(months) == full:
        return None
    names = list(MONTHS)
    return (f"covers {names[months[0] - 1]}-{names[months[-1] - 1]} {year} only "
            "(the months published in this file)")


def _annual_columns(source: "Source", sheet: str, rows: list[list], y0: int, m0: int,
                    y1: int, m1: int) -> list[Column]:
    cols: list[Column] = []
    expect_year = y0
    c = 2
    width = len(rows[2])
    while c < width:
        h = _text(rows, 2, c)
        if not h:
            break
        where = f"sheet {sheet!r} cell {cell_ref(2, c)}"
        ym = YEAR.match(h)
        pm = PART_YEAR.match(h)
        if ym and int(h) == expect_year:
            cols.append(Column(c, "period", h, int(h), period_start=f"{h}-01-01",
                               period_end=f"{h}-12-31"))
        elif pm and pm.group(1) in MONTHS and pm.group(3) in MONTHS \
                and int(pm.group(2)) == expect_year == int(pm.group(4)):
            ma, mb = MONTHS[pm.group(1)], MONTHS[pm.group(3)]
            cols.append(Column(c, "period", h, expect_year,
                               period_start=date(expect_year, ma, 1).isoformat(),
                               period_end=_last_day(expect_year, mb).isoformat()))
        else:
            raise fail(source, where, f"unexpected column header {h!r} (expected {expect_year} "
                                      f"or 'Mon {expect_year} - Mon {expect_year}')")
        expect_year += 1
        c += 1
    for c2 in range(c, width):
        if _text(rows, 2, c2):
            raise fail(source, f"sheet {sheet!r} cell {cell_ref(2, c2)}",
                       "header column is empty between data columns")
    if not cols:
        raise fail(source, f"sheet {sheet!r} row 3", "no period columns found")
    last = cols[-1]
    if last.year != y1 or last.period_end != _last_day(y1, m1).isoformat() or y0 != cols[0].year:
        raise fail(source, f"sheet {sheet!r} row 3",
                   f"columns end at {last.period_end} but the title says {y1}-{m1:02d}")
    return cols


def _count(source: "Source", sheet: str, r: int, c: int, raw: object) -> Count:
    cnt = read_count(raw)
    if STRICT_COUNTS and cnt.value is None and cnt.marker != SUPPRESSED:
        shown = repr(raw) if raw not in (None, "") else "nothing"
        raise fail(source, f"sheet {sheet!r} cell {cell_ref(r, c)}",
                   f"count cell holds {shown}, not a number or '--'")
    return cnt


def read_layout(path: Path, source: "Source", kind: Kind | None = None) -> tuple[Kind, Layout]:
    """Read one workbook into columns, row groups, the grand total and the footer."""
    if kind is None:
        kind = _kind_for(source)
    sheet, rows = load_rows(path, source, kind.sheet)
    if len(rows) < 6:
        raise fail(source, f"sheet {sheet!r}", f"only {len(rows)} rows: the file is truncated")
    tm, title = _parse_title(source, sheet, rows, kind)
    y0, m0 = int(tm.group("y0")), MONTHS[tm.group("m0")]
    y1, m1 = int(tm.group("y1")), MONTHS[tm.group("m1")]
    _check_corner(source, sheet, rows, kind)

    if "annual" in kind.layouts:
        layout, data_start = "annual", 3
        columns = _annual_columns(source, sheet, rows, y0, m0, y1, m1)
    else:
        first = _text(rows, 3, 2)
        if QUARTER.match(first):
            layout, data_start = "quarterly", 5
        elif first in MONTHS:
            layout, data_start = "monthly", 4
        else:
            raise fail(source, f"sheet {sheet!r} cell C4",
                       f"expected 'Jan' or 'Q1' as the first column header, found {first!r}")
        columns = _month_columns(source, sheet, rows, layout, y0, m0, y1, m1)

    width = columns[-1].index + 1
    groups: list[tuple[BodyRow, list[BodyRow]]] = []
    pending: list[BodyRow] = []
    grand: BodyRow | None = None
    r = data_start
    while r < len(rows):
        row = rows[r]
        a, b = _text(rows, r, 0), _text(rows, r, 1)
        extra = [c for c in range(width, len(row)) if clean_text(row[c])]
        if extra:
            raise fail(source, f"sheet {sheet!r} cell {cell_ref(r, extra[0])}",
                       f"extra column: cell beyond the last header holds {row[extra[0]]!r}")
        if a and b:
            raise fail(source, f"sheet {sheet!r} row {r + 1}",
                       f"row has labels in both A ({a!r}) and B ({b!r})")
        if not a and not b:
            raise fail(source, f"sheet {sheet!r} row {r + 1}",
                       f"blank row before the {GRAND_TOTAL!r} row (file truncated or layout changed)")
        cells = [_count(source, sheet, r, col.index, _get(rows, r, col.index)) for col in columns]
        body = BodyRow(r, a or b, cells)
        if b:
            pending.append(body)
        elif a == GRAND_TOTAL:
            if pending:
                raise fail(source, f"sheet {sheet!r} rows {pending[0].index + 1}-{pending[-1].index + 1}",
                           "detail rows have no group total row below them")
            grand = body
            break
        else:
            groups.append((body, pending))
            pending = []
        r += 1
    if grand is None:
        raise fail(source, f"sheet {sheet!r} row {r + 1}",
                   f"no {GRAND_TOTAL!r} row found (file truncated or layout changed)")
    vintage = None
    for rr in range(grand.index + 1, len(rows)):
        fm = FOOTER.match(_text(rows, rr, 0))
        if fm:
            try:
                vintage = datetime.strptime(fm.group("date").replace(".", ""), "%B %d, %Y").date()
            except ValueError as exc:
                raise fail(source, f"sheet {sheet!r} cell {cell_ref(rr, 0)}",
                           f"footer date {fm.group('date')!r} is not a date ({exc})") from exc
    if vintage is None:
        raise fail(source, f"sheet {sheet!r} below row {grand.index + 1}",
                   "no 'Source: IRCC, <date>' footer line (file truncated or layout changed)")
    return kind, Layout(
        sheet=sheet, title=title, layout=layout, columns=columns, groups=groups,
        grand_total=grand, vintage=vintage.isoformat(),
        period_start=date(y0, m0, 1).isoformat(),
        period_end=_last_day(y1, m1).isoformat(), title_what=tm.group("what"))


def _kind_for(source: "Source") -> Kind:
    key = (source.options or {}).get("workbook")
    if key is None:
        raise fail(source, "datapackage/sources.d/ircc.yml",
                   "the source record lacks options.workbook (which IRCC workbook it is)",
                   f"set options.workbook to one of {', '.join(KINDS)}")
    if key not in KINDS:
        raise fail(source, "datapackage/sources.d/ircc.yml",
                   f"options.workbook {key!r} is unknown", f"use one of {', '.join(KINDS)}")
    return KINDS[key]


# --------------------------------------------------------------------------------------
# Table builder (shared; the Kind supplies the meaning of labels)

def _file_dims(kind: Kind, layout: Layout, source: "Source") -> dict:
    dims = dict(kind.file_dims)
    if kind.ranking:
        basis = RANKING.search(layout.title_what).group("basis")
        end = date.fromisoformat(layout.period_end)
        if YEAR.match(basis):
            ranking, period = "last_year", basis
        else:
            ranking, period = "last_month", f"{end.year:04d}-{MONTHS[basis]:02d}" \
                if basis in MONTHS else None
            if period is None or MONTHS[basis] != end.month:
                raise fail(source, f"sheet {layout.sheet!r} cell A1",
                           f"ranking month {basis!r} is not the file's last month")
        if ranking != kind.ranking:
            raise fail(source, f"sheet {layout.sheet!r} cell A1",
                       f"title ranks by {basis!r} but the source is a {kind.ranking} file")
        dims["ranking_period"] = period
    return dims


def parse(path: Path, source: "Source") -> Parsed:
    kind, layout = read_layout(path, source)
    if source.series and kind.table not in [s.strip() for s in source.series.split(",")]:
        raise fail(source, "datapackage/sources.d/ircc.yml",
                   f"series {source.series!r} does not match workbook {kind.key!r} "
                   f"(table {kind.table})")
    return build(kind, layout, source)


def build(kind: Kind, layout: Layout, source: "Source") -> Parsed:
    parsed = Parsed()
    parsed.file_facts.update({
        "vintage": layout.vintage, "title": layout.title, "layout": layout.layout,
        "period_start": layout.period_start, "period_end": layout.period_end,
    })
    sheet = layout.sheet
    fdims = _file_dims(kind, layout, source)
    parsed.tables[kind.table] = []

    # What each column adds to a row, worked out once per column rather than once per cell
    # (the top-25 workbooks have ~40k cells each): its dims (not for total columns), its
    # scope and its column letter.
    columns = [(col, None if col.is_total else col.detail_dims(), col.scope(),
                get_column_letter(col.index + 1)) for col in layout.columns]
    rows = parsed.tables[kind.table]

    def emit_details(row: BodyRow, dims: dict, note: str | None) -> None:
        for (col, col_dims, _, letter), cnt in zip(columns, row.cells):
            if col.is_total:
                continue
            rec = {**col_dims, **dims, MEASURE: cnt,
                   "source_locator": f"'{sheet}'!{letter}{row.index + 1}"}
            if note:
                rec["notes"] = note
            rows.append(rec)

    def emit_totals(row: BodyRow, dims: dict, months_too: bool, label: str) -> None:
        keep = {k: v for k, v in dims.items() if k not in kind.scope_exclude}
        for (col, _, col_scope, letter), cnt in zip(columns, row.cells):
            if not (col.is_total or months_too):
                continue
            parsed.totals.append(Total(
                fact_table=kind.table, measure=MEASURE, scope={**keep, **col_scope}, value=cnt,
                label=f"{label} / {col.header}", source_locator=f"'{sheet}'!{letter}{row.index + 1}",
                notes=col.partial_note))

    seen_groups: dict[tuple, int] = {}
    for grow, members in layout.groups:
        where = f"sheet {sheet!r} cell A{grow.index + 1}"
        if members:
            gdims = kind.group(grow.label)
            if gdims is None:
                raise fail(source, where, f"unknown group total label {grow.label!r}")
            seen_members: dict[tuple, int] = {}
            for m in members:
                mdims = kind.member(m.label)
                if mdims is None:
                    raise fail(source, f"sheet {sheet!r} cell B{m.index + 1}",
                               f"unknown row label {m.label!r} under {grow.label!r}")
                mkey = tuple(sorted(mdims.items()))
                if mkey in seen_members:
                    raise fail(source, f"sheet {sheet!r} cell B{m.index + 1}",
                               f"row {m.label!r} appears twice under {grow.label!r}")
                seen_members[mkey] = m.index
                dims = {**fdims, **gdims, **mdims}
                emit_details(m, dims, None)
                emit_totals(m, dims, False, m.label)
            emit_totals(grow, {**fdims, **gdims}, True, grow.label)
        else:
            sdims = kind.single(grow.label)
            if sdims is not None:
                dims = {**fdims, **sdims}
                emit_details(grow, dims, kind.single_note)
                emit_totals(grow, dims, False, grow.label)
                gdims = sdims
            else:
                gdims = kind.group(grow.label)
                if gdims is None:
                    raise fail(source, where, f"unknown row label {grow.label!r}")
                if not GROUP_TOTAL.match(grow.label) and not RANKED.match(grow.label):
                    raise fail(source, where, f"row {grow.label!r} has no detail rows above it")
                note = (f"published only as the total row {grow.label!r}, with no breakdown; "
                        f"{', '.join(f'{k}={v}' for k, v in kind.not_broken_down.items())} "
                        "stands for that")
                dims = {**fdims, **gdims, **kind.not_broken_down}
                emit_details(grow, dims, note)
                emit_totals(grow, {**fdims, **gdims}, True, grow.label)
        gkey = tuple(sorted((k, v) for k, v in gdims.items() if k not in kind.scope_exclude))
        if gkey in seen_groups:
            raise fail(source, where, f"group {grow.label!r} appears twice "
                                      f"(also row {seen_groups[gkey] + 1})")
        seen_groups[gkey] = grow.index
    if kind.ranking:
        ranks = [d["rank"] for d in (kind.group(g.label) or {} for g, _ in layout.groups)
                 if d.get("rank") is not None]
        if ranks != list(range(1, len(ranks) + 1)):
            raise fail(source, f"sheet {sheet!r} column A", f"country ranks are not 1..n in order: {ranks}")
    emit_totals(layout.grand_total, fdims, True, GRAND_TOTAL)
    return parsed
