"""UNHCR asylum applications/decisions (.rda from UNHCR's refugees R package).

Real-file tests cover every mirrored file; small .rda fixtures are generated in the test
with pyreadr.write_rdata (uncompressed or gzip: the parser accepts every RData container).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pandas as pd
import pyreadr
import pytest
import yaml

from canada_asylum_data.cells import Count
from canada_asylum_data.countries import all_countries
from canada_asylum_data.errors import ParseError
from canada_asylum_data.parsers import unhcr_rda
from canada_asylum_data.countries import CountryResolver
from canada_asylum_data.normalize import resolve_countries
from canada_asylum_data.parsers.unhcr_rda import CODE_LISTS, code_rows, primary_key
from canada_asylum_data.schemas import load_schemas
from canada_asylum_data.parsers.unhcr_rda import parse as parse_raw
from canada_asylum_data.sources import Source

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "datapackage" / "schemas"

APPS = "unhcr_asylum_applications"
DECS = "unhcr_asylum_decisions"
IDS = {
    ("applications", "2025.12.0"): "unhcr-asylum-applications-2025.12.0",
    ("applications", "2025.12.1"): "unhcr-asylum-applications-2025.12.1",
    ("decisions", "2025.12.0"): "unhcr-asylum-decisions-2025.12.0",
    ("decisions", "2025.12.1"): "unhcr-asylum-decisions-2025.12.1",
}
#: Rows kept (coa_iso CAN or coo_iso USA), counted with pandas over the real files.
ROW_COUNTS = {
    "unhcr-asylum-applications-2025.12.0": 5657,
    "unhcr-asylum-applications-2025.12.1": 5685,
    "unhcr-asylum-decisions-2025.12.0": 5489,
    "unhcr-asylum-decisions-2025.12.1": 5445,
}
#: The five earlier releases (2026-11-27): vintage -> (kind, last year is a first half).
EARLIER = {"2023.6.0": True, "2023.12.0": False, "2024.6.0": True, "2024.12.0": False,
           "2025.6.1": True}
ALL_IDS = set(ROW_COUNTS) | {f"unhcr-asylum-{kind}-{v}" for v in EARLIER
                             for kind in ("applications", "decisions")}
KNOWN_CODES = {c.code for c in all_countries()}
RESOLVER = CountryResolver(ROOT / "datapackage" / "aliases")
COUNTRY_COLUMNS = {name: s.country_columns for name, s in load_schemas(ROOT / "datapackage" / "schemas").items()}


def parse(path, source):
    """Parse, then resolve UNHCR's country codes as the normalize stage does."""
    result = parse_raw(path, source)
    for table, rows_ in result.tables.items():
        for row in rows_:
            resolve_countries(row, source, RESOLVER, COUNTRY_COLUMNS[table])
    return result
#: Columns the normalize stage adds to every row.
ADDED = {"suppressed_measures", "source_id", "vintage", "notes"}


@pytest.fixture(scope="module")
def parsed(real_file):
    cache: dict[str, object] = {}

    def get(source_id: str):
        if source_id not in cache:
            source, path = real_file(source_id)
            cache[source_id] = parse(path, source)
        return cache[source_id]

    return get


def rows(parsed, source_id):
    result = parsed(source_id)
    table = APPS if "applications" in source_id else DECS
    return result.tables[table]


def value(row, measure):
    count = row[measure]
    assert isinstance(count, Count)
    return count.value


def us_to_can(rs):
    return [r for r in rs if r["origin_code"] == "USA" and r["asylum_code"] == "CAN"]


def by_key(rs, **match):
    out = [r for r in rs if all(r[k] == v for k, v in match.items())]
    return out


# --- real files: shape, keys, codes -----------------------------------------------------


