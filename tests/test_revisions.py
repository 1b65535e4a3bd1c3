"""The one vintage comparator (canada_asylum_data.revisions): like periods only, on small
parsed results and on the published revisions table."""

from __future__ import annotations

import calendar
import csv
import json

import pytest

from canada_asylum_data.cells import Count
from canada_asylum_data.errors import CadError
from canada_asylum_data.normalize import _newest_per_period, Prepared
from canada_asylum_data.parsers.base import Parsed, Total
from canada_asylum_data.revisions import compare_vintages, revisions, vintage_cells, vintage_order

from .conftest import DATAPACKAGE


def test_vintage_order_is_numeric():
    releases = ["2025.12.1", "2023.12.0", "2025.6.1", "2023.6.0", "2024.12.0", "2025.12.0",
                "2024.6.0"]
    assert sorted(releases, key=vintage_order) == [
        "2023.6.0", "2023.12.0", "2024.6.0", "2024.12.0", "2025.6.1", "2025.12.0", "2025.12.1"]
    assert sorted(["2025-07-31", "2024-02-29"], key=vintage_order) == ["2024-02-29", "2025-07-31"]


def _monthly(vintage: str, months: dict[str, int], year_total: int) -> Parsed:
    p = Parsed(file_facts={"vintage": vintage})
    for month, v in months.items():
        p.add("t", {"month": month, "year": int(month[:4]), "province_code": "AB",
                    "claimants": Count(v), "source_locator": f"{vintage}!{month}"})
    p.totals.append(Total("t", "claimants", {"province_code": "AB", "year": 2024},
                          Count(year_total), "Alberta Total / 2024 Total", f"{vintage}!total"))
    return p


def test_partial_period_total_is_not_a_revision():
    """A 2024 total over January-February is not revised by the full-year total."""
    old = _monthly("2024-02-29", {"2024-01": 780, "2024-02": 655}, 1435)
    new = _monthly("2025-07-31", {f"2024-{m:02d}": 800 for m in range(1, 13)}, 9685)
    rows = revisions(old, new, old_source_id="a", new_source_id="b")
    assert {json.loads(r["row_key"]).get("month") for r in rows} == {"2024-01", "2024-02"}
    assert not any("2024 Total" in r["row_key"] for r in rows)
    # the same total over the same months is compared, and a change is a revision
    same = _monthly("2025-07-31", {"2024-01": 780, "2024-02": 655}, 1430)
    (row,) = revisions(old, same, old_source_id="a", new_source_id="b")
    assert (row["change"], row["old_value"], row["new_value"]) == ("changed", "1435", "1430")


def _unhcr(vintage: str, years: dict[int, int], h1: dict[int, int]) -> Parsed:
    p = Parsed(file_facts={"vintage": vintage})
    for year, v in years.items():
        p.add("apps", {"year": year, "origin_code": "USA", "applied": Count(v),
                       "source_locator": f"r{year}"})
    for year, v in h1.items():
        p.add("apps_h1", {"year": year, "half": "H1", "period_start": f"{year}-01-01",
                          "period_end": f"{year}-06-30", "origin_code": "USA",
                          "applied": Count(v), "source_locator": f"h{year}"})
    return p


def test_first_half_is_never_compared_with_the_year():
    mid = _unhcr("2024.6.0", {2022: 1133, 2023: 700}, {2024: 279})
    end = _unhcr("2024.12.0", {2022: 1133, 2023: 707, 2024: 721}, {})
    rows = revisions(mid, end, old_source_id="mid", new_source_id="end")
    # 2023 (a full year in both) is a revision; the 2024 first half is neither compared with
    # the 2024 year nor "removed" (the year-end release has no first halves at all)
    assert [(r["table_name"], json.loads(r["row_key"])["year"], r["old_value"], r["new_value"])
            for r in rows] == [("apps", 2023, "700", "707")]


def test_each_period_from_the_newest_release_that_has_it():
    def prep(sid, vintage, years, h1):
        parsed = _unhcr(vintage, years, h1)
        return Prepared(sid, vintage, tables={t: [{k: (v.csv if isinstance(v, Count) else v)
                                                   for k, v in r.items()} for r in rows]
                                              for t, rows in parsed.tables.items()})

    members = [prep("a", "2023.6.0", {2022: 1}, {2023: 342}),
               prep("b", "2024.6.0", {2022: 2, 2023: 707}, {2024: 279}),
               prep("c", "2024.12.0", {2022: 2, 2023: 707, 2024: 721}, {})]
    out = _newest_per_period(members)
    assert [r["year"] for r in out["c"]["apps"]] == [2022, 2023, 2024]
    assert "apps" not in out["a"] and "apps" not in out["b"]
    assert [r["year"] for r in out["a"]["apps_h1"]] == [2023]
    assert [r["year"] for r in out["b"]["apps_h1"]] == [2024]


