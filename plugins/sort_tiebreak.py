"""Complete exports whatever the sort: add the primary-key tie-breaker to the first page.

Datasette 0.65 (and 1.0a) builds a table page's SQL as
``select ... from [t] where ... order by [col] desc limit 101``: the primary-key
tie-breaker (``, [pk1], [pk2]``) is appended to ``order by`` only when ``_next`` is
present, i.e. from the second page on. When ``col`` is not unique (``month``, ``year``...
on every fact table here) SQLite may return the tied rows of page 1 in any order; the
``_next`` token then names the last row of page 1 and page 2 resumes "after it" in
primary-key order, so tied rows are lost or repeated. ``?_stream=on`` CSV walks the same
pages and inherits the defect (rcmp_interceptions.csv?_stream=on: 596 rows of 600).
See docs/datasette-sort-pagination.md for the upstream report.

Why a plugin and not a change of the tables: the order of tied rows on page 1 is an
accident of the query plan (which index SQLite scans, whether it sorts), and readers can
sort by any column, so no choice of indexes or of ``sortable_columns`` can make every
first page agree with the keyset of page 2. The fix belongs in the SQL: page 1 must be
ordered by exactly the key page 2 resumes from. Datasette offers no hook to change a
table page's SQL, so this plugin wraps ``Database.execute`` and rewrites only statements
of the exact shape Datasette 0.65 generates for a table or view page of a known table
(``select <cols> from <table> [where ...] order by <one column>[ desc] limit N
[offset M]``), appending the primary key (``rowid`` for rowid tables; every column
for a view, whose identical rows are interchangeable). Nothing else is touched; a
statement a reader writes by hand that happens to have this shape gets a deterministic
order among ties, which is still a correct answer to it.

Version guard: the shape is Datasette 0.65's. On any other version the plugin does
nothing and says so on stderr (the site test that walks every table then fails and
shows whether the upstream fix has landed or the shape has changed).
"""

from __future__ import annotations

import re
import sys

import datasette
from datasette import hookimpl
from datasette.utils import escape_sqlite

SUPPORTED_VERSIONS = ("0.65.",)

_TAIL = re.compile(r" order by (?P<term>.+?) limit (?P<limit>\d+)(?P<offset> offset \d+)?\s*$", re.S)


def supported(version: str) -> bool:
    return version.startswith(SUPPORTED_VERSIONS)


class TieBreaker:
    """Knows the tables of one immutable database and rewrites first-page SQL."""

    def __init__(self, shapes: dict[str, tuple[list[str], list[str]]]):
        # table name -> (sortable column names, tie-breaker column expressions)
        self.shapes = shapes

    def rewrite(self, sql: str) -> str:
        if not sql.startswith("select ") or " order by " not in sql:
            return sql
        match = _TAIL.search(sql)
        if match is None:
            return sql
        head = sql[: match.start()]
        term = match.group("term")
        for table, (columns, breaker) in self.shapes.items():
            escaped = escape_sqlite(table)
            if not (head.endswith(f" from {escaped}") or f" from {escaped} where " in head):
                continue
            column, _, direction = term.partition(" ")
            if direction not in ("", "desc") or column not in columns:
                continue
            extra = [b for b in breaker if b != column]
            if not extra:
                return sql
            tail = f" order by {term}, {', '.join(extra)} limit {match.group('limit')}{match.group('offset') or ''}"
            return head + tail
        return sql


def _shapes(conn) -> dict[str, tuple[list[str], list[str]]]:
    shapes = {}
    for name, kind in conn.execute("select name, type from sqlite_master where type in ('table', 'view')"):
        info = conn.execute(f"pragma table_info({escape_sqlite(name)})").fetchall()
        cols = [r[1] for r in info]
        pks = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        escaped_cols = [escape_sqlite(c) for c in cols]
        if kind == "view":
            breaker = escaped_cols
        elif pks:
            breaker = [escape_sqlite(p) for p in pks]
        else:
            breaker = ["rowid"]
        shapes[name] = (escaped_cols + ["rowid"], breaker)
    return shapes


@hookimpl
def startup(datasette):
    if not supported(datasette_version()):
        sys.stderr.write(f"sort_tiebreak: Datasette {datasette_version()} is not a version this plugin "
                         f"knows ({', '.join(SUPPORTED_VERSIONS)}x); first pages are left as they are\n")
        return

    async def install():
        for db in datasette.databases.values():
            if db.is_memory or getattr(db, "_sort_tiebreak", None):
                continue
            shapes = await db.execute_fn(_shapes)
            breaker = TieBreaker(shapes)
            original = db.execute

            async def execute(sql, *args, _original=original, _breaker=breaker, **kwargs):
                return await _original(_breaker.rewrite(sql), *args, **kwargs)

            db.execute = execute
            db._sort_tiebreak = breaker

    return install


def datasette_version() -> str:
    return str(getattr(datasette, "__version__", ""))
