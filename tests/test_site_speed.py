"""What the page-speed changes keep and drop (plugins/site_policy.py, site.SETTINGS): no
facet suggestions, declared and requested facets unchanged; the memoized introspection of
the immutable database answers exactly as the database does; the Markdown cell hook is
left out only when no column could use it. Timings are in benchmarks/bench.py, not here."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from canada_asylum_data.site import SETTINGS

DB = "canada_asylum"
ROOT = Path(__file__).resolve().parent.parent


def test_no_suggested_facets_but_declared_and_requested_facets_stay(served_site):
    import httpx

    base, root = served_site
    assert SETTINGS["suggest_facets"] == "off"
    declared = yaml.safe_load((root / "metadata.yml").read_text())["databases"][DB]["tables"]["irb_rpd_claims"]["facets"]
    page = httpx.get(f"{base}/{DB}/irb_rpd_claims.json?_facet=source_id&year__gte=2020", timeout=30).json()
    assert page["suggested_facets"] == []
    assert set(page["facet_results"]) == set(declared) | {"source_id"}
    years = {r["value"] for r in page["facet_results"]["year"]["results"]}
    assert years and min(years) >= 2020
    html = httpx.get(f"{base}/{DB}/irb_rpd_claims?year__gte=2020", timeout=30).text
    assert "Suggested facets" not in html
    for facet in declared:
        assert f'data-column="{facet}"' in html


# run in a fresh interpreter: plugins register in Datasette's process-wide plugin manager
SCHEMA_CHECK = r"""
import asyncio, copy, json, os, sys
from datasette.app import Datasette
from datasette.plugins import pm
root, db_path = sys.argv[1], sys.argv[2]
METHODS = ("table_exists", "table_columns", "table_column_details", "primary_keys", "fts_table",
           "label_column_for_table", "foreign_keys_for_table", "get_table_definition")

async def answers(memo):
    os.environ["CANADA_ASYLUM_DATA_SCHEMA_MEMO"] = memo
    # the inspect file the site is served with (row counts, so no page counts every table)
    inspect_data = json.load(open(os.path.join(os.path.dirname(db_path), "inspect-data.json")))
    ds = Datasette(immutables=[db_path], plugins_dir=f"{root}/plugins", inspect_data=inspect_data,
                   settings={"suggest_facets": False})  # as served (site.SETTINGS)
    await ds.invoke_startup()
    db = ds.get_database()
    out = {"tables": await db.table_names(), "views": await db.view_names(),
           "hidden": await db.hidden_table_names(), "fks": await db.get_all_foreign_keys()}
    for table in out["tables"] + ["no_such_table"]:
        for name in METHODS:
            first = await getattr(db, name)(table)
            again = await getattr(db, name)(table)
            assert first == again, (name, table)
            if isinstance(again, list) and again:
                again.clear()  # a caller changing its copy changes nothing for the next
                assert await getattr(db, name)(table) == first, (name, table)
            out[f"{name}:{table}"] = first
    for view in out["views"]:
        out[f"view:{view}"] = await db.get_view_definition(view)
    return ds, json.loads(json.dumps(out, default=repr))

async def statements(ds, path):
    # SQL statements the page sends to the data database (each a thread-pool round trip)
    db = ds.get_database()
    count, original = [0], db.execute_fn
    async def counting(fn):
        count[0] += 1
        return await original(fn)
    db.execute_fn = counting
    try:
        assert (await ds.client.get(path)).status_code == 200
    finally:
        db.execute_fn = original
    return count[0]

async def main():
    plain_ds, plain = await answers("0")
    memo_ds, memo = await answers("1")
    assert not getattr(plain_ds.get_database(), "_cad_schema_memo", False)
    assert memo_ds.get_database()._cad_schema_memo
    assert plain == memo
    for path in ("/canada_asylum/irb_rpd_claims", "/canada_asylum/events"):
        # the memo is filled at start-up: even a page's first visit sends only its own
        # statements (rows, count, facets, labels), none about the schema
        first, plain_first = await statements(memo_ds, path), await statements(plain_ds, path)
        assert first <= 8 and plain_first > first, (path, first, plain_first)
    for path in ("/", "/canada_asylum"):
        plain_n, memo_n = await statements(plain_ds, path), await statements(memo_ds, path)
        assert plain_n > len(plain["tables"]) and memo_n <= 2, (path, plain_n, memo_n)
    # foreign-key labels (rows and facets) are the same from the memo, on a first and a later visit
    for path in ("/canada_asylum/irb_rpd_claims.json?_labels=on&_facet=country_code&_facet=source_id&year__gte=2019",
                 "/canada_asylum/irb_rpd_claims.json?_labels=on&_facet=country_code&year=2016&_size=300",
                 "/canada_asylum/cbsa_ircc_claimants.json?_labels=on&_facet=province_code&_size=200"):
        for _ in range(2):
            a, b = (await plain_ds.client.get(path)).json(), (await memo_ds.client.get(path)).json()
            assert a["rows"] == b["rows"] and a["facet_results"] == b["facet_results"], path
            assert any(isinstance(v, dict) and "label" in v for r in b["rows"] for v in r.values()), path
    # a differently spelled table name still resolves through the (memoized) lookup
    for ds in (plain_ds, memo_ds):
        assert await ds.permission_allowed(None, "view-table", ("canada_asylum", "EVENTS"), default=True)
    print(len(memo))

