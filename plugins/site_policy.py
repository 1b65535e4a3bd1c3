"""Site policy for the published Datasette: robots.txt, cache headers, no writes, bounded
requests, plain 4xx errors, no host paths.

* ``/robots.txt``: crawlers may read the pages but not run SQL, follow every facet link or
  download every export (``/*?sql=``, ``/*?_facet``, ``.csv``, ``.json`` query strings).
* Cache headers a CDN can honour: the database is immutable, so GET answers for data are
  ``public, max-age`` (Datasette's ``default_cache_ttl``; Datasette sends ``Cache-Control``
  itself for table/row/query pages); static assets get a long max-age; errors and non-GET
  requests are ``no-store``. Compression is datasette-gzip (``Vary: Accept-Encoding``).
  There is no in-process response cache: on a mix of distinct URLs it gained nothing
  (benchmarks/README.md), and a correct one has to key on the host, scheme and every header
  that shapes the body, bound its total memory and never keep a truncated stream. The CDN
  in front of the deployment is the cache.
* Writes: any request other than GET/HEAD/OPTIONS gets 405 before it reaches Datasette.
* Bounded requests (so that a few hostile but legal requests cannot starve everyone else):
  every SQLite connection gets a maximum value length and statement length
  (``prepare_connection``), so ``randomblob(1e9)`` or ``printf('%.*c', 3e8, 'x')`` fail at
  once with "string or blob too big"; at most MAX_FACETS facets and a facet size of at most
  MAX_FACET_SIZE per request; HTML table pages show at most MAX_HTML_ROWS rows (the JSON
  and CSV exports keep ``_size=max``); ``_timelimit`` must be a positive integer.
* No truncated body served as a success: when a SQL statement fails while a CSV is already
  being streamed (``?_stream=on`` with a time limit hit on a later page), Datasette 0.65
  writes the error text into the 200 body and ends it normally; here the rest of the body
  is dropped and the connection is aborted, so a client sees an incomplete download
  instead of a complete-looking file.
* Plain errors: a wrong ``_sort``/``_sort_desc`` column is a 400 (Datasette says 500), a row
  URL with the wrong number of key values is a 404 (Datasette says 500); 4xx answers are
  rendered here without Datasette's per-error traceback printing.
* No host paths: ``/-/databases`` (absolute database path), ``/-/threads``, ``/-/actor``
  and ``/-/plugins`` are 404; a ``..`` segment anywhere in a path and any 403 from a static
  mount ("directory listing is not allowed") are a plain 404, so ``/datapackage/../``
  cannot tell whether a directory exists on the host.
* Speed: Datasette 0.65 deep-copies the whole metadata in each per-table permission check
  (``_table_permission_allows``) and in ``metadata()``; metadata never changes while the
  site runs, so the results are memoized at startup (bounded; callers get a shallow copy).
  Only on Datasette 0.65.x (version guard): other versions are left alone. The introspection
  of an immutable database (columns, keys, foreign keys, full-text and hidden tables, and
  the table-name lookup of every view-table permission check: 62 SQL statements per home
  page; the schema-version check Datasette runs at the start of every request; the labels
  of foreign-key values) is memoized too (``CANADA_ASYLUM_DATA_SCHEMA_MEMO=0`` turns it off), and
  datasette-render-markdown's per-cell hook is left out when no column can use it
  (``CANADA_ASYLUM_DATA_MARKDOWN_CELLS=keep`` keeps it). Facet suggestions are off in
  ``site.SETTINGS`` (scripts/canada_asylum_data/site.py). Figures: benchmarks/README.md.
"""

from __future__ import annotations

import contextvars
import copy
import json
import os
import re
import sqlite3
import sys
import threading
from urllib.parse import parse_qsl, unquote, urlencode

import datasette as datasette_module
from datasette import hookimpl
from datasette.utils import tilde_decode
from datasette.utils.asgi import Base400, Response

