"""The Datasette site built from the committed data package."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openpyxl
import pytest
import yaml

from canada_asylum_data.cells import clean_text

from .conftest import copy_project, run


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("site"))
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    return root


def get_json(root: Path, path: str):
    from datasette.app import Datasette

    metadata = yaml.safe_load((root / "metadata.yml").read_text())
    ds = Datasette(immutables=[str(root / "build" / "canada_asylum.db")], metadata=metadata,
                   plugins_dir=str(root / "plugins") if (root / "plugins").is_dir() else None,
                   settings={"sql_time_limit_ms": 3000, "max_returned_rows": 5000})

    async def go():
        response = await ds.client.get(path)
        return response.status_code, response.json()

    return asyncio.run(go())


def workbook_us_rows(path: Path) -> dict[int, list]:
    """Read the US row of each sheet straight from the workbook, independently of the parser."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    out = {}
    for i, ws in enumerate(wb.worksheets):
        for row in ws.iter_rows(values_only=True):
            if row and row[0] and clean_text(row[0]) in ("United States of America", "United States"):
                out[2013 + i] = list(row[1:8])
    return out


def _as_published(value):
    if value is None:
        return None
    text = clean_text(value)
    return int(text) if text.isdigit() else None


def test_us_rpd_rows_equal_the_source_cells(site, real_file):
    _, path = real_file("irb-rpd-2013-2023-transcription")
    expected = workbook_us_rows(path)
    status, rows = get_json(site, "/canada_asylum/irb_rpd_claims.json?country_code=USA&_shape=array&_sort=year")
    assert status == 200
    assert [r["year"] for r in rows] == list(range(2013, 2024))
    cols = ["referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"]
    for r in rows:
        assert [r[c] for c in cols] == [_as_published(v) for v in expected[r["year"]]], r["year"]
    assert rows[0]["source_id"] == "irb-rpd-2013-2023-transcription"


def test_us_claims_view(site):
    status, rows = get_json(site, "/canada_asylum/us_claims_by_year.json?_shape=array")
    assert status == 200
    # to the latest year any source has (UNHCR 2025), not where the IRB's figures end (2023)
    assert [r["year"] for r in rows] == list(range(2013, 2026))
    assert rows[-1]["unhcr_applied_new"] == 1927 and rows[-1]["rpd_referred"] is None
    for r in rows:
        if r["rpd_accepted"] is not None and r["rpd_rejected"]:
            expected = round(100.0 * r["rpd_accepted"] / (r["rpd_accepted"] + r["rpd_rejected"]), 1)
            assert r["rpd_acceptance_rate_decided_pct"] == expected


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_serves_the_committed_data(site):
    port = free_port()
    exe = Path(sys.executable).with_name("canada-asylum-data")
    log = (site / "build" / "serve.log").open("wb")  # a file, so the access log never blocks
    proc = subprocess.Popen([str(exe), "--root", str(site), "serve", "--port", str(port), "--silent"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/canada_asylum/irb_rpd_claims.json?country_code=USA&_shape=array"
        deadline = time.time() + 30
        while True:
            try:
                response = httpx.get(url, timeout=2)
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise AssertionError((site / "build" / "serve.log").read_text()[-2000:])
                time.sleep(0.3)
        assert response.status_code == 200
        assert len(response.json()) == 11
        home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "Asylum claims in Canada" in home.text
        version = json.loads((site / "datapackage" / "datapackage.json").read_text())["version"]
        assert f"data version {version}" in home.text  # the footer
        # the data package itself is served, markers and all
        desc = httpx.get(f"http://127.0.0.1:{port}/datapackage/datapackage.json", timeout=5)
        assert desc.status_code == 200 and desc.json()["version"] == version
        csv_text = httpx.get(f"http://127.0.0.1:{port}/datapackage/data/irb_rpd_claims.csv", timeout=5).text
        assert csv_text == (site / "datapackage" / "data" / "irb_rpd_claims.csv").read_text(encoding="utf-8")
        insert = httpx.post(f"http://127.0.0.1:{port}/canada_asylum/-/query",
                            data={"sql": "insert into provinces values ('ZZ','z','z','other')"}, timeout=5)
        assert insert.status_code in (400, 403, 405)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()


def test_rcmp_interceptions_filter_facet_and_sum(site):
    import csv
    import json as _json

    status, data = get_json(site, "/canada_asylum/rcmp_interceptions.json?year=2017&_facet=province_code"
                                  "&_facet=month&_size=max")
    assert status == 200
    facets = {f["value"]: f["count"] for f in data["facet_results"]["province_code"]["results"]}
    assert facets["QC"] == 12 and set(facets) >= {"QC", "ON", "MB", "BC"}
    status, rows = get_json(site, "/canada_asylum.json?_shape=array&sql=" +
                            "select year, sum(interceptions) as n from rcmp_interceptions "
                            "where province_code = 'QC' group by year order by year")
    assert status == 200
    assert [r["year"] for r in rows] == list(range(2017, 2024))
    # the sums equal the printed provincial year totals (Total column) in published_totals
    with (site / "datapackage" / "data" / "published_totals.csv").open(encoding="utf-8") as fh:
        printed = {_json.loads(t["scope"])["year"]: int(t["value"]) for t in csv.DictReader(fh)
                   if t["fact_table"] == "rcmp_interceptions"
                   and _json.loads(t["scope"]).get("province_code") == "QC"
                   and set(_json.loads(t["scope"])) == {"year", "province_code"}}
    assert {r["year"]: r["n"] for r in rows} == printed


def test_unhcr_us_to_canada_year_by_year(site):
    for table in ("unhcr_asylum_applications", "unhcr_asylum_decisions"):
        status, rows = get_json(site, f"/canada_asylum/{table}.json?origin_code=USA&asylum_code=CAN"
                                      "&_shape=array&_size=max")
        assert status == 200
        assert sorted({r["year"] for r in rows}) == list(range(2000, 2026)), table


def test_irregular_crosser_changes_view_is_the_difference_of_snapshots(site):
    import csv

    with (site / "datapackage" / "data" / "irb_irregular_crosser_claims.csv").open(encoding="utf-8") as fh:
        us = sorted((r for r in csv.DictReader(fh) if r["country_code"] == "USA"),
                    key=lambda r: r["period_end"])
    expected = {}
    for prev, cur in zip(us, us[1:]):
        if prev["period_start"] != cur["period_start"]:
            continue
        expected[cur["period_end"]] = {
            m: (int(cur[m]) - int(prev[m]) if cur[m].isdigit() and prev[m].isdigit() else None)
            for m in ("referred", "finalized", "pending", "rejected")}
    status, rows = get_json(site, "/canada_asylum/irb_irregular_crosser_changes.json?country_code=USA"
                                  "&_shape=array&_size=max")
    assert status == 200
    got = {r["period_end"]: {m: r[f"{m}_change"] for m in ("referred", "finalized", "pending", "rejected")}
           for r in rows}
    assert got == expected
    assert all(r["derivation_note"].startswith(("derived", "no change")) for r in rows)
