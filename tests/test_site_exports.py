"""Every table and view of the built database, read through the served site, returns each
row exactly once: as a streamed CSV (`_stream=on`) and as JSON pages followed through
`next_url`, under the table's default sort and under `_sort_desc` of a non-unique column
(Datasette 0.65 orders the tied rows of page 1 without the primary-key tie-breaker it uses
from page 2 on; plugins/sort_tiebreak.py fixes it, docs/datasette-sort-pagination.md)."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections import Counter

import httpx
import pytest

DB = "canada_asylum"


def _relations(root):
    conn = sqlite3.connect(f"file:{root / 'build' / 'canada_asylum.db'}?mode=ro", uri=True)
    try:
        out = []
        # not the full-text indexes (x_fts and its shadow tables): SQLite's own structures,
        # with BLOB keys, not published data
        for name, kind in conn.execute("select name, type from sqlite_master where type in ('table', 'view') "
                                       "and name not like 'sqlite_%' and name not like '%\\_fts%' escape '\\' "
                                       "order by name"):
            info = conn.execute(f"pragma table_info([{name}])").fetchall()
            cols = [r[1] for r in info]
            pks = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            rows = conn.execute(f"select * from [{name}]").fetchall()
            # a non-unique column with the most ties, so that page boundaries fall inside them
            counts = {c: len({r[i] for r in rows}) for i, c in enumerate(cols)}
            tied = min((c for c in cols if counts[c] < len(rows)), key=lambda c: counts[c], default=None)
            out.append({"name": name, "kind": kind, "cols": cols, "pks": pks, "rows": rows, "tied": tied})
        return out
    finally:
        conn.close()


def _as_csv(value) -> str:
    if value is None:
        return ""
    return str(value)


def _keys(rel, dict_rows):
    """Primary key of each row (the whole row for views and key-less tables)."""
    key_cols = rel["pks"] if rel["kind"] == "table" and rel["pks"] else rel["cols"]
    return [tuple(_as_csv(r[c]) for c in key_cols) for r in dict_rows]


def _expected(rel):
    return Counter(_keys(rel, [dict(zip(rel["cols"], r)) for r in rel["rows"]]))


def _sorts(rel):
    yield ""
    if rel["tied"]:
        yield f"&_sort_desc={rel['tied']}"


@pytest.fixture(scope="module")
def relations(served_site):
    base, root = served_site
    # Every table and view a reader can open: Datasette hides the full-text search index
    # tables (<table>_fts and its shadow tables), which hold SQLite's own index records.
    listing = httpx.get(f"{base}/{DB}.json", timeout=60).json()
    hidden = {t["name"] for t in listing["tables"] if t["hidden"]}
    rels = [r for r in _relations(root) if r["name"] not in hidden]
    assert not [r for r in rels if "_fts" in r["name"]], "search index tables are not hidden"
    assert len([r for r in rels if r["kind"] == "table"]) >= 20 and any(r["kind"] == "view" for r in rels)
    assert sum(1 for r in rels if len(r["rows"]) > 5000) >= 1, "no table spans several pages of _size=max"
    return rels


def test_streamed_csv_holds_every_row_once(served_site, relations):
    base, _ = served_site
    failures = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for rel in relations:
            for sort in _sorts(rel):
                url = f"/{DB}/{rel['name']}.csv?_stream=on&_size=max{sort}"
                response = client.get(url)
                assert response.status_code == 200, (url, response.text[:300])
                reader = csv.DictReader(io.StringIO(response.text))
                rows = list(reader)
                got = Counter(_keys(rel, rows))
                if got != _expected(rel) or len(rows) != len(rel["rows"]):
                    missing = _expected(rel) - got
                    extra = got - _expected(rel)
                    failures.append(f"{url}: {len(rows)} rows for {len(rel['rows'])}, "
                                    f"{sum(missing.values())} missing, {sum(extra.values())} repeated/extra")
    assert not failures, "\n".join(failures)


def test_json_pages_hold_every_row_once(served_site, relations):
    base, _ = served_site
    failures = []
    with httpx.Client(timeout=120) as client:
        for rel in relations:
            for sort in _sorts(rel):
                url = f"{base}/{DB}/{rel['name']}.json?_shape=objects&_size=max{sort}"
                first, rows, pages = url, [], 0
                while url:
                    response = client.get(url)
                    assert response.status_code == 200, (url, response.text[:300])
                    body = response.json()
                    rows += body["rows"]
                    url = body.get("next_url")
                    pages += 1
                    assert pages < 100, first
                got = Counter(_keys(rel, rows))
                if got != _expected(rel) or len(rows) != len(rel["rows"]):
                    failures.append(f"{first}: {len(rows)} rows for {len(rel['rows'])} in {pages} pages")
    assert not failures, "\n".join(failures)


def test_small_pages_under_a_tied_sort_hold_every_row_once(served_site, relations):
    """The default page size (100) with the metadata's default sort, as a reader clicking
    "next" on the HTML page's JSON twin would walk it, on the table of the original report."""
    base, _ = served_site
    rel = next(r for r in relations if r["name"] == "rcmp_interceptions")
    url, rows = f"{base}/{DB}/rcmp_interceptions.json?_shape=objects", []
    with httpx.Client(timeout=60) as client:
        while url:
            body = client.get(url).json()
            rows += body["rows"]
            url = body.get("next_url")
    assert Counter(_keys(rel, rows)) == _expected(rel) and len(rows) == 600