#: robots.txt, each path under Datasette's base_url ({base}: "/" unless served under a prefix).
#: The Sitemap line must be an absolute URL: it is added only when the site's public URL is
#: configured (front_door.site_url), never built from the request's Host header.
ROBOTS = """User-agent: *
Allow: {base}-/dashboards/
Allow: {base}dictionary
Allow: {base}sitemap.xml
Disallow: {base}*?sql=
Disallow: {base}*&sql=
Disallow: {base}*?_facet
Disallow: {base}*&_facet
Disallow: {base}*.csv?
Disallow: {base}*.json?
Disallow: {base}-/
Allow: {base}
"""

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATIC_MAX_AGE = 7 * 24 * 3600
METADATA_CACHE_MAX = 20000
MEMOIZE_VERSIONS = ("0.65.",)

#: a single SQL value (text or blob) may not exceed this (the largest cell of the
#: database is a few KB; a whole CSV export is streamed row by row, never one value)
MAX_VALUE_BYTES = 4 * 1024 * 1024
#: a SQL statement may not exceed this (table pages with every filter stay far below)
MAX_SQL_BYTES = 100_000
MAX_FACETS = 5
MAX_FACET_SIZE = 100
MAX_HTML_ROWS = 1000
#: pages that show host paths or server internals, not data
HIDDEN_PAGES = ("/-/databases", "/-/threads", "/-/actor", "/-/plugins")
STATIC_PREFIXES = ("/datapackage/", "/static/", "/-/static/", "/-/static-plugins/")

#: set per request: did a SQL statement fail while this request was answered?
_SQL_FAILED: contextvars.ContextVar = contextvars.ContextVar("cad_sql_failed", default=None)


def _version() -> str:
    return str(getattr(datasette_module, "__version__", ""))


#: printf/format width or precision above this is refused: SQLite stops building the string
#: at the length limit but keeps looping over the requested width (about 1 s of CPU per
#: 2e8, ~10 s for the largest int), out of reach of the SQL time limit
MAX_PRINTF_WIDTH = 100_000
_PRINTF_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d+)?(?:\.(\*|\d+))?")
_PRINTF_CALL = re.compile(r"\b(printf|format)\s*\(", re.I)
_plain = threading.local()


def _guarded_printf(fmt, *args):
    if fmt is None:
        return None
    text = str(fmt)
    star = False
    for width, precision in _PRINTF_SPEC.findall(text):
        for part in (width, precision):
            if part == "*":
                star = True
            elif part and int(part) > MAX_PRINTF_WIDTH:
                raise ValueError(f"printf width or precision above {MAX_PRINTF_WIDTH} is not allowed")
    if star and any(isinstance(a, int) and abs(a) > MAX_PRINTF_WIDTH for a in args):
        raise ValueError(f"printf width or precision above {MAX_PRINTF_WIDTH} is not allowed")
    conn = getattr(_plain, "conn", None)
    if conn is None:  # SQLite's own printf, on a private connection of this thread
        conn = _plain.conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    marks = ", ".join("?" for _ in range(len(args) + 1))
    return conn.execute(f"select printf({marks})", (text, *args)).fetchone()[0]


@hookimpl
def prepare_connection(conn):
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
    for name in ("printf", "format"):
        conn.create_function(name, -1, _guarded_printf)


def _memoize_metadata(datasette) -> None:
    original = datasette.metadata
    cache: dict = {}

    def metadata(key=None, database=None, table=None, fallback=True):
        k = (key, database, table, fallback)
        if k in cache:
            value = cache[k]
        else:
            value = original(key=key, database=database, table=table, fallback=fallback)
            if len(cache) < METADATA_CACHE_MAX:
                cache[k] = value
        return copy.copy(value) if isinstance(value, (dict, list)) else value

    datasette.metadata = metadata
    # The per-table "allow" blocks come from the same static metadata; the actor is still
    # checked against them on every request, only their extraction is memoized.
    table_allows = getattr(datasette, "_table_permission_allows", None)
    if table_allows is not None:
        allows_cache: dict = {}

        def cached_table_allows(database, table):
            k = (database, table)
            if k in allows_cache:
                return copy.copy(allows_cache[k])
            value = table_allows(database, table)
            if len(allows_cache) < METADATA_CACHE_MAX:
                allows_cache[k] = value
            return copy.copy(value)

        datasette._table_permission_allows = cached_table_allows