@pytest.mark.parametrize("source_id", sorted(ROW_COUNTS))
def test_real_file_rows_keys_and_codes(parsed, sources, source_id):
    result = parsed(source_id)
    table = APPS if "applications" in source_id else DECS
    assert set(result.tables) == {table}
    rs = result.tables[table]
    assert len(rs) == ROW_COUNTS[source_id]
    assert result.totals == []  # UNHCR prints no totals
    assert result.file_facts == {"vintage": sources[source_id].vintage}
    # only rows about Canada (asylum) or the US (origin); both groups present
    assert all(r["asylum_code"] == "CAN" or r["origin_code"] == "USA" for r in rs)
    assert any(r["asylum_code"] != "CAN" for r in rs)
    assert any(r["origin_code"] != "USA" for r in rs)
    assert {r["year"] for r in rs} == set(range(2000, 2026))
    # every origin/asylum code is a known country code (ISO or documented X-code)
    assert {r["origin_code"] for r in rs} | {r["asylum_code"] for r in rs} <= KNOWN_CODES
    # primary key unique
    pk = primary_key(table)
    keys = Counter(tuple(r[k] for k in pk) for r in rs)
    assert keys.most_common(1)[0][1] == 1
    # codes are all in the published code lists; counts are readable integers
    for r in rs:
        for column in ("procedure_type", "app_type", "dec_level", "app_pc", "dec_pc"):
            if column in r:
                assert r[column] in CODE_LISTS[column], (column, r[column])
        for measure in (("applied",) if table == APPS else
                        ("recognized", "complementary_protection", "rejected",
                         "otherwise_closed", "total_decisions")):
            assert value(r, measure) is not None and value(r, measure) >= 0
        assert r["source_locator"].startswith(unhcr_rda.LAYOUTS[table]["object"] + " row ")
    # the schema lists exactly the columns produced (plus those normalize adds)
    schema = yaml.safe_load((SCHEMAS / f"{table}.yaml").read_text(encoding="utf-8"))
    names = [f.get("name") or f.get("use") for f in schema["fields"]]
    assert set(names) == set(rs[0]) | ADDED
    assert tuple(schema["primary_key"]) == pk


def test_non_iso_unhcr_codes_resolve(parsed):
    rs = rows(parsed, "unhcr-asylum-applications-2025.12.1")
    labels = {(r["origin_code"], r["origin_label"]) for r in rs}
    assert ("XXX", "Unknown") in labels  # UNHCR coo_iso UNK
    assert ("XXA", "Stateless") in labels
    assert ("SRB", "Serbia and Kosovo: S/RES/1244 (1999)") in labels
    assert ("PSE", "Palestinian") in labels


def test_source_locator_points_at_the_row(real_file, parsed):
    source, path = real_file("unhcr-asylum-applications-2025.12.1")
    frame = pyreadr.read_r(str(path))["asylum_applications"]
    for r in us_to_can(rows(parsed, source.id))[:10]:
        pos = int(r["source_locator"].rsplit(" ", 1)[1]) - 1
        raw = frame.iloc[pos]
        assert (raw["year"], raw["coo_iso"], raw["coa_iso"], raw["app_type"], raw["dec_level"],
                raw["applied"]) == (r["year"], "USA", "CAN", r["app_type"], r["dec_level"],
                                    value(r, "applied"))


# --- real files: the USA -> Canada numbers of SOURCES.md -------------------------------

NEW_APPLICATIONS = {2015: 147, 2016: 128, 2017: 2097, 2018: 1311, 2019: 1076, 2020: 345,
                    2021: 214, 2022: 1133, 2023: 707, 2024: 721, 2025: 1927}
FI_TOTAL = {2017: 436, 2018: 870, 2019: 1292, 2020: 639, 2021: 1107, 2022: 683, 2023: 547,
            2024: 509, 2025: 289}
FI_RECOGNIZED = {2017: 5, 2018: 19, 2019: 29, 2020: 0, 2021: 30, 2022: 13, 2023: 17, 2024: 5,
                 2025: 5}


def test_us_to_canada_new_applications(parsed):
    rs = us_to_can(rows(parsed, "unhcr-asylum-applications-2025.12.1"))
    got = {r["year"]: value(r, "applied") for r in rs
           if r["app_type"] == "N" and r["dec_level"] == "FI" and r["app_pc"] == "P"
           and 2015 <= r["year"]}
    assert got == NEW_APPLICATIONS


