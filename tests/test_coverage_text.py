"""Where each series starts and ends is said where it is read: the README table, every
table/view/canned query/chart description in metadata.yml, in words from `coverage`."""

from __future__ import annotations

import csv
import re

import yaml

from canada_asylum_data.coverage_text import (load_coverage, period_phrase, series_of,
                                              series_sentence)
from canada_asylum_data.database import load_views
from canada_asylum_data.metadata import load_queries

from .conftest import DATAPACKAGE, ROOT

COVERAGE = load_coverage(DATAPACKAGE)
META = yaml.safe_load((ROOT / "metadata.yml").read_text(encoding="utf-8"))
DB = META["databases"]["canada_asylum"]


def test_sentences_say_where_series_end_in_reader_words():
    rpd = series_sentence("irb_rpd_claims", COVERAGE)
    assert "IRB figures run from 2013 to 2023" in rpd and "2024-2025 not yet published here" in rpd
    assert "RCMP figures run from January 2017 to December 2023" in series_sentence(
        "rcmp_interceptions", COVERAGE)
    assert series_sentence("unhcr_asylum_applications_h1", COVERAGE).endswith(
        "from the first half of 2023 to the first half of 2025.")
    assert "2013-2016 not here" in series_sentence("irb_rad_appeals", COVERAGE)


def test_coverage_notes_are_for_readers():
    with open(DATAPACKAGE / "data" / "coverage.csv", newline="", encoding="utf-8") as f:
        notes = {r["notes"] for r in csv.DictReader(f)}
    for note in notes:
        assert not re.search(r"\b(fetch|run|online|mirror)\b", note), note


def test_readme_table_matches_coverage():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## What is in it"):]
    rows = [line for line in section.split("\n\n", 3)[2].splitlines() if line.startswith("| `")]
    listed = set()
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`([a-z0-9_]+)`", cells[0])
        expected = []
        for n in names:
            assert n in COVERAGE, n
            if period_phrase(n, COVERAGE) not in expected:
                expected.append(period_phrase(n, COVERAGE))
        assert cells[2] == "; ".join(expected), (names, cells[2])
        listed |= set(names)
    assert listed == set(COVERAGE)  # every series with periods is in the table


def _check(entry: dict, series: list[str], where: str) -> None:
    assert series, where
    for s in series:
        sentence = series_sentence(s, COVERAGE)
        assert sentence in entry["description"], (where, s)
        link = f'href="/canada_asylum/coverage?series={s}"'
        assert link in entry["description_html"], (where, s)


def test_every_page_showing_a_series_says_its_periods():
    for table in COVERAGE:
        _check(DB["tables"][table], [table], table)
    views = load_views(DATAPACKAGE / "views.yml")
    view_sql = {v["name"]: v["sql"] for v in views}
    for v in views:
        if v["name"] in ("country_lookup", "province_lookup"):  # reference lists, no series
            assert series_of(v["sql"], view_sql, COVERAGE) == []
            continue
        _check(DB["tables"][v["name"]], series_of(v["sql"], view_sql, COVERAGE), v["name"])
    for q in load_queries(DATAPACKAGE / "queries.yml"):
        series = series_of(q["sql"], view_sql, COVERAGE)
        if q["name"] == "events_between":
            assert series == []
            continue
        _check(DB["queries"][q["name"]], series, q["name"])
    us = DB["tables"]["us_claims_by_year"]["description"]
    assert "IRB figures run from 2013 to 2023" in us and "UNHCR figures run from 2000 to 2025" in us


def test_charts_say_where_their_series_end():
    board = META["plugins"]["datasette-dashboards"]["journalist"]
    for s in ("irb_rpd_claims", "unhcr_asylum_applications", "unhcr_asylum_applications_h1",
              "rcmp_interceptions", "ircc_claimants_office_province"):
        assert series_sentence(s, COVERAGE) in board["description"], s
        assert f"/canada_asylum/coverage?series={s}" in board["description"], s
