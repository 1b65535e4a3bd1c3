"""Hostile and mistaken requests against the served site (plugins/site_policy.py): plain 4xx
answers, bounded SQL values, bounded facets and HTML pages, no host paths, no 403/404
oracle under the static mounts, no poisoned links, no truncated CSV served as complete,
export links that deliver the whole result, suppressed cells shown as "--"."""

from __future__ import annotations

import csv
import http.client
import io
import re
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

DB = "canada_asylum"
BIG = "ircc_claimants_top25_citizenship"  # the largest table


@pytest.fixture(scope="module")
def client(served_site):
    base, _ = served_site
    with httpx.Client(base_url=base, timeout=60) as c:
        yield c


@pytest.mark.parametrize("path", [f"/{DB}/events.csv?_sort_desc=nope", f"/{DB}/events.json?_sort=nope",
                                  f"/{DB}/events?_sort=nope", f"/{DB}/events.json?_sort=event_id&_sort_desc=x",
                                  f"/{DB}/events.json?_timelimit=abc", f"/{DB}/events.json?_facet_size=x"])
def test_a_reader_mistake_is_a_400_with_a_plain_message(client, path):
    response = client.get(path)
    assert response.status_code == 400, (path, response.status_code, response.text[:200])
    assert "no-store" in response.headers["cache-control"]
    if ".json" in path:
        assert response.json()["ok"] is False and response.json()["error"]
    if "nope" in path:
        assert "Cannot sort table by nope" in response.text


@pytest.mark.parametrize("path", [f"/{DB}/events/zz", f"/{DB}/events/zz.json", f"/{DB}/no_such_table",
                                  "/no_such_database", f"/{DB}/rcmp_interceptions/zz.json",
                                  f"/{DB}/events.nope", f"/{DB}/events.html", f"/{DB}.nope"])
def test_urls_that_match_nothing_are_404(client, path):
    assert client.get(path).status_code == 404, path


@pytest.mark.parametrize("query", ["select length(randomblob(1000000000))",
                                   "select length(zeroblob(1000000000))",
                                   "select length(replace(hex(zeroblob(3000000)), '0', 'xx'))"])
def test_huge_values_are_refused_at_once(client, query):
    response = client.get(f"/{DB}.json", params={"sql": query})
    assert response.status_code == 400, response.text[:300]
    assert "too big" in response.json()["error"]


@pytest.mark.parametrize("query", ["select length(printf('%.*c', 300000000, 'x'))",
                                   "select length(printf('%.*c', 2000000000, 'x'))",
                                   "select format('%900000000d', 1)"])
def test_printf_cannot_build_or_spin_on_a_huge_value(client, query):
    # SQLite's printf stops at the length limit but loops over the whole width (~10 s of
    # CPU for the largest int): widths above 100,000 are refused before it starts
    response = client.get(f"/{DB}.json", params={"sql": query})
    assert response.status_code == 400, response.text[:300]
    assert "printf/format width or precision" in response.json()["error"]


def test_printf_still_works(client):
    response = client.get(f"/{DB}.json", params={
        "sql": "select length(printf('%.*c', 1000, 'x')) as n, printf('%5.1f|%s|%d%%', 3.14159, 'ab', 7) as s, "
               "format('%s-%02d', 'a', 3) as f", "_shape": "array"})
    assert response.json() == [{"n": 1000, "s": "  3.1|ab|7%", "f": "a-03"}]


