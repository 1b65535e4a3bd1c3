"""IRCC open-data asylum workbooks (crossings/ircc-odp_*.xlsx): parser, totals, revisions.

Real-file tests cover all ten mirrored workbooks; small workbooks generated here with
openpyxl exercise each layout quirk and each kind of bad input.
"""

from __future__ import annotations

import collections
import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from openpyxl import Workbook

from canada_asylum_data.cells import Count
from canada_asylum_data.countries import CountryResolver
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers import get_parser
from canada_asylum_data.parsers.base import Parsed
from canada_asylum_data.parsers.ircc_odp_xlsx import KINDS, parse
from canada_asylum_data.provinces import PROVINCES
from canada_asylum_data.errors import ValidationError
from canada_asylum_data.revisions import revisions
from canada_asylum_data.sources import Source, load_sources

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "datapackage" / "schemas"
FRAGMENT = ROOT / "datapackage" / "sources.d" / "ircc.yml"

#: source id -> (fact table, detail rows, printed totals, layout, vintage, period_end)
EXPECTED = {
    "ircc-odp-office-province-2024-02": ("ircc_claimants_office_province", 3740, 820, "monthly", "2024-02-29", "2024-02-29"),
    "ircc-odp-office-province-2025-07": ("ircc_claimants_office_province", 4445, 937, "monthly", "2025-07-31", "2025-07-31"),
    "ircc-odp-age-2024-02": ("ircc_claimants_age", 7810, 5645, "quarterly", "2024-02-29", "2024-02-29"),
    "ircc-odp-gender-2024-02": ("ircc_claimants_gender", 4290, 4141, "quarterly", "2024-02-29", "2024-02-29"),
    "ircc-odp-gender-2025-07": ("ircc_claimants_gender", 5334, 4929, "quarterly", "2025-07-31", "2025-07-31"),
    "ircc-odp-top25-office-type-last-month-2024-02": ("ircc_claimants_top25_citizenship", 10120, 4040, "monthly", "2024-02-29", "2024-02-29"),
    "ircc-odp-top25-office-type-last-year-2024-02": ("ircc_claimants_top25_citizenship", 9900, 8312, "quarterly", "2024-02-29", "2024-02-29"),
    "ircc-odp-top25-province-last-month-2024-02": ("ircc_claimants_top25_citizenship", 26290, 5510, "monthly", "2024-02-29", "2024-02-29"),
    "ircc-odp-top25-province-last-year-2024-02": ("ircc_claimants_top25_citizenship", 26510, 15409, "quarterly", "2024-02-29", "2024-02-29"),
    "ircc-odp-secondary-migration-2024-02": ("ircc_claimants_secondary_migration", 1040, 150, "annual", "2024-02-29", "2024-02-29"),
}
IDS = sorted(EXPECTED)


def _schema(table: str) -> dict:
    return yaml.safe_load((SCHEMAS / f"{table}.yaml").read_text(encoding="utf-8"))


_CACHE: dict[str, Parsed] = {}


@pytest.fixture(scope="module")
def parsed(real_file):
    def get(source_id: str) -> Parsed:
        if source_id not in _CACHE:
            src, path = real_file(source_id)
            _CACHE[source_id] = parse(path, src)
        return _CACHE[source_id]
    return get


def _total(p: Parsed, scope: dict, label: str | None = None):
    found = [t for t in p.totals if t.scope == scope and (label is None or t.label == label)]
    assert len(found) == 1, (scope, label, found)
    return found[0]


def _row(p: Parsed, table: str, **where) -> dict:
    found = [r for r in p.tables[table] if all(r.get(k) == v for k, v in where.items())]
    assert len(found) == 1, (where, found)
    return found[0]


# ---------------------------------------------------------------------------------------
# Real files


