"""The journalist's front door, served with the project's plugins and templates: the home
page answers from the database, canned queries forgive their input and say why when
nothing matches, every cite text names vintages that exist in the rows it covers, and the
site search and the events full-text search find what a reporter types."""

from __future__ import annotations

import asyncio
import csv
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from canada_asylum_data.metadata import tables_behind, tables_shown

from .conftest import DATAPACKAGE, copy_project, run

DB = "canada_asylum"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("front"))
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    return root


def fetch(root: Path, path: str, status: int = 200):
    from datasette.app import Datasette

    metadata = yaml.safe_load((root / "metadata.yml").read_text())
    ds = Datasette(immutables=[str(root / "build" / f"{DB}.db")], metadata=metadata,
                   plugins_dir=str(root / "plugins"), template_dir=str(root / "templates"),
                   static_mounts=[("static", str(root / "static"))],
                   settings={"sql_time_limit_ms": 5000, "max_returned_rows": 10000})

    async def go():
        response = await ds.client.get(path)
        assert response.status_code == status, (path, response.text[:500])
        return response

    return asyncio.run(go())


def rows_of(table: str) -> list[dict]:
    with open(DATAPACKAGE / "data" / f"{table}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- 1. the home page -------------------------------------------------------------------

def test_home_page_answers_from_the_data_before_any_raw_table(site):
    html = fetch(site, "/").text
    assert '<html lang="en">' in html
    us = [r for r in rows_of("irb_rpd_claims") if r["country_code"] == "USA"]
    latest = max(us, key=lambda r: int(r["year"]))
    figure = f"{int(latest['referred']):,}"
    assert f"<strong>{figure}</strong>" in html and f"in {latest['year']} naming the US" in html
    unhcr_years = [int(r["year"]) for r in rows_of("unhcr_asylum_applications")
                   if r["origin_code"] == "USA" and r["asylum_code"] == "CAN"]
    assert f"US citizens in Canada in {max(unhcr_years)}" in html
    # the answers, the US view and the charts come before any raw or bookkeeping table
    first_raw = html.index("/canada_asylum/irb_rpd_claims\"")
    assert html.index("us_claims_by_year") < first_raw
    assert html.index("/-/dashboards/journalist") < first_raw
    assert html.index("/canada_asylum/published_totals") > html.index("/canada_asylum/ircc_claimants_gender")
    assert '"@type": "Dataset"' in html
    fr = fetch(site, "/?lang=fr").text
    assert '<html lang="fr">' in fr and "Questions fréquentes" in fr


def test_every_page_has_a_lang_and_a_search_box(site):
    for path in ("/", f"/{DB}", f"/{DB}/irb_rpd_claims", f"/{DB}/us_claims_by_year",
                 f"/{DB}/country_claims_by_year", "/dictionary", "/search?q=usa"):
        html = fetch(site, path).text
        assert re.search(r'<html lang="(en|fr)">', html), path
        assert 'id="cad-site-search"' in html, path


def test_sitemap_lists_charts_dictionary_and_tables(site):
    xml = fetch(site, "/sitemap.xml").text
    for path in ("/-/dashboards/journalist", "/dictionary", f"/{DB}/us_claims_by_year",
                 f"/{DB}/country_claims_by_year", f"/{DB}/irb_rpd_claims"):
        assert f"{path}</loc>" in xml, path


# --- 2. data before prose ---------------------------------------------------------------

def test_table_page_puts_the_data_before_the_notes(site):
    html = fetch(site, f"/{DB}/irb_rpd_claims").text
    lede = html.index('class="cad-lede"')
    table = html.index('<table class="rows-and-columns"')
    notes = html.index('id="about"')
    assert lede < table < notes
    assert html.index("Caveats:") > table and html.index("Cite this") > table
    assert "Copy citation" in html
    # foreign-key cells show the country name (label_column)
    assert re.search(r'<a href="/canada_asylum/countries/USA">United States</a>', fetch(
        site, f"/{DB}/irb_rpd_claims?country_code=USA").text)


# --- 3. forgiving, honest canned queries --------------------------------------------------

def _json(site, path):
    return fetch(site, path).json()


@pytest.mark.parametrize("country", ["usa", "USA", "US", "United%20States", "united%20states",
                                     "%C3%89tats-Unis", "United%20States%20of%20America"])
def test_country_parameter_accepts_codes_and_names(site, country):
    rows = _json(site, f"/{DB}/country_claims_by_year.json?_shape=array&country={country}")
    us = sorted(int(r["year"]) for r in rows_of("irb_rpd_claims") if r["country_code"] == "USA")
    assert [r["year"] for r in rows] == us
    assert {r["country_code"] for r in rows} == {"USA"} and not any(r["message"] for r in rows)


def test_unknown_country_names_the_valid_inputs(site):
    rows = _json(site, f"/{DB}/country_claims_by_year.json?_shape=array&country=ZZZ")
    assert len(rows) == 1 and rows[0]["year"] is None
    assert 'No country matches "ZZZ"' in rows[0]["message"] and "ISO alpha-3" in rows[0]["message"]
    html = fetch(site, f"/{DB}/country_claims_by_year?country=ZZZ").text
    assert 'class="cad-message"' in html and "No country matches" in html and "0 results" not in html
    assert html.count('class="cad-message"') == 1
    assert 'class="cad-message"' not in fetch(site, f"/{DB}/country_claims_by_year?country=usa").text


def test_year_that_is_not_a_year_is_refused(site):
    rows = _json(site, f"/{DB}/country_claims_by_year.json?_shape=array&year_from=abc")
    assert len(rows) == 1 and "four-digit years" in rows[0]["message"]


def test_month_after_the_series_says_where_it_ends(site):
    last = max(r["month"] for r in rows_of("rcmp_interceptions"))
    rows = _json(site, f"/{DB}/interceptions_by_province.json?_shape=array&month_from=2024-01")
    assert len(rows) == 1 and f"ends in {last}" in rows[0]["message"]
    rows = _json(site, f"/{DB}/interceptions_by_province.json?_shape=array&month_from=2023-13")
    assert "YYYY-MM" in rows[0]["message"]


def test_months_and_provinces_are_forgiving(site):
    rows = _json(site, f"/{DB}/interceptions_by_province.json?_shape=array&province=Quebec"
                       "&month_from=2017-8&month_to=2017-9")
    src = {r["month"]: int(r["interceptions"]) for r in rows_of("rcmp_interceptions")
           if r["province_code"] == "QC" and r["month"] in ("2017-08", "2017-09")}
    assert {r["month"]: r["interceptions"] for r in rows} == src
    rows = _json(site, f"/{DB}/claims_by_office.json?_shape=array&province=qu%C3%A9bec&year_from=2022&year_to=2022")
    assert rows and {r["province_code"] for r in rows} == {"QC"}
    rows = _json(site, f"/{DB}/claims_by_office.json?_shape=array&province=Zed")
    assert "No province matches" in rows[0]["message"]


def test_canned_query_pages_have_plain_titles(site):
    html = fetch(site, f"/{DB}/interceptions_by_province?province=BC").text
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    assert "select" not in title.lower() and "RCMP interceptions" in title


# --- 4. citations ------------------------------------------------------------------------

VINTAGE = re.compile(r"\b(\d{4}-\d{2}-\d{2}|\d{4}\.\d{1,2}\.\d+)\b")


def _cited_vintages(cite: str) -> list[str]:
    cite = re.sub(r"data version [^,)]*", "", cite)
    return VINTAGE.findall(cite)


def test_every_cite_text_names_vintages_present_in_its_rows(site):
    meta = yaml.safe_load((site / "metadata.yml").read_text())["databases"][DB]
    conn = sqlite3.connect(site / "build" / f"{DB}.db")
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    views = {r[0]: r[1] for r in conn.execute("select name, sql from sqlite_master where type = 'view'")}
    row_vintages = {}
    for t in tables:
        cols = [r[1] for r in conn.execute(f"pragma table_info([{t}])")]
        if "vintage" in cols and "source_id" in cols:
            row_vintages[t] = {r[0] for r in conn.execute(f"select distinct vintage from [{t}]") if r[0]}
    checked = 0
    for name, entry in meta["tables"].items():
        cite = entry["description"].split("Cite this:", 1)[1]
        named = _cited_vintages(cite)
        if name in row_vintages:
            present = row_vintages[name]
            assert set(named) <= present, (name, named, present)
            if f"vintages {min(present)} to {max(present)}" not in cite:
                assert set(named) == present, (name, named, present)
            checked += 1
        elif name in views:
            behind = tables_behind(views[name], tables, views)
            present = set().union(*(row_vintages.get(t, set()) for t in behind))
            source_vintages = {r[0] for r in conn.execute("select coalesce(vintage, published) from sources")}
            assert set(named) <= present | source_vintages, (name, named)
            checked += 1
    assert checked >= 20
    # the two tables the issue named
    gender = meta["tables"]["ircc_claimants_gender"]["description"]
    assert "vintage 2025-07-31" in gender and "2024-02-29" not in gender.split("Cite this:")[1]
    irregular = meta["tables"]["irb_irregular_crosser_claims"]["description"].split("Cite this:")[1]
    assert "vintages" in irregular and "18 vintages" in irregular
    for q in meta["queries"].values():
        assert "Cite this:" in q["description"] and "derived from" in q["description"]


# --- 6. search -----------------------------------------------------------------------------

def test_site_search_finds_french_names_and_aliases(site):
    found = fetch(site, "/search?_format=json&q=%C3%89tats-Unis").json()["results"]
    assert any("(USA)" in r["title"] for r in found[:3])
    found = fetch(site, "/search?_format=json&q=etats-unis").json()["results"]
    assert any("(USA)" in r["title"] for r in found)
    found = fetch(site, "/search?_format=json&q=protocol").json()["results"]
    assert any("stca_additional_protocol" in r["url"] or "Additional Protocol" in r["title"] for r in found)
    html = fetch(site, "/search?q=nothingmatchesthis").text
    assert "Nothing matches" in html


# --- 5. totals without SQL -----------------------------------------------------------------

def test_annual_rcmp_totals_view(site):
    rows = fetch(site, f"/{DB}/rcmp_interceptions_by_year.json?_shape=array&_size=max").json()
    by = {(r["year"], r["province_code"]): r for r in rows}
    sums: dict = {}
    for r in rows_of("rcmp_interceptions"):
        for key in ((int(r["year"]), r["province_code"]), (int(r["year"]), None)):
            sums[key] = sums.get(key, 0) + int(r["interceptions"])
    assert {k: v["interceptions_sum_of_months"] for k, v in by.items()} == sums
    for r in rows:
        if r["interceptions_published_total"] is not None:
            assert r["difference"] == r["interceptions_published_total"] - r["interceptions_sum_of_months"]
            assert (r["total_check"] == "matches") == (r["difference"] == 0)
    assert by[(2022, None)]["interceptions_sum_of_months"] == sums[(2022, None)]


def test_irregular_crossers_per_year_is_derived_from_year_end_totals(site):
    rows = fetch(site, f"/{DB}/irb_irregular_crosser_claims_by_year.json?_shape=array").json()
    totals = {}
    for r in rows_of("published_totals"):
        if r["fact_table"] == "irb_irregular_crosser_claims" and r["measure"] == "referred":
            totals[yaml.safe_load(r["scope"])["period_end"]] = int(r["value"])
    one = {r["calendar_years"]: r for r in rows}
    assert one["2019"]["referred"] == totals["2019-12-31"] - totals["2018-12-31"]
    assert one["2019"]["months_covered"] == 12
    assert all(r["derivation_note"] for r in rows)
    assert sum(r["referred"] for r in rows) == totals[max(totals)]


def test_claims_by_office_year_adds_up_the_months(site):
    rows = fetch(site, f"/{DB}/claims_by_office_year.json?_shape=array&year=2022").json()
    sums: dict = {}
    for r in rows_of("ircc_claimants_office_province"):
        if r["year"] == "2022" and r["claimants"] not in ("", "--"):
            sums[r["office_type"]] = sums.get(r["office_type"], 0) + int(r["claimants"])
    assert {r["office_type"]: r["claimants_sum_of_rounded"] or 0 for r in rows} == {
        k: sums.get(k, 0) for k in (r["office_type"] for r in rows)}


def test_table_search_uses_the_fts_index(site):
    found = fetch(site, f"/{DB}/events.json?_search=protocol&_shape=array").json()
    assert "stca_additional_protocol" in {r["event_id"] for r in found}
    found = fetch(site, f"/{DB}/countries.json?_search=%C3%A9tats-unis&_shape=array").json()
    assert "USA" in {r["code"] for r in found}
    found = fetch(site, f"/{DB}/country_aliases.json?_search=america&_shape=array").json()
    assert "USA" in {r["code"] for r in found}
    assert 'id="_search"' in fetch(site, f"/{DB}/events").text


def test_error_pages_still_render(site):
    html = fetch(site, f"/{DB}/no_such_table_here", status=404).text
    assert '<html lang="en">' in html


# --- 7. discoverable -----------------------------------------------------------------------

def test_citation_file_and_package_identity_agree():
    import json

    from .conftest import ROOT

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    package = yaml.safe_load((DATAPACKAGE / "package.yaml").read_text(encoding="utf-8"))
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "dataset"
    assert cff["version"] == package["version"] == desc["version"]
    # date-released is the data version's date; created is when the package first existed
    assert cff["date-released"] == "-".join(package["version"].split(".")[:3])
    assert desc["id"] == package["id"] and desc["created"][:10] <= cff["date-released"]
    assert set(cff["license"]) == {lic["name"] for lic in package["licenses"]}


def test_robots_let_crawlers_reach_charts_and_dictionary(site):
    from urllib.robotparser import RobotFileParser

    text = fetch(site, "/robots.txt").text
    robots = RobotFileParser()
    robots.parse(text.splitlines())
    for path in ("/-/dashboards/journalist", "/dictionary", "/", f"/{DB}/us_claims_by_year"):
        assert robots.can_fetch("*", "http://example.org" + path), path
    assert not robots.can_fetch("*", "http://example.org/-/metadata")


def test_robots_sitemap_line_only_from_the_configured_site_url(site, monkeypatch):
    """robots.txt names the sitemap by an absolute URL built from CANADA_ASYLUM_DATA_SITE_URL,
    never from the Host header; unset (or not a plain http(s) URL), there is no Sitemap line,
    and the sitemap itself is answered no-store."""
    from canada_asylum_data.site import SITE_URL_ENV

    monkeypatch.delenv(SITE_URL_ENV, raising=False)
    assert "Sitemap:" not in fetch(site, "/robots.txt").text
    sitemap = fetch(site, "/sitemap.xml")
    assert sitemap.headers["cache-control"] == "no-store"
    for bad in ("javascript:alert(1)", "https://user@evil.example/", "https://a.example/?x=1", "/relative"):
        monkeypatch.setenv(SITE_URL_ENV, bad)
        assert "Sitemap:" not in fetch(site, "/robots.txt").text, bad
    monkeypatch.setenv(SITE_URL_ENV, "https://asylum.example.org/data")
    lines = fetch(site, "/robots.txt").text.splitlines()
    assert "Sitemap: https://asylum.example.org/data/sitemap.xml" in lines
    sitemap = fetch(site, "/sitemap.xml")
    assert "<loc>https://asylum.example.org/data/dictionary</loc>" in sitemap.text
    assert "127.0.0.1" not in sitemap.text and "localhost" not in sitemap.text
    assert sitemap.headers["cache-control"].startswith("public")
    home = fetch(site, "/").text
    assert '"contentUrl": "https://asylum.example.org/data/canada_asylum.db"' in home


def test_every_chart_has_a_source_line_and_a_data_table(site):
    html = fetch(site, "/-/dashboards/journalist").text
    charts = yaml.safe_load((site / "metadata.yml").read_text())["plugins"]["datasette-dashboards"]
    n = sum(1 for d in charts.values() for c in d["charts"].values() if c.get("library") == "vega-lite")
    assert html.count('class="cad-chart-source">Source: ') == n
    assert html.count('<details class="cad-chart-data">') == n
    assert html.count("<caption>") >= n
    # the source line is drawn inside each chart too, so a saved image carries it
    assert html.count('"orient": "bottom"') >= n and "via canada-asylum-data" in html


def test_tables_shown_keeps_only_the_tables_whose_rows_reach_the_result():
    """A chart reading some columns of a view is credited to the tables behind those columns,
    not to every table the view reads (tables_behind) - through views of views too."""
    conn = sqlite3.connect(":memory:")
    conn.executescript("""
        create table claims (year int, n int);
        create table snapshots (year int, cumulative int);
        create table published_totals (fact_table text, year int, n int);
        insert into claims values (2020, 5), (2021, 7);
        insert into snapshots values (2020, 50), (2021, 70);
        insert into published_totals values ('claims', 2020, 5), ('other', 2020, 9);
        create view wide as select c.year, c.n, s.cumulative from claims c left join snapshots s using (year);
        create view wider as select w.*, t.n as total from wide w
            left join published_totals t on t.year = w.year and t.fact_table = 'claims';
    """)
    views = dict(conn.execute("select name, sql from sqlite_master where type = 'view'"))
    resources = {"claims", "snapshots", "other"}
    assert tables_behind("select year, n from wide", resources, views) == ["claims", "snapshots"]
    assert tables_shown("select year, n from wide", resources, views, conn) == ["claims"]
    assert tables_shown("select year, cumulative from wider", resources, views, conn) == ["claims", "snapshots"]
    # published totals read for one fact table stand for that table
    assert tables_shown("select total from wider where year = 2020", resources, views, conn) == ["claims"]
    assert conn.execute("select count(*) from main.claims").fetchone() == (2,)  # nothing emptied


def test_country_and_province_parameters_fold_once_as_the_lookup_views_do(site):
    """One folding rule: the views country_lookup / province_lookup hold every accepted spelling
    folded, each canned query folds its parameter with the very same expression and looks it up
    there (no per-spelling copies of the replace() chain), and the queries run on the SQLite
    file without Datasette."""
    views = {v["name"]: v["sql"] for v in yaml.safe_load((DATAPACKAGE / "views.yml").read_text())["views"]}
    queries = yaml.safe_load((DATAPACKAGE / "queries.yml").read_text())["queries"]
    fold = {}
    for view in ("country_lookup", "province_lookup"):
        m = re.search(r"select (lower\(.*?trim\(label\).*?\)) as label_folded", views[view])
        assert m, view
        fold[view] = m.group(1)
    assert fold["country_lookup"] == fold["province_lookup"]
    conn = sqlite3.connect(f"file:{site / 'build' / f'{DB}.db'}?mode=ro&immutable=1", uri=True)
    used = set()
    for q in queries:
        assert q["sql"].count("'É', 'é'") <= 1, q["name"]  # the folding written once per query at most
        for param, view in (("country", "country_lookup"), ("province", "province_lookup")):
            if view not in q["sql"]:
                continue
            used.add(q["name"])
            assert q["sql"].count("replace(") == fold[view].count("replace(") + \
                len(re.findall(r"replace\(replace\(trim\(month_", q["sql"])) * 2, q["name"]
            assert f"from {view} l, p" in q["sql"], q["name"]
            assert fold[view].replace("trim(label)", f"trim(p.{param})") in q["sql"], q["name"]
    assert used == {"country_claims_by_year", "unhcr_origin_in_canada", "interceptions_by_province",
                    "claims_by_office"}
    sql = next(q["sql"] for q in queries if q["name"] == "country_claims_by_year")
    for spelling in ("usa", "US", " ÉTATS-UNIS ", "États-Unis", "United States"):
        rows = conn.execute(sql, {"country": spelling, "year_from": "", "year_to": ""}).fetchall()
        assert rows and all(r[0] is None and r[2] == "USA" for r in rows), spelling
    sql = next(q["sql"] for q in queries if q["name"] == "interceptions_by_province")
    params = {p: "" for p in re.findall(r":(\w+)", sql)}
    for spelling in ("QC", "québec", "QUÉBEC", "Quebec"):
        rows = conn.execute(sql, {**params, "province": spelling}).fetchall()
        assert rows and {r[2] for r in rows} == {"QC"}, spelling
    conn.close()


def test_home_and_charts_figures_are_answered_once_per_database_file():
    """cad_sql (plugins/front_door.py) runs a statement once per immutable database file
    (its content hash), per statement and parameters; never memoizes a mutable one; and
    keeps at most SQL_MEMO_SIZE answers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("front_door_memo", DATAPACKAGE.parent / "plugins" / "front_door.py")
    front_door = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(front_door)

    class Result:
        def __init__(self, rows):
            self.rows = rows

    class FakeDb:
        def __init__(self, name, hash_, mutable=False):
            self.name, self.hash, self.is_mutable, self.calls = name, hash_, mutable, 0

        async def execute(self, sql, params=None):
            self.calls += 1
            return Result([(sql, repr(params), self.hash, self.calls)])

    class FakeDatasette:
        def __init__(self, db):
            self.db = db

        def get_database(self, name=None):
            return self.db

    async def scenario():
        old = FakeDb(DB, "aaa")
        ds = FakeDatasette(old)
        first = await front_door.memo_sql(ds, "select 1", None, DB)
        assert await front_door.memo_sql(ds, "select 1", None, DB) == first and old.calls == 1
        await front_door.memo_sql(ds, "select 1", {"y": 2}, DB)
        await front_door.memo_sql(ds, "select 1", {"y": 3}, DB)
        assert old.calls == 3  # parameters are part of the key
        new = FakeDb(DB, "bbb")  # a new generation of the same database
        ds.db = new
        assert (await front_door.memo_sql(ds, "select 1", None, DB))[0][2] == "bbb" and new.calls == 1
        live = FakeDb("scratch", None, mutable=True)
        ds.db = live
        await front_door.memo_sql(ds, "select 1", None, "scratch")
        await front_door.memo_sql(ds, "select 1", None, "scratch")
        assert live.calls == 2
        ds.db = old
        for i in range(front_door.SQL_MEMO_SIZE + 10):
            await front_door.memo_sql(ds, f"select {i}", None, DB)
        assert len(front_door._SQL_MEMO) == front_door.SQL_MEMO_SIZE

    asyncio.run(scenario())
