"""Site policy for the published Datasette: robots.txt, cache headers, and no writes.

* ``/robots.txt``: crawlers may read the pages but not run SQL, follow every facet link or
  download every export (``/*?sql=``, ``/*?_facet``, ``.csv``, ``.json`` query strings).
* Cache headers: the database is immutable, so GET responses for data are public and
  cacheable (``max-age`` from Datasette's ``default_cache_ttl``; Datasette already sends
  ``Cache-Control`` for table/row/query pages); static assets get a long max-age;
  errors and non-GET requests are ``no-store``.
* Speed: this Datasette (0.65.x) deep-copies the whole metadata in each per-table
  permission check (``_table_permission_allows``) and in ``metadata()``; with this
  project's large metadata that cost ~8 ms per table, ~250 ms per home page. Metadata never changes while
  the site runs (immutable database, metadata.yml read at start), so the results are
  memoized at startup (bounded; callers get a shallow copy).
* Response cache: the database is immutable and the metadata fixed while the site runs,
  so a GET answer depends only on its URL. Successful answers (status 200, no
  ``Set-Cookie``, at most 2 MB) to requests that carry no cookie or credentials are kept
  in a bounded in-memory LRU (4,096 answers, 64 MB) and replayed with ``X-Cache: hit``;
  the cache is empty at every start, so a new deploy never serves old data. Set
  ``CANADA_ASYLUM_DATA_RESPONSE_CACHE=0`` to turn it off.
* Writes: any request other than GET/HEAD/OPTIONS gets 405 before it reaches Datasette,
  so no endpoint (the SQL API, /-/create, /-/insert...) can change anything even if a
  later Datasette version or plugin adds one. The database is also opened immutable and
  read-only by Datasette itself.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict

from datasette import hookimpl
from datasette.utils.asgi import Response

ROBOTS = """User-agent: *
Allow: /-/dashboards/
Allow: /dictionary
Allow: /sitemap.xml
Disallow: /*?sql=
Disallow: /*&sql=
Disallow: /*?_facet
Disallow: /*&_facet
Disallow: /*.csv?
Disallow: /*.json?
Disallow: /-/
Allow: /
Sitemap: /sitemap.xml

"""

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATIC_MAX_AGE = 7 * 24 * 3600


METADATA_CACHE_MAX = 20000
CACHE_ENTRIES = 4096
CACHE_BYTES = 64 * 1024 * 1024
CACHE_MAX_BODY = 2 * 1024 * 1024


class ResponseCache:
    """A bounded LRU of complete answers: (path, query string) -> (status, headers, body)."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES):
        self.entries = entries
        self.max_bytes = max_bytes
        self.items: OrderedDict = OrderedDict()
        self.bytes = 0

    def get(self, key):
        item = self.items.get(key)
        if item is not None:
            self.items.move_to_end(key)
        return item

    def put(self, key, status: int, headers: list, body: bytes) -> None:
        if key in self.items:
            return
        self.items[key] = (status, headers, body)
        self.bytes += len(body)
        while len(self.items) > self.entries or self.bytes > self.max_bytes:
            _, (_, _, old) = self.items.popitem(last=False)
            self.bytes -= len(old)


#: Introspection pages under /-/ change while the site runs (threads, actor...): never cached.
CACHEABLE_SPECIAL = ("/-/static", "/-/dashboards")


def _cacheable_request(scope) -> bool:
    if scope.get("method", "GET").upper() != "GET":
        return False
    path = scope.get("path", "")
    if path.startswith("/-/") and not path.startswith(CACHEABLE_SPECIAL):
        return False
    names = {k.lower() for k, _ in scope.get("headers", [])}
    return b"cookie" not in names and b"authorization" not in names


@hookimpl
def startup(datasette):
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


def robots_txt():
    return Response.text(ROBOTS, headers={"Cache-Control": "public, max-age=86400"})


@hookimpl
def register_routes():
    return [(r"^/robots\.txt$", robots_txt)]


@hookimpl
def asgi_wrapper(datasette):
    enabled = os.environ.get("CANADA_ASYLUM_DATA_RESPONSE_CACHE", "1") not in ("0", "off", "false")
    cache = ResponseCache() if enabled else None

    def wrap(app):
        async def policy(scope, receive, send):
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            method = scope.get("method", "GET").upper()
            if method not in SAFE_METHODS:
                body = b'{"ok": false, "error": "this site is read-only", "status": 405}'
                await send({"type": "http.response.start", "status": 405, "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"allow", b"GET, HEAD, OPTIONS"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            path = scope.get("path", "")
            key = (path, scope.get("query_string", b"")) if cache and _cacheable_request(scope) else None
            if key is not None:
                hit = cache.get(key)
                if hit is not None:
                    status, headers, body = hit
                    await send({"type": "http.response.start", "status": status,
                                "headers": headers + [(b"x-cache", b"hit")]})
                    await send({"type": "http.response.body", "body": body})
                    return
            captured: dict = {"status": None, "headers": None, "chunks": [], "size": 0}

            def capture(message) -> None:
                if message["type"] == "http.response.start":
                    captured["status"] = message["status"]
                    captured["headers"] = list(message.get("headers", []))
                    return
                if captured["size"] > CACHE_MAX_BODY:
                    return
                chunk = message.get("body", b"")
                captured["chunks"].append(chunk)
                captured["size"] += len(chunk)
                if not message.get("more_body") and captured["status"] == 200 \
                        and captured["size"] <= CACHE_MAX_BODY \
                        and not any(k.lower() == b"set-cookie" for k, _ in captured["headers"]):
                    cache.put(key, 200, captured["headers"], b"".join(captured["chunks"]))

            async def send_with_policy(message):
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = [(k, v) for k, v in message.get("headers", [])]
                    names = {k.lower() for k, _ in headers}
                    if status >= 400:
                        headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                        headers.append((b"cache-control", b"no-store"))
                    elif b"cache-control" not in names:
                        ttl = STATIC_MAX_AGE if path.startswith("/-/static") or path.startswith("/static/") \
                            else int(datasette.setting("default_cache_ttl") or 0)
                        value = f"public, max-age={ttl}" if ttl else "no-cache"
                        headers.append((b"cache-control", value.encode()))
                    headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
                if key is not None:
                    capture(message)
                    if message["type"] == "http.response.start":
                        message = {**message, "headers": message["headers"] + [(b"x-cache", b"miss")]}
                await send(message)

            await app(scope, receive, send_with_policy)

        return policy

    return wrap