def test_duplicate_key_is_a_domain_error():
    p = _unhcr("x", {2020: 1}, {})
    p.add("apps", {"year": 2020, "origin_code": "USA", "applied": Count(2),
                   "source_locator": "again"})
    with pytest.raises(CadError, match="same key"):
        vintage_cells(p)
    assert compare_vintages("a", vintage_cells(_unhcr("x", {}, {})), "x", "b",
                            vintage_cells(_unhcr("y", {}, {})), "y") == []


# --- the published table -----------------------------------------------------------------

def _rows() -> list[dict]:
    with open(DATAPACKAGE / "data" / "revisions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _period_end(key: dict) -> str:
    """Last day of the period a revisions row key is about."""
    if "month" in key:
        y, m = map(int, key["month"].split("-"))
        return f"{y:04d}-{m:02d}-{calendar.monthrange(y, m)[1]:02d}"
    if "half" in key:
        return f"{key['year']}-06-30"
    if "quarter" in key:
        m = 3 * int(key["quarter"])
        return f"{key['year']}-{m:02d}-{calendar.monthrange(int(key['year']), m)[1]:02d}"
    return f"{key['year']}-12-31"


def _covered_until(vintage: str) -> str:
    """Last day a release covers: IRCC vintages are dates; UNHCR's YYYY.6.x ends in June,
    YYYY.12.x in December."""
    if vintage.count("-") == 2:
        return vintage
    year, month = vintage.split(".")[:2]
    return f"{year}-{'06-30' if month == '6' else '12-31'}"


def test_revisions_table_compares_like_periods_only():
    rows = _rows()
    assert rows
    for r in rows:
        key = json.loads(r["row_key"])
        assert not r["table_name"].endswith("_h1"), r
        if r["change"] == "changed":
            # the older release covered the whole period: no partial total against a longer one
            assert _period_end(key) <= _covered_until(r["old_vintage"]), r
    # e.g. the IRCC "Alberta Total / 2024 Total" over January-February 2024 is not there
    assert not any('"published_total": "Alberta Total / 2024 Total"' in r["row_key"]
                   for r in rows)


def test_revisions_table_keeps_the_real_revisions():
    rows = _rows()
    grand = [r for r in rows if r["table_name"] == "ircc_claimants_office_province"
             and json.loads(r["row_key"]) == {"published_total": "Total / 2023 Total",
                                              "year": 2023}]
    assert [(r["old_value"], r["new_value"], r["old_vintage"], r["new_vintage"]) for r in grand] \
        == [("143795", "143310", "2024-02-29", "2025-07-31")]
    fi = [r for r in rows if r["table_name"] == "unhcr_asylum_decisions"
          and r["measure"] in ("recognized", "total_decisions")
          and (lambda k: (k["origin_code"], k["asylum_code"], k["year"], k["dec_level"],
                          k["dec_pc"]))(json.loads(r["row_key"])) == ("USA", "CAN", 2025, "FI", "P")]
    assert sorted((r["measure"], r["old_value"], r["new_value"], r["old_source_id"],
                   r["new_source_id"]) for r in fi) == [
        ("recognized", "1455", "5", "unhcr-asylum-decisions-2025.12.0",
         "unhcr-asylum-decisions-2025.12.1"),
        ("total_decisions", "1583", "289", "unhcr-asylum-decisions-2025.12.0",
         "unhcr-asylum-decisions-2025.12.1")]
    # every consecutive pair of UNHCR releases was compared; only 2025.12.0 -> 2025.12.1 and
    # a France -> Canada 2014 decision (rejected 12 -> 13) between 2023.6.0 and 2023.12.0 differ
    pairs = {(r["old_vintage"], r["new_vintage"]) for r in rows if r["table_name"].startswith("unhcr")}
    assert pairs == {("2025.12.0", "2025.12.1"), ("2023.6.0", "2023.12.0")}
