"""The site behind a path prefix: `serve --setting base_url /prefix/` and every link the
site generates (templates, footer, home page, dictionary, descriptions with their coverage
links, canned-query messages, sitemap, robots, export links, the /datapackage/ mount) starts
with /prefix/ and answers. Datasette strips base_url from incoming paths, so the server
answers /prefix/... itself, as it does behind a proxy that keeps the prefix."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import httpx
import pytest

from .conftest import copy_project, run

PREFIX = "/prefix/"
PAGES = ["", "canada_asylum/irb_rpd_claims", "canada_asylum/us_claims_by_year", "dictionary",
         "dictionary?lang=fr", "-/dashboards/journalist", "?lang=fr",
         "canada_asylum/interceptions_by_province?month_from=2024-01",
         "canada_asylum/country_claims_by_year?country=ZZZ", "search?q=protocol"]


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.links.append(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("base_url"))
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    port = _free_port()
    exe = Path(sys.executable).parent / "canada-asylum-data"
    log = (root / "serve.log").open("wb")  # a file, not a pipe: hundreds of access-log lines
    proc = subprocess.Popen([str(exe), "--root", str(root), "serve", "--port", str(port),
                             "--setting", "base_url", PREFIX], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + PREFIX + "-/versions.json", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.terminate()
        log.close()
        pytest.fail("datasette did not start: " + (root / "serve.log").read_text()[-2000:])
    yield base
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _status(client: httpx.Client, url: str) -> int:
    """The status of a link; a whole-table CSV stream is asked for its first page only
    (the path and query are what is checked, and a stream cut short keeps the server's
    SQL threads busy until it ends)."""
    parts = urlparse(url)
    if "_stream=on" in parts.query:
        query = "&".join(q for q in parts.query.split("&") if q not in ("_stream=on", "_size=max"))
        url = parts._replace(query=query).geturl()
    with client.stream("GET", url) as response:  # the .db download is not read
        return response.status_code


def test_serve_dry_run_passes_the_setting(tmp_path):
    root = copy_project(tmp_path)
    result = run(root, "serve", "--dry-run", "--setting", "base_url", PREFIX)
    assert result.exit_code == 0, result.output
    assert f"--setting base_url {PREFIX}" in result.output
    bad = run(root, "serve", "--dry-run", "--setting", "base_url", "prefix")
    assert bad.exit_code != 0 and "base_url" in bad.output


def test_every_same_site_link_respects_base_url(prefixed):
    host = urlparse(prefixed).netloc
    wrong, broken, checked = [], [], set()
    pages = list(PAGES)
    with httpx.Client(timeout=30) as client:
        for page in pages:
            url = prefixed + PREFIX + page
            response = client.get(url)
            assert response.status_code in (200, 400), (url, response.status_code)
            parser = Links()
            parser.feed(response.text)
            assert parser.links, url
            for link in parser.links:
                target = urlparse(urljoin(url, link))
                if target.scheme not in ("http", "https") or target.netloc != host:
                    continue  # another site, mailto:, javascript:
                if not target.path.startswith(PREFIX):
                    wrong.append((page, link))
                    continue
                row = re.match(rf"^{PREFIX}(canada_asylum/irb_rpd_claims/[^/?.]+)$", target.path)
                if row and not any(p.startswith("canada_asylum/irb_rpd_claims/") for p in pages):
                    pages.append(row.group(1))  # a row page too (its description_html)
                full = target._replace(fragment="").geturl()
                if full in checked:
                    continue
                checked.add(full)
                if _status(client, full) != 200:
                    broken.append((page, link))
        assert not wrong, sorted(set(wrong))
        assert not broken, sorted(set(broken))
        assert len(checked) > 100  # the crawl did reach the pages' links
        assert len(pages) == len(PAGES) + 1  # and a row page

        sitemap = client.get(prefixed + PREFIX + "sitemap.xml").text
        locs = [line.split("<loc>")[1].split("</loc>")[0] for line in sitemap.splitlines() if "<loc>" in line]
        assert locs and all(urlparse(loc).path.startswith(PREFIX) for loc in locs), locs[:5]
        for loc in locs[:5]:
            assert client.get(loc).status_code == 200, loc
        robots = client.get(prefixed + PREFIX + "robots.txt").text
        for line in robots.splitlines():
            if line.startswith(("Allow:", "Disallow:")) and line.split(":", 1)[1].strip():
                assert line.split(":", 1)[1].strip().startswith(PREFIX), line


def test_charts_load_their_data_under_the_prefix(prefixed):
    """The charts page fetches each chart's rows from the site: every request stays under
    /prefix/ and every chart is drawn."""
    api = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.fail(f"Chromium not found at {chromium}")
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests = []
            page.on("request", lambda r: requests.append(r.url))
            response = page.goto(prefixed + PREFIX + "-/dashboards/journalist", wait_until="networkidle")
            assert response.status == 200
            page.wait_for_function("document.querySelectorAll('.vega-embed svg').length >= 5", timeout=30000)
            outside = [u for u in requests if not urlparse(u).path.startswith(PREFIX)]
            assert not outside, outside
            assert any(".json" in u or "_shape" in u or "sql=" in u for u in requests)
        finally:
            browser.close()


def test_refusals_hold_under_the_prefix(prefixed):
    """The site policy sees the path Datasette routes: hidden pages stay hidden with the
    prefix in front (Datasette would route /prefix/-/databases to /-/databases)."""
    with httpx.Client(timeout=30) as client:
        for path in ("-/databases", "-/threads", "-/plugins", "datapackage/../pyproject.toml"):
            assert client.get(prefixed + PREFIX + path).status_code == 404, path
        assert client.post(prefixed + PREFIX + "canada_asylum", data={"sql": "select 1"}).status_code == 405