def test_fragment_lists_every_mirrored_workbook(mirror):
    every = load_sources(FRAGMENT)
    records = [s for s in every if not s.live]
    assert sorted(s.id for s in records) == IDS
    # each workbook URL IRCC overwrites is also a live series whose vintages these are
    live = {s.url: s for s in every if s.live}
    assert set(live) == {s.url for s in records}
    assert all(live[s.url].options["new_vintage_of"] == s.options["vintage_of"] for s in records)
    on_disk = sorted(p.name for p in (mirror / "crossings").glob("ircc-odp_*.xlsx"))
    assert sorted(Path(s.mirror_path).name for s in records) == on_disk
    for s in records:
        data = (mirror / s.mirror_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256, s.id
        assert len(data) == s.bytes, s.id
        assert s.parser == "ircc_odp_xlsx" and s.series == EXPECTED[s.id][0]
        assert s.options["workbook"] in KINDS
        assert s.options["vintage_of"] == s.id.rsplit("-", 2)[0]
        assert s.url.startswith("https://www.ircc.canada.ca/opendata-donneesouvertes/data/EN_ODP-Asylum-")
        assert s.archive_url.startswith("https://raw.githubusercontent.com/")  # byte-identical copy
        assert s.archive_url.endswith(Path(s.url).name)
        assert "b6cbcf4d-f763-4924-a2fb-8cc4a06e3de4" in s.notes
        assert s.period_start == "2015-01-01"
        assert get_parser(s.parser) is parse


@pytest.mark.parametrize("source_id", IDS)
def test_real_workbook_parses(parsed, sources, source_id):
    table, n_rows, n_totals, layout, vintage, period_end = EXPECTED[source_id]
    p = parsed(source_id)
    assert list(p.tables) == [table]
    assert len(p.tables[table]) == n_rows
    assert len(p.totals) == n_totals
    assert p.file_facts["layout"] == layout
    assert p.file_facts["vintage"] == vintage == sources[source_id].vintage
    assert p.file_facts["period_end"] == period_end == sources[source_id].period_end
    assert p.file_facts["period_start"] == "2015-01-01"
    for row in p.tables[table]:
        assert isinstance(row["claimants"], Count)
        assert row["claimants"].value is not None or row["claimants"].marker == "--"
        assert row["source_locator"].startswith("'Asylum Claimants - ")
        assert "source_id" not in row and "vintage" not in row and "country_code" not in row
    for t in p.totals:
        assert t.fact_table == table and t.measure == "claimants"


@pytest.mark.parametrize("source_id", IDS)
def test_rows_fit_schema_and_primary_key_is_unique(parsed, source_id):
    table = EXPECTED[source_id][0]
    schema = _schema(table)
    names = set()
    for f in schema["fields"]:
        names.add(f.get("name") or f["use"])
    normalize_fills = {"country_code", "suppressed_measures", "source_id", "vintage"}
    rows = parsed(source_id).tables[table]
    for row in rows:
        assert set(row) <= names, set(row) - names
        assert names - normalize_fills - {"notes", "rank"} <= set(row)
    pk = schema["primary_key"]
    keys = collections.Counter(tuple(r[k] for k in pk) for r in rows)
    assert keys.most_common(1)[0][1] == 1
    for field in schema["fields"]:
        enum = (field.get("constraints") or {}).get("enum")
        if enum and field.get("name") in rows[0]:
            assert {r[field["name"]] for r in rows} <= set(enum), field["name"]


def test_top25_tables_share_one_unique_primary_key(parsed):
    pk = _schema("ircc_claimants_top25_citizenship")["primary_key"]
    rows = [r for sid in IDS if "top25" in sid for r in parsed(sid).tables["ircc_claimants_top25_citizenship"]]
    assert len(rows) == 10120 + 9900 + 26290 + 26510
    assert len({tuple(r[k] for k in pk) for r in rows}) == len(rows)


def test_every_label_resolves(parsed, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    shutil.copy(ROOT / "datapackage" / "aliases" / "ircc.yml", aliases / "ircc.yml")
    resolver = CountryResolver(aliases)  # only this family's alias file
    provinces = {code for code, *_ in PROVINCES}
    labels = set()
    for sid in IDS:
        for row in next(iter(parsed(sid).tables.values())):
            for col in ("province_code", "claim_province_code", "address_province_code"):
                if col in row:
                    assert row[col] in provinces, (sid, row)
            if row.get("breakdown") == "province" and row["breakdown_value"] != "not_broken_down":
                assert row["breakdown_value"] in provinces
            if "country_label" in row:
                labels.add(row["country_label"])
    unresolved = sorted(label for label in labels if resolver.resolve(label, "ircc") is None)
    assert unresolved == []
    assert resolver.resolve("China, People's Republic of", "ircc") == "CHN"
    assert resolver.resolve("Other Countries", "ircc") == "XOC"
    assert len(labels) == 29  # 25 + 25 names, 22 in both lists, + Other Countries
    assert "United States" not in labels and not any("United States" in x for x in labels)


def test_office_province_values(parsed):
    table = "ircc_claimants_office_province"
    old, new = parsed("ircc-odp-office-province-2024-02"), parsed("ircc-odp-office-province-2025-07")
    # Airport / Quebec, January 2015 (row 8, column C) and Ontario, December 2015.
    r = _row(old, table, month="2015-01", office_type="airport", province_code="QC")
    assert r["claimants"] == Count(10) and r["source_locator"] == "'Asylum Claimants - Office Type'!C8"
    assert _row(old, table, month="2015-12", office_type="airport", province_code="ON")["claimants"] == Count(225)
    # "--" cells: Alberta airport January 2015.
    assert _row(old, table, month="2015-01", office_type="airport", province_code="AB")["claimants"].suppressed
    # "Other Offices" is one row, stored with province XN and a note.
    oo = _row(old, table, month="2015-01", office_type="other_offices")
    assert oo["province_code"] == "XN" and oo["claimants"].suppressed and "Other Offices" in oo["notes"]
    # the 2024-02 Inland group has "Outside Canada"; the 2025-07 one "not stated" instead.
    assert {r["province_code"] for r in old.tables[table] if r["office_type"] == "inland"} >= {"XO"}
    assert "XN" not in {r["province_code"] for r in old.tables[table] if r["office_type"] == "inland"}
    assert "XN" in {r["province_code"] for r in new.tables[table] if r["office_type"] == "inland"}
    # Totals: grand total row "Total " (trailing space), group labels BELOW their rows.
    assert _total(old, {"month": "2015-01"}).value == Count(1165)
    assert _total(old, {"year": 2015}).value == Count(16055)
    assert _total(old, {"month": "2015-01", "office_type": "airport"}, "Airport - Total / Jan").value == Count(85)
    assert _total(old, {"year": 2015, "office_type": "inland"}).value == Count(9435)
    assert _total(old, {"year": 2015, "office_type": "airport", "province_code": "ON"}).value == Count(1865)
    assert _total(old, {"year": 2017}).value == Count(50375)
    assert _total(new, {"year": 2017}).value == Count(50360)
    # partial last year: "2025 Total" covers January-July only.
    t = _total(new, {"year": 2025})
    assert t.value == Count(69810) and "Jan-Jul 2025 only" in t.notes
    assert max(r["month"] for r in new.tables[table]) == "2025-07"
    assert _total(old, {"year": 2023}).notes is None


def test_gender_and_age_values(parsed):
    g_old, g_new = parsed("ircc-odp-gender-2024-02"), parsed("ircc-odp-gender-2025-07")
    age = parsed("ircc-odp-age-2024-02")
    assert _row(g_old, "ircc_claimants_gender", month="2015-01", province_code="QC", gender="male")["claimants"] == Count(110)
    assert _row(age, "ircc_claimants_age", month="2015-01", province_code="ON", age_group="30-44")["claimants"] == Count(290)
    assert _total(age, {"month": "2015-01", "province_code": "ON"}).value == Count(875)
    assert {r["age_group"] for r in age.tables["ircc_claimants_age"]} == {
        "0-14", "15-29", "30-44", "45-59", "60-74", "75+", "not_stated", "not_broken_down"}
    assert {r["gender"] for r in g_new.tables["ircc_claimants_gender"]} == {
        "female", "male", "another_gender", "not_stated", "not_broken_down"}
    # a province printed only as a total row: a detail row + its own total.
    xo = _row(g_old, "ircc_claimants_gender", month="2024-02", province_code="XO")
    assert xo["gender"] == "not_broken_down" and "Outside Canada Total" in xo["notes"]
    xn = [r for r in g_new.tables["ircc_claimants_gender"] if r["province_code"] == "XN"]
    assert len(xn) == 127 and {r["gender"] for r in xn} == {"not_broken_down"}
    # quarterly layout: quarter totals interleaved; the partial Q3 2025 is July only.
    assert _total(g_new, {"year": 2025, "quarter": 3}).value == Count(12545)
    assert _total(g_new, {"month": "2025-07"}).value == Count(12545)
    assert "Jul-Jul 2025 only" in _total(g_new, {"year": 2025, "quarter": 3}).notes
    assert _total(g_new, {"year": 2025}).value == Count(69810)
    assert _total(g_old, {"year": 2024, "quarter": 1}).value == Count(31255)
    assert _total(g_old, {"year": 2015, "quarter": 1, "province_code": "QC"}, "Quebec Total / Q1 Total").value.value > 0


def test_top25_values(parsed):
    table = "ircc_claimants_top25_citizenship"
    om = parsed("ircc-odp-top25-office-type-last-month-2024-02")
    py = parsed("ircc-odp-top25-province-last-year-2024-02")
    india = _row(om, table, month="2024-02", country_label="India", breakdown_value="airport")
    assert india["claimants"] == Count(1305) and india["rank"] == 1
    assert india["ranking"] == "last_month" and india["ranking_period"] == "2024-02"
    assert india["breakdown"] == "office_type"
    china = [r for r in py.tables[table] if r["country_label"] == "China, People's Republic of"]
    assert {r["rank"] for r in china} == {19} and {r["ranking_period"] for r in china} == {"2023"}
    other = [r for r in py.tables[table] if r["country_label"] == "Other Countries"]
    assert len(other) == 110 and {r["breakdown_value"] for r in other} == {"not_broken_down"}
    assert {r["rank"] for r in other} == {None}
    assert _row(py, table, month="2015-01", country_label="Other Countries")["claimants"] == Count(525)
    # country subtotal rows ("(1) Mexico") sit below their province rows.
    t = _total(py, {"ranking": "last_year", "breakdown": "province", "ranking_period": "2023",
                    "country_label": "Mexico", "year": 2023})
    assert t.value == Count(23860) and t.label == "(1) Mexico / 2023 Total"
    assert _total(om, {"ranking": "last_month", "breakdown": "office_type", "ranking_period": "2024-02",
                       "month": "2024-02"}).value == Count(16350)
    ranks = sorted({r["rank"] for sid in IDS if "top25" in sid
                    for r in parsed(sid).tables[table] if r["rank"] is not None})
    assert ranks == list(range(1, 26))


def test_secondary_migration_values(parsed):
    p = parsed("ircc-odp-secondary-migration-2024-02")
    table = "ircc_claimants_secondary_migration"
    r = _row(p, table, period_start="2023-01-01", claim_province_code="QC", address_province_code="ON")
    assert r["claimants"] == Count(9945) and r["period_end"] == "2023-12-31" and r["year"] == 2023
    r = _row(p, table, period_start="2024-01-01", claim_province_code="QC", address_province_code="ON")
    assert r["claimants"] == Count(355) and r["period_end"] == "2024-02-29"
    assert _total(p, {"period_start": "2017-01-01", "period_end": "2017-12-31"}).value == Count(50375)
    assert _total(p, {"period_start": "2023-01-01", "period_end": "2023-12-31",
                      "claim_province_code": "QC"}).value == Count(65505)
    xn = [r for r in p.tables[table] if r["claim_province_code"] == "XN"]
    assert len(xn) == 10 and {r["address_province_code"] for r in xn} == {"XN"}


# ---------------------------------------------------------------------------------------
# Reconciliation: detail rows against every printed total, within the rounding bounds


def reconcile(p: Parsed) -> tuple[int, list]:
    """Each printed cell is the true value rounded to the nearest 5 ('--' = 1..4), so
    |sum(details) - total| <= 2.5 * n_details + 2.5 (the total is rounded too)."""
    problems, checked = [], 0
    for table, rows in p.tables.items():
        keysets = {tuple(sorted(t.scope)) for t in p.totals if t.fact_table == table}
        index = {ks: collections.defaultdict(list) for ks in keysets}
        for r in rows:
            for ks in keysets:
                index[ks][tuple(r.get(k) for k in ks)].append(r["claimants"])
        for t in p.totals:
            ks = tuple(sorted(t.scope))
            parts = index[ks].get(tuple(t.scope[k] for k in ks), [])
            if not parts:
                problems.append(("total without detail rows", t.label, t.scope))
                continue
            lo = sum(1 if c.suppressed else c.value for c in parts)
            hi = sum(4 if c.suppressed else c.value for c in parts)
            tlo, thi = (1, 4) if t.value.suppressed else (t.value.value, t.value.value)
            slack = 2.5 * len(parts) + 2.5
            checked += 1
            if thi < lo - slack or tlo > hi + slack:
                problems.append((t.label, t.scope, t.value, lo, hi, len(parts)))
    return checked, problems


@pytest.mark.parametrize("source_id", IDS)
def test_details_reconcile_with_every_printed_total(parsed, source_id):
    p = parsed(source_id)
    checked, problems = reconcile(p)
    assert checked == len(p.totals) == EXPECTED[source_id][2]
    assert problems == []


def test_reconcile_can_fail():
    from canada_asylum_data.parsers.base import Total
    p = Parsed()
    for i, v in enumerate((100, 200, "--")):
        p.add("t", {"month": "2020-01", "k": i, "claimants": Count(None, "--") if v == "--" else Count(v)})
    p.totals.append(Total("t", "claimants", {"month": "2020-01"}, Count(311), "Total", "x"))
    assert reconcile(p)[1] == []  # 301..304 +- 10
    p.totals[0] = Total("t", "claimants", {"month": "2020-01"}, Count(320), "Total", "x")
    assert reconcile(p)[1] != []


# ---------------------------------------------------------------------------------------
# Revisions between vintages


def test_office_province_revisions_between_vintages(parsed):
    old, new = parsed("ircc-odp-office-province-2024-02"), parsed("ircc-odp-office-province-2025-07")
    rows = revisions(old, new, "ircc_claimants_office_province",
                     ["month", "office_type", "province_code"], "claimants",
                     old_source_id="ircc-odp-office-province-2024-02",
                     new_source_id="ircc-odp-office-province-2025-07")
    by_key = {r["row_key"]: r for r in rows}
    expected = {
        '{"published_total": "Total / 2017 Total", "year": 2017}': ("50375", "50360"),
        '{"published_total": "Total / 2022 Total", "year": 2022}': ("91740", "91645"),
        '{"published_total": "Total / 2023 Total", "year": 2023}': ("143795", "143310"),
        '{"month": "2023-01", "published_total": "Total / Jan"}': ("10735", "10710"),
    }
    for key, (old_v, new_v) in expected.items():
        r = by_key[key]
        assert (r["old_value"], r["new_value"], r["change"]) == (old_v, new_v, "changed")
        assert r["old_source_id"] == "ircc-odp-office-province-2024-02"
        assert r["new_source_id"] == "ircc-odp-office-province-2025-07"
        assert (r["old_vintage"], r["new_vintage"]) == ("2024-02-29", "2025-07-31")
        assert r["table_name"] == "ircc_claimants_office_province" and r["measure"] == "claimants"
    assert by_key['{"published_total": "Total / 2017 Total", "year": 2017}']["old_locator"] \
        == "'Asylum Claimants - Office Type'!AO42"
    # the partial "2024 Total" (Jan-Feb in the old file, full year in the new) is not a revision
    assert '{"published_total": "Total / 2024 Total", "year": 2024}' not in by_key
    assert [by_key[k]["change"] for k in by_key if "2024 Total" in k] == ["removed"]  # Outside Canada
    # months only the newer file has are not revisions
    assert not any('"2024-03"' in k or '"2025-' in k for k in by_key)
    # detail cells are compared too, and "Outside Canada" (inland) rows are gone in 2025-07
    changed = [r for r in rows if r["change"] == "changed" and "published_total" not in r["row_key"]]
    assert changed and all(r["old_value"] != r["new_value"] for r in changed)
    removed = [r for r in rows if r["change"] == "removed"]
    assert any('"province_code": "XO"' in r["row_key"] for r in removed)
    assert all(r["new_value"] == "" and r["new_locator"] == "" for r in removed)
    pk = [(r["table_name"], r["row_key"], r["measure"]) for r in rows]
    assert len(pk) == len(set(pk))


def test_gender_revisions_between_vintages(parsed):
    rows = revisions(parsed("ircc-odp-gender-2024-02"), parsed("ircc-odp-gender-2025-07"),
                     "ircc_claimants_gender", ["month", "province_code", "gender"], "claimants",
                     old_source_id="a", new_source_id="b")
    by_key = {r["row_key"]: r for r in rows}
    r = by_key['{"published_total": "Total / 2017 Total", "year": 2017}']
    assert (r["old_value"], r["new_value"]) == ("50375", "50360")
    assert '{"published_total": "Total / Q1 Total", "quarter": 1, "year": 2024}' not in by_key


def test_revisions_is_generic():
    old, new = Parsed(file_facts={"vintage": "2024"}), Parsed(file_facts={"vintage": "2025"})
    for year, v_old, v_new in ((2020, 5, 5), (2021, 7, 8), (2022, 3, None)):
        old.add("u", {"year": year, "origin": "USA", "applied": v_old, "source_id": "u-2024",
                      "source_locator": f"r{year}"})
        if v_new is not None:
            new.add("u", {"year": year, "origin": "USA", "applied": v_new, "source_id": "u-2025",
                          "source_locator": f"s{year}"})
    new.add("u", {"year": 2022, "origin": "HTI", "applied": 1, "source_id": "u-2025", "source_locator": "t"})
    new.add("u", {"year": 2023, "origin": "USA", "applied": 9, "source_id": "u-2025", "source_locator": "n"})
    rows = revisions(old, new, "u", ["year", "origin"], "applied")
    assert [(r["row_key"], r["change"], r["old_value"], r["new_value"]) for r in rows] == [
        ('{"origin": "USA", "year": 2021}', "changed", "7", "8"),
        ('{"origin": "USA", "year": 2022}', "removed", "3", ""),
    ]
    assert rows[0]["old_source_id"] == "u-2024" and rows[0]["new_source_id"] == "u-2025"
    assert rows[0]["old_vintage"] == "2024" and rows[0]["new_locator"] == "s2021"
    old.add("u", {"year": 2021, "origin": "USA", "applied": 1, "source_locator": "dup"})
    with pytest.raises(ValidationError, match="same key"):
        revisions(old, new, "u", ["year", "origin"], "applied")


# ---------------------------------------------------------------------------------------
# Generated workbooks: layout quirks and bad input

MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December"]


def _columns(layout: str, y0: int, y1: int, m1: int, hyphen: bool = False) -> list[dict]:
    cols = []
    for y in range(y0, y1 + 1):
        months = list(range(1, (m1 if y == y1 else 12) + 1))
        for i, m in enumerate(months):
            q = (m - 1) // 3 + 1
            cols.append({"band": str(y) if i == 0 else None,
                         "q": f"Q{q}" if (m - 1) % 3 == 0 else None,
                         "h": MON[m - 1], "months": [(y, m)]})
            if layout == "quarterly" and (m % 3 == 0 or m == months[-1]):
                cols.append({"band": None, "q": None, "h": f"Q{q} Total",
                             "months": [(y, mm) for mm in months if (mm - 1) // 3 + 1 == q]})
        cols.append({"band": None, "q": f"{y} Total", "h": f"{y} - Total" if hyphen else f"{y} Total",
                     "months": [(y, m) for m in months], "year_total": True})
    return cols


def _fmt(v: int) -> str:
    if v == 0:
        return "0"
    if v < 5:
        return "--"
    return f"{5 * round(v / 5):,}"


def _value(seed: int, y: int, m: int) -> int:
    v = (seed * 7919 + y * 31 + m * 173) % 2003
    return v % 5 if (seed + m) % 4 == 0 else v


def build_rows(*, layout: str, title_what: str, corner: str, groups: list, y1: int = 2016,
               m1: int = 2, hyphen: bool = False, corner_b: str | None = None,
               vintage: str = "February 29, 2016", grand: str = "Total ") -> list[list]:
    """Rows of an IRCC-style sheet. groups: [(label, [member labels])]; [] = single row."""
    title = f"Canada - Asylum Claimants by {title_what}, January 2015 - {MONTH_NAMES[m1 - 1]} {y1}"
    rows: list[list] = [[title], [""]]
    if layout == "annual":
        cols = [{"h": str(y), "months": [(y, m) for m in range(1, 13)]} for y in range(2015, y1)]
        cols.append({"h": f"Jan {y1} - {MON[m1 - 1]} {y1}", "months": [(y1, m) for m in range(1, m1 + 1)]})
        rows.append([corner, corner_b] + [c["h"] for c in cols])
    else:
        cols = _columns(layout, 2015, y1, m1, hyphen)
        rows.append([corner, corner_b] + [c["band"] for c in cols])
        if layout == "quarterly":
            rows.append([None, None] + [c["q"] for c in cols])
            rows.append([None, None] + [None if c.get("year_total") else c["h"] for c in cols])
        else:
            rows.append([None, None] + [c["h"] for c in cols])

    def cells(values: dict) -> list[str]:
        return [_fmt(sum(values[ym] for ym in c["months"])) for c in cols]

    grand_values: dict = collections.Counter()
    seed = 0
    all_months = [ym for c in cols for ym in c["months"]]
    for label, members in groups:
        group_values: dict = collections.Counter()
        for j, member in enumerate(members):
            seed += 1
            vals = {ym: _value(seed, *ym) for ym in all_months}
            group_values.update(vals)
            rows.append(["" if j == 0 else None, member] + cells(vals))
        if not members:
            seed += 1
            group_values.update({ym: _value(seed, *ym) for ym in all_months})
        for ym in all_months:
            group_values.setdefault(ym, 0)
        grand_values.update(group_values)
        rows.append([label, None] + cells(group_values))
    for ym in all_months:
        grand_values.setdefault(ym, 0)
    rows.append([grand, None] + cells(grand_values))
    rows += [[], [""], ["Notes:\n— Please note that all values between 0 and 5 are shown as “--”."],
             [""], [f"Source: IRCC, {vintage}"]]
    return rows


def write_xlsx(path: Path, rows: list[list], sheet: str) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def fixture_source(workbook: str, sid: str = "ircc-odp-fixture") -> Source:
    return Source(id=sid, title="fixture", publisher="IRCC", url="https://example.invalid/x.xlsx",
                  parser="ircc_odp_xlsx", series=KINDS[workbook].table, licenses=("OGL-Canada-2.0",),
                  mirror_path=f"crossings/{sid}.xlsx", options={"workbook": workbook})


OFFICE = dict(layout="monthly", title_what="Claim Office Type, Province/Territory* of Claim and Claim Year",
              corner="Claim Office Type and Province/Territory of Claim",
              groups=[("Airport - Total", ["Quebec", "Ontario"]), ("Border - Total", ["Quebec"]),
                      ("Inland - Total", ["Ontario", "Province/Territory of claim not stated"]),
                      ("Other Offices", [])])
GENDER = dict(layout="quarterly", title_what="Province/Territory* of Claim, Gender and Claim Year",
              corner="Province/Territory and Gender", y1=2016, m1=7, vintage="July 31, 2016",
              grand="Total",
              groups=[("Quebec Total", ["Female", "Male", "Another gender"]),
                      ("Ontario Total", ["Female", "Gender not stated"]),
                      ("Outside Canada Total", [])])
TOP25 = dict(layout="quarterly",
             title_what="Top Twenty-Five Countries of Citizenship (2015 ranking), Province/Territory* of Claim and Claim Year",
             corner="Country of Citizenship and Province/Territory",
             groups=[("(1) Mexico", ["Quebec", "Ontario"]),
                     ("(2) China, People's Republic of", ["Outside Canada"]),
                     ("Other Countries", [])])
TOP25_MONTH = dict(layout="monthly", hyphen=True,
                   title_what="Top Twenty-Five Countries of Citizenship (February ranking), Claim Office Type and Claim Year",
                   corner="Country of Citizenship and Office Type",
                   groups=[("(1) India", ["Airport", "Inland", "Other Offices"]),
                           ("(2) Haiti", ["Border"]), ("Other Countries", [])])
MIGRATION = dict(layout="annual",
                 title_what="Province/Territory of Claim Received*, Province/Territory of Last Known Address and Claim Year",
                 corner="Province/Territory of Claim ", corner_b="Province/Territory of Last Known Address",
                 groups=[("Quebec - Total", ["Quebec", "Ontario"]), ("Ontario - Total", ["Ontario"]),
                         ("Province/Territory of claim not stated - Total", [])])

SHEETS = {"office_province": ("Asylum Claimants - Office Type", OFFICE),
          "gender": ("Asylum Claimants - Gender", GENDER),
          "top25_province_last_year": ("Asylum Claimants - PT year", TOP25),
          "top25_office_type_last_month": ("Asylum Claimants - Office month", TOP25_MONTH),
          "secondary_migration": ("Asylum Claimants - Migration", MIGRATION)}


def make(tmp_path: Path, workbook: str, mutate=None, sheet: str | None = None) -> tuple[Source, Path]:
    default_sheet, spec = SHEETS[workbook]
    rows = build_rows(**spec)
    if mutate:
        mutate(rows)
    src = fixture_source(workbook)
    path = write_xlsx(tmp_path / f"{workbook}.xlsx", rows, sheet or default_sheet)
    return src, path


@pytest.mark.parametrize("workbook", sorted(SHEETS))
def test_generated_workbooks_parse_and_reconcile(tmp_path, workbook):
    src, path = make(tmp_path, workbook)
    p = parse(path, src)
    checked, problems = reconcile(p)
    assert problems == [] and checked == len(p.totals) > 0
    assert p.file_facts["vintage"] in ("2016-02-29", "2016-07-31")


def test_generated_office_layout(tmp_path):
    src, path = make(tmp_path, "office_province")
    p = parse(path, src)
    rows = p.tables["ircc_claimants_office_province"]
    assert len(rows) == 6 * 14  # 5 province rows + Other Offices, Jan 2015 .. Feb 2016
    assert {(r["office_type"], r["province_code"]) for r in rows} == {
        ("airport", "QC"), ("airport", "ON"), ("border", "QC"), ("inland", "ON"), ("inland", "XN"),
        ("other_offices", "XN")}
    labels = {t.label for t in p.totals}
    assert {"Airport - Total / Jan", "Total / 2016 Total", "Quebec / 2015 Total", "Other Offices / 2016 Total"} <= labels
    assert _total(p, {"year": 2016}).notes.startswith("covers Jan-Feb 2016 only")
    assert p.file_facts["period_end"] == "2016-02-29"


def test_generated_quarterly_partial_year(tmp_path):
    src, path = make(tmp_path, "gender")
    p = parse(path, src)
    q3 = _total(p, {"year": 2016, "quarter": 3})
    assert q3.label == "Total / Q3 Total" and "Jul-Jul 2016 only" in q3.notes
    assert _total(p, {"year": 2016, "quarter": 3}).value == _total(p, {"month": "2016-07"}).value
    assert _total(p, {"year": 2015, "quarter": 4}).notes is None
    xo = [r for r in p.tables["ircc_claimants_gender"] if r["province_code"] == "XO"]
    assert len(xo) == 19 and {r["gender"] for r in xo} == {"not_broken_down"}
    assert {r["gender"] for r in p.tables["ircc_claimants_gender"]} == {
        "female", "male", "another_gender", "not_stated", "not_broken_down"}


def test_generated_top25(tmp_path):
    src, path = make(tmp_path, "top25_province_last_year")
    p = parse(path, src)
    rows = p.tables["ircc_claimants_top25_citizenship"]
    china = {r["rank"] for r in rows if r["country_label"] == "China, People's Republic of"}
    assert china == {2}
    assert {r["breakdown_value"] for r in rows if r["country_label"] == "China, People's Republic of"} == {"XO"}
    assert {(r["ranking"], r["ranking_period"], r["breakdown"]) for r in rows} == {("last_year", "2015", "province")}
    src, path = make(tmp_path, "top25_office_type_last_month")
    rows = parse(path, src).tables["ircc_claimants_top25_citizenship"]
    assert {(r["ranking"], r["ranking_period"], r["breakdown"]) for r in rows} == {("last_month", "2016-02", "office_type")}
    assert {r["breakdown_value"] for r in rows} == {"airport", "inland", "other_offices", "border", "not_broken_down"}


def test_generated_numbers_as_real_numbers_are_read(tmp_path):
    def numeric(rows):
        rows[4][2] = 25  # a true number instead of the usual text
    src, path = make(tmp_path, "office_province", numeric)
    rows = parse(path, src).tables["ircc_claimants_office_province"]
    assert rows[0]["claimants"] == Count(25)


def _raises(src: Source, path: Path, *fragments: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(path, src)
    message = str(info.value)
    assert src.id in message, message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


def test_bad_missing_sheet(tmp_path):
    src, path = make(tmp_path, "office_province", sheet="Sheet1")
    _raises(src, path, "sheet 'Asylum Claimants - Office Type' not found", "Sheet1")


def test_bad_renamed_month_header(tmp_path):
    def rename(rows):
        rows[3][3] = "Fevrier"
    src, path = make(tmp_path, "office_province", rename)
    _raises(src, path, "cell D4", "'Fevrier'")


def test_bad_renamed_corner_header(tmp_path):
    def rename(rows):
        rows[2][0] = "Office Type and Province"
    src, path = make(tmp_path, "office_province", rename)
    _raises(src, path, "cell A3", "header changed")


def test_bad_renamed_quarter_total(tmp_path):
    def rename(rows):
        rows[4][5] = "Quarter 1"
    src, path = make(tmp_path, "gender", rename)
    _raises(src, path, "cell F5", "'Quarter 1'")


def test_bad_extra_header_column(tmp_path):
    def extra(rows):
        rows[3].append("Notes")
        for row in rows[4:-5]:
            row.append("x")
    src, path = make(tmp_path, "office_province", extra)
    _raises(src, path, "'Notes'", "outside any year")


def test_bad_extra_column_without_header(tmp_path):
    def extra(rows):
        rows[6] = rows[6] + ["5"]
    src, path = make(tmp_path, "secondary_migration", extra)
    _raises(src, path, "extra column", "cell E7", "'5'")


def test_bad_text_in_number_cell(tmp_path):
    def text(rows):
        rows[5][4] = "Quebec"
    src, path = make(tmp_path, "office_province", text)
    _raises(src, path, "cell E6", "'Quebec'", "not a number")


def test_bad_empty_number_cell(tmp_path):
    def empty(rows):
        rows[7][3] = None
    src, path = make(tmp_path, "gender", empty)
    _raises(src, path, "cell D8")


def test_bad_unknown_row_label(tmp_path):
    def unknown(rows):
        rows[4][1] = "Atlantis"
    src, path = make(tmp_path, "office_province", unknown)
    _raises(src, path, "cell B5", "'Atlantis'")


def test_bad_unknown_group_label(tmp_path):
    def unknown(rows):
        rows[6][0] = "Seaport - Total"
    src, path = make(tmp_path, "office_province", unknown)
    _raises(src, path, "cell A7", "'Seaport - Total'")


def test_bad_missing_footer_or_total(tmp_path):
    src, path = make(tmp_path, "office_province", lambda rows: rows.__delitem__(-1))
    _raises(src, path, "Source: IRCC")
    src, path = make(tmp_path, "gender", lambda rows: rows.__delitem__(slice(-6, None)))
    _raises(src, path, "no 'Total' row")


def test_bad_title_period_does_not_match_columns(tmp_path):
    def title(rows):
        rows[0][0] = rows[0][0].replace("February 2016", "March 2016")
    src, path = make(tmp_path, "office_province", title)
    _raises(src, path, "title says 2016-03")


def test_bad_top25_ranking_mismatch(tmp_path):
    # a "(2015 ranking)" workbook declared as the last-month list
    src, path = make(tmp_path, "top25_province_last_year", sheet="Asylum Claimants - PT month")
    wrong = fixture_source("top25_province_last_month")
    _raises(wrong, path, "cell A1", "last_month")


def test_bad_truncated_file(tmp_path):
    src, path = make(tmp_path, "office_province")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _raises(src, path, "not a readable .xlsx workbook", "office_province.xlsx")


def test_bad_wrong_file_type(tmp_path):
    """An HTML error page saved under the workbook's name."""
    src = fixture_source("office_province")
    path = tmp_path / "html-named-xlsx.xlsx"
    path.write_text("<!DOCTYPE html>\n<html lang=\"en\"><head><title>Open Government Portal - file "
                    "not found</title></head>\n<body><h1>We couldn't find that Web page (Error 404)"
                    "</h1></body></html>\n", encoding="utf-8")
    _raises(src, path, "not a readable .xlsx workbook", "html-named-xlsx.xlsx")


def test_bad_empty_file(tmp_path):
    src = fixture_source("office_province")
    path = tmp_path / "empty.xlsx"
    path.write_bytes(b"")
    _raises(src, path, "empty")


def test_bad_source_without_workbook_option(tmp_path):
    src, path = make(tmp_path, "office_province")
    bare = Source(id="ircc-odp-bare", title="t", publisher="IRCC", url="u", parser="ircc_odp_xlsx",
                  series="ircc_claimants_office_province", licenses=("x",))
    _raises(bare, path, "options.workbook")


def test_grand_totals_agree_across_workbooks_of_one_release(parsed):
    """Every workbook of a release prints the same national monthly and yearly totals."""
    for vintage in ("2024-02", "2025-07"):
        by_file = {}
        for sid in IDS:
            if not sid.endswith(vintage) or "secondary" in sid:
                continue
            grand = {}
            for t in parsed(sid).totals:
                scope = {k: v for k, v in t.scope.items()
                         if k not in ("ranking", "breakdown", "ranking_period")}
                if t.label.startswith("Total / ") and list(scope) in (["month"], ["year"]):
                    grand[scope.get("month") or scope["year"]] = t.value.value
            by_file[sid] = grand
        first = next(iter(by_file.values()))
        assert len(first) == {"2024-02": 110 + 10, "2025-07": 127 + 11}[vintage]
        assert all(g == first for g in by_file.values()), vintage
