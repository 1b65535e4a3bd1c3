"""IRB RPD claims by country, 2013-2023: the third-party Excel transcription
(parser irb_rpd_xlsx). Real-file tests read the workbook a second time with openpyxl,
independently of the parser, and compare; fixture tests build small workbooks here."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from canada_asylum_data.cells import Count
from canada_asylum_data.countries import CountryResolver
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers import irb_rpd_xlsx

DATAPACKAGE = Path(__file__).resolve().parent.parent / "datapackage"

SOURCE_ID = "irb-rpd-2013-2023-transcription"
TABLE = "irb_rpd_claims"
MEASURES = ["referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"]
COMPONENTS = ["accepted", "rejected", "abandoned", "withdrawn_other"]
ROWS_PER_YEAR = {2013: 163, 2014: 165, 2015: 158, 2016: 166, 2017: 172, 2018: 177, 2019: 177,
                 2020: 178, 2021: 181, 2022: 178, 2023: 180}


@pytest.fixture(scope="module")
def real(real_file):
    src, path = real_file(SOURCE_ID)
    return src, path, irb_rpd_xlsx.parse(path, src)


def _rows(parsed, year=None):
    return [r for r in parsed.tables[TABLE] if year is None or r["year"] == year]


def _expected_csv(raw):
    """What a raw workbook cell must become, worked out without the parser's helpers."""
    if isinstance(raw, (int, float)):
        return int(raw)
    text = str(raw).replace("\u200b", "").strip()
    if text in ("--", "-"):
        return "--"
    if text.isdigit():
        return int(text)
    return ""


# --- real file ---------------------------------------------------------------------------

def test_source_record(sources):
    src = sources[SOURCE_ID]
    assert src.parser == "irb_rpd_xlsx" and src.series == TABLE
    assert src.sha256 == "bb3532a417abefeb2e6c4dad3edf3b9202a14e3210559adc24342a14a0d6d323"
    assert (src.period_start, src.period_end) == ("2013-01-01", "2023-12-31")
    for year in (2024, 2025):  # upstream pages, not mirrored, fed through the HTML parser
        rec = sources[f"irb-rpd-{year}"]
        assert rec.sha256 is None and rec.mirror_path is None and rec.parser == "irb_stat_html"


def test_row_counts_per_year(real):
    _, _, parsed = real
    assert Counter(r["year"] for r in parsed.tables[TABLE]) == ROWS_PER_YEAR
    assert set(parsed.tables) == {TABLE}
    for row in parsed.tables[TABLE]:
        y = row["year"]
        assert (row["period_start"], row["period_end"]) == (f"{y}-01-01", f"{y}-12-31")
        assert set(MEASURES) <= set(row) and all(isinstance(row[m], Count) for m in MEASURES)
        assert row["source_locator"].startswith(f"Sheet{y - 2012}!A")


def test_us_rows_equal_workbook_cells(real):
    """Every US row, 2013-2023, against the cells read here with openpyxl."""
    _, path, parsed = real
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for i in range(1, 12):
            year = 2012 + i
            cells = None
            for n, row in enumerate(wb[f"Sheet{i}"].iter_rows(values_only=True), start=1):
                if row[0] and str(row[0]).strip() in ("United States of America", "United States"):
                    cells, rownum = row, n
            assert cells is not None, year
            ours = [r for r in _rows(parsed, year) if r["country_label"] == str(cells[0]).strip()]
            assert len(ours) == 1
            assert ours[0]["source_locator"] == f"Sheet{i}!A{rownum}"
            assert [ours[0][m].csv for m in MEASURES] == [_expected_csv(c) for c in cells[1:8]], year
    finally:
        wb.close()


def test_us_rows_literal_values(real):
    """Checked by hand against the cells."""
    _, _, parsed = real
    us = {r["year"]: r for r in parsed.tables[TABLE] if r["country_label"].startswith("United States")}
    assert sorted(us) == list(range(2013, 2024))
    assert us[2013]["country_label"] == "United States of America"
    assert us[2022]["country_label"] == "United States"
    assert [us[2017][m].csv for m in MEASURES] == [869, "--", 147, 25, 44, 219, 724]
    assert [us[2014][m].csv for m in MEASURES] == [88, "--", 47, "--", 19, 78, 43]
    # 2019 Abandoned is "--\u200b" in the workbook.
    assert [us[2019][m].csv for m in MEASURES] == [423, "--", 463, "--", 53, 550, 857]
    assert [us[2023][m].csv for m in MEASURES] == [157, "--", 123, "--", 32, 185, 229]
    assert us[2019]["abandoned"].suppressed