def test_us_to_canada_pre_2006_v_rows_and_2007_fa_kept(parsed):
    rs = us_to_can(rows(parsed, "unhcr-asylum-applications-2025.12.1"))
    v_rows = {r["year"]: value(r, "applied") for r in rs if r["app_type"] == "V"}
    # read from the .rda: 2000-2005 are coded app_type V, dec_level FI
    assert v_rows == {2000: 98, 2001: 92, 2002: 213, 2003: 317, 2004: 240, 2005: 228}
    assert not any(r["app_type"] == "N" for r in rs if r["year"] < 2006)
    (fa,) = by_key(rs, year=2007)
    assert (fa["app_type"], fa["dec_level"], value(fa, "applied")) == ("N", "FA", 949)
    (appeal,) = by_key(rs, year=2025, app_type="A")
    assert (appeal["dec_level"], value(appeal, "applied")) == ("AR", 67)


def test_us_to_canada_first_level_decisions(parsed):
    rs = us_to_can(rows(parsed, "unhcr-asylum-decisions-2025.12.1"))
    fi = {r["year"]: r for r in rs if r["dec_level"] == "FI" and 2017 <= r["year"]}
    assert {y: value(r, "total_decisions") for y, r in fi.items()} == FI_TOTAL
    assert {y: value(r, "recognized") for y, r in fi.items()} == FI_RECOGNIZED
    assert all(r["procedure_type"] == "G" and r["dec_pc"] == "P" for r in fi.values())


def test_decision_components_kept_as_published(parsed):
    """Reconciliation: UNHCR prints no totals, but dec_total is a within-row total. It is
    kept as published where the components do not add up (2020 FI: 612 vs 639), and the
    row says so in its notes."""
    rs = us_to_can(rows(parsed, "unhcr-asylum-decisions-2025.12.1"))
    (r2020,) = by_key(rs, year=2020, dec_level="FI")
    parts = [value(r2020, m) for m in unhcr_rda.DECISION_PARTS]
    assert parts == [0, 0, 550, 62] and sum(parts) == 612
    assert value(r2020, "total_decisions") == 639
    assert r2020["notes"] == ("as published by UNHCR, recognized + complementary_protection + "
                              "rejected + otherwise_closed = 612, not total_decisions 639")
    # every other row adds up; the mismatches (read with pandas) are Canada 2020 and one
    # USA -> Switzerland 2012 row (components 0, total 5)
    odd = Counter()
    for r in rows(parsed, "unhcr-asylum-decisions-2025.12.1"):
        adds_up = sum(value(r, m) for m in unhcr_rda.DECISION_PARTS) == value(r, "total_decisions")
        assert adds_up == ("notes" not in r), r["source_locator"]
        if not adds_up:
            odd[(r["year"], r["asylum_code"])] += 1
    assert odd == {(2020, "CAN"): 125, (2012, "CHE"): 1}


def test_small_cells_are_five(parsed):
    """No count from 1 to 4 appears anywhere: small numbers are published as 5."""
    for source_id in ("unhcr-asylum-applications-2025.12.1", "unhcr-asylum-decisions-2025.12.1"):
        values = Counter(c.value for r in rows(parsed, source_id) for c in r.values()
                         if isinstance(c, Count))
        assert not any(values[n] for n in (1, 2, 3, 4))
        assert values[5] > 3 * max(values[n] for n in range(6, 12))


# --- vintages --------------------------------------------------------------------------


def _index(rs, table):
    pk = primary_key(table)
    return {tuple(r[k] for k in pk): r for r in rs}


def _measures(r):
    return {k: v.value for k, v in r.items() if isinstance(v, Count)}


@pytest.mark.parametrize("kind", ["applications", "decisions"])
def test_vintages_differ_only_in_2025(parsed, kind):
    table = APPS if kind == "applications" else DECS
    old = _index(rows(parsed, IDS[(kind, "2025.12.0")]), table)
    new = _index(rows(parsed, IDS[(kind, "2025.12.1")]), table)
    changed = {k for k in old.keys() | new.keys()
               if k not in old or k not in new or _measures(old[k]) != _measures(new[k])}
    assert changed and {k[0] for k in changed} == {2025}
    # every earlier row identical, labels included (source_locator may move)
    for k in old.keys() & new.keys():
        if k[0] < 2025:
            a = {c: v for c, v in old[k].items() if c != "source_locator"}
            b = {c: v for c, v in new[k].items() if c != "source_locator"}
            assert a == b