def test_no_absolute_host_path_on_public_pages(client, served_site):
    _, root = served_site
    paths = ["/", f"/{DB}", f"/{DB}.json", f"/{DB}/events", f"/{DB}/events.json", "/-/versions.json",
             "/-/settings.json", "/-/metadata.json", "/-/config.json", "/-/databases.json", "/-/plugins.json",
             "/-/threads.json", "/-/actor.json", f"/{DB}/events.json?_sort=nope", "/no_such_page"]
    for path in paths:
        body = client.get(path).text
        for secret in (str(root), str(root.parent), "site-packages"):
            assert secret not in body, (path, secret)
    for hidden in ("/-/databases.json", "/-/threads.json", "/-/plugins.json", "/-/actor.json"):
        assert client.get(hidden).status_code == 404, hidden


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as given (httpx would remove the dot segments)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_static_mounts_do_not_tell_which_host_folders_exist(served_site):
    base, _ = served_site
    answers = {path: _raw_get(base, path) for path in [
        "/datapackage/../", "/datapackage/../scripts/", "/datapackage/../no_such_dir/", "/datapackage/..%2f",
        "/datapackage/%2e%2e/", "/datapackage/data/", "/datapackage/no_such_dir/", "/static/../",
        "/static/../../etc/"]}
    assert {status for status, _ in answers.values()} == {404}, {p: s for p, (s, _) in answers.items()}
    assert len({body for _, body in answers.values()}) == 1, "the 404 bodies differ"
    assert _raw_get(base, "/datapackage/datapackage.json")[0] == 200


def test_a_poisoned_host_header_never_reaches_another_reader(served_site):
    base, _ = served_site
    paths = [f"/{DB}/rcmp_interceptions.json?_size=5", f"/{DB}/rcmp_interceptions?_size=5&_facet=year",
             f"/{DB}/rcmp_interceptions.json?_size=5&_facet=province_code"]
    with httpx.Client(base_url=base, timeout=60) as c:
        for path in paths:
            poisoned = c.get(path, headers={"host": "evil.example"})
            assert poisoned.status_code == 200
        for path in paths:
            normal = c.get(path)
            assert normal.status_code == 200
            assert "evil.example" not in normal.text, path
            if path.endswith(".json?_size=5"):
                assert normal.json()["next_url"].startswith(base)


def test_facets_and_html_page_sizes_are_bounded(client):
    ten = "&".join(f"_facet={c}" for c in ["year", "month", "quarter", "breakdown", "breakdown_value",
                                            "country_code", "country_label", "ranking", "rank", "source_id"])
    response = client.get(f"/{DB}/{BIG}?{ten}&_facet_size=max")
    assert response.status_code == 400 and "facets" in response.text
    assert client.get(f"/{DB}/{BIG}.json?{ten}").status_code == 400
    assert client.get(f"/{DB}/{BIG}.json?_facet=year&_facet_size=1000").status_code == 400
    html = client.get(f"/{DB}/{BIG}?_size=max&_sort_desc=notes")
    assert html.status_code == 400 and ".csv?_stream=on" in html.text
    assert client.get(f"/{DB}/{BIG}?_size=5000").status_code == 400
    assert client.get(f"/{DB}/{BIG}?_size=50").status_code == 200
    # the exports keep their full page size
    body = client.get(f"/{DB}/{BIG}.json?_size=max&_sort_desc=notes&_nocount=1").json()
    assert len(body["rows"]) == 5000 and body["next_url"]


def test_a_simple_request_is_answered_while_hostile_ones_run(served_site):
    """Four heavy requests that are still allowed (the biggest JSON pages sorted by an unindexed
    column, five facets at their maximum size) and four refused ones run while a reader asks
    for a small page: every simple request succeeds (timings are in benchmarks/bench.py)."""
    base, _ = served_site
    heavy = [f"/{DB}/{BIG}.json?_size=max&_sort_desc=notes",
             f"/{DB}/{BIG}?_facet=year&_facet=month&_facet=country_code&_facet=breakdown_value"
             f"&_facet=source_id&_facet_size=max",
             f"/{DB}/published_totals.json?_size=max&_sort=label",
             f"/{DB}/{BIG}.csv?_stream=on&_size=max&_sort=country_label"]
    refused = [f"/{DB}/{BIG}?_size=max&_sort_desc=notes",
               f"/{DB}/{BIG}?" + "&".join(f"_facet={c}" for c in ["year", "month", "quarter", "breakdown",
                                                                 "breakdown_value", "country_code"])]
    statuses: dict[str, list[int]] = {}
    stop = threading.Event()

    def hammer(path):
        with httpx.Client(base_url=base, timeout=120) as c:
            while not stop.is_set():
                statuses.setdefault(path, []).append(c.get(path).status_code)

    threads = [threading.Thread(target=hammer, args=(p,)) for p in heavy + refused]
    for t in threads:
        t.start()
    simple, latencies = [], []
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=60) as c:
            for _ in range(10):
                t0 = time.perf_counter()
                simple.append(c.get(f"/{DB}/provinces.json?_shape=array&code=QC").status_code)
                latencies.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=180)
    print(f"simple request under load: median {sorted(latencies)[len(latencies) // 2]:.3f}s, "
          f"max {max(latencies):.3f}s")
    assert simple == [200] * 10
    for path in heavy:
        assert set(statuses[path]) == {200}, (path, statuses[path])
    for path in refused:
        assert set(statuses[path]) == {400}, (path, statuses[path])