#: introspection of a database that cannot change: memoized for immutable databases
SCHEMA_METHODS = ("attached_databases", "table_exists", "table_names", "view_names", "table_columns",
                  "table_column_details", "primary_keys", "fts_table", "label_column_for_table",
                  "foreign_keys_for_table", "hidden_table_names", "get_all_foreign_keys",
                  "get_table_definition", "get_view_definition")


#: the memoized introspection asked once per database, then once per table
_WARM_WHOLE = ("attached_databases", "table_names", "view_names", "hidden_table_names", "get_all_foreign_keys")
_WARM_PER_TABLE = ("table_exists", "table_columns", "table_column_details", "primary_keys", "fts_table",
                   "label_column_for_table", "foreign_keys_for_table", "get_table_definition")


async def _warm_schema(db) -> None:
    """Fill the introspection memo at start-up, so that the first readers of a fresh
    instance (a cold start under load) do not each send the ~60 statements of a home or
    database page through the busy event loop. A failure here only leaves the memo to
    fill itself as pages are asked for."""
    try:
        for name in _WARM_WHOLE:
            await getattr(db, name)()
        tables, views = await db.table_names(), await db.view_names()
        for table in tables:
            for name in _WARM_PER_TABLE:
                await getattr(db, name)(table)
        for view in views:
            await db.get_view_definition(view)
            await db.table_columns(view)
        for name in tables + views:
            await db.execute(NAME_LOOKUP_SQL, [name])
    except Exception as exc:  # noqa: BLE001 (a warm-up: the memo still fills on demand)
        sys.stderr.write(f"site_policy: introspection of {db.name} not warmed at start-up ({exc})\n")


#: the statement of Datasette.permission_allowed (0.65.5) for a table's SQLite spelling
NAME_LOOKUP_SQL = ("select name from sqlite_master "
                   "where type in ('table', 'view') and name = ? collate nocase")


def _memoize_schema(db) -> None:
    """Each table page asks the database for its columns, keys, foreign keys, full-text
    table and hidden tables several times (a thread-pool round trip and a PRAGMA each; the
    database page does it for every table). An immutable file cannot change while served,
    so the answers are kept (bounded; callers get a copy)."""
    for name in SCHEMA_METHODS:
        original = getattr(db, name, None)
        if original is None:
            continue
        cache: dict = {}

        async def memo(*args, _original=original, _cache=cache):
            if args in _cache:
                return copy.deepcopy(_cache[args])
            value = await _original(*args)
            if len(_cache) < METADATA_CACHE_MAX:
                _cache[args] = copy.deepcopy(value)
            return value

        setattr(db, name, memo)

    # Datasette 0.65.5 looks up the SQLite spelling of the table name with a query in every
    # view-table permission check: one thread-pool round trip per table listed on the home
    # and database pages (62 of them), about a second under load. Same answer every time.
    original_execute = db.execute
    names: dict = {}

    async def execute(sql, params=None, *args, **kwargs):
        if sql == NAME_LOOKUP_SQL and isinstance(params, (tuple, list)) and len(params) == 1 \
                and not args and not kwargs:
            key = str(params[0])
            if key not in names:
                result = await original_execute(sql, params)
                if len(names) >= METADATA_CACHE_MAX:
                    return result
                names[key] = result
            return names[key]
        return await original_execute(sql, params, *args, **kwargs)

    db.execute = execute


def _memoize_schema_refresh(datasette) -> None:
    """Datasette 0.65 starts every request by checking each database's schema version
    (``refresh_schemas``: a query on its internal catalogue and a ``PRAGMA schema_version``
    per database, each a thread-pool round trip, so a JSON request waits in the busy event
    loop three more times). Immutable files cannot change while served: once a refresh has
    seen the same set of databases, none of them mutable, later refreshes return at once.
    A database added later (or a mutable one) makes it refresh as before."""
    original = getattr(datasette, "_refresh_schemas", None)
    if original is None:
        return
    seen: dict = {"names": None}

    async def refresh():
        names = tuple(datasette.databases)
        if seen["names"] == names:
            return
        await original()
        if all(not db.is_mutable for name, db in datasette.databases.items() if name != "_internal"):
            seen["names"] = names

    datasette._refresh_schemas = refresh


