"""The site in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium,
headless) against `canada-asylum-data serve` on 127.0.0.1. Charts must render (SVG or
canvas), no JavaScript errors, no request may leave 127.0.0.1; screenshots are saved to
build/screenshots/ (or $CANADA_ASYLUM_DATA_SCREENSHOTS)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from .conftest import ROOT
from .conftest import copy_project, run

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots go to build/screenshots/; set CANADA_ASYLUM_DATA_SCREENSHOTS=docs/screenshots
# to refresh the ones the README shows.
SHOTS = Path(os.environ.get("CANADA_ASYLUM_DATA_SCREENSHOTS", ROOT / "build" / "screenshots"))

playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    root = copy_project(tmp_path_factory.mktemp("browser"))
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    port = _free_port()
    # the README's serve command
    exe = Path(sys.executable).parent / "canada-asylum-data"
    proc = subprocess.Popen([str(exe), "--root", str(root), "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(base + "/-/versions.json", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("datasette did not start: " + proc.stdout.read().decode()[-2000:])
    yield base
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.js_errors, pg.outside = [], []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    pg.on("console", lambda msg: pg.js_errors.append(msg.text) if msg.type == "error" else None)

    def guard(route):
        host = urlparse(route.request.url).hostname
        if host not in ("127.0.0.1",):
            pg.outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    pg.route("**/*", guard)
    yield pg
    context.close()


def visit(page, url: str, shot: str):
    response = page.goto(url, wait_until="networkidle")
    assert response.status == 200, url
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=False)
    return response


def clean(page):
    assert page.js_errors == [], page.js_errors
    assert page.outside == [], f"requests left 127.0.0.1: {page.outside}"


def test_home_page(page, server):
    visit(page, server + "/", "home")
    assert "Asylum claims in Canada" in page.content()
    assert "data version" in page.content()
    clean(page)


def test_table_page_with_facets(page, server):
    visit(page, server + "/canada_asylum/rcmp_interceptions_by_province?_facet=province_code", "table-facets")
    assert page.locator(".facet-info").count() >= 1
    assert "Facet counts are numbers of rows" in page.content()
    clean(page)


def test_filtered_us_view(page, server):
    visit(page, server + "/canada_asylum/us_claims_by_year?year__gte=2017", "us-view")
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() == 9  # 2017 to 2025: the view runs to the latest year any source has
    assert "rpd_accepted_low" in page.content()
    clean(page)


def test_canned_query_with_parameters(page, server):
    visit(page, server + "/canada_asylum/interceptions_by_province?province=BC&month_from=2023-01&month_to=2023-06",
          "canned-query")
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() == 6
    assert "stca_additional_protocol" in page.content()
    assert "Roxham Road" in page.content()  # the query's description is shown
    clean(page)


def test_charts_render(page, server):
    visit(page, server + "/-/dashboards/journalist", "charts")
    page.wait_for_function(
        "document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= 4", timeout=30000)
    page.screenshot(path=str(SHOTS / "charts.png"), full_page=True)
    assert page.locator(".vega-embed svg, .vega-embed canvas").count() >= 4
    clean(page)


def test_dictionary_page(page, server):
    visit(page, server + "/dictionary", "dictionary")
    assert page.locator("table.rows-and-columns tbody tr").count() > 30
    clean(page)


# --- the front door: phone layout, accessibility, search ------------------------------------

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
AXE_PAGES = {
    "home": "/",
    "table": "/canada_asylum/irb_rpd_claims",
    "view": "/canada_asylum/us_claims_by_year",
    "canned-query": "/canada_asylum/country_claims_by_year?country=ZZZ",
    "charts": "/-/dashboards/journalist",
    "dictionary": "/dictionary",
}


@pytest.fixture
def phone(browser, server):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1,
                                  is_mobile=True, has_touch=True)
    pg = context.new_page()
    pg.js_errors, pg.outside = [], []
    pg.on("pageerror", lambda exc: pg.js_errors.append(str(exc)))
    pg.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).hostname == "127.0.0.1"
             else (pg.outside.append(route.request.url), route.abort()))
    yield pg
    context.close()


def first_row_top(page) -> float:
    return page.evaluate("document.querySelector('table.rows-and-columns tbody tr')"
                         ".getBoundingClientRect().top + window.scrollY")


def test_home_lists_the_us_view_and_charts_before_any_raw_table(page, server):
    visit(page, server + "/", "home")
    links = page.eval_on_selector_all(".content a", "els => els.map(e => e.getAttribute('href'))")
    raw = links.index("/canada_asylum/irb_rpd_claims")
    assert links.index("/canada_asylum/us_claims_by_year") < raw
    assert links.index("/-/dashboards/journalist") < raw
    assert page.locator("section.cad-answer").count() >= 5
    clean(page)


@pytest.mark.parametrize("path,shot", [("/canada_asylum/irb_rpd_claims", "phone-irb-rpd-claims"),
                                       ("/canada_asylum/us_claims_by_year", "phone-us-claims-by-year")])
def test_first_data_row_within_1600px_on_a_phone(phone, server, path, shot):
    visit(phone, server + path, shot)
    assert first_row_top(phone) <= 1600, first_row_top(phone)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    clean(phone)


def test_first_data_row_high_on_a_desktop(page, server):
    visit(page, server + "/canada_asylum/us_claims_by_year", "desktop-us-claims-by-year")
    assert first_row_top(page) <= 1200
    clean(page)


def test_phone_home_and_canned_query(phone, server):
    visit(phone, server + "/", "phone-home")
    visit(phone, server + "/canada_asylum/interceptions_by_province?month_from=2024-01", "phone-canned-query")
    assert "ends in" in phone.locator(".cad-message").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    clean(phone)


def run_axe(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in ("critical", "serious")]


@pytest.mark.parametrize("name", list(AXE_PAGES))
def test_no_critical_or_serious_accessibility_violations(page, server, name):
    response = page.goto(server + AXE_PAGES[name], wait_until="networkidle")
    assert response.status == 200
    if name == "charts":
        page.wait_for_function("document.querySelectorAll('.vega-embed svg, .vega-embed canvas').length >= 4",
                               timeout=30000)
    violations = run_axe(page)
    assert violations == [], violations
    assert page.evaluate("document.documentElement.lang") in ("en", "fr")


def test_site_search_from_the_header(page, server):
    page.goto(server + "/canada_asylum/irb_rpd_claims", wait_until="networkidle")
    page.fill("#cad-site-search", "États-Unis")
    page.press("#cad-site-search", "Enter")
    page.wait_for_load_state("networkidle")
    assert "United States / États-Unis (USA)" in page.content()
    clean(page)


# --- use from code: the README's examples, run against the served site ------------------------

def _readme_block(marker: str, lang: str) -> str:
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(rf"<!-- {marker} -->\n```{lang}\n(.*?)```", text, re.S).group(1)


def test_readme_python_example_runs_and_is_on_the_dictionary_page(server, tmp_path):
    import html
    import re

    code = _readme_block("python-example", "python").replace("http://127.0.0.1:8001", server)
    page = httpx.get(server + "/dictionary").text
    shown = html.unescape(re.search(r'<pre class="cad-code cad-python">(.*?)</pre>', page, re.S).group(1))
    assert shown == code
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "IRB RPD rows" in result.stdout and "suppressed 'accepted' cells" in result.stdout
    # the paging loop read every RCMP row: the yearly sums equal the table's
    import csv

    with open(ROOT / "datapackage" / "data" / "rcmp_interceptions.csv", newline="", encoding="utf-8") as f:
        total_2017 = sum(int(r["interceptions"]) for r in csv.DictReader(f) if r["year"] == "2017")
    assert re.search(rf"^2017\s+{total_2017}$", result.stdout, re.M), result.stdout


def test_readme_curl_example_runs(server, tmp_path):
    import shutil

    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the README's curl example")
    code = _readme_block("curl-example", "bash").replace("http://127.0.0.1:8001", server)
    result = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"rpd_referred"' in result.stdout and '"country_code": "HTI"' in result.stdout
    assert (tmp_path / "rcmp_interceptions_by_year.csv").read_text().startswith("year,province_code")
    assert '"resources"' in (tmp_path / "datapackage.json").read_text()


def _axis_labels(page, chart: str) -> set[str]:
    selector = f"#chart-{chart} svg text"
    page.wait_for_function(f"document.querySelectorAll('{selector}').length > 5", timeout=30000)
    return set(page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)"))


def test_us_charts_reach_2025(page, server):
    visit(page, server + "/-/dashboards/journalist", "charts-us")
    years = _axis_labels(page, "us-claims")
    assert {"2013", "2023", "2024", "2025"} <= years, sorted(years)
    assert "2026" not in years
    halves = _axis_labels(page, "us-half-years")
    assert any("2025" in t for t in halves) and any("2023" in t for t in halves), sorted(halves)
    assert "IRB figures run from 2013 to 2023" in page.content()
    clean(page)


def test_table_pages_say_where_series_end(page, server):
    for table, sentence in (("irb_rpd_claims", "IRB figures run from 2013 to 2023; 2024-2025 "
                                               "not yet published here"),
                            ("rcmp_interceptions", "RCMP figures run from January 2017 to "
                                                   "December 2023; 2024-2025 not yet published")):
        visit(page, server + f"/canada_asylum/{table}", f"end-of-series-{table}")
        block = page.locator(".series-coverage")
        assert sentence in block.inner_text()
        link = block.locator(f'a[href="/canada_asylum/coverage?series={table}"]')
        assert link.count() == 1
        link.click()
        page.wait_for_load_state("networkidle")
        assert f"series={table}" in page.url
        assert page.locator("table.rows-and-columns tbody tr").count() >= 1
    clean(page)


#: The publishers (as the in-chart credit abbreviates them) whose rows each chart shows.
CHART_PUBLISHERS = {"us-claims": {"IRB", "UNHCR"}, "us-rates": {"IRB"}, "us-half-years": {"UNHCR"},
                    "rcmp-monthly": {"IRCC"}, "office-type": {"IRCC"}}
#: Charts drawing several series (each needs a legend).
SEVERAL_SERIES = {"us-claims", "us-rates", "us-half-years", "office-type"}
FULL_NAMES = {"IRB": "Immigration and Refugee Board", "UNHCR": "UNHCR",
              "IRCC": "Immigration, Refugees and Citizenship Canada", "CBSA": "Border Services",
              "RCMP": "Royal Canadian Mounted Police"}

CHART_FACTS = """(chart) => {
  const root = document.querySelector('#chart-' + chart + ' svg');
  const box = root.getBoundingClientRect();
  const shown = (e) => e.getAttribute('opacity') !== '0' && getComputedStyle(e).opacity !== '0';
  const texts = (sel) => Array.from(root.querySelectorAll(sel)).filter(shown);
  const xaxis = Array.from(root.querySelectorAll('g.role-axis'))
    .filter(g => (g.getAttribute('aria-label') || '').startsWith('X-axis'));
  return {
    x_labels: xaxis.flatMap(g => Array.from(g.querySelectorAll('.role-axis-label text')).filter(shown)
                                      .map(e => e.textContent)),
    legends: root.querySelectorAll('g.role-legend').length,
    legend_labels: texts('.role-legend-label text').map(e => {
      const r = e.getBoundingClientRect();
      return {text: e.textContent, inside: r.left >= box.left - 1 && r.right <= box.right + 1};
    }),
    credit: texts('.role-title-text text').map(e => Array.from(e.childNodes).map(n => n.textContent).join(' ')).join(' '),
  };
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_charts_axes_legends_and_sources(browser, server, width):
    """Every chart at a desktop and a phone width: years on the x axis, a whole legend where it
    draws several series, and a source naming exactly the publishers whose rows it shows, both
    inside the drawing (so a saved PNG or SVG carries it) and under it."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.goto(server + "/-/dashboards/journalist", wait_until="networkidle")
        page.wait_for_function("document.querySelectorAll('.vega-embed svg').length >= 5", timeout=30000)
        crossers = httpx.get(server + "/canada_asylum.json", params={
            "sql": "select distinct coalesce(s.vintage, s.published) as v from irb_irregular_crosser_claims t "
                   "join sources s on s.id = t.source_id", "_shape": "array"}).json()
        crosser_vintages = {r["v"] for r in crossers} - {None}
        assert crosser_vintages
        for chart, publishers in CHART_PUBLISHERS.items():
            facts = page.evaluate(CHART_FACTS, chart)
            years = [t for t in facts["x_labels"] if re.search(r"\b(19|20)\d\d\b", t)]
            assert len(years) >= 3, (chart, width, facts["x_labels"])
            if chart in SEVERAL_SERIES:
                assert facts["legends"] >= 1, (chart, width)
                labels = facts["legend_labels"]
                assert len(labels) >= 2, (chart, width, labels)
                assert all("…" not in lab["text"] and lab["inside"] for lab in labels), (chart, width, labels)
            named = set(re.findall(r"\b(IRB|IRCC|UNHCR|CBSA|RCMP)\b", facts["credit"]))
            assert facts["credit"].startswith("Source:") and named == publishers, (chart, facts["credit"])
            line = page.locator(f"#card-{chart} .cad-chart-source").inner_text()
            assert {short for short, full in FULL_NAMES.items() if full in line} == publishers, (chart, line)
            if chart == "us-claims":  # the US view reads the irregular-crosser snapshots; the chart does not show them
                assert not any(v in line for v in crosser_vintages), line
        if width < 800:
            page.screenshot(path=str(SHOTS / "phone-charts.png"), full_page=True)
    finally:
        context.close()