def test_revisions_named_in_sources_md(parsed):
    def us_2025(source_id, **match):
        (r,) = by_key(us_to_can(rows(parsed, source_id)), year=2025, **match)
        return r

    a0, a1 = IDS[("applications", "2025.12.0")], IDS[("applications", "2025.12.1")]
    assert value(us_2025(a0, app_type="N"), "applied") == 1916
    assert value(us_2025(a1, app_type="N"), "applied") == 1927
    assert value(us_2025(a0, app_type="A"), "applied") == 85
    assert value(us_2025(a1, app_type="A"), "applied") == 67

    def canada_new(source_id):
        return sum(value(r, "applied") for r in rows(parsed, source_id)
                   if r["asylum_code"] == "CAN" and r["year"] == 2025 and r["app_type"] == "N")

    assert canada_new(a0) == 115838
    assert canada_new(a1) == 117354
    d0, d1 = IDS[("decisions", "2025.12.0")], IDS[("decisions", "2025.12.1")]
    fi0, fi1 = us_2025(d0, dec_level="FI"), us_2025(d1, dec_level="FI")
    assert (value(fi0, "recognized"), value(fi0, "total_decisions")) == (1455, 1583)
    assert (value(fi1, "recognized"), value(fi1, "total_decisions")) == (5, 289)


# --- mid-year releases: the first half of their last year -------------------------------

#: SOURCES.md ("Added 2026-11-27"): USA -> Canada new applications in the first half, and
#: Canada all-origin new applications in the first half, per mid-year release.
FIRST_HALVES = {"2023.6.0": (2023, 342, 58541), "2024.6.0": (2024, 279, 92675),
                "2025.6.1": (2025, 755, 58360)}


@pytest.mark.parametrize("release", sorted(FIRST_HALVES))
def test_mid_year_release_first_half_goes_to_h1(parsed, release):
    year, usa, canada = FIRST_HALVES[release]
    result = parsed(f"unhcr-asylum-applications-{release}")
    assert set(result.tables) == {APPS, APPS + "_h1"}
    h1 = result.tables[APPS + "_h1"]
    # the release's last year, and only it, is a first half; never in the yearly table
    assert {r["year"] for r in h1} == {year}
    assert {r["year"] for r in result.tables[APPS]} == set(range(2000, year))
    assert {(r["half"], r["period_start"], r["period_end"]) for r in h1} == {
        ("H1", f"{year}-01-01", f"{year}-06-30")}
    us_new = [r for r in us_to_can(h1) if r["app_type"] == "N"]
    assert sum(value(r, "applied") for r in us_new) == usa
    assert sum(value(r, "applied") for r in h1
               if r["asylum_code"] == "CAN" and r["app_type"] == "N") == canada
    pk = primary_key(APPS + "_h1")
    assert Counter(tuple(r[k] for k in pk) for r in h1).most_common(1)[0][1] == 1
    decisions = parsed(f"unhcr-asylum-decisions-{release}")
    assert {r["year"] for r in decisions.tables[DECS + "_h1"]} == {year}
    assert max(r["year"] for r in decisions.tables[DECS]) == year - 1


@pytest.mark.parametrize("release,full_years", [("2023.12.0", {2022: 1133, 2023: 707}),
                                                ("2024.12.0", {2023: 707, 2024: 721})])
def test_year_end_releases_are_full_years_only(parsed, release, full_years):
    result = parsed(f"unhcr-asylum-applications-{release}")
    assert set(result.tables) == {APPS}
    for year, expected in full_years.items():
        assert sum(value(r, "applied") for r in us_to_can(result.tables[APPS])
                   if r["year"] == year and r["app_type"] == "N") == expected


