"""canada.ca "Asylum claims by year" pages: parser canada_ca_claims_html.

Real-file tests over the seven mirrored pages (2017-2023) and synthetic pages built from a
string template (plus hand-written files in tests/fixtures/canada_ca/) for each quirk and
each kind of bad input."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from canada_asylum_data.cells import Count
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers.canada_ca_claims_html import (
    CLAIMS, OFFICES, PT_CODES, RCMP, parse,
)
from canada_asylum_data.provinces import PROVINCES
from canada_asylum_data.sources import Source

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "canada_ca"
YEARS = range(2017, 2024)
PROVINCE_CODES = {code for code, *_ in PROVINCES}

# --------------------------------------------------------------------------------------
# Real files
# --------------------------------------------------------------------------------------

_CACHE: dict[int, object] = {}


@pytest.fixture(scope="module")
def page(real_file):
    def get(year: int):
        if year not in _CACHE:
            source, path = real_file(f"canada-ca-claims-{year}")
            _CACHE[year] = parse(path, source)
        return _CACHE[year]

    return get


def _members(rows, scope):
    return [r for r in rows if all(r.get(k) == v for k, v in scope.items())]


def _total(parsed, fact, scope):
    """The printed total for a scope. The CBSA summary table repeats the Total rows of the
    Air/Land/Marine/All POE/Inland tables, so some scopes are printed twice (same value)."""
    hits = [t for t in parsed.totals if t.fact_table == fact and t.scope == scope]
    assert hits and len({t.value for t in hits}) == 1, (fact, scope, hits)
    return hits[0]


@pytest.mark.parametrize("year", YEARS)
def test_totals_printed_twice_agree(page, year):
    import json
    groups: dict = {}
    for t in page(year).totals:
        groups.setdefault((t.fact_table, json.dumps(t.scope, sort_keys=True)), []).append(t)
    twice = [g for g in groups.values() if len(g) > 1]
    # 5 summary rows x 13 cells repeat a detail table's Total row; nothing else repeats
    assert len(twice) == 65 and all(len(g) == 2 for g in twice)
    assert all(g[0].value == g[1].value for g in twice)
    assert all(any("Summary of Asylum Claimants" in t.source_locator for t in g) for g in twice)


@pytest.mark.parametrize("year", YEARS)
def test_every_real_page_parses(page, year):
    parsed = page(year)
    rcmp, claims = parsed.tables[RCMP], parsed.tables[CLAIMS]
    n_rcmp_provinces = 8 if year == 2020 else 7
    assert len(rcmp) == 12 * n_rcmp_provinces
    # Air, Land, Marine, Inland: 13 P/T each; IRCC: 13 P/T + Outside Canada.
    assert len(claims) == 12 * (4 * 13 + 14)
    assert parsed.file_facts == {"vintage": "2024-04-22"}
    # Totals: RCMP = Total column of each province + the 13 cells of the Total row.
    # Detail tables (Air, Land, Marine, Inland: 13 P/T; IRCC: 14 rows): Total column + Total
    # row. Totals-only tables, every cell: All POE 14x13, CBSA summary 6x13, CBSA+IRCC 15x13.
    rcmp_totals = [t for t in parsed.totals if t.fact_table == RCMP]
    claim_totals = [t for t in parsed.totals if t.fact_table == CLAIMS]
    assert len(rcmp_totals) == n_rcmp_provinces + 13
    assert len(claim_totals) == 4 * (13 + 13) + (14 + 13) + 13 * (14 + 6 + 15)

    # primary keys unique, labels resolved, months complete
    assert len({(r["month"], r["province_code"]) for r in rcmp}) == len(rcmp)
    assert len({(r["month"], r["province_code"], r["office"]) for r in claims}) == len(claims)
    months = {f"{year}-{m:02d}" for m in range(1, 13)}
    assert {r["month"] for r in rcmp} == months == {r["month"] for r in claims}
    assert all(r["year"] == year for r in rcmp + claims)
    assert {r["province_code"] for r in rcmp} <= PT_CODES <= PROVINCE_CODES
    assert {r["province_code"] for r in claims} == PT_CODES | {"XO"}
    assert {r["province_code"] for r in claims if r["province_code"] == "XO"} == {"XO"}
    assert all(r["office"] == "ircc" for r in claims if r["province_code"] == "XO")
    assert Counter(r["office"] for r in claims) == {
        "air_poe": 156, "land_poe": 156, "marine_poe": 156, "cbsa_inland": 156, "ircc": 168}
    for r in claims:
        assert (r["agency"], r["office_group"]) == OFFICES[r["office"]]
        assert isinstance(r["claimants"], Count)
        assert r["source_locator"].startswith("table ")
    for r in rcmp:
        assert r["interceptions"].value is not None  # exact counts, no suppression
        assert r["interceptions"].marker is None
    # no fields the normalize stage owns
    for r in rcmp[:1] + claims[:1]:
        assert not {"source_id", "vintage", "suppressed_measures", "country_code"} & set(r)
    # every scope names columns of its table and matches detail rows
    for t in parsed.totals:
        rows = parsed.tables[t.fact_table]
        assert set(t.scope) <= set(rows[0]), t.scope
        assert _members(rows, t.scope), t.scope
        assert t.source_locator.startswith("table ")
    # every unreadable cell would be flagged; the real pages have none
    assert not [t for t in parsed.totals if t.value.note]
    assert not [r for r in claims if r["claimants"].note]


RCMP_TOTALS = {  # year: (Total - RCMP / Total, Quebec / Total), from SOURCES.md
    2017: (20593, 18836), 2018: (19419, 18518), 2019: (16503, 16136), 2020: (3302, 3189),
    2021: (4246, 4095), 2022: (39540, 39171), 2023: (14663, 13962),
}


@pytest.mark.parametrize("year", YEARS)
def test_rcmp_published_totals(page, year):
    parsed = page(year)
    grand, quebec = RCMP_TOTALS[year]
    assert _total(parsed, RCMP, {"year": year}).value == Count(grand)
    assert _total(parsed, RCMP, {"year": year}).label == "Total - RCMP / Total"
    assert _total(parsed, RCMP, {"year": year, "province_code": "QC"}).value == Count(quebec)


#: The known publisher inconsistencies: scope -> detail sum minus printed total.
RCMP_KNOWN_DIFFS = {
    2018: {"2018-07": 1, "2018-08": 2, "2018-10": 1, 2018: 4},
    2023: {"2023-01": 4, "2023-02": 2, "2023-03": 2},
}


@pytest.mark.parametrize("year", YEARS)
def test_rcmp_detail_reproduces_totals_except_known(page, year):
    parsed = page(year)
    rows = parsed.tables[RCMP]
    diffs = {}
    for t in parsed.totals:
        if t.fact_table != RCMP:
            continue
        got = sum(r["interceptions"].value for r in _members(rows, t.scope))
        if got != t.value.value:
            key = t.scope.get("month") or (t.scope["year"] if set(t.scope) == {"year"} else str(t.scope))
            diffs[key] = got - t.value.value
            assert "publisher inconsistency" in t.notes
            assert getattr(t, "inconsistent", False)
    assert diffs == RCMP_KNOWN_DIFFS.get(year, {})
    flagged = [t for t in parsed.totals if getattr(t, "inconsistent", False)]
    assert len(flagged) == len(diffs)

    # The Total row's months against its own Total cell: only 2023 disagrees (14,655 vs 14,663).
    month_sum = sum(t.value.value for t in parsed.totals
                    if t.fact_table == RCMP and set(t.scope) == {"month"})
    grand = _total(parsed, RCMP, {"year": year})
    if year == 2023:
        assert (month_sum, grand.value.value) == (14655, 14663)
        assert "monthly cells sum to 14,655" in grand.notes
        # the province rows do add up to 14,663, so the reconciliation flag stays off
        assert not getattr(grand, "inconsistent", False)
    else:
        assert month_sum == grand.value.value
    # notes only where something is wrong
    noted = {str(t.scope) for t in parsed.totals if t.fact_table == RCMP and t.notes}
    expected = len(RCMP_KNOWN_DIFFS.get(year, {})) + (1 if year == 2023 else 0)
    assert len(noted) == expected


def test_rcmp_2018_saskatchewan_row(page):
    parsed = page(2018)
    sk = sorted((r for r in parsed.tables[RCMP] if r["province_code"] == "SK"),
                key=lambda r: r["month"])
    assert [r["interceptions"].value for r in sk] == [0, 0, 0, 0, 0, 0, 1, 2, 0, 1, 0, 0]
    assert all("identical to the 2019 Saskatchewan row" in r["notes"] for r in sk)
    sk2019 = sorted((r for r in page(2019).tables[RCMP] if r["province_code"] == "SK"),
                    key=lambda r: r["month"])
    assert [r["interceptions"] for r in sk] == [r["interceptions"] for r in sk2019]
    assert all(not r["notes"] for r in sk2019)
    year_total = _total(parsed, RCMP, {"year": 2018})
    assert "Saskatchewan" in year_total.notes and "accounts for 4" in year_total.notes
    # other rows carry no note
    assert all(not r["notes"] for r in parsed.tables[RCMP] if r["province_code"] != "SK")


def test_rcmp_2017_footnote_in_cell(page):
    rows = page(2017).tables[RCMP]
    bc = [r for r in rows if r["province_code"] == "BC" and r["month"] == "2017-01"][0]
    assert bc["interceptions"] == Count(46)
    assert "over-reported" in bc["notes"] and bc["notes"].startswith("footnote *")
    assert 'row 7 (British Columbia) col Jan' in bc["source_locator"]
    qc = [r for r in rows if r["province_code"] == "QC" and r["month"] == "2017-07"][0]
    assert qc["interceptions"] == Count(2996)  # thousands separator
    assert _total(page(2017), RCMP, {"month": "2017-01"}).value == Count(315)


def test_rcmp_2020_newfoundland_row(page):
    nl = [r for r in page(2020).tables[RCMP] if r["province_code"] == "NL"]
    assert len(nl) == 12
    assert all(r["province_code"] != "NL" for y in YEARS if y != 2020 for r in page(y).tables[RCMP])


def test_month_header_variants(page):
    # 2022 RCMP: Jan, Feb, March, April, May, June, July, August, Sept ...
    rows = {r["month"]: r for r in page(2022).tables[RCMP] if r["province_code"] == "QC"}
    assert rows["2022-03"]["source_locator"].endswith("col March")
    assert rows["2022-09"]["source_locator"].endswith("col Sept")
    assert rows["2022-08"]["source_locator"].endswith("col August")
    rows = {r["month"]: r for r in page(2018).tables[RCMP] if r["province_code"] == "QC"}
    assert rows["2018-06"]["source_locator"].endswith("col June")
    assert rows["2018-03"]["source_locator"].endswith("col Mar")


def test_claims_values_read_from_cells(page):
    claims = page(2017).tables[CLAIMS]

    def cell(month, prov, office):
        return [r for r in claims if (r["month"], r["province_code"], r["office"])
                == (month, prov, office)][0]["claimants"]

    assert cell("2017-01", "QC", "air_poe") == Count(40)
    assert cell("2017-07", "NL", "air_poe") == Count(None, "--")
    assert cell("2017-08", "QC", "ircc") == Count(4715)
    assert cell("2017-07", "QC", "cbsa_inland") == Count(1250)
    p17 = page(2017)
    assert _total(p17, CLAIMS, {"year": 2017}).value == Count(50375)
    assert _total(p17, CLAIMS, {"year": 2017, "office": "marine_poe"}).value == Count(25)
    assert _total(p17, CLAIMS, {"month": "2017-01", "office": "marine_poe"}).value == Count(None, "--")
    assert _total(p17, CLAIMS, {"year": 2017, "agency": "CBSA"}).value == Count(21765)
    assert _total(p17, CLAIMS, {"year": 2017, "office_group": "poe"}).value == Count(15525)
    assert _total(p17, CLAIMS, {"year": 2017, "office": "ircc"}).value == Count(28610)
    assert _total(page(2023), CLAIMS, {"year": 2023}).value == Count(143770)


def test_2018_quoted_footnoted_cell(page):
    t = _total(page(2018), CLAIMS, {"month": "2018-04", "office_group": "poe", "province_code": "QC"})
    assert t.value == Count(2680)
    assert "quotation marks" in t.notes and "Land Ports of Entry has increased" in t.notes
    assert 'All Ports of Entry (Air, Land and Marine)" row 5 (Quebec) col Apr' in t.source_locator


def test_2023_caption_erratum(page):
    parsed = page(2023)
    table9 = [t for t in parsed.totals if '"Total Asylum Claimants processed by the CBSA and IRCC'
              in t.source_locator]
    assert len(table9) == 15 * 13
    assert all("January - January 2024" in t.notes for t in table9)
    assert {t.scope.get("month", "")[:4] for t in table9 if "month" in t.scope} == {"2023"}
    # no other table of any page carries that note
    assert not [t for y in YEARS for t in page(y).totals
                if t.notes and "January 2024" in t.notes and t not in table9]


def _bounds_ok(rows, total):
    """Could the detail rows and the printed total describe the same true number?

    Each printed number is within 2 of its true value (rounded to the nearest 5; 0 is a
    true zero because 1 to 4 is printed as --), each -- is 1 to 4, and the total was
    rounded separately (or is -- itself)."""
    known = sum(r["claimants"].value or 0 for r in rows)
    rounded = sum(1 for r in rows if r["claimants"].value)
    dashes = sum(1 for r in rows if r["claimants"].suppressed)
    lo, hi = known - 2 * rounded + dashes, known + 2 * rounded + 4 * dashes
    if total.value.suppressed:
        t_lo, t_hi = 1, 4
    else:
        t_lo, t_hi = max(0, total.value.value - 2), total.value.value + 2
    return lo <= t_hi and t_lo <= hi, known - (total.value.value or 0)


@pytest.mark.parametrize("year", YEARS)
def test_rounded_tables_within_rounding_bounds(page, year):
    parsed = page(year)
    rows = parsed.tables[CLAIMS]
    diffs = []
    for t in parsed.totals:
        if t.fact_table != CLAIMS:
            continue
        ok, diff = _bounds_ok(_members(rows, t.scope), t)
        assert ok, (t.scope, t.value, diff, t.source_locator)
        diffs.append(diff)
    # the bound is doing work: sums do differ from the printed totals, within the bound
    assert max(abs(d) for d in diffs) >= 50
    assert sum(1 for d in diffs if d) > 50


def test_bounds_check_can_fail():
    rows = [{"claimants": Count(10)}, {"claimants": Count(None, "--")}, {"claimants": Count(0)}]
    from canada_asylum_data.parsers.base import Total
    assert _bounds_ok(rows, Total(CLAIMS, "claimants", {}, Count(15), "", ""))[0]
    assert not _bounds_ok(rows, Total(CLAIMS, "claimants", {}, Count(25), "", ""))[0]
    assert not _bounds_ok(rows, Total(CLAIMS, "claimants", {}, Count(None, "--"), "", ""))[0]


def test_sources_fragment(sources, mirror):
    import hashlib
    for year in YEARS:
        s = sources[f"canada-ca-claims-{year}"]
        data = (mirror / s.mirror_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256 and len(data) == s.bytes
        # archive_url: the byte-identical saved copy; capture_url: the capture it was saved from
        assert s.archive_url.startswith("https://raw.githubusercontent.com/lifers/STCA-dataset/")
        assert s.archive_url.endswith(f"%20{year}%20-%20Canada.ca.htm")
        capture = s.options["capture_url"]
        assert capture.startswith("https://web.archive.org/web/20240522") and "id_/" in capture
        assert capture.endswith(f"/asylum-claims-{year}.html")
        assert s.url.endswith(f"/asylum-claims-{year}.html")
        assert (s.published, s.vintage, s.parser) == ("2024-04-22", "2024-04-22",
                                                     "canada_ca_claims_html")
        assert (s.period_start, s.period_end) == (f"{year}-01-01", f"{year}-12-31")
    for year in (2024, 2025):
        s = sources[f"canada-ca-claims-{year}"]
        assert s.sha256 is None and s.mirror_path is None and not s.mirrored
    assert "may not exist" in sources["canada-ca-claims-2025"].notes
    for sid in ("stca-dataset-web-metadata", "stca-dataset-open-data-manifest"):
        s = sources[sid]
        assert (s.parser, s.series) == ("none", "provenance")
        data = (mirror / s.mirror_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256 and len(data) == s.bytes


# --------------------------------------------------------------------------------------
# Synthetic pages
# --------------------------------------------------------------------------------------

PT = ["Newfoundland and Labrador", "Prince Edward Island", "Nova Scotia", "New Brunswick",
      "Quebec", "Ontario", "Manitoba", "Saskatchewan", "Alberta", "British Columbia", "Yukon",
      "Northwest Territories", "Nunavut"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _table(caption, label_head, labels, total_label, months=MONTHS, value=lambda r, c: 5,
           extra_col=False, cells=None):
    heads = [label_head, *months, "Total"] + (["Note"] if extra_col else [])
    out = [f"<table class=\"table table-bordered\"><caption>{caption}</caption><thead><tr>"]
    out += [f'<th scope="col">{h}</th>' for h in heads]
    out.append("</tr></thead><tbody>")
    col_sums = [0] * 13
    for r, label in enumerate(labels):
        vals = [value(r, c) for c in range(12)]
        row = [*vals, sum(vals)]
        col_sums = [a + b for a, b in zip(col_sums, row)]
        texts = [f"{v:,}" for v in row] + (["x"] if extra_col else [])
        for (rr, cc), text in (cells or {}).items():
            if rr == r:
                texts[cc] = text
        out.append(f"<tr><td>{label}</td>" + "".join(f"<td>{t}</td>" for t in texts) + "</tr>")
    out.append("</tbody>")
    if total_label:
        texts = [f"{v:,}" for v in col_sums] + (["x"] if extra_col else [])
        out.append(f"<tfoot><tr><td><b>{total_label}</b></td>"
                   + "".join(f"<td><b>{t}</b></td>" for t in texts) + "</tr></tfoot>")
    out.append("</table>")
    return "".join(out)


def build_page(year=2017, skip=(), rename=None, replace=None, **table_kwargs):
    """A page with the nine tables in the canada.ca layout. ``table_kwargs`` maps a table key
    to extra arguments of _table (e.g. rcmp={"months": [...]})."""
    period = f"January - December {year}"
    specs = {
        "rcmp": ("RCMP Interceptions", "Provinces",
                 ["New Brunswick", "Quebec", "Manitoba", "British Columbia"], "Total - RCMP"),
        "air": ("Air Ports of Entry", "Provinces/Territories", PT, "Total - Air Ports of Entry"),
        "land": ("Land Ports of Entry", "Provinces/Territories", PT, "Total - Land Ports of Entry"),
        "marine": ("Marine Ports of Entry", "Provinces/Territories", PT,
                   "Total - Marine Ports of Entry"),
        "all": ("All Ports of Entry (Air, Land and Marine)", "Provinces/Territories", PT,
                "Total - Ports of Entry"),
        "inland": ("Inland Offices", "Provinces/Territories", PT, "Total - Inland Offices"),
        "summary": (f"Summary of Asylum Claimants processed by the Canada Border Services Agency "
                    f"(CBSA), {period}", "CBSA designated ports of entry/inland offices",
                    ["Air Ports of Entry", "Land Ports of Entry", "Marine Ports of Entry",
                     "All Ports of Entry (Air, Land and Marine)", "Inland Offices"],
                    "Total - CBSA Land, Air and Marine port of entry and Inland Offices"),
        "ircc": (f"Asylum Claimants processed by Immigration, Refugees and Citizenship Canada "
                 f"(IRCC), {period}", "Provinces/Territories", [*PT, "Outside Canada"],
                 "Total - IRCC"),
        "total": (f"Total Asylum Claimants processed by the CBSA and IRCC, {period}",
                  "Provinces/Territories", [*PT, "Outside Canada"], "Total - CBSA &amp; IRCC"),
    }
    for key, new in (rename or {}).items():
        caption, head, labels, total = specs[key]
        specs[key] = (new.get("caption", caption), new.get("head", head),
                      new.get("labels", labels), new.get("total", total))
    body = "".join(_table(*spec, **table_kwargs.get(key, {}))
                   for key, spec in specs.items() if key not in skip)
    html = (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
            f"<title>Asylum claims by year \u2013 {year} - Canada.ca</title>"
            f'<meta name="dcterms.modified" title="W3CDTF" content="2024-04-22"/></head>'
            f"<body><h3>Monthly report - Calendar year {year}</h3>{body}"
            f'<aside class="wb-fnote"><dl><dt>Footnote *</dt><dd id="fn1"><p>A note.</p></dd>'
            f"</dl></aside></body>\n</html>\n")
    for old, new in (replace or {}).items():
        assert old in html
        html = html.replace(old, new, 1)
    return html


def _source(year=2017, start=None, end=None):
    return Source(id=f"test-canada-ca-{year}", title="test page", publisher="test",
                  url="https://example.invalid/", parser="canada_ca_claims_html",
                  series="rcmp_interceptions", licenses=(),
                  mirror_path=f"crossings/test-{year}.htm",
                  period_start=start or f"{year}-01-01", period_end=end or f"{year}-12-31")


def _write(tmp_path, content, name="page.htm"):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _fails(tmp_path, content, *fragments, year=2017, source=None):
    source = source or _source(year)
    with pytest.raises(ParseError) as info:
        parse(_write(tmp_path, content), source)
    message = str(info.value)
    assert source.id in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_synthetic_page_parses(tmp_path):
    parsed = parse(_write(tmp_path, build_page(
        rcmp={"value": lambda r, c: r * 100 + c}, air={"cells": {(4, 0): "1,234"}})),
        _source())
    assert len(parsed.tables[RCMP]) == 48 and len(parsed.tables[CLAIMS]) == 792
    qc = [r for r in parsed.tables[RCMP] if r["province_code"] == "QC" and r["month"] == "2017-05"]
    assert qc[0]["interceptions"] == Count(104)
    air = [r for r in parsed.tables[CLAIMS] if (r["province_code"], r["month"], r["office"])
           == ("QC", "2017-01", "air_poe")]
    assert air[0]["claimants"] == Count(1234)
    assert not [t for t in parsed.totals if t.notes]
    assert parsed.file_facts["vintage"] == "2024-04-22"


def test_month_spellings_accepted(tmp_path):
    months = ["January", "Feb", "March", "April", "May", "June", "July", "August", "Sept",
              "Oct.", "Nov", "December"]
    parsed = parse(_write(tmp_path, build_page(rcmp={"months": months}, land={"months": months})),
                   _source())
    locs = {r["month"]: r["source_locator"] for r in parsed.tables[RCMP] if r["province_code"] == "QC"}
    assert locs["2017-09"].endswith("col Sept") and locs["2017-01"].endswith("col January")


def test_hand_written_fixture_missing_tables():
    source = _source(2018)
    with pytest.raises(ParseError) as info:
        parse(FIXTURES / "rcmp_only_2018.htm", source)
    message = str(info.value)
    assert source.id in message and "table(s) missing" in message
    assert '"Air Ports of Entry"' in message and '"Inland Offices"' in message
    assert '"RCMP Interceptions"' not in message


def test_missing_table(tmp_path):
    _fails(tmp_path, build_page(skip=("inland",)), "table(s) missing", '"Inland Offices"')


def test_renamed_month_header(tmp_path):
    months = [*MONTHS[:2], "Mars", *MONTHS[3:]]
    _fails(tmp_path, build_page(land={"months": months}), 'table 3 "Land Ports of Entry" header',
           "col 4", "'Mars'")


def test_renamed_label_header(tmp_path):
    _fails(tmp_path, build_page(rename={"air": {"head": "Regions"}}),
           '"Air Ports of Entry" header col 1', "'Regions'")


def test_months_out_of_order(tmp_path):
    months = [*MONTHS[:5], "Jul", "Jun", *MONTHS[7:]]
    _fails(tmp_path, build_page(ircc={"months": months}), "Immigration, Refugees", "col 7")


def test_extra_column(tmp_path):
    _fails(tmp_path, build_page(marine={"extra_col": True}), '"Marine Ports of Entry" header',
           "expected 14 columns")


def test_extra_cell_in_a_row(tmp_path):
    html = build_page(replace={"<td>New Brunswick</td>": "<td>New Brunswick</td><td>0</td>"})
    _fails(tmp_path, html, '"RCMP Interceptions" row 1 (New Brunswick)', "found 15")


def test_text_in_number_cell_is_kept_as_unreadable(tmp_path):
    parsed = parse(_write(tmp_path, build_page(
        rcmp={"cells": {(1, 2): "n/a"}}, inland={"cells": {(5, 0): "abc"}},
        total={"cells": {(4, 12): "x"}})), _source())
    qc = [r for r in parsed.tables[RCMP] if (r["province_code"], r["month"]) == ("QC", "2017-03")][0]
    assert qc["interceptions"].value is None and "'n/a'" in qc["interceptions"].note
    on = [r for r in parsed.tables[CLAIMS] if (r["province_code"], r["month"], r["office"])
          == ("ON", "2017-01", "cbsa_inland")][0]
    assert on["claimants"].value is None and "'abc'" in on["claimants"].note
    t = _total(parsed, CLAIMS, {"year": 2017, "province_code": "QC"})
    assert t.value.value is None and "'x'" in t.value.note


def test_unknown_row_label(tmp_path):
    html = build_page(rename={"air": {"labels": [*PT[:12], "Atlantis"]}})
    _fails(tmp_path, html, '"Air Ports of Entry" row 13 (Atlantis)', "unknown row label")


def test_outside_canada_only_in_ircc_tables(tmp_path):
    html = build_page(rename={"inland": {"labels": [*PT, "Outside Canada"]}})
    _fails(tmp_path, html, '"Inland Offices" row 14 (Outside Canada)', "unknown row label")


def test_missing_province_row(tmp_path):
    _fails(tmp_path, build_page(rename={"land": {"labels": PT[:-1]}}),
           '"Land Ports of Entry"', "row(s) missing: NU")


def test_duplicate_province_row(tmp_path):
    _fails(tmp_path, build_page(rename={"rcmp": {"labels": ["Quebec", "Quebec"]}}),
           '"RCMP Interceptions"', "listed twice: QC")


def test_missing_total_row(tmp_path):
    _fails(tmp_path, build_page(rename={"ircc": {"total": None}}), "Immigration, Refugees",
           "exactly one Total row")


def test_unknown_summary_row(tmp_path):
    labels = ["Air Ports of Entry", "Land Ports of Entry", "Sea Ports", "All Ports of Entry "
              "(Air, Land and Marine)", "Inland Offices"]
    _fails(tmp_path, build_page(rename={"summary": {"labels": labels}}), "Summary of Asylum",
           "row 3 (Sea Ports)", "unknown row label")


def test_unknown_or_duplicate_caption(tmp_path):
    _fails(tmp_path, build_page(rename={"rcmp": {"caption": "Border crossings"}}),
           'table 1 "Border crossings"', "unknown table caption")
    _fails(tmp_path, build_page(rename={"marine": {"caption": "Land Ports of Entry"}}),
           'table 4 "Land Ports of Entry"', 'a second "Land Ports of Entry" table')


def test_caption_year_must_match_period(tmp_path):
    html = build_page(rename={"ircc": {"caption": "Asylum Claimants processed by Immigration, "
                                       "Refugees and Citizenship Canada (IRCC), January - "
                                       "December 2016"}})
    _fails(tmp_path, html, "December 2016", "differ from the source period 2017")


def test_caption_erratum_only_for_2023(tmp_path):
    caption = "Total Asylum Claimants processed by the CBSA and IRCC, January - January 2024"
    parsed = parse(_write(tmp_path, build_page(2023, rename={"total": {"caption": caption}})),
                   _source(2023))
    assert all("publisher typo" in t.notes for t in parsed.totals if caption in t.source_locator)
    _fails(tmp_path, build_page(2022, rename={"total": {"caption": caption}}),
           "January - January 2024", "differ from the source period 2022", year=2022)


def test_page_title_year_must_match(tmp_path):
    _fails(tmp_path, build_page(2018), "page title", "differ from the source period 2017",
           source=_source(2017))


def test_period_must_be_one_year(tmp_path):
    _fails(tmp_path, build_page(), "period_start and period_end",
           source=_source(2017, "2017-01-01", "2018-12-31"))


def test_footnote_and_quotes_in_synthetic_cell(tmp_path):
    cell = '"2,680"<sup id="fn1-rf"><a class="fn-lnk" href="#fn1"><span class="wb-inv">Footnote </span>*</a></sup>'
    parsed = parse(_write(tmp_path, build_page(land={"cells": {(4, 3): cell}})), _source())
    row = [r for r in parsed.tables[CLAIMS] if (r["province_code"], r["month"], r["office"])
           == ("QC", "2017-04", "land_poe")][0]
    assert row["claimants"] == Count(2680)
    assert 'footnote *: "A note."' in row["notes"] and "quotation marks" in row["notes"]


def test_truncated_file(tmp_path):
    html = build_page()
    _fails(tmp_path, html[: len(html) // 2], "truncated")


def test_wrong_file_types(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    _fails(tmp_path, buf.getvalue(), "not an HTML page")
    _fails(tmp_path, (FIXTURES / "not_a_page.csv").read_bytes(), "not an HTML page")
    _fails(tmp_path, (FIXTURES / "not_a_page_cp1252.csv").read_bytes(), "not UTF-8")
    _fails(tmp_path, b"%PDF-1.4\n%...", "not an HTML page")


def test_empty_file(tmp_path):
    _fails(tmp_path, b"", "empty")


def test_html_without_tables(tmp_path):
    html = "<!doctype html><html><head><title>Asylum claims by year \u2013 2017</title></head>" \
           "<body><p>Page moved.</p></body></html>"
    _fails(tmp_path, html, "table(s) missing", '"RCMP Interceptions"')
