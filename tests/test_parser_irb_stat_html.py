"""IRB statistics HTML pages (parser irb_stat_html): the seven saved RAD pages (real files)
and the RPD page template (hand-written fixture tests/fixtures/irb/rpd-stat-2024.htm,
invented numbers, since no real RPDStatYYYY.aspx page is mirrored)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
import re

import pytest

from canada_asylum_data.countries import CountryResolver
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers import irb_stat_html

DATAPACKAGE = Path(__file__).resolve().parent.parent / "datapackage"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

RAD = "irb_rad_appeals"
RPD = "irb_rpd_claims"
RAD_MEASURES = ["filed", "dismissed_no_jurisdiction", "dismissed_not_perfected",
                "dismissed_withdrawn_abandoned_other", "dismissed_confirmed_rpd",
                "allowed_referred_back", "allowed_substituted", "finalized", "pending"]
RAD_OUTCOMES = RAD_MEASURES[1:7]
RPD_MEASURES = ["referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"]
RAD_ROWS = {2017: 144, 2018: 149, 2019: 155, 2020: 152, 2021: 152, 2022: 145, 2023: 137}
RAD_MODIFIED = {2017: "2022-08-17", 2018: "2022-08-17", 2019: "2022-08-17", 2020: "2022-08-17",
                2021: "2022-08-17", 2022: "2023-03-01", 2023: "2024-02-28"}
#: US rows checked by hand against the saved pages ("\u200b--" in 2017 is "--").
US_RAD = {
    2017: ("United States of America", [48, "--", "--", "--", "--", "--", "--", 21, 41]),
    2018: ("United States of America", [115, "--", "--", "--", 41, "--", "--", 57, 99]),
    2019: ("United States of America", [226, "--", 24, "--", 117, "--", "--", 166, 159]),
    2020: ("United States of America", [76, "--", 20, "--", 138, "--", "--", 171, 64]),
    2021: ("United States of America", [99, "--", "--", "--", 75, "--", "--", 113, 49]),
    2022: ("United States", [52, "--", "--", "--", 58, "--", "--", 76, 24]),
    2023: ("United States", [26, "--", "--", "--", 31, "--", "--", 38, "--"]),
}
#: Total rows as printed.
RAD_TOTALS = {
    2017: [4905, 414, 245, 98, 1625, 409, 346, 3137, 3710],
    2019: [11817, 577, 266, 214, 5746, 707, 1174, 8684, 9700],
    2023: [7965, 183, 384, 219, 5968, 927, 2449, 10130, 2888],
}
#: Publisher arithmetic slips (outcomes vs Total Finalizations), kept and noted.
KNOWN_ROW_SLIPS = {(2018, "Nigeria"): (825, 826), (2019, "Haiti"): (1728, 1729)}


@pytest.fixture(scope="module")
def rad(real_file):
    out = {}
    for year in RAD_ROWS:
        src, path = real_file(f"irb-rad-{year}")
        out[year] = (src, path, irb_stat_html.parse(path, src))
    return out


# --- real RAD pages ----------------------------------------------------------------------

def test_source_records(sources):
    for year in range(2013, 2026):
        rec = sources[f"irb-rad-{year}"]
        assert rec.parser == "irb_stat_html" and rec.series == RAD
        assert (rec.sha256 is not None) == (year in RAD_ROWS), year
        assert rec.url.startswith("https://www.irb-cisr.gc.ca/en/statistics/appeals/Pages/RAD")
    assert sources["irb-rad-2019"].url.endswith("RADstat2019.aspx")
    assert sources["irb-rad-2015"].archive_url.startswith("https://web.archive.org/web/20240522145902id_/")


def test_rad_rows_periods_and_vintage(rad):
    for year, (src, _, parsed) in rad.items():
        rows = parsed.tables[RAD]
        assert set(parsed.tables) == {RAD}
        assert len(rows) == RAD_ROWS[year]
        assert all((r["year"], r["period_start"], r["period_end"]) == (year, f"{year}-01-01", f"{year}-12-31")
                   for r in rows)
        assert parsed.file_facts["vintage"] == RAD_MODIFIED[year] == src.vintage
        assert all(r["source_locator"].startswith('table 1 "Appeals by Country of Alleged Persecution')
                   for r in rows)


def test_rad_us_rows(rad):
    for year, (label, values) in US_RAD.items():
        rows = [r for r in rad[year][2].tables[RAD] if r["country_label"] == label]
        assert len(rows) == 1, year
        assert [rows[0][m].csv for m in RAD_MEASURES] == values, year


def test_rad_us_rows_against_raw_html(rad):
    """Independent check: pull the US <tr> out of the raw page with a regex."""
    for year, (src, path, parsed) in rad.items():
        text = path.read_text(encoding="utf-8")
        m = re.search(r"<tr[^>]*><td[^>]*>United States(?:\s+of\s+America)?</td>(.*?)</tr>", text, re.S)
        cells = [re.sub(r"<[^>]+>", "", c).replace("\u200b", "").replace(",", "").strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", m.group(1), re.S)]
        expected = [int(c) if c.isdigit() else c for c in cells]
        assert expected == US_RAD[year][1], year


def test_rad_totals(rad):
    for year, (_, _, parsed) in rad.items():
        assert [t.measure for t in parsed.totals] == RAD_MEASURES
        assert all(t.fact_table == RAD and t.scope == {"year": year} and t.label == "Total"
                   for t in parsed.totals)
        if year in RAD_TOTALS:
            assert [t.value.value for t in parsed.totals] == RAD_TOTALS[year]
    t = rad[2019][2].totals[0]
    assert t.source_locator == 'table 1 "Appeals by Country of Alleged Persecution - 2019" row 1 col Filed'


def test_rad_malformed_cells(rad):
    guinea = [r for r in rad[2017][2].tables[RAD] if r["country_label"] == "Guinea"][0]
    assert guinea["dismissed_not_perfected"].value is None
    assert "'--3'" in guinea["dismissed_not_perfected"].note
    assert "dismissed_not_perfected: probably a malformed suppression mark" in guinea["notes"]
    tt = [r for r in rad[2018][2].tables[RAD] if r["country_label"] == "Trinidad and Tobago"][0]
    assert tt["filed"].value is None and "'---'" in tt["filed"].note and "filed:" in tt["notes"]
    # runs of spaces inside names collapse; thousands separators read
    labels = {r["country_label"] for r in rad[2019][2].tables[RAD]}
    assert "Antigua and Barbuda" in labels and not any("  " in x for x in labels)
    portugal = [r for r in rad[2019][2].tables[RAD] if r["country_label"] == "Portugal"][0]
    assert portugal["pending"].value == 6  # an unsuppressed value under 20, as printed


def test_rad_primary_key_and_labels(rad):
    resolver = CountryResolver(DATAPACKAGE / "aliases")
    keys = []
    for year, (_, _, parsed) in rad.items():
        for r in parsed.tables[RAD]:
            keys.append((r["year"], r["country_label"]))
            assert resolver.resolve(r["country_label"], "irb") is not None, r["country_label"]
    assert len(keys) == len(set(keys))


def test_rad_reconciliation(rad):
    """The six outcome columns = Total Finalizations in every row with no suppressed or
    unreadable cell (two publisher slips, noted); per column the readable country cells
    never exceed the printed total."""
    slips = {}
    checked = 0
    for year, (_, _, parsed) in rad.items():
        rows = parsed.tables[RAD]
        for r in rows:
            vals = [r[m].value for m in RAD_OUTCOMES]
            if None in vals or r["finalized"].value is None:
                continue
            checked += 1
            if sum(vals) != r["finalized"].value:
                slips[(year, r["country_label"])] = (sum(vals), r["finalized"].value)
                assert "publisher inconsistency" in r["notes"]
        totals = {t.measure: t for t in parsed.totals}
        for m in RAD_MEASURES:
            readable = sum(r[m].value for r in rows if r[m].value is not None)
            assert readable <= totals[m].value.value, (year, m)
        comp = sum(totals[m].value.value for m in RAD_OUTCOMES)
        if year == 2018:  # the Total row itself: 4,411 vs 4,412
            assert comp == 4411 and totals["finalized"].value.value == 4412
            assert "publisher inconsistency" in totals["finalized"].notes
        else:
            assert comp == totals["finalized"].value.value, year
    assert slips == KNOWN_ROW_SLIPS
    # column sums never contradict a RAD total, so none is flagged for the central check
    assert not any(getattr(t, "inconsistent", False) for _, _, p in rad.values() for t in p.totals)
    assert checked >= 5  # few RAD rows have all six outcomes unsuppressed


# --- RPD page template (fixture) -----------------------------------------------------------

RPD_FIXTURE = FIXTURES / "irb" / "rpd-stat-2024.htm"


@pytest.fixture
def rpd_source(sources):
    return sources["irb-rpd-2024"]


def test_rpd_fixture(rpd_source):
    parsed = irb_stat_html.parse(RPD_FIXTURE, rpd_source)
    assert set(parsed.tables) == {RPD}
    rows = {r["country_label"]: r for r in parsed.tables[RPD]}
    assert list(rows) == ["Afghanistan", "Antigua and Barbuda", "Guinea", "Trinidad and Tobago",
                          "United States of America", "Unknown"]
    # `3,910`, `\u200b20<br>`, `--<br>`
    assert [rows["Afghanistan"][m].csv for m in RPD_MEASURES] == [1204, 3910, 20, "--", "--", 3975, 1100]
    assert [rows["United States of America"][m].csv for m in RPD_MEASURES] == [310, "--", 158, "--", 34, 201, 148]
    # `--3` and `---`: unreadable, empty, noted
    assert rows["Guinea"]["accepted"].value is None and rows["Guinea"]["accepted"].marker == ""
    assert "accepted: probably a malformed suppression mark" in rows["Guinea"]["notes"]
    assert rows["Trinidad and Tobago"]["referred"].value is None
    assert rows["Trinidad and Tobago"]["abandoned"].suppressed  # `\u200b--<br>`
    r = rows["United States of America"]
    assert (r["year"], r["period_start"], r["period_end"]) == (2024, "2024-01-01", "2024-12-31")
    assert r["source_locator"] == 'table 1 "Claims (New System) by Country of Alleged Persecution \u2013 2024" row 6'
    # <b> Total row -> totals, not a fact row
    assert [t.value.value for t in parsed.totals] == [5402, 3910, 612, 95, 117, 4734, 2480]
    assert [t.measure for t in parsed.totals] == RPD_MEASURES
    assert all(t.fact_table == RPD and t.scope == {"year": 2024} for t in parsed.totals)
    assert parsed.file_facts == {"vintage": "2025-02-27"}
    assert not any(t.notes for t in parsed.totals)


def _variant(tmp_path, change, name="page.htm"):
    text = RPD_FIXTURE.read_text(encoding="utf-8")
    new = change(text)
    assert new != text
    path = tmp_path / name
    path.write_text(new, encoding="utf-8")
    return path


def _raises(path, source, *fragments):
    with pytest.raises(ParseError) as exc:
        irb_stat_html.parse(path, source)
    msg = str(exc.value)
    assert source.id in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


def test_rpd_header_variants_are_tolerated(tmp_path, rpd_source):
    def change(t):
        t = t.replace("Withdrawn and Other", "Withdrawn &amp; Other")
        t = t.replace("Pending<br> (as of", "PENDING(as  of")
        t = t.replace(">Referred<", "> referred\u200b <")
        return t
    parsed = irb_stat_html.parse(_variant(tmp_path, change), rpd_source)
    assert len(parsed.tables[RPD]) == 6


def test_rpd_partial_year_page_takes_period_end_from_pending_header(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace("2024/12\u200b/31", "2024/09\u200b/30"))
    parsed = irb_stat_html.parse(path, rpd_source)
    assert {r["period_end"] for r in parsed.tables[RPD]} == {"2024-09-30"}


def test_rpd_page_fed_to_the_rad_series_fails(rpd_source):
    wrong = dataclasses.replace(rpd_source, series=RAD)
    _raises(RPD_FIXTURE, wrong, "irb_rpd_claims", "irb_rad_appeals")


def test_caption_year_must_match_source_period(rpd_source):
    wrong = dataclasses.replace(rpd_source, period_start="2025-01-01", period_end="2025-12-31")
    _raises(RPD_FIXTURE, wrong, "caption year 2024", "2025")


def test_pending_header_year_must_match_caption(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace("as of 2024/12", "as of 2023/12"))
    _raises(path, rpd_source, "pending header year 2023", "header row 1")


def test_missing_table(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace("by Country of Alleged Persecution \u2013 2024<br>",
                                                  "by Region \u2013 2024<br>"))
    _raises(path, rpd_source, "no table with a caption", "page.htm")


def test_renamed_header(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace(">Rejected<", ">Refused<"))
    _raises(path, rpd_source, "header row 2", "Refused")


def test_unknown_first_header(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace(">Referred<", ">Received<"))
    _raises(path, rpd_source, "header row 1 col 2", "Received")


def test_extra_column(tmp_path, rpd_source):
    def change(t):
        t = t.replace('<th class=" text-center" scope="col">Total</th></tr>',
                      '<th class=" text-center" scope="col">Total</th><th>Median days</th></tr>')
        return t.replace('colspan="5" scope="colgroup">Finalized', 'colspan="6" scope="colgroup">Finalized')
    _raises(_variant(tmp_path, change), rpd_source, "header row 2", "Median days")


def test_extra_cell_in_a_row(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace('<td align="right">148</td></tr>',
                                                  '<td align="right">148</td><td>9</td></tr>'))
    _raises(path, rpd_source, "row 6", "United States of America", "9 cells")


def test_text_in_number_cell_is_a_note(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace('<td align="right">158</td>', '<td align="right">n/a</td>'))
    parsed = irb_stat_html.parse(path, rpd_source)
    us = [r for r in parsed.tables[RPD] if r["country_label"].startswith("United States")][0]
    assert us["rejected"].value is None and "'n/a'" in us["rejected"].note


def test_first_row_not_total(tmp_path, rpd_source):
    path = _variant(tmp_path, lambda t: t.replace("<b>Total</b>", "<b>All countries</b>"))
    _raises(path, rpd_source, "row 1", "not the 'Total' row")


def test_truncated_page(tmp_path, rpd_source):
    path = tmp_path / "page.htm"
    path.write_bytes(RPD_FIXTURE.read_bytes()[:2500])
    _raises(path, rpd_source, "truncated")


def test_wrong_file_type(tmp_path, rpd_source):
    path = tmp_path / "page.htm"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    _raises(path, rpd_source, "not an HTML page")


def test_not_utf8(tmp_path, rpd_source):
    path = tmp_path / "page.htm"
    path.write_bytes(RPD_FIXTURE.read_text(encoding="utf-8").encode("utf-16"))
    _raises(path, rpd_source, "page.htm")


def test_empty_file(tmp_path, rpd_source):
    path = tmp_path / "page.htm"
    path.write_bytes(b"")
    _raises(path, rpd_source, "empty")