def test_h1_schemas_are_the_yearly_columns_plus_the_half(parsed):
    schemas = load_schemas(SCHEMAS)
    for table in (APPS, DECS):
        year, h1 = schemas[table], schemas[table + "_h1"]
        assert h1.field_names == ["year", "half", "period_start", "period_end"] + \
            year.field_names[1:]
        assert h1.primary_key == ["year", "half"] + year.primary_key[1:]
        for f in h1.fields:
            assert f.get("description") and f.get("missing"), f["name"]
        assert "first half" in h1.doc["description"] and "revision" in h1.doc["caveats"]
        rows_ = parsed(f"unhcr-asylum-{table.split('_')[-1]}-2025.6.1").tables[table + "_h1"]
        produced = set(rows_[0]) | ADDED
        assert set(h1.field_names) <= produced | {"notes"}


def test_first_half_option_checks_the_file(tmp_path, real_file):
    """A record that says mid-year for a year-end file is an error, not a silent mix-up."""
    source, path = real_file("unhcr-asylum-applications-2024.12.0")
    wrong = Source(**{**{k: getattr(source, k) for k in source.__dataclass_fields__
                         if k != "options"}, "vintage": "2025.6.0"},
                   options={**source.options, "last_year": "first_half"})
    with pytest.raises(ParseError, match="not the release year 2025"):
        parse_raw(path, wrong)


# --- sources.d and code lists ----------------------------------------------------------