#: at most this many remembered foreign-key labels (the reference tables here hold a few hundred)
LABEL_MEMO_MAX = 100_000


def _memoize_labels(datasette) -> None:
    """Datasette looks up the labels of foreign-key values (country names for
    ``country_code``, source titles for ``source_id``) with one query per facet and one
    for the rows of every table page: three or four thread-pool round trips, each a wait
    in the busy event loop. In an immutable database a value's label cannot change, so
    each label found is kept (a value with no label is asked again) and only values not
    yet seen are looked up."""
    original = getattr(datasette, "expand_foreign_keys", None)
    if original is None:
        return
    labels: dict = {}

    async def expand_foreign_keys(database, table, column, values):
        db = datasette.databases.get(database)
        if db is None or db.is_mutable:
            return await original(database, table, column, values)
        wanted = set(values)
        out = {}
        missing = []
        for value in wanted:
            key = (database, table, column, value)
            if key in labels:
                out[(column, value)] = labels[key]
            else:
                missing.append(value)
        if missing:
            found = await original(database, table, column, missing)
            for (col, value), label in found.items():
                out[(col, value)] = label
                if col == column and value in wanted and len(labels) < LABEL_MEMO_MAX:
                    labels[(database, table, column, value)] = label
        return out

    datasette.expand_foreign_keys = expand_foreign_keys


MARKDOWN_PLUGIN = "datasette_render_markdown"


async def _drop_idle_markdown_cells(datasette) -> None:
    """datasette-render-markdown (installed with datasette-dashboards, which uses its
    Markdown rendering) also looks at every text cell of every table page for columns
    named ``*_markdown`` or configured for it, about a tenth of a large page's time. No
    column here is one: when none matches and no metadata configures the plugin, its
    per-cell hook is left out (its other hooks stay)."""
    from fnmatch import fnmatch

    from datasette.plugins import pm

    impls = [i for i in pm.hook.render_cell.get_hookimpls()
             if getattr(i.plugin, "__name__", "") == MARKDOWN_PLUGIN]
    if not impls or "datasette-render-markdown" in json.dumps(datasette.metadata() or {}, default=str):
        return
    for db in datasette.databases.values():
        rows = await db.execute("select p.name from sqlite_master m join pragma_table_info(m.name) p "
                                "where m.type in ('table', 'view')")
        if any(fnmatch(r[0], "*_markdown") for r in rows):
            return
    for impl in impls:
        pm.hook.render_cell._remove_plugin(impl.plugin)


