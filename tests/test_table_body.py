"""plugins/table_body.py writes the rows of table, view and row pages in Python instead of
Datasette's _table.html loop: the same cells (element, class, content) as Datasette's own
template writes, except the publisher's suppressions, which it marks. Both renderings are
produced by Datasette itself, in separate interpreters (plugins register process-wide):
the site as served, and the same site with Datasette's stock _table.html and without the
table_body plugin."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

DB = "canada_asylum"
PAGES = [
    f"/{DB}/irb_rpd_claims?year__gte=2015&_facet=year&_facet=country_code&_sort_desc=referred&_size=200",
    f"/{DB}/irb_rpd_claims?suppressed_measures__notblank=1&_size=100",
    f"/{DB}/rcmp_interceptions?_sort=month&_size=150",
    f"/{DB}/cbsa_ircc_claimants?_size=100&_sort_desc=claimants",
    f"/{DB}/us_claims_by_year",
    f"/{DB}/countries?_size=50",
    f"/{DB}/events",
]

RENDER = r"""
import asyncio, json, sys, yaml
from datasette.app import Datasette
from lxml import html as lhtml
root, db, templates, plugins, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])

async def main():
    ds = Datasette(immutables=[db], metadata=yaml.safe_load(open(f"{root}/metadata.yml")),
                   plugins_dir=plugins, template_dir=templates,
                   static_mounts=[("datapackage", f"{root}/datapackage")])
    await ds.invoke_startup()
    out = {}
    for page in pages:
        r = await ds.client.get(page)
        assert r.status_code == 200, (page, r.status_code)
        tree = lhtml.fromstring(r.text)
        rows = []
        for tr in tree.xpath("//table[contains(@class, 'rows-and-columns')]/tbody/tr"):
            rows.append([[td.get("class"), (td.text or "") + "".join(lhtml.tostring(c, encoding="unicode") for c in td)]
                         for td in tr.xpath("./td")])
        out[page] = rows
    print(json.dumps(out))

asyncio.run(main())
"""


def _render(root: Path, db: Path, templates: Path, plugins: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", RENDER, str(root), str(db), str(templates), str(plugins),
                             json.dumps(PAGES)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_rows_match_datasettes_template_except_the_marked_suppressions(served_site, tmp_path):
    _, root = served_site
    db = root / "build" / "canada_asylum.db"
    ours = _render(root, db, root / "templates", root / "plugins")
    stock_templates = tmp_path / "templates"
    shutil.copytree(root / "templates", stock_templates)
    (stock_templates / "_table.html").unlink()
    stock_plugins = tmp_path / "plugins"
    shutil.copytree(root / "plugins", stock_plugins, ignore=shutil.ignore_patterns("__pycache__"))
    (stock_plugins / "table_body.py").unlink()
    stock = _render(root, db, stock_templates, stock_plugins)

    marked_total = 0
    for page in PAGES:
        assert ours[page], page  # the page has rows
        assert len(ours[page]) == len(stock[page]), page
        for mine, theirs in zip(ours[page], stock[page]):
            assert [c[0] for c in mine] == [c[0] for c in theirs], page  # same cells, same classes
            for (css, value), (_, stock_value) in zip(mine, theirs):
                if value != stock_value:
                    # the only difference: a suppressed NULL, empty in the stock rendering
                    assert stock_value == "\xa0" and 'class="suppressed"' in value and "--" in value, (page, value)
                    assert "type-none" in css
                    marked_total += 1
    # the marked cells are exactly the empty cells of the measures each row lists in
    # suppressed_measures (second page: every row lists some)
    page = PAGES[1]
    expected = 0
    for row in stock[page]:
        listed = next(v for css, v in row if "col-suppressed_measures " in css + " ")
        measures = {m.strip() for m in listed.split(",") if m.strip()}
        expected += sum(1 for css, v in row if v == "\xa0" and css.split()[0][len("col-"):] in measures)
    marked = sum('class="suppressed"' in value for row in ours[page] for _, value in row)
    assert marked == expected > 0
    assert marked_total >= marked
