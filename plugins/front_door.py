"""The journalist's front door: language, site search, sitemap and template helpers.

* ``cad_lang(request)``: ``fr`` when the page was asked for with ``?lang=fr``, else ``en``
  (base.html puts it in ``<html lang>``; the home page and the dictionary switch language).
* ``cad_num(n, lang)``: a count with thousands separators (a thin space in French).
* ``cad_title(table)`` / ``cad_meta()``: titles and instance metadata for the home page.
* ``/search?q=``: one search box on every page. At start-up the reference tables
  (countries with every alias spelling, definitions, events, sources, categories, and the
  table and view titles) are read from the immutable database into an in-memory SQLite
  FTS5 index (accents folded, so ``etats-unis`` finds "États-Unis"); nothing is written to
  the database file.
* ``/sitemap.xml``: the home page, charts, dictionary, every table, view and canned query.
* ``cad_sql(sql, params, database)``: datasette-template-sql's ``sql()`` for the figures
  the home and charts pages show, answered once per database file: the database is
  served immutable, so the same statement gives the same rows until a new generation is
  served, and the home page's eight statements (aggregates over the largest tables, ~13 ms
  of a ~18 ms page) need not run for every reader. Keyed on the database's content hash,
  the statement and its parameters; bounded (:data:`SQL_MEMO_SIZE` entries); a mutable
  database is never memoized.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections import OrderedDict
from urllib.parse import quote

from datasette import hookimpl
from datasette.utils import tilde_encode
from datasette.utils.asgi import Response

DB = "canada_asylum"
_INDEX: dict = {"conn": None}
SQL_MEMO_SIZE = 256
_SQL_MEMO: OrderedDict = OrderedDict()


async def memo_sql(datasette, sql: str, params=None, database: str | None = None) -> list:
    """The rows of ``sql`` on ``database``, remembered while an immutable database is served."""
    db = datasette.get_database(database)
    if db.is_mutable or not db.hash:
        return (await db.execute(sql, params)).rows
    key = (db.name, db.hash, sql, repr(sorted(params.items())) if isinstance(params, dict) else repr(params))
    rows = _SQL_MEMO.get(key)
    if rows is None:
        rows = (await db.execute(sql, params)).rows
        _SQL_MEMO[key] = rows
        while len(_SQL_MEMO) > SQL_MEMO_SIZE:
            _SQL_MEMO.popitem(last=False)
    return rows


def cad_lang(request) -> str:
    try:
        return "fr" if request is not None and request.args.get("lang") == "fr" else "en"
    except AttributeError:
        return "en"


def cad_num(value, lang: str = "en") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        text = f"{value:,.1f}"
    else:
        text = f"{int(value):,}"
    return text.replace(",", "\u202f").replace(".", ",") if lang == "fr" else text


#: (kind, SQL giving title, body, url path) for the site search.
DOCUMENTS = [
    ("country", """select c.name_en || ' / ' || c.name_fr || ' (' || c.code || ')',
        coalesce((select group_concat(distinct a.label) from country_aliases a where a.code = c.code), ''),
        '/canada_asylum/countries/' || c.code from countries c"""),
    ("definition", """select table_name || '.' || measure, counts || ' ' || counted_when || ' '
        || not_comparable_with || ' ' || unit, '/dictionary#measures' from definitions"""),
    ("event", """select event_date || ': ' || title_en, title_fr || ' ' || description,
        '/canada_asylum/events/' || event_date || ',' || event_id from events"""),
    ("source", """select title, publisher || ' ' || coalesce(notes, '') || ' ' || coalesce(vintage, ''),
        '/canada_asylum/sources/' || id from sources"""),
    ("category", """select category || ': ' || label_en || ' / ' || label_fr,
        code || ' ' || coalesce(description, ''), '/dictionary#categories' from categories"""),
]


def row_url(url: str) -> str:
    """A row page's path with each primary-key value tilde-encoded as Datasette expects
    (``unhcr-asylum-applications-2025.12.1`` would otherwise read as a ``.1`` format)."""
    if "#" in url or url.count("/") != 3:
        return url
    head, _, keys = url.rpartition("/")
    return head + "/" + ",".join(tilde_encode(k) for k in keys.split(","))


def build_index(datasette) -> sqlite3.Connection:
    mem = sqlite3.connect(":memory:", check_same_thread=False)
    mem.execute("create virtual table docs using fts5(kind, title, body, url UNINDEXED, "
                "tokenize = 'unicode61 remove_diacritics 2')")
    db = datasette.databases.get(DB)
    if db is None:
        return mem
    src = sqlite3.connect(f"file:{db.path}?mode=ro&immutable=1", uri=True)
    try:
        for kind, sql in DOCUMENTS:
            try:
                rows = src.execute(sql).fetchall()
            except sqlite3.Error:
                continue
            mem.executemany("insert into docs values (?, ?, ?, ?)",
                            [(kind, t or "", b or "", row_url(u)) for t, b, u in rows])
        names = src.execute("select name, type from sqlite_master where type in ('table', 'view') "
                            "and name not like '%_fts%' and name not like 'sqlite_%'").fetchall()
    finally:
        src.close()
    for name, kind in names:
        meta = datasette.table_metadata(DB, name) or {}
        mem.execute("insert into docs values (?, ?, ?, ?)",
                    (kind, f"{meta.get('title') or name} ({name})",
                     (meta.get("description") or "")[:2000], f"/{DB}/{name}"))
    queries = (datasette.metadata("queries", database=DB) or {})
    for name, q in queries.items():
        mem.execute("insert into docs values (?, ?, ?, ?)",
                    ("canned query", f"{q.get('title') or name} ({name})", q.get("description") or "",
                     f"/{DB}/{name}"))
    mem.commit()
    return mem


def fts_query(text: str) -> str:
    """User text -> an FTS5 query: each word a prefix term, all words required."""
    words = ["".join(ch for ch in w if ch.isalnum()) for w in text.replace("-", " ").split()]
    return " ".join(f'"{w}"*' for w in words if w)


def search(q: str, limit: int = 50) -> list[tuple]:
    conn = _INDEX["conn"]
    if conn is None or not fts_query(q):
        return []
    return conn.execute(
        "select kind, title, snippet(docs, 2, '[', ']', '…', 12), url from docs where docs match ? "
        "order by bm25(docs, 0.0, 10.0, 1.0), length(title) limit ?", (fts_query(q), limit)).fetchall()


def table_sources(datasette) -> dict:
    """{table: [(publisher, [vintages])]} for every table with a source_id column."""
    db = datasette.databases.get(DB)
    out: dict = {}
    if db is None:
        return out
    src = sqlite3.connect(f"file:{db.path}?mode=ro&immutable=1", uri=True)
    try:
        tables = [r[0] for r in src.execute("select name from sqlite_master where type = 'table'")]
        for t in tables:
            cols = [r[1] for r in src.execute(f"pragma table_info([{t}])")]
            if "source_id" not in cols:
                continue
            vintage = "t.vintage" if "vintage" in cols else "coalesce(s.vintage, s.published)"
            rows = src.execute(f"select s.publisher, {vintage} from (select distinct source_id"
                               f"{', vintage' if 'vintage' in cols else ''} from [{t}]) t "
                               "join sources s on s.id = t.source_id").fetchall()
            by_pub: dict = {}
            for pub, vin in rows:
                by_pub.setdefault(pub, set()).add(vin or "")
            out[t] = sorted((pub, sorted(v - {""})) for pub, v in by_pub.items())
    except sqlite3.Error:
        pass
    finally:
        src.close()
    return out


SHORT_PUBLISHERS = (("Refugee Board", "IRB"), ("Immigration, Refugees and Citizenship", "IRCC"),
                    ("Border Services", "CBSA"), ("Mounted Police", "RCMP"), ("UNHCR", "UNHCR"))


def chart_tables(sql: str) -> list[str]:
    """The tables whose rows a chart's SQL shows (through views; a table the SQL reads but
    whose rows do not reach the chart is not cited: metadata.tables_shown). Cached per SQL."""
    from canada_asylum_data.metadata import tables_behind, tables_shown

    cache = _INDEX.setdefault("chart_tables", {})
    if sql not in cache:
        sources = _INDEX.get("table_sources") or {}
        views = _INDEX.get("views") or {}
        db = _INDEX.get("db_path")
        if db is None:
            cache[sql] = tables_behind(sql, set(sources), views)
        else:
            conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
            try:
                cache[sql] = tables_shown(sql, set(sources), views, conn)
            except sqlite3.Error:
                cache[sql] = tables_behind(sql, set(sources), views)
            finally:
                conn.close()
    return cache[sql]


def short_source(sql: str, version: str = "") -> list[str]:
    """The credit drawn inside a chart (and so in a saved PNG or SVG), as two short lines
    that fit a phone: the publishers behind the chart, then the package and its version."""
    sources = _INDEX.get("table_sources") or {}
    names = set()
    for table in chart_tables(sql):
        for pub, _ in sources[table]:
            names.add(next((short for key, short in SHORT_PUBLISHERS if key in pub), pub))
    return [f"Source: {', '.join(sorted(names))}" if names else "Source:",
            f"via canada-asylum-data {version}".rstrip()]


def chart_source(sql: str, version: str = "") -> str:
    """"Source: ..." line for a chart: the publishers and vintages of the tables whose rows it shows."""
    from canada_asylum_data.metadata import vintage_text

    sources = _INDEX.get("table_sources") or {}
    by_pub: dict = {}
    for table in chart_tables(sql):
        for pub, vintages in sources[table]:
            by_pub.setdefault(pub, set()).update(vintages)
    parts = [f"{pub} ({vintage_text(v)})" if v else pub for pub, v in sorted(by_pub.items())]
    via = f"via canada-asylum-data{', data version ' + version if version else ''}"
    return "Source: " + "; ".join(parts) + f"; {via}." if parts else f"Source: {via}."


@hookimpl
def startup(datasette):
    # Globals too, so pages Datasette renders without extra_template_vars (errors) work.
    # cad_base: Datasette's base_url ("/" unless the site is served under a prefix); the
    # templates write every link of the site as {{ cad_base }}path.
    base_url = datasette.setting("base_url")
    _INDEX["base_url"] = base_url
    datasette.jinja_env.filters["cad_details"] = cad_details
    datasette.jinja_env.filters["cad_html_links"] = cad_html_links
    datasette.jinja_env.globals.update(cad_lang=cad_lang, cad_num=cad_num, cad_base=base_url)

    def cad_url(url):
        """A site path Datasette 0.65 builds from request.path without base_url (the export
        format links, the CSV form, "show/hide SQL", a facet's "…"): with base_url. The
        request path reaches Datasette without the prefix (site_policy.strip_base_url),
        which makes its other links (sorts, facets, next page) right."""
        if base_url != "/" and isinstance(url, str) and url.startswith("/") \
                and not url.startswith(("//", base_url)):
            return base_url + url[1:]
        return url

    datasette.jinja_env.filters["cad_url"] = cad_url
    datasette.jinja_env.filters["cad_key"] = tilde_encode  # a primary-key value in a row URL
    _INDEX["conn"] = build_index(datasette)
    _INDEX["table_sources"] = table_sources(datasette)
    _INDEX["chart_tables"] = {}
    db = datasette.databases.get(DB)
    if db is not None:
        _INDEX["db_path"] = db.path
        src = sqlite3.connect(f"file:{db.path}?mode=ro&immutable=1", uri=True)
        try:
            _INDEX["views"] = dict(src.execute("select name, sql from sqlite_master where type = 'view'"))
        finally:
            src.close()


#: "<sentence> (details: <site path>)", as coverage_text writes the periods of a series.
DETAILS = re.compile(r"\s*(.+?) \(details: (/[^\s)]+)\)")


def cad_details(text: str | None):
    """Plain text whose "(details: /path)" references become links under base_url."""
    from markupsafe import Markup, escape

    base = _INDEX.get("base_url") or "/"
    out, last = [], 0
    for m in re.finditer(r"\(details: (/[^\s)]+)\)", text or ""):
        out.append(escape(text[last:m.start()]))
        out.append(Markup('(details: <a href="{}">{}</a>)').format(base + m.group(1)[1:], m.group(1)))
        last = m.end()
    out.append(escape((text or "")[last:]))
    return Markup("").join(out)


def cad_html_links(html_text: str | None):
    """Trusted HTML from metadata.yml (description_html) with its root-relative href/src
    under base_url. metadata.yml is generated once for every deployment, so it cannot know
    the prefix; rewriting at render time keeps one metadata.yml for all of them."""
    from markupsafe import Markup

    base = _INDEX.get("base_url") or "/"
    text = html_text or ""
    if base != "/":
        text = re.sub(r'\b(href|src)="/(?!/)', lambda m: f'{m.group(1)}="{base}', text)
    return Markup(text)


def cad_split(description: str | None) -> dict:
    """A table or view description -> lede (its first two sentences), the rest of its first
    paragraph, caveats, French text, notes and the "Cite this" text, so pages can show the
    lede before the data and the rest behind disclosure elements."""
    out = {"lede": "", "more": [], "caveats": "", "french": "", "cite": "", "periods": []}
    paras = [p.strip() for p in (description or "").split("\n\n") if p.strip()]
    for i, para in enumerate(paras):
        if para.startswith("Cite this:"):
            out["cite"] = para[len("Cite this:"):].strip()
        elif para.startswith("Periods: "):
            # coverage_text: "<sentence> (details: /db/coverage?series=x)" per series; the
            # template links each path through cad_url (base_url)
            out["periods"] = DETAILS.findall(para[len("Periods: "):])
        elif para.startswith("Caveats:"):
            out["caveats"] = para[len("Caveats:"):].strip()
        elif para.startswith("En français"):
            out["french"] = para.split(":", 1)[-1].strip()
        elif i == 0:
            sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", para)
            keep = 1 if len(sentences[0]) > 200 else 2  # one long sentence is lede enough
            out["lede"] = " ".join(sentences[:keep])
            if sentences[keep:]:
                out["more"].append(" ".join(sentences[keep:]))
        else:
            out["more"].append(para)
    return out


@hookimpl
def extra_template_vars(datasette):
    def cad_title(name: str) -> str:
        meta = datasette.table_metadata(DB, name) or {}
        return meta.get("title") or name

    def cad_meta() -> dict:
        return {k: datasette.metadata(k) for k in ("title", "description", "license", "license_url",
                                                   "about", "about_url", "source")}

    def version() -> str:
        return (datasette.metadata("about") or "").split("data version ")[-1]

    def cad_chart_source(sql: str) -> str:
        return chart_source(sql, version())

    def cad_chart_spec(chart: dict) -> dict:
        """The chart with its source line as a footer in the drawing, so a saved PNG or SVG
        carries its attribution."""
        out = dict(chart)
        if chart.get("library") == "vega-lite" and chart.get("query"):
            display = dict(chart.get("display") or {})
            display.setdefault("title", {"text": short_source(chart["query"], version()), "orient": "bottom",
                                         "anchor": "start", "fontSize": 11, "fontWeight": "normal",
                                         "color": "#333", "limit": 0, "offset": 12})
            out["display"] = display
        return out

    async def cad_sql(sql: str, params=None, database: str | None = None) -> list:
        return await memo_sql(datasette, sql, params, database)

    def cad_site_root(request) -> str:
        """The site's absolute root URL: the configured public URL, else this request's."""
        from canada_asylum_data.site import public_site_url

        return public_site_url() or f"{request.scheme}://{request.host}{datasette.setting('base_url')}"

    return {"cad_chart_source": cad_chart_source, "cad_chart_spec": cad_chart_spec,
            "cad_site_root": cad_site_root, "cad_sql": cad_sql,
            "cad_lang": cad_lang, "cad_num": cad_num, "cad_title": cad_title, "cad_meta": cad_meta,
            "cad_split": cad_split}


async def search_page(datasette, request):
    q = (request.args.get("q") or "").strip()
    lang = cad_lang(request)
    results = search(q) if q else []
    if request.args.get("_format") == "json":
        base = datasette.setting("base_url")  # the index stores site paths; links carry the prefix
        return Response.json({"q": q, "results": [
            {"kind": k, "title": t, "snippet": s, "url": base + u[1:]} for k, t, s, u in results]})
    return Response.html(await datasette.render_template(
        "search.html", {"q": q, "results": results, "lang": lang}, request=request))


async def sitemap(datasette, request):
    from canada_asylum_data.site import public_site_url

    # The configured public URL; else the address this request came to (a sitemap must
    # list absolute URLs), answered no-store so no cache keeps a hostile Host's version.
    root = public_site_url()
    configured = root is not None
    if root is None:
        root = f"{request.scheme}://{request.host}{datasette.setting('base_url')}"
    base = root.rstrip("/")
    paths = ["/", "/?lang=fr", "/-/dashboards/journalist", "/dictionary", "/dictionary?lang=fr",
             f"/{DB}"]
    db = datasette.databases.get(DB)
    if db is not None:
        names = await db.execute("select name from sqlite_master where type in ('table', 'view') "
                                 "and name not like '%_fts%' and name not like 'sqlite_%' order by type, name")
        paths += [f"/{DB}/{quote(r[0])}" for r in names.rows]
    paths += [f"/{DB}/{quote(n)}" for n in (datasette.metadata("queries", database=DB) or {})]
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
            + "".join(f"  <url><loc>{html.escape(base + p)}</loc></url>\n" for p in paths)
            + "</urlset>\n")
    return Response(body, content_type="application/xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=86400" if configured else "no-store"})


@hookimpl
def register_routes():
    return [(r"^/search$", search_page), (r"^/sitemap\.xml$", sitemap)]