@hookimpl
def startup(datasette):
    # Datasette's default error handler prints a rich traceback with locals for every
    # exception, 404s included (~0.6 s of CPU and ~40 KB of log each): plain tracebacks
    # (printed for 500s only) are enough.
    from datasette import handle_exception as default_handler

    if getattr(default_handler, "rich", None) is not None:
        default_handler.rich = None
    if os.environ.get("CANADA_ASYLUM_DATA_METADATA_MEMO", "1") in ("0", "off", "false"):
        pass  # measured off (benchmarks/bench.py --memo-off)
    elif _version().startswith(MEMOIZE_VERSIONS):
        _memoize_metadata(datasette)
    else:
        sys.stderr.write(f"site_policy: metadata memoization off on Datasette {_version()}\n")

    if os.environ.get("CANADA_ASYLUM_DATA_SCHEMA_MEMO", "1") not in ("0", "off", "false"):
        for db in datasette.databases.values():
            if not db.is_mutable and not db.is_memory and not getattr(db, "_cad_schema_memo", False):
                _memoize_schema(db)
                db._cad_schema_memo = True
        if not getattr(datasette, "_cad_refresh_memo", False):
            _memoize_schema_refresh(datasette)
            _memoize_labels(datasette)
            datasette._cad_refresh_memo = True

    # record SQL failures of the current request (see the truncated-stream guard)
    for db in datasette.databases.values():
        if getattr(db, "_cad_failure_watch", False):
            continue
        original = db.execute

        async def execute(*args, _original=original, **kwargs):
            try:
                return await _original(*args, **kwargs)
            except Exception as exc:
                holder = _SQL_FAILED.get()
                if holder is not None:
                    holder["failed"] = True
                sql = str(args[0] if args else kwargs.get("sql", ""))
                if str(exc) == "user-defined function raised exception" and _PRINTF_CALL.search(sql):
                    # Python cannot pass a function's own message to SQLite: say it here
                    raise sqlite3.OperationalError(
                        f"printf/format width or precision above {MAX_PRINTF_WIDTH:,} is not allowed") from exc
                raise

        db.execute = execute
        db._cad_failure_watch = True

    async def after_start():
        if os.environ.get("CANADA_ASYLUM_DATA_MARKDOWN_CELLS", "auto") == "auto":
            await _drop_idle_markdown_cells(datasette)
        for db in list(datasette.databases.values()):
            if getattr(db, "_cad_schema_memo", False):
                await _warm_schema(db)
        try:  # Datasette's own catalogue of the schemas, otherwise built by the first request
            await datasette.refresh_schemas()
        except Exception as exc:  # noqa: BLE001 (the first request builds it then)
            sys.stderr.write(f"site_policy: schema catalogue not built at start-up ({exc})\n")

    return after_start


def robots_txt(datasette):
    from canada_asylum_data.site import public_site_url

    text = ROBOTS.format(base=datasette.setting("base_url"))
    root = public_site_url()
    if root:
        text += f"Sitemap: {root}sitemap.xml\n"
    return Response.text(text + "\n", headers={"Cache-Control": "public, max-age=86400"})


def drop_repeated_facets(scope: dict, datasette) -> dict:
    """The request without ``_facet=<column>`` arguments that name a facet the table already
    shows (declared in metadata, or asked for earlier in the same URL). Datasette 0.65
    does not merge them: ``irb_rpd_claims?_facet=country_code`` drew the country facet
    twice, side by side, and counted it twice. Only the query string changes, so the page
    and its links read as if the repeat had never been asked for."""
    query = scope.get("query_string") or b""
    if b"_facet=" not in query:
        return scope
    parts = [p for p in scope.get("path", "").split("/") if p]
    if len(parts) != 2 or parts[0] not in datasette.databases:
        return scope
    table = tilde_decode(parts[1].removesuffix(".json").removesuffix(".csv"))
    shown = {f for f in (datasette.table_metadata(parts[0], table) or {}).get("facets") or []
             if isinstance(f, str)}
    args = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    kept = []
    for name, value in args:
        if name == "_facet":
            if value in shown:
                continue
            shown.add(value)
        kept.append((name, value))
    if len(kept) == len(args):
        return scope
    return {**scope, "query_string": urlencode(kept).encode("latin-1")}


def strip_base_url(scope: dict, base_url: str) -> dict:
    """The request as Datasette would get it from a proxy that strips ``base_url``.

    Datasette 0.65 routes ``/prefix/x`` as ``/x`` but builds the links of a page (column
    sorts, export formats, facets, next pages) from ``request.path``, which keeps the prefix,
    and then adds base_url again: ``/prefix/prefix/db/table.csv``. Stripping the prefix from
    ``path`` and ``raw_path`` here gives Datasette the path it routes on, so each link gets
    base_url once; and the refusals below (hidden pages, static mounts) see the same path
    with or without a prefix."""
    if base_url in ("", "/"):
        return scope
    path = scope.get("path", "")
    if not path.startswith(base_url):
        return scope
    out = dict(scope, path="/" + path[len(base_url):])
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(base_url.encode("latin-1")):
        out["raw_path"] = b"/" + raw[len(base_url):]
    elif raw is not None:
        out.pop("raw_path")
    return out


@hookimpl
def register_routes():
    return [(r"^/robots\.txt$", robots_txt)]


# ---------------------------------------------------------------- export links