asyncio.run(main())
"""


def test_memoized_introspection_answers_as_the_database_does(served_site):
    _, root = served_site
    db = root / "build" / "canada_asylum.db"
    result = subprocess.run([sys.executable, "-c", SCHEMA_CHECK, str(root), str(db)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip()) > 23 * 8


MARKDOWN_CHECK = r"""
import asyncio, sys
from datasette.app import Datasette
from datasette.plugins import pm
root, db_path, table = sys.argv[1], sys.argv[2], sys.argv[3]

async def main():
    ds = Datasette(immutables=[db_path], plugins_dir=f"{root}/plugins")
    await ds.invoke_startup()
    hooks = sorted(getattr(i.plugin, "__name__", i.plugin_name) for i in pm.hook.render_cell.get_hookimpls())
    html = (await ds.client.get(f"/{ds.get_database().name}/{table}")).text
    print(repr(hooks), "<strong>bold</strong>" in html)

asyncio.run(main())
"""


def _markdown_check(root: Path, db: Path, table: str) -> tuple[list[str], bool]:
    result = subprocess.run([sys.executable, "-c", MARKDOWN_CHECK, str(root), str(db), table],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    hooks, rendered = result.stdout.strip().rsplit(" ", 1)
    return eval(hooks), rendered == "True"  # noqa: S307 (our own repr of a list of names)


def test_markdown_cell_hook_left_out_only_when_no_column_can_use_it(served_site, tmp_path):
    _, root = served_site
    hooks, _ = _markdown_check(root, root / "build" / "canada_asylum.db", "events")
    assert "datasette_render_markdown" not in hooks
    assert hooks == []  # the suppressed-cell marker is written by plugins/table_body.py, not per cell
    db = tmp_path / "notes.db"
    conn = sqlite3.connect(db)
    conn.execute("create table notes (id integer primary key, body_markdown text)")
    conn.execute("insert into notes values (1, 'some **bold** text')")
    conn.commit()
    conn.close()
    hooks, rendered = _markdown_check(root, db, "notes")
    assert "datasette_render_markdown" in hooks and rendered


def test_suppressed_cells_still_marked_on_a_table_page(served_site):
    import httpx

    base, _ = served_site
    html = httpx.get(f"{base}/{DB}/irb_rpd_claims?suppressed_measures__notblank=1&_size=20", timeout=30).text
    assert html.count('<span class="suppressed"') >= 20
    page = httpx.get(f"{base}/{DB}/irb_rpd_claims.json?suppressed_measures__notblank=1&_size=20&_shape=array",
                     timeout=30).json()
    # every listed measure of every row on the page is shown as "--"
    assert sum(len(r["suppressed_measures"].split(",")) for r in page) == html.count('<span class="suppressed"')


REFRESH_CHECK = r"""
import asyncio, json, sqlite3, sys
from datasette.app import Datasette
root, db_path, scratch = sys.argv[1], sys.argv[2], sys.argv[3]

async def statements(ds, path):
    r = await ds.client.get(path + "&_trace=1")
    assert r.status_code == 200, (path, r.status_code)
    return [t["sql"] for t in r.json()["_trace"]["traces"]]

async def main():
    out = {}
    ds = Datasette(immutables=[db_path], plugins_dir=f"{root}/plugins", settings={"trace_debug": True})
    await ds.invoke_startup()
    path = "/canada_asylum/irb_rpd_claims.json?_shape=objects&country_code=USA"
    first = await statements(ds, path)
    later = await statements(ds, path + "&year__gte=2020")
    out["immutable"] = [first, later]
    sqlite3.connect(scratch).execute("create table t (x)")
    ds = Datasette([scratch], immutables=[db_path], plugins_dir=f"{root}/plugins", settings={"trace_debug": True})
    await ds.invoke_startup()
    await statements(ds, path)
    out["mutable"] = await statements(ds, path + "&year__gte=2020")
    print(json.dumps(out))

asyncio.run(main())
"""


def test_schema_refresh_is_skipped_only_while_every_database_is_immutable(served_site, tmp_path):
    """Datasette checks every database's schema version at the start of each request; on a
    site of immutable databases the check runs once (plugins/site_policy.py)."""
    import json

    _, root = served_site
    result = subprocess.run([sys.executable, "-c", REFRESH_CHECK, str(root), str(root / "build" / "canada_asylum.db"),
                             str(tmp_path / "scratch.db")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    first, later = out["immutable"]
    assert any("irb_rpd_claims" in sql for sql in later)  # the page's own statements run
    assert not any("schema_version" in sql for sql in later), later
    assert any("schema_version" in sql for sql in out["mutable"]), out["mutable"]


def test_a_facet_the_table_already_shows_is_drawn_and_counted_once(served_site):
    """``_facet=<declared facet>`` (and a facet asked for twice) no longer draws the facet
    twice; other facets and filters are kept (plugins/site_policy.py)."""
    import re

    import httpx

    base, root = served_site
    declared = yaml.safe_load((root / "metadata.yml").read_text())["databases"][DB]["tables"]["irb_rpd_claims"]["facets"]
    assert "country_code" in declared
    html = httpx.get(f"{base}/{DB}/irb_rpd_claims?year=2019&_facet=country_code&_facet=source_id"
                     "&_facet=source_id", timeout=30).text
    for facet in declared + ["source_id"]:
        assert len(re.findall(rf'id="facet-{facet}"', html)) == 1, facet
    assert re.search(r"[\d,]+ rows? where year = 2019", html)
    page = httpx.get(f"{base}/{DB}/irb_rpd_claims.json?_shape=objects&year=2019&_facet=country_code"
                     "&_facet=source_id", timeout=30).json()
    assert set(page["facet_results"]) == set(declared) | {"source_id"}
    assert {r["year"] for r in page["rows"]} == {2019}