def test_a_failing_csv_stream_is_never_complete(served_site):
    """A stream whose later page hits the time limit: Datasette 0.65 would end a 200 body with
    the error text; the site leaves the response incomplete instead (or refuses it at once)."""
    base, root = served_site
    count = sqlite3.connect(f"file:{root / 'build' / 'canada_asylum.db'}?mode=ro", uri=True) \
        .execute(f"select count(*) from {BIG}").fetchone()[0]
    for limit in (1, 5, 20, 50, 100, 200, 400):
        url = f"{base}/{DB}/{BIG}.csv?_stream=on&_size=max&_sort_desc=notes&_timelimit={limit}"
        try:
            with httpx.stream("GET", url, timeout=120) as response:
                text = response.read().decode()
        except httpx.RemoteProtocolError:
            continue  # incomplete body: the client knows the download failed
        if response.status_code == 400:
            continue
        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) - 1 == count, f"_timelimit={limit}: {len(rows) - 1} rows of {count} served as complete"
        assert "interrupted" not in text.lower() and "select " not in text.lower()


def test_table_page_export_links_deliver_the_whole_result(client, served_site):
    base, _ = served_site
    page = client.get(f"/{DB}/rcmp_interceptions?province_code=QC")
    assert page.status_code == 200
    links = dict((label, href) for href, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', page.text))
    csv_href = next(h for label, h in links.items() if label == "CSV").replace("&amp;", "&")
    json_label, json_href = next((label, h) for label, h in links.items() if label.startswith("json"))
    assert "_stream=on" in csv_href and "province_code=QC" in csv_href
    assert "next_url" in json_label
    rows = list(csv.DictReader(io.StringIO(client.get(csv_href).text)))
    assert len(rows) == 84 and {r["province_code"] for r in rows} == {"QC"}
    body = client.get(json_href.replace("&amp;", "&")).json()
    assert len(body["rows"]) == 84 and body["next_url"] is None
    # a table bigger than one page: the CSV link streams every row
    big = client.get(f"/{DB}/published_totals")
    href = re.search(r'<a href="([^"]+)">CSV</a>', big.text).group(1).replace("&amp;", "&")
    assert len(list(csv.reader(io.StringIO(client.get(href).text)))) - 1 == 49441 or \
        int(re.search(r"([\d,]+) rows", big.text).group(1).replace(",", "")) == \
        len(list(csv.reader(io.StringIO(client.get(href).text)))) - 1


def test_suppressed_cells_show_the_marker_and_its_meaning(client, served_site):
    _, root = served_site
    conn = sqlite3.connect(f"file:{root / 'build' / 'canada_asylum.db'}?mode=ro", uri=True)
    year, code, measures = conn.execute(
        "select year, country_code, suppressed_measures from irb_rpd_claims "
        "where suppressed_measures like '%accepted%' and country_code is not null limit 1").fetchone()
    page = client.get(f"/{DB}/irb_rpd_claims?year={year}&country_code={code}").text
    cells = re.findall(r'<span class="suppressed" title="([^"]+)">--</span>', page)
    assert len(cells) >= len(measures.split(",")), measures
    assert all("suppressed by the publisher" in c for c in cells)
    # a NULL that is not a publisher's suppression stays empty
    none = client.get(f"/{DB}/irb_rpd_claims?suppressed_measures__isblank=1&_size=20").text
    assert 'class="suppressed"' not in none