class ExportLinks(dict):
    """The table page's "This data as ..." links: the template iterates ``items()`` for the
    visible labels and reads ``renderers['json']`` for the advanced links."""

    def __init__(self, json_url: str, label: str):
        super().__init__(json=json_url)
        self.label = label

    def items(self):
        return [(self.label, self["json"])]


@hookimpl
def extra_template_vars(template, request, datasette, database, table):
    if template != "table.html" or request is None or not table:
        return {}
    args = [(k, v) for k, v in parse_qsl(request.query_string, keep_blank_values=True)
            if k not in ("_next", "_size", "_stream", "_nofacet", "_nocount")]
    path = request.path
    from urllib.parse import urlencode

    def with_format(fmt: str, extra: list) -> str:
        query = urlencode(args + extra)
        return f"{path}.{fmt}" + (f"?{query}" if query else "")

    return {
        # the whole result, every page, as one CSV
        "url_csv": with_format("csv", [("_size", "max"), ("_stream", "on")]),
        "renderers": ExportLinks(with_format("json", [("_size", "max")]),
                                 "json (5,000 rows a page: follow next_url for the rest)"),
    }


# ---------------------------------------------------------------- errors

@hookimpl
def handle_exception(datasette, request, exception):
    from datasette.views.base import DatasetteError

    status = None
    message = None
    if isinstance(exception, DatasetteError) and exception.status == 500:
        text = str(exception.message)
        if text.startswith("Cannot sort table by ") or text.startswith("Cannot use _sort and _sort_desc"):
            status = 400
            message = text + (" (no such sortable column)" if text.startswith("Cannot sort table by ") else "")
    elif type(exception).__name__ == "QueryInterrupted":
        # e.g. the first page of a CSV export over the time limit (Datasette: 500)
        status, message = 400, "SQL query took too long (time limit reached): narrow it with filters"
    elif isinstance(exception, sqlite3.ProgrammingError) and "binding parameter" in str(exception) \
            and request.url_vars.get("pks"):
        status, message = 404, "Row not found: the URL does not give every primary-key value of this table"
    elif isinstance(exception, Base400):
        status, message = exception.status, str(exception.args[0]) if exception.args else "Bad request"
    elif isinstance(exception, DatasetteError) and exception.status < 500 and not exception.message_is_html:
        status, message = exception.status, str(exception.message)
    if status is None:
        return None  # Datasette's own handler (500s keep their traceback in the log)
    return _error(datasette, request.path, status, message)


def _error(datasette, path: str, status: int, message: str):
    info = {"ok": False, "error": message, "status": status, "title": None}
    if path.split("?")[0].endswith(".json"):
        return Response.json(info, status=status, headers={"Cache-Control": "no-store"})

    async def inner():
        template = datasette.jinja_env.select_template([f"{status}.html", "error.html"])
        html = await template.render_async(dict(info, urls=datasette.urls, app_css_hash=datasette.app_css_hash(),
                                                menu_links=lambda: [], base_url=datasette.setting("base_url")))
        return Response.html(html, status=status, headers={"Cache-Control": "no-store"})

    return inner


# ---------------------------------------------------------------- request guard

def _unknown_format(path: str, databases) -> bool:
    """/<db>.<fmt>, /<db>/<table>.<fmt>, /<db>/<table>/<pk>.<fmt> with a format Datasette does
    not render: Datasette 0.65 answers them with the HTML page (a 200 for a URL that names
    nothing). Dots inside table names and key values are tilde-encoded (~2E) in its URLs."""
    parts = path.strip("/").split("/")
    if not 1 <= len(parts) <= 3 or "." not in parts[-1]:
        return False
    db = parts[0].split(".", 1)[0]
    if db not in databases:
        return False
    fmt = parts[-1].rsplit(".", 1)[1]
    allowed = {"json", "csv", "db"} if len(parts) == 1 else {"json", "csv"}
    return fmt not in allowed