def test_sources_fragment_matches_mirror(sources, mirror):
    ours = {k: s for k, s in sources.items() if k.startswith("unhcr-") and not s.live}
    assert set(ours) == ALL_IDS and len(ours) == 14
    for s in ours.values():
        data = (mirror / s.mirror_path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == s.sha256
        assert len(data) == s.bytes
        assert s.parser == "unhcr_rda"
        assert s.options["vintage_of"] == s.series
        assert s.vintage in s.id and s.vintage in s.mirror_path
        # url and archive_url both return the .rda at the release's commit (not a page)
        commit = s.archive_url.split("/")[5]
        assert len(commit) == 40
        obj = s.series.removeprefix("unhcr_")
        assert s.archive_url == (f"https://raw.githubusercontent.com/PopulationStatistics/"
                                 f"refugees/{commit}/data/{obj}.rda")
        assert s.url == (f"https://github.com/PopulationStatistics/refugees/raw/{commit}/data/"
                         f"{obj}.rda")
        assert s.kind == "snapshot"
        mid = s.vintage.split(".")[1] == "6"
        assert (s.options.get("last_year") == "first_half") == mid
        assert s.period_end == f"{s.vintage[:4]}-{'06-30' if mid else '12-31'}"
        assert s.licenses[0]["name"] == "CC-BY-4.0"


def test_code_lists():
    table = code_rows()
    assert Counter((r["code_list"], r["code"]) for r in table).most_common(1)[0][1] == 1
    assert set(CODE_LISTS) == {"procedure_type", "app_type", "dec_level", "app_pc", "dec_pc"}
    documented = {("procedure_type", "G"): "Government", ("procedure_type", "J"): "Joint",
                  ("procedure_type", "U"): "UNHCR", ("app_type", "N"): "New",
                  ("app_type", "R"): "Repeat", ("app_type", "A"): "Appeal",
                  ("dec_level", "NA"): "New applications",
                  ("dec_level", "RA"): "Repeat/reopened applications",
                  ("dec_level", "AR"): "Administrative review",
                  ("app_pc", "P"): "Persons", ("app_pc", "C"): "Cases",
                  ("dec_pc", "P"): "Persons", ("dec_pc", "C"): "Cases"}
    for r in table:
        key = (r["code_list"], r["code"])
        assert set(r) == {"code_list", "code", "label_en", "label_fr", "description"}
        if key in documented:
            assert r["label_en"] == documented[key] and r["label_fr"]
            assert "refugees" in r["description"]
        else:
            assert r["label_en"] == r["label_fr"] == ""
            assert r["description"].startswith("Meaning not documented by UNHCR")
    schema = yaml.safe_load((SCHEMAS / "unhcr_codes.yaml").read_text(encoding="utf-8"))
    assert [f["name"] for f in schema["fields"]] == list(table[0])
    assert set(schema["fields"][0]["constraints"]["enum"]) == set(CODE_LISTS)


# --- small generated fixtures ----------------------------------------------------------

APP_COLUMNS = unhcr_rda.LAYOUTS[APPS]["columns"]
DEC_COLUMNS = unhcr_rda.LAYOUTS[DECS]["columns"]


def app_row(**over):
    row = {"year": 2020.0, "coo_name": "United States of America", "coo": "USA",
           "coo_iso": "USA", "coa_name": "Canada", "coa": "CAN", "coa_iso": "CAN",
           "procedure_type": "G", "app_type": "N", "dec_level": "FI", "app_pc": "P",
           "applied": 345.0}
    row.update(over)
    return row


def fake_source(series=APPS, sid="unhcr-test-fixture", **options):
    return Source(id=sid, title="fixture", publisher="UNHCR", url="https://example.org",
                  parser="unhcr_rda", series=series, licenses=("CC-BY-4.0",),
                  vintage="2099.1.0", mirror_path="unhcr/fixture.rda", options=options)


def write_rda(path: Path, frame: pd.DataFrame, name="asylum_applications", compress=None):
    pyreadr.write_rdata(str(path), frame, df_name=name, compress=compress)
    return path


def expect_error(path, source, *fragments):
    with pytest.raises(ParseError) as err:
        parse(path, source)
    message = str(err.value)
    assert source.id in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_fixture_parses_and_filters(tmp_path):
    frame = pd.DataFrame([
        app_row(),
        app_row(coo_name="Tibetan", coo="TIB", coo_iso="TIB", applied=5.0),
        app_row(coo_name="Unknown", coo="UKN", coo_iso="UNK", app_type="NA", dec_level="NA"),
        app_row(coa_name="France", coa="FRA", coa_iso="FRA", app_type="V", applied=7.0),
        app_row(coo_name="Haiti", coo="HAI", coo_iso="HTI", coa_name="France", coa="FRA",
                coa_iso="FRA"),  # neither Canada nor the US: dropped
    ], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "ok.rda", frame, compress="gzip")
    result = parse(path, fake_source())
    out = result.tables[APPS]
    assert [(r["origin_code"], r["asylum_code"], r["source_locator"]) for r in out] == [
        ("USA", "CAN", "asylum_applications row 1"),
        ("XTI", "CAN", "asylum_applications row 2"),
        ("XXX", "CAN", "asylum_applications row 3"),
        ("USA", "FRA", "asylum_applications row 4"),
    ]
    assert out[2]["app_type"] == "NA" and out[2]["dec_level"] == "NA"  # a code, not missing
    assert out[0]["applied"] == Count(345) and out[0]["year"] == 2020
    assert result.file_facts == {"vintage": "2099.1.0"}


def test_fixture_uncompressed_decisions(tmp_path):
    frame = pd.DataFrame([{
        "year": 2020.0, "coo_name": "United States of America", "coo": "USA", "coo_iso": "USA",
        "coa_name": "Canada", "coa": "CAN", "coa_iso": "CAN", "procedure_type": "G",
        "dec_level": "FI", "dec_pc": "P", "dec_recognized": 0.0, "dec_other": 0.0,
        "dec_rejected": 550.0, "dec_closed": 62.0, "dec_total": 639.0}], columns=DEC_COLUMNS)
    path = write_rda(tmp_path / "dec.rda", frame, name="asylum_decisions")
    (row,) = parse(path, fake_source(DECS)).tables[DECS]
    assert [row[m].value for m in ("recognized", "complementary_protection", "rejected",
                                   "otherwise_closed", "total_decisions")] == [0, 0, 550, 62, 639]
    assert "app_type" not in row


def test_not_an_r_file(tmp_path):
    path = tmp_path / "x.rda"
    path.write_text("year,coo_iso\n2020,USA\n", encoding="utf-8")
    expect_error(path, fake_source(), "x.rda", "not an R data file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.rda"
    path.write_bytes(b"")
    expect_error(path, fake_source(), "empty")


def test_truncated_bz2(tmp_path, real_file):
    _, real = real_file("unhcr-asylum-applications-2025.12.1")
    data = real.read_bytes()
    path = tmp_path / "cut.rda"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, fake_source(), "cut.rda", "bzip2 stream is truncated")


def test_damaged_gzip(tmp_path):
    good = write_rda(tmp_path / "g.rda", pd.DataFrame([app_row()], columns=APP_COLUMNS),
                     compress="gzip")
    data = good.read_bytes()
    path = tmp_path / "bad.rda"
    path.write_bytes(data[:20])
    expect_error(path, fake_source(), "bad.rda", "gzip stream")


def test_missing_renamed_column(tmp_path):
    frame = pd.DataFrame([app_row()], columns=APP_COLUMNS).rename(columns={"app_pc": "app_pc_"})
    path = write_rda(tmp_path / "renamed.rda", frame)
    expect_error(path, fake_source(), "renamed.rda", "'asylum_applications' header",
                 "missing column(s) app_pc", "unexpected column(s) app_pc_")


def test_extra_column(tmp_path):
    frame = pd.DataFrame([app_row()], columns=APP_COLUMNS).assign(app_note="x")
    path = write_rda(tmp_path / "extra.rda", frame)
    expect_error(path, fake_source(), "unexpected column(s) app_note")


def test_wrong_data_frame_name(tmp_path):
    frame = pd.DataFrame([app_row()], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "named.rda", frame, name="asylum_decisions")
    expect_error(path, fake_source(), "named.rda", "no data.frame named 'asylum_applications'",
                 "found 'asylum_decisions'")


def test_applications_file_given_for_decisions(tmp_path, real_file):
    _, real = real_file("unhcr-asylum-applications-2025.12.1")
    expect_error(real, fake_source(DECS), "no data.frame named 'asylum_decisions'")


def test_unknown_code_is_an_error(tmp_path):
    frame = pd.DataFrame([app_row(), app_row(year=2021.0, dec_level="ZZ")], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "code.rda", frame)
    expect_error(path, fake_source(), "asylum_applications row 2 column dec_level",
                 "unknown dec_level code 'ZZ'")


def test_missing_code_is_an_error(tmp_path):
    frame = pd.DataFrame([app_row(app_pc=None)], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "nocode.rda", frame)
    expect_error(path, fake_source(), "row 1 column app_pc", "unknown app_pc code")


def test_unresolvable_country_is_an_error(tmp_path):
    frame = pd.DataFrame([app_row(coo_name="Atlantis", coo="ATL", coo_iso="QQQ")],
                         columns=APP_COLUMNS)
    path = write_rda(tmp_path / "country.rda", frame)
    expect_error(path, fake_source(), "asylum_applications row 1", "'Atlantis' (code 'QQQ')",
                 "aliases/unhcr.yml")


def test_duplicate_key_is_an_error(tmp_path):
    frame = pd.DataFrame([app_row(), app_row(applied=1.0)], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "dup.rda", frame)
    expect_error(path, fake_source(), "asylum_applications row 2", "duplicate key",
                 "also at asylum_applications row 1")


def test_fractional_year_and_text_count(tmp_path):
    frame = pd.DataFrame([app_row(year=2020.5)], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "year.rda", frame)
    expect_error(path, fake_source(), "row 1 column year", "not a whole number")
    # a count that is not a number becomes an empty cell with a note, not an error
    frame = pd.DataFrame([app_row(applied=float("nan"))], columns=APP_COLUMNS)
    (row,) = parse(write_rda(tmp_path / "nan.rda", frame), fake_source()).tables[APPS]
    assert row["applied"].value is None and row["applied"].marker == ""


def test_no_kept_rows_is_an_error(tmp_path):
    frame = pd.DataFrame([app_row(coo_iso="HTI", coo="HAI", coo_name="Haiti", coa_iso="FRA")],
                         columns=APP_COLUMNS)
    path = write_rda(tmp_path / "none.rda", frame)
    expect_error(path, fake_source(), "no rows with coa_iso CAN or coo_iso USA")


def test_unknown_series(tmp_path):
    frame = pd.DataFrame([app_row()], columns=APP_COLUMNS)
    path = write_rda(tmp_path / "s.rda", frame)
    expect_error(path, fake_source("unhcr_population"), "does not know series")