def test_totals(real):
    _, _, parsed = real
    totals = {(t.scope["year"], t.measure): t for t in parsed.totals}
    assert len(parsed.totals) == 11 * len(MEASURES)
    assert all(t.fact_table == TABLE and set(t.scope) == {"year"} for t in parsed.totals)
    # SOURCES.md: 2017 Total 47,425 referred / 21,513 finalized / 43,250 pending.
    assert totals[(2017, "referred")].value.value == 47425
    assert totals[(2017, "finalized")].value.value == 21513
    assert totals[(2017, "pending")].value.value == 43250
    assert totals[(2017, "referred")].source_locator == "Sheet5!B2"
    # Total label variants: "\u200bTotal" (2022), "Total\u200b" (2023).
    assert totals[(2022, "referred")].label == "Total" and totals[(2022, "referred")].value.value == 60158
    assert totals[(2023, "pending")].label == "Total" and totals[(2023, "pending")].value.value == 156032
    assert totals[(2013, "accepted")].value.value == 3064
    # the Total row never becomes a fact row
    assert not any(r["country_label"].casefold() == "total" for r in parsed.tables[TABLE])


def test_inferred_years_are_noted(real):
    _, _, parsed = real
    for year, sheet in ((2016, "Sheet4"), (2017, "Sheet5"), (2018, "Sheet6")):
        rows = _rows(parsed, year)
        assert all(f"year {year} inferred from sheet order ({sheet})" in (r["notes"] or "") for r in rows)
        assert all("inferred" in (t.notes or "") for t in parsed.totals if t.scope["year"] == year)
    for year in (2013, 2015, 2019, 2023):
        assert not any("inferred" in (r["notes"] or "") for r in _rows(parsed, year))


def test_quirky_cells(real):
    _, _, parsed = real
    by = {(r["year"], r["country_label"]): r for r in parsed.tables[TABLE]}
    moz = by[(2013, "Mozambique")]  # the lone "v"
    assert moz["rejected"] == Count(None, "", moz["rejected"].note) and "'v'" in moz["rejected"].note
    assert "rejected: transcription glitch" in moz["notes"]
    # single "-" cells: suppressed, flagged
    dash = [r for r in parsed.tables[TABLE] if "single '-'" in (r["notes"] or "")]
    assert Counter(r["year"] for r in dash) == {2016: 3, 2019: 11}
    assert by[(2019, "Russia")]["abandoned"].suppressed
    # U+200B inside labels and numbers (2020)
    assert (2020, "Stateless") in by
    assert by[(2020, "Unknown")]["pending"].value == 105  # "105\u200b"
    assert not any("\u200b" in r["country_label"] or "\u00a0" in r["country_label"]
                   for r in parsed.tables[TABLE])
    # junk rows (empty, U+200B only, the truncated privacy footer) are not rows
    assert not any(r["country_label"].startswith("Due to privacy") for r in parsed.tables[TABLE])
    assert not any(r["country_label"] == "" for r in parsed.tables[TABLE])


def test_primary_key_unique_and_labels_resolve(real):
    _, _, parsed = real
    keys = [(r["year"], r["country_label"]) for r in parsed.tables[TABLE]]
    assert len(keys) == len(set(keys))
    resolver = CountryResolver(DATAPACKAGE / "aliases")
    unresolved = sorted({r["country_label"] for r in parsed.tables[TABLE]
                         if resolver.resolve(r["country_label"], "irb") is None})
    assert unresolved == []
    assert resolver.resolve("United States", "irb") == "USA"
    assert resolver.resolve("Western Saomoa", "irb") == "WSM"


def test_reconciliation(real):
    """Rows without a suppressed/unreadable cell: components = finalized (exact, all years);
    per column, readable country cells never exceed the Total row; the Total row adds up."""
    _, _, parsed = real
    totals = {(t.scope["year"], t.measure): t.value.value for t in parsed.totals}
    checked = 0
    for row in parsed.tables[TABLE]:
        vals = [row[c].value for c in COMPONENTS]
        if None not in vals and row["finalized"].value is not None:
            assert sum(vals) == row["finalized"].value, (row["year"], row["country_label"])
            checked += 1
    assert checked >= 50  # only ~50 rows have no suppressed component
    for year in ROWS_PER_YEAR:
        rows = _rows(parsed, year)
        for m in MEASURES:
            readable = [r[m].value for r in rows if r[m].value is not None]
            assert sum(readable) <= totals[(year, m)], (year, m)
            if len(readable) == len(rows):
                assert sum(readable) == totals[(year, m)], (year, m)
        assert sum(totals[(year, c)] for c in COMPONENTS) == totals[(year, "finalized")]
    assert not any("inconsistency" in (r["notes"] or "") for r in parsed.tables[TABLE])
    assert not any("inconsistency" in (t.notes or "") for t in parsed.totals)
    assert not any(getattr(t, "inconsistent", False) for t in parsed.totals)


# --- fixtures built here -----------------------------------------------------------------

HEADER = ["Countries", "Referred", "Accepted", "Rejected", "Abandoned", "Withdrawn & Other", "Total"]


