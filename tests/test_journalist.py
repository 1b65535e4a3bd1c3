"""The journalist's desk: views and canned queries return the numbers the underlying
tables give (recomputed here from the CSV files, independently of the SQL), suppression
bounds are right, and every table, view and canned query is described."""

from __future__ import annotations

import asyncio
import csv
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from urllib.parse import quote

from canada_asylum_data.schemas import load_schemas

from .conftest import DATAPACKAGE, copy_project, run

DB = "canada_asylum"
FACT_PREFIXES = ("irb_", "rcmp_", "cbsa_", "ircc_", "unhcr_asylum")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("journalist"))
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    result = run(root, "metadata")
    assert result.exit_code == 0, result.output
    return root


def get(root: Path, path: str):
    from datasette.app import Datasette

    metadata = yaml.safe_load((root / "metadata.yml").read_text())
    ds = Datasette(immutables=[str(root / "build" / f"{DB}.db")], metadata=metadata,
                   settings={"sql_time_limit_ms": 5000, "max_returned_rows": 10000})

    async def go():
        response = await ds.client.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        return response.json()

    return asyncio.run(go())


def rows_of(table: str) -> list[dict]:
    with open(DATAPACKAGE / "data" / f"{table}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def pct(got, num_, den) -> bool:
    """SQLite rounds halves away from zero, Python to even: compare within 0.05."""
    return got is not None and abs(got - 100.0 * num_ / den) <= 0.0500001


def num(value):
    return int(value) if value not in (None, "", "--") and value.lstrip("-").isdigit() else None


def bounds(row: dict, measure: str, others: list[str]) -> tuple[int, int | None, str]:
    """Independent implementation of the documented bounds rule."""
    value, fin = num(row[measure]), num(row["finalized"])
    known = [num(row[o]) for o in others]
    if value is not None:
        return value, value, "published"
    if fin is not None and all(k is not None for k in known):
        return fin - sum(known), fin - sum(known), "derived_exact"
    if fin is not None:
        return 0, fin - sum(k or 0 for k in known), "bounded_by_finalized"
    return 0, None, "unbounded"


OUTCOMES = ["accepted", "rejected", "abandoned", "withdrawn_other"]


def test_acceptance_rate_view_bounds_match_independent_computation(site):
    got = get(site, f"/{DB}/irb_rpd_acceptance_rates.json?_shape=array&_size=max")
    assert len(got) == len(rows_of("irb_rpd_claims"))
    by_key = {(r["year"], r["country_label"]): r for r in got}
    suppressed_seen = 0
    for row in rows_of("irb_rpd_claims"):
        v = by_key[(int(row["year"]), row["country_label"])]
        lo, hi, how = bounds(row, "accepted", [o for o in OUTCOMES if o != "accepted"])
        assert (v["accepted_low"], v["accepted_high"], v["accepted_bounds_method"]) == (lo, hi, how), row
        rlo, rhi, rhow = bounds(row, "rejected", [o for o in OUTCOMES if o != "rejected"])
        assert (v["rejected_low"], v["rejected_high"], v["rejected_bounds_method"]) == (rlo, rhi, rhow)
        if how != "published":
            suppressed_seen += 1
            assert v["accepted"] is None
            if hi is not None:
                assert 0 <= lo <= hi <= num(row["finalized"])
        fin = num(row["finalized"])
        if fin and hi is not None:
            assert pct(v["acceptance_rate_finalized_low_pct"], lo, fin)
            assert pct(v["acceptance_rate_finalized_high_pct"], hi, fin)
        if lo == hi and rlo == rhi and lo + rlo:
            assert pct(v["acceptance_rate_decided_pct"], lo, lo + rlo)
    assert suppressed_seen > 100


def test_us_claims_by_year_matches_the_tables(site):
    got = {r["year"]: r for r in get(site, f"/{DB}/us_claims_by_year.json?_shape=array")}
    rpd = {int(r["year"]): r for r in rows_of("irb_rpd_claims") if r["country_code"] == "USA"}
    rad = {int(r["year"]): r for r in rows_of("irb_rad_appeals") if r["country_code"] == "USA"}
    irregular = {int(r["period_end"][:4]) for r in rows_of("irb_irregular_crosser_claims")
                 if r["country_code"] == "USA"}
    unhcr_years = {int(r["year"]) for t in ("unhcr_asylum_applications", "unhcr_asylum_decisions")
                   for r in rows_of(t) if r["origin_code"] == "USA" and r["asylum_code"] == "CAN"}
    first = min(set(rpd) | set(rad))
    # every year any source has, from the first IRB year: never cut where one source ends
    assert sorted(got) == sorted(y for y in set(rpd) | set(rad) | irregular | unhcr_years
                                 if y >= first)
    assert min(got) == 2013 and max(got) == max(unhcr_years) == 2025 > max(rpd)
    assert got[2025]["unhcr_applied_new"] == 1927 and got[2024]["unhcr_applied_new"] == 721
    assert got[2025]["rpd_referred"] is None and got[2025]["rad_filed"] is None
    apps, dec = defaultdict(int), defaultdict(int)
    for r in rows_of("unhcr_asylum_applications"):
        if r["origin_code"] == "USA" and r["asylum_code"] == "CAN" and r["app_pc"] == "P" and r["app_type"] == "N":
            apps[int(r["year"])] += num(r["applied"]) or 0
    for r in rows_of("unhcr_asylum_decisions"):
        if (r["origin_code"], r["asylum_code"], r["dec_pc"], r["dec_level"]) == ("USA", "CAN", "P", "FI"):
            dec[int(r["year"])] += num(r["recognized"]) or 0
    for year, v in got.items():
        if year not in rpd:
            assert all(v[c] is None for c in v if c.startswith("rpd_")), year
            continue
        r = rpd[year]
        for m in ("referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"):
            assert v[f"rpd_{m}"] == num(r[m]), (year, m)
        lo, hi, how = bounds(r, "accepted", OUTCOMES[1:])
        assert (v["rpd_accepted_low"], v["rpd_accepted_high"], v["rpd_accepted_bounds_method"]) == (lo, hi, how)
        if year in rad:
            assert v["rad_filed"] == num(rad[year]["filed"])
        assert v["unhcr_applied_new"] == (apps[year] if year in apps else None)
        assert v["unhcr_recognized_first_instance"] == (dec[year] if year in dec else None)
    # 2017: only accepted suppressed, so it is derived exactly from the published total
    r17 = rpd[2017]
    if got[2017]["rpd_accepted_bounds_method"] == "derived_exact":
        assert got[2017]["rpd_accepted_low"] == num(r17["finalized"]) - sum(num(r17[o]) for o in OUTCOMES[1:])


def test_us_claims_by_half_year(site):
    got = {(r["year"], r["half"]): r for r in get(site, f"/{DB}/us_claims_by_half_year.json?_shape=array")}
    h1, year = defaultdict(int), defaultdict(int)
    for table, into in (("unhcr_asylum_applications_h1", h1), ("unhcr_asylum_applications", year)):
        for r in rows_of(table):
            if (r["origin_code"], r["asylum_code"], r["app_pc"], r["app_type"]) == ("USA", "CAN", "P", "N"):
                into[int(r["year"])] += num(r["applied"])
    assert sorted(got) == sorted((y, h) for y in h1 for h in ("H1", "H2"))
    for y in h1:
        first, second = got[(y, "H1")], got[(y, "H2")]
        assert (first["unhcr_applied_new"], first["figure_basis"]) == (h1[y], "published")
        assert (second["unhcr_applied_new"], second["figure_basis"]) == (year[y] - h1[y], "derived")
        assert first["releases"] == f"{y}.6.{1 if y == 2025 else 0}"
        assert second["releases"] == f"2025.12.1 minus {first['releases']}"
        assert (first["period_start"], second["period_end"]) == (f"{y}-01-01", f"{y}-12-31")
    # SOURCES.md: first halves 342, 279, 755; second halves 365, 442, 1,172
    assert [(got[(y, "H1")]["unhcr_applied_new"], got[(y, "H2")]["unhcr_applied_new"])
            for y in (2023, 2024, 2025)] == [(342, 365), (279, 442), (755, 1172)]


def test_us_charts_reach_the_latest_period(site):
    meta = yaml.safe_load((site / "metadata.yml").read_text())
    charts = meta["plugins"]["datasette-dashboards"]["journalist"]["charts"]
    years = {r["year"] for r in get(site, "/" + DB + ".json?_shape=array&sql="
                                    + quote(charts["us-claims"]["query"]))
             if r["persons"] is not None}
    assert max(years) == 2025 and min(years) == 2013
    halves = get(site, "/" + DB + ".json?_shape=array&sql=" + quote(charts["us-half-years"]["query"]))
    assert [(r["half_year"], r["persons"]) for r in halves if r["half_year"].startswith("2024")] \
        == [("2024 H1", 279), ("2024 H2", 442)]
    rule = charts["us-half-years"]["display"]["layer"][1]["data"]["values"]
    assert {"date": "2024-11-05", "event": "US presidential election"} in rule


def test_rcmp_monthly_view_and_phase(site):
    got = get(site, f"/{DB}/rcmp_interceptions_monthly.json?_shape=array&_size=max")
    totals = defaultdict(int)
    for r in rows_of("rcmp_interceptions"):
        totals[r["month"]] += num(r["interceptions"]) or 0
    assert {r["month"]: r["interceptions_canada"] for r in got} == dict(totals)
    phase = {r["month"]: r["agreement_phase"] for r in got}
    assert phase["2023-02"] == "stca_ports_of_entry_only"
    assert phase["2023-03"] == "protocol_month"
    assert phase["2023-04"] == "stca_additional_protocol"
    assert all(r["agreement_phase_fr"] for r in got)


def test_claims_by_office_bounds(site):
    got = get(site, f"/{DB}/claims_by_office_month.json?_shape=array&_size=max&month=2023-03")
    src = [r for r in rows_of("ircc_claimants_office_province") if r["month"] == "2023-03"]
    assert len(got) == len(src)
    for v in got:
        if v["claimants"] is None:
            assert (v["claimants_low"], v["claimants_high"], v["bounds_method"]) == (1, 4, "suppressed_1_to_4")
        else:
            assert (v["claimants_low"], v["claimants_high"]) == (max(v["claimants"] - 2, 0), v["claimants"] + 2)
        assert v["office_type_fr"] and v["province_name_fr"]


def test_top_countries_by_year(site):
    got = get(site, f"/{DB}/top_countries_by_year.json?_shape=array&year=2023")
    src = sorted((num(r["referred"]) for r in rows_of("irb_rpd_claims")
                  if r["year"] == "2023" and num(r["referred"]) is not None), reverse=True)
    assert [r["referred"] for r in got[:10]] == src[:10]
    assert got[0]["rank"] == 1 and all(r["country_name_fr"] for r in got)


def test_us_vs_all_uses_printed_totals(site):
    got = {r["year"]: r for r in get(site, f"/{DB}/irb_acceptance_us_vs_all.json?_shape=array")}
    printed = defaultdict(dict)
    for r in rows_of("published_totals"):
        if r["fact_table"] == "irb_rpd_claims" and r["label"] == "Total":
            printed[yaml.safe_load(r["scope"])["year"]][r["measure"]] = int(r["value"])
    us = {int(r["year"]) for r in rows_of("irb_rpd_claims") if r["country_code"] == "USA"}
    assert sorted(got) == sorted(set(printed) | us)  # years of either side
    for year, t in printed.items():
        assert pct(got[year]["all_rate_decided_pct"], t["accepted"], t["accepted"] + t["rejected"])
        assert pct(got[year]["all_rate_finalized_pct"], t["accepted"], t["finalized"])


def test_canned_queries_work_bare_and_match_the_tables(site):
    bare = get(site, f"/{DB}/country_claims_by_year.json?_shape=array")
    us = {int(r["year"]): r for r in rows_of("irb_rpd_claims") if r["country_code"] == "USA"}
    assert [r["year"] for r in bare] == sorted(us)
    assert all(r["referred"] == num(us[r["year"]]["referred"]) for r in bare)
    hti = get(site, f"/{DB}/country_claims_by_year.json?_shape=array&country=HTI&year_from=2020&year_to=2022")
    assert [r["year"] for r in hti] == [2020, 2021, 2022] and {r["country_code"] for r in hti} == {"HTI"}

    qc = get(site, f"/{DB}/interceptions_by_province.json?_shape=array")
    src = {r["month"]: num(r["interceptions"]) for r in rows_of("rcmp_interceptions") if r["province_code"] == "QC"}
    assert {r["month"]: r["interceptions"] for r in qc} == {m: v for m, v in src.items() if "2017-01" <= m <= "2023-12"}

    office = get(site, f"/{DB}/claims_by_office.json?_shape=array&province=ON&year_from=2022&year_to=2022")
    sums = defaultdict(int)
    for r in rows_of("ircc_claimants_office_province"):
        if r["province_code"] == "ON" and r["year"] == "2022":
            sums[r["office_type"]] += num(r["claimants"]) or 0
    assert {r["office_type"]: r["claimants_published_sum"] or 0 for r in office} == dict(sums)

    unhcr = get(site, f"/{DB}/unhcr_origin_in_canada.json?_shape=array")
    assert unhcr and all(2000 <= r["year"] <= 2025 for r in unhcr)
    for name in ("interceptions_by_phase", "events_between"):
        assert get(site, f"/{DB}/{name}.json?_shape=array"), name


def test_every_table_view_and_query_is_described(site):
    meta = yaml.safe_load((site / "metadata.yml").read_text())
    db = meta["databases"][DB]
    tables = [t for t in get(site, f"/{DB}.json")["tables"] if not t["hidden"]]  # FTS indexes are hidden
    views = [v["name"] for v in yaml.safe_load((DATAPACKAGE / "views.yml").read_text())["views"]]
    for name in [t["name"] for t in tables] + views:
        entry = db["tables"].get(name) or {}
        assert entry.get("title") and len(entry.get("description", "")) > 80, name
        assert "Facet counts are numbers of rows" in entry["description"], name
        assert "Cite this:" in entry["description"], name
    queries = yaml.safe_load((DATAPACKAGE / "queries.yml").read_text())["queries"]
    assert len(queries) >= 5
    for q in queries:
        assert db["queries"][q["name"]]["description"] and db["queries"][q["name"]]["title"]
    assert "datasette-dashboards" in meta["plugins"]


def test_cite_text_names_version_and_vintage(site):
    meta = yaml.safe_load((site / "metadata.yml").read_text())
    version = yaml.safe_load((DATAPACKAGE / "package.yaml").read_text())["version"]
    desc = meta["databases"][DB]["tables"]["irb_rpd_claims"]["description"]
    assert f"data version {version}" in desc and "vintage" in desc and "accessed" in desc


def test_definitions_cover_every_measure():
    defs = {(r["table_name"], r["measure"]) for r in rows_of("definitions")}
    schemas = load_schemas(DATAPACKAGE / "schemas")
    missing = []
    for name, schema in schemas.items():
        if not name.startswith(FACT_PREFIXES):
            continue
        for f in schema.fields:
            if f.get("type") == "integer" and f["name"] not in ("year", "quarter", "rank", "ranking_period"):
                if (name, f["name"]) not in defs:
                    missing.append(f"{name}.{f['name']}")
    assert not missing, missing
    for r in rows_of("definitions"):
        assert all(r[k] for k in ("unit", "counts", "publisher", "counted_when", "not_comparable_with"))


def test_bilingual_labels_and_french_titles():
    for table in ("countries", "provinces", "categories"):
        for r in rows_of(table):
            assert r["name_fr" if table != "categories" else "label_fr"], (table, r)
    for name, schema in load_schemas(DATAPACKAGE / "schemas").items():
        assert schema.doc.get("title_fr") and schema.doc.get("description_fr"), name


def test_events_are_dated_sourced_and_verified():
    events = rows_of("events")
    ids = {e["event_id"] for e in events}
    assert {"stca_in_force", "stca_additional_protocol", "scc_stca_2023"} <= ids
    protocol = next(e for e in events if e["event_id"] == "stca_additional_protocol")
    assert protocol["event_date"] == "2023-03-25"
    for e in events:
        assert e["source_url"].startswith("http") and e["verified"] and e["title_fr"]


def test_suppressed_rounded_revised_query(site):
    got = {r["table_name"]: r for r in get(site, f"/{DB}/suppressed_rounded_revised.json?_shape=array")}
    for table in ("irb_rpd_claims", "rcmp_interceptions", "ircc_claimants_office_province"):
        rows = rows_of(table)
        assert got[table]["rows_total"] == len(rows)
        assert got[table]["rows_with_suppressed_cells"] == sum(1 for r in rows if r["suppressed_measures"])
    revised = sum(1 for r in rows_of("revisions")
                  if r["table_name"] == "unhcr_asylum_decisions" and r["change"] == "changed")
    assert got["unhcr_asylum_decisions"]["values_revised_between_releases"] == revised
    one = get(site, f"/{DB}/suppressed_rounded_revised.json?_shape=array&table=rcmp_interceptions")
    assert [r["table_name"] for r in one] == ["rcmp_interceptions"]


def test_served_pages_say_where_series_end(site):
    """The built database and the generated metadata, served: the end-of-series sentence
    and the coverage link are on the page a reader opens."""
    from datasette.app import Datasette
    from canada_asylum_data.coverage_text import load_coverage, series_sentence

    coverage = load_coverage(site / "datapackage")
    metadata = yaml.safe_load((site / "metadata.yml").read_text())
    ds = Datasette(immutables=[str(site / "build" / f"{DB}.db")], metadata=metadata)

    async def page(path):
        response = await ds.client.get(path)
        assert response.status_code == 200, path
        return response.text

    for path, series in ((f"/{DB}/irb_rpd_claims", ["irb_rpd_claims"]),
                         (f"/{DB}/rcmp_interceptions", ["rcmp_interceptions"]),
                         (f"/{DB}/us_claims_by_year", ["irb_rpd_claims", "unhcr_asylum_applications"]),
                         (f"/{DB}/us_claims_by_half_year", ["unhcr_asylum_applications_h1"]),
                         (f"/{DB}/country_claims_by_year", ["irb_rpd_claims"])):
        text = asyncio.run(page(path))
        for s in series:
            assert series_sentence(s, coverage).replace("'", "&#x27;") in text, (path, s)
            assert f'href="/{DB}/coverage?series={s}"' in text, (path, s)
    assert "IRB figures run from 2013 to 2023; 2024-2025 not yet published here" in \
        asyncio.run(page(f"/{DB}/irb_rpd_claims"))
    rows = asyncio.run(page(f"/{DB}/coverage.json?series=irb_rpd_claims&_shape=array"))
    assert '"irb-rpd-2025"' in rows


def test_built_revisions_compare_like_periods_only(site):
    """On the built database: no first half is a revision of a year, no partial-period IRCC
    total is compared with a longer one, and the real revisions are there."""
    rows = get(site, f"/{DB}.json?_shape=array&sql=" + quote(
        "select table_name, row_key, measure, change, old_value, new_value, old_vintage, "
        "new_vintage from revisions where table_name like '%_h1' or old_vintage like '%.6.%' "
        "and json_extract(row_key, '$.year') = cast(substr(old_vintage, 1, 4) as integer) "
        "or (old_vintage = '2024-02-29' and change = 'changed' and ("
        "json_extract(row_key, '$.year') = 2024 and json_extract(row_key, '$.month') is null))"))
    assert rows == []
    kept = get(site, f"/{DB}.json?_shape=array&sql=" + quote(
        "select old_value, new_value from revisions where (table_name = "
        "'ircc_claimants_office_province' and row_key = '{\"published_total\": \"Total / 2023 "
        "Total\", \"year\": 2023}') or (table_name = 'unhcr_asylum_decisions' and measure = "
        "'recognized' and json_extract(row_key, '$.origin_code') = 'USA' and "
        "json_extract(row_key, '$.asylum_code') = 'CAN' and json_extract(row_key, '$.year') = "
        "2025 and json_extract(row_key, '$.dec_level') = 'FI') order by table_name"))
    assert [(r["old_value"], r["new_value"]) for r in kept] == [("143795", "143310"), ("1455", "5")]
