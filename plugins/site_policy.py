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
* Writes: any request other than GET/HEAD/OPTIONS gets 405 before it reaches Datasette,
  so no endpoint (the SQL API, /-/create, /-/insert...) can change anything even if a
  later Datasette version or plugin adds one. The database is also opened immutable and
  read-only by Datasette itself.
"""

from __future__ import annotations

import copy

from datasette import hookimpl
from datasette.utils.asgi import Response

ROBOTS = """User-agent: *
Disallow: /*?sql=
Disallow: /*&sql=
Disallow: /*?_facet
Disallow: /*&_facet
Disallow: /*.csv?
Disallow: /*.json?
Disallow: /-/
Allow: /

"""

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
STATIC_MAX_AGE = 7 * 24 * 3600


METADATA_CACHE_MAX = 20000


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
                await send(message)

            await app(scope, receive, send_with_policy)

        return policy

    return wrap