def _sheet_rows(year: int) -> list[list]:
    pending = "" if year in (2016, 2017, 2018) else f"Pending (as\u00a0of {year}/12\u200b/31\u200b)\u200b"
    header = HEADER[:]
    if year == 2023:
        header[5] = "Withdrawn and Other"
    return [
        header + [pending or None],
        ["\u200bTotal" if year == 2022 else "Total", 500, 200, 100, 20, 30, 350, 150],
        ["Afghanistan", 300, 150, 70, "--", "--", 240, 60],
        ["United States of America", "\u200b100", "--\u200b", 30, "-", 20, 60, "40\u200b"],
        ["Mozambique", "--", "--", "v", "--", "--", "--", "--"],
        ["\u200b", None, None, None, None, None, None, None],
        [None] * 8,
        ["Due to privacy considerations, some values in this table have been suppressed and replaced with",
         None, None, None, None, None, None, None],
    ]


def _workbook(path: Path, *, mutate=None) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for i in range(1, 12):
        ws = wb.create_sheet(f"Sheet{i}")
        rows = _sheet_rows(2012 + i)
        if mutate:
            rows = mutate(i, rows) or rows
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


@pytest.fixture
def fx_source(sources):
    return dataclasses.replace(sources[SOURCE_ID], id="irb-rpd-fixture")


def _raises(path, source, *fragments):
    with pytest.raises(ParseError) as exc:
        irb_rpd_xlsx.parse(path, source)
    msg = str(exc.value)
    assert source.id in msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_fixture_quirks(tmp_path, fx_source):
    parsed = irb_rpd_xlsx.parse(_workbook(tmp_path / "ok.xlsx"), fx_source)
    rows = parsed.tables[TABLE]
    assert len(rows) == 11 * 3
    us = [r for r in rows if r["year"] == 2017 and r["country_label"] == "United States of America"][0]
    assert [us[m].csv for m in MEASURES] == [100, "--", 30, "--", 20, 60, 40]
    assert "single '-'" in us["notes"] and "inferred" in us["notes"]
    assert us["source_locator"] == "Sheet5!A4"
    moz = [r for r in rows if r["year"] == 2013 and r["country_label"] == "Mozambique"][0]
    assert moz["rejected"].value is None and "'v'" in moz["rejected"].note
    assert "rejected: transcription glitch" in moz["notes"]
    assert {t.label for t in parsed.totals} == {"Total"}
    assert len(parsed.totals) == 77


def test_fixture_missing_sheet(tmp_path, fx_source):
    path = _workbook(tmp_path / "x.xlsx")
    wb = openpyxl.load_workbook(path)
    del wb["Sheet7"]
    wb.save(path)
    _raises(path, fx_source, "Sheet7", "missing")


def test_fixture_extra_sheet(tmp_path, fx_source):
    path = _workbook(tmp_path / "x.xlsx")
    wb = openpyxl.load_workbook(path)
    wb.create_sheet("Sheet12")
    wb.save(path)
    _raises(path, fx_source, "Sheet12")


def test_fixture_renamed_header(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 3:
            rows[0][3] = "Refused"
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet3!D1", "Refused")


def test_fixture_extra_column(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 2:
            rows[0].append("Average processing time")
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet2!I1", "extra column")


def test_fixture_pending_header_year_checked(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 9:
            rows[0][7] = "Pending (as of 2020/12/31)"
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet9!H1", "2020", "2021")


def test_fixture_total_row_missing(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 4:
            del rows[1]
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet4!A2", "Total")


def test_fixture_text_in_number_cell_is_a_note_not_an_error(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 1:
            rows[2][1] = "abc"
    parsed = irb_rpd_xlsx.parse(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source)
    afg = [r for r in parsed.tables[TABLE] if r["year"] == 2013 and r["country_label"] == "Afghanistan"][0]
    assert afg["referred"].value is None and "'abc'" in afg["referred"].note
    assert "referred: transcription glitch" in afg["notes"]


def test_fixture_numbers_without_label(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 5:
            rows.insert(3, [None, 5, 1, 1, 1, 1, 4, 1])
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet5!A4", "no country label")


def test_fixture_duplicate_country(tmp_path, fx_source):
    def mutate(i, rows):
        if i == 6:
            rows.insert(3, list(rows[2]))
    _raises(_workbook(tmp_path / "x.xlsx", mutate=mutate), fx_source, "Sheet6!A4", "Afghanistan", "twice")


def test_fixture_truncated_file(tmp_path, fx_source):
    path = _workbook(tmp_path / "x.xlsx")
    path.write_bytes(path.read_bytes()[:3000])
    _raises(path, fx_source, "x.xlsx")


def test_fixture_wrong_file_type(tmp_path, fx_source):
    path = tmp_path / "x.xlsx"
    path.write_text("<html><body><table></table></body></html>", encoding="utf-8")
    _raises(path, fx_source, "not an Excel")


def test_fixture_empty_file(tmp_path, fx_source):
    path = tmp_path / "x.xlsx"
    path.write_bytes(b"")
    _raises(path, fx_source, "empty")