def _refusal(scope, databases=()) -> tuple[int, str] | None:
    """(status, message) when the request is refused before Datasette sees it."""
    path = scope.get("path", "")
    raw = scope.get("raw_path") or path.encode()
    decoded = unquote(raw.decode("latin-1")) if isinstance(raw, bytes) else path
    segments = decoded.replace("\\", "/").split("/")
    if ".." in segments or ".." in path.split("/"):
        return 404, "Not found"
    if path.startswith(HIDDEN_PAGES) or _unknown_format(path, databases):
        return 404, "Not found"
    try:
        args = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return 400, "Bad query string"
    facets = [v for k, v in args if k in ("_facet", "_facet_array", "_facet_date")]
    if len(facets) > MAX_FACETS:
        return 400, f"At most {MAX_FACETS} facets per request ({len(facets)} asked)"
    for key, value in args:
        if key == "_facet_size" and value != "max":
            if not value.isdigit() or int(value) > MAX_FACET_SIZE:
                return 400, f"_facet_size must be a whole number up to {MAX_FACET_SIZE}, or max"
        if key == "_timelimit" and not (value.isdigit() and int(value) > 0):
            return 400, "_timelimit must be a positive whole number of milliseconds"
        if key == "_size" and "." not in path.rsplit("/", 1)[-1] and not path.startswith("/-/"):
            # an HTML page: rendering thousands of rows costs seconds of CPU
            if value == "max" or (value.isdigit() and int(value) > MAX_HTML_ROWS):
                return 400, (f"HTML pages show at most {MAX_HTML_ROWS} rows; use the .json export "
                             "(_size=max, follow next_url) or .csv?_stream=on for all rows")
    return None


async def _send_plain(send, status: int, message: str, path: str) -> None:
    if path.endswith(".json"):
        body = json.dumps({"ok": False, "error": message, "status": status}).encode()
        ctype = b"application/json; charset=utf-8"
    else:
        body = f"{status}: {message}\n".encode()
        ctype = b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", ctype), (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        async def policy(scope, receive, send):
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            scope = strip_base_url(scope, datasette.setting("base_url"))
            method = scope.get("method", "GET").upper()
            path = scope.get("path", "")
            if method not in SAFE_METHODS:
                body = b'{"ok": false, "error": "this site is read-only", "status": 405}'
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"allow", b"GET, HEAD, OPTIONS"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            refusal = _refusal(scope, datasette.databases)
            if refusal is not None:
                await _send_plain(send, *refusal, path)
                return
            scope = drop_repeated_facets(scope, datasette)  # after the limits, which count what was asked
            holder = {"failed": False}
            token = _SQL_FAILED.set(holder)
            state = {"status": None, "swallow": False, "csv": path.endswith(".csv")}

            async def send_with_policy(message):
                if message["type"] == "http.response.start":
                    status = message["status"]
                    state["status"] = status
                    if status in (403, 404) and path.startswith(STATIC_PREFIXES):
                        # a directory listing refused or a file missing: one and the same
                        # "not found", so no answer tells what exists on the host
                        state["swallow"] = True
                        await _send_plain(send, 404, "Not found", path)
                        return
                    headers = list(message.get("headers", []))
                    names = {k.lower() for k, _ in headers}
                    if status >= 400:
                        headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                        headers.append((b"cache-control", b"no-store"))
                    elif b"cache-control" not in names:
                        ttl = STATIC_MAX_AGE if path.startswith(("/-/static", "/static/")) \
                            else int(datasette.setting("default_cache_ttl") or 0)
                        value = f"public, max-age={ttl}" if ttl else "no-cache"
                        headers.append((b"cache-control", value.encode()))
                    headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
                elif message["type"] == "http.response.body":
                    if state["swallow"]:
                        return
                    if state["csv"] and state["status"] == 200 and holder["failed"]:
                        # the rest of the body is Datasette's error text: drop it and never
                        # send the final chunk, so the server closes the connection on an
                        # incomplete response (the client reports a failed download)
                        state["swallow"] = True
                        sys.stderr.write(f"site_policy: CSV stream of {path} failed after its first page; "
                                         "response left incomplete\n")
                        return
                await send(message)

            try:
                await app(scope, receive, send_with_policy)
            finally:
                _SQL_FAILED.reset(token)

        return policy

    return wrap
