"""Build ``build/canada_asylum.db`` from the committed data package.

Column types, primary keys and foreign keys come from the schemas; the publishers'
markers (``--`` and empty cells) become NULL; facet and filter columns get indexes; the
SQL views in ``datapackage/views.yml`` are created; the file is built under a temporary
name and renamed into place, then ``datasette inspect`` writes the inspect file used for
immutable serving.

The tables, indexes and views are created with exactly the SQL sqlite-utils writes for
them (tests/test_build_speed.py builds the same package with sqlite-utils' own create,
create_index and create_view and compares), written here rather than by importing
sqlite-utils at build time: its import pulls in pandas, which took longer than loading the
largest table, and the build has a 2-second budget.

Speed:

- the CSV rows go to SQLite as read, one ``executemany`` per table; SQLite itself turns
  markers into NULL and text into numbers (``CASE`` in the INSERT and column affinity),
  far cheaper than a Python function per cell; a query afterwards finds any number cell
  that did not convert;
- the largest table is loaded at the same time by a second process, into a database file
  of its own, and then copied: ``INSERT INTO t SELECT * FROM side.t`` into an empty table
  of the same definition and indexes is SQLite's transfer optimisation, which copies the
  table's and the indexes' b-tree records in order instead of inserting rows one by one;
- the pragmas (PRAGMAS) suit a file that is written once and renamed into place.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sqlite3
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from .yamlio import load_yaml
from .errors import BuildError, ConfigError
from .progress import SILENT, Progress
from .schemas import load_schemas

#: SQLite column type per Table Schema type, as sqlite-utils names them (TEXT otherwise).
SQL_TYPES = {"integer": "INTEGER", "number": "FLOAT", "boolean": "INTEGER"}
#: Table Schema number type -> SQLite's typeof() and the Python type of a converted cell.
NUMBER_TYPES = {"integer": ("integer", int), "number": ("real", float)}
INDEX_COLUMNS = ("year", "month", "country_code", "province_code", "origin_code", "asylum_code",
                 "source_id", "period_end")
#: For a file written once and renamed into place: no rollback journal and no fsync (a
#: failed build leaves only a temporary file, which is deleted); a page cache that holds
#: the whole file, so pages are written once, at the end; 16 KiB pages, fewer b-tree pages
#: to fill and split (the file is 2% bigger; queries are as fast).
PRAGMAS = ("page_size = 16384", "journal_mode = OFF", "synchronous = OFF", "cache_size = -262144")
#: The largest table is loaded by a second process when its CSV file is at least this big
#: and there is a second core; a smaller one would not repay starting the process.
PARALLEL_MIN_BYTES = 4_000_000


def load_sql_entries(path: Path, key: str, kind: str) -> list[dict]:
    """Read views.yml or queries.yml: a list under ``key`` of entries that each need a
    name, title, description and sql."""
    if not path.exists():
        return []
    try:
        doc = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML ({exc})", str(path)) from exc
    entries = doc.get(key) or []
    for entry in entries:
        for field in ("name", "title", "description", "sql"):
            if not entry.get(field):
                raise ConfigError(f"{kind} {entry.get('name')!r} lacks {field}", str(path),
                                  f"every {kind} needs a name, title, description and sql")
    return entries


def load_views(path: Path) -> list[dict]:
    return load_sql_entries(path, "views", "view")


@dataclass
class TablePlan:
    """How to create, fill, check and index one table: plain data, so that it can be sent
    to the second process."""

    name: str
    path: Path
    names: list[str]
    create_sql: str
    insert_sql: str
    numbers: dict[str, str]  # number column -> its Table Schema type, checked after the insert
    index_sql: list[str]


def plan_table(root: Path, res: dict, schemas, resources: dict[str, dict]) -> TablePlan:
    """The SQL for one resource of datapackage.json (``resources``: all of them by name)."""
    name = res["name"]
    schema = res["schema"]
    fields = schema["fields"]
    names = [f["name"] for f in fields]
    missing = {m["value"] if isinstance(m, dict) else m for m in schema.get("missingValues", [""])}
    pk = schema.get("primaryKey") or []
    refs = {}
    for fk in schema.get("foreignKeys", []):
        if len(fk["fields"]) != 1:
            continue  # only single-column keys become REFERENCES clauses
        other, other_column = fk["reference"]["resource"], fk["reference"]["fields"][0]
        target = resources.get(other)
        if target is None or other_column not in {f["name"] for f in target["schema"]["fields"]}:
            raise BuildError(f"table {name} has a foreign key to {other}.{other_column}, which is "
                             "not in the package", str(root / "datapackage.json"),
                             "run `canada-asylum-data package` to regenerate it")
        refs[fk["fields"][0]] = f"REFERENCES [{other}]([{other_column}])"

    # CREATE TABLE as sqlite-utils' Database.create_table_sql writes it.
    lines = []
    for f in fields:
        extras = []
        if len(pk) == 1 and f["name"] == pk[0]:
            extras.append("PRIMARY KEY")
        if (f.get("constraints") or {}).get("required"):
            extras.append("NOT NULL")
        if f["name"] in refs:
            extras.append(refs[f["name"]])
        lines.append(f"   [{f['name']}] {SQL_TYPES.get(f['type'], 'TEXT')}"
                     + "".join(f" {e}" for e in extras))
    if len(pk) > 1:
        lines.append(f"   PRIMARY KEY ({', '.join(f'[{c}]' for c in pk)})")
    create_sql = f"CREATE TABLE [{name}] (\n" + ",\n".join(lines) + "\n)"

    # The cells are bound as text: a marker becomes NULL, a boolean 1 or 0 ("true" in any
    # case is 1), and the INTEGER and FLOAT column affinity turns numbers into numbers. A
    # cell that is not a number stays text, which _check_numbers reports (SQLite takes
    # "7.0" or "7e0" for the integer 7; `validate` rejects them before a build).
    markers = ", ".join("'" + m.replace("'", "''") + "'" for m in sorted(missing))
    values = []
    for i, f in enumerate(fields, 1):
        value = f"lower(?{i}) = 'true'" if f["type"] == "boolean" else f"?{i}"
        values.append(f"CASE WHEN ?{i} IN ({markers}) THEN NULL ELSE {value} END" if markers else value)
    insert_sql = (f"insert into [{name}] ({', '.join(f'[{n}]' for n in names)}) "
                  f"values ({', '.join(values)})")
    numbers = {f["name"]: f["type"] for f in fields if f["type"] in NUMBER_TYPES}

    # Facet columns first, then the usual filter columns, as sqlite-utils' create_index
    # writes them; IF NOT EXISTS skips a column named twice.
    doc = schemas[name].doc if name in schemas else {}
    indexed = [c for c in list(doc.get("facets") or []) + list(INDEX_COLUMNS) if c in names]
    index_sql = [f"CREATE INDEX IF NOT EXISTS [idx_{name.replace(' ', '_')}_{c}]\n"
                 f"    ON [{name}] ([{c}])" for c in dict.fromkeys(indexed)]
    return TablePlan(name, root / res["path"], names, create_sql, insert_sql, numbers, index_sql)


def build_database(datapackage_dir: Path, db_path: Path, views_path: Path,
                   progress: Progress = SILENT, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> Path:
    descriptor = datapackage_dir / "datapackage.json"
    if not descriptor.is_file():
        raise BuildError("no data package found", str(descriptor))
    try:
        desc = json.loads(descriptor.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BuildError(f"datapackage.json is not valid JSON ({exc})", str(descriptor)) from exc
    schemas = load_schemas(datapackage_dir / "schemas")
    resources = desc["resources"]
    by_name = {r["name"]: r for r in resources}
    # Reference tables first so foreign keys point at existing tables.
    order = sorted(resources, key=lambda r: (bool(r["schema"].get("foreignKeys")), r["name"]))
    plans = [plan_table(datapackage_dir, res, schemas, by_name) for res in order]
    side = _side_table(plans, parallel_min_bytes)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(db_path.parent)
    side_path = tmp.with_name(tmp.stem + "-side.db")
    try:
        with contextlib.ExitStack() as stack:
            future = None
            if side is not None:
                # Leaving the with-block waits for the second process, even after an error.
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=1))
                future = pool.submit(_load_side_table, side, side_path)
            conn = sqlite3.connect(tmp)
            stack.callback(conn.close)
            for pragma in PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            _load_tables(conn, plans, side, future, progress)
            if future is not None:
                future.result()
                _copy_side_table(conn, side, side_path)
            _create_views(conn, views_path)
            _create_fts(conn, schemas, by_name)
            conn.commit()
        os.replace(tmp, db_path)
    finally:
        tmp.unlink(missing_ok=True)
        side_path.unlink(missing_ok=True)
    return db_path


def _temp_path(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=".build-", suffix=".db", dir=folder)
    os.close(fd)
    path = Path(name)
    path.unlink()
    return path


def _side_table(plans: list[TablePlan], min_bytes: int) -> TablePlan | None:
    """The table for the second process: the most work (file size times number of
    columns), if its file is big enough and there is a second core."""
    if (os.cpu_count() or 1) < 2 or not plans:
        return None
    sizes = {p.name: p.path.stat().st_size if p.path.is_file() else 0 for p in plans}
    plan = max(plans, key=lambda p: sizes[p.name] * len(p.names))
    return plan if sizes[plan.name] >= min_bytes else None


def _load_tables(conn: sqlite3.Connection, plans: list[TablePlan], side: TablePlan | None,
                 future: Future | None, progress: Progress) -> None:
    """Create every table and its indexes in order, and fill all but the side table (its
    indexes are created empty; the rows and index entries are copied in later)."""
    after_side = False
    for plan in progress.items(plans, "build", show=lambda p: p.name if p else ""):
        try:
            conn.execute(plan.create_sql)
        except sqlite3.Error as exc:
            raise BuildError(f"table {plan.name} cannot be created ({exc})", str(plan.path),
                             "check its schema") from exc
        if plan is side:
            after_side = True
        else:
            try:
                _insert_rows(conn, plan)
            except BuildError:
                if after_side:
                    future.result()  # an error in the side table comes first, as in a serial build
                raise
        for sql in plan.index_sql:
            conn.execute(sql)


def _insert_rows(conn: sqlite3.Connection, plan: TablePlan) -> None:
    name, path = plan.name, plan.path
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != plan.names:
                raise BuildError(f"table {name} has columns {header}, its schema says {plan.names}",
                                 str(path), "run `canada-asylum-data package` to regenerate it")
            conn.executemany(plan.insert_sql, reader)
            _check_numbers(conn, plan)
    except OSError as exc:
        raise BuildError(f"cannot read table {name}", str(path)) from exc
    except (ValueError, csv.Error, sqlite3.Error) as exc:
        raise BuildError(f"table {name} has a value that does not fit its schema ({exc})", str(path),
                         "run `canada-asylum-data validate` to find it") from exc


def _check_numbers(conn: sqlite3.Connection, plan: TablePlan) -> None:
    """Raise ValueError for the first number cell that SQLite left as text."""
    if not plan.numbers:
        return
    bad = conn.execute(
        f"select rowid, {', '.join(f'[{c}]' for c in plan.numbers)} from [{plan.name}] where "
        + " or ".join(f"typeof([{c}]) not in ('{NUMBER_TYPES[t][0]}', 'null')"
                      for c, t in plan.numbers.items())
        + " limit 1").fetchone()
    if bad is not None:
        row, *cells = bad
        for (column, ftype), cell in zip(plan.numbers.items(), cells):
            if cell is not None and type(cell) is not NUMBER_TYPES[ftype][1]:
                raise ValueError(f"{column} = {cell!r} in row {row} is not "
                                 + ("an integer" if ftype == "integer" else "a number"))


def _load_side_table(plan: TablePlan, side_path: Path) -> None:
    """In the second process: create, fill and index one table in a database of its own."""
    conn = sqlite3.connect(side_path)
    try:
        for pragma in PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        conn.execute(plan.create_sql)
        _insert_rows(conn, plan)
        for sql in plan.index_sql:
            conn.execute(sql)
        conn.commit()
    finally:
        conn.close()


def _copy_side_table(conn: sqlite3.Connection, plan: TablePlan, side_path: Path) -> None:
    """Copy the side table's rows and index entries into its empty twin (same definition,
    same indexes, so SQLite copies the b-trees' records instead of inserting rows)."""
    conn.commit()  # ATTACH cannot run inside a transaction
    conn.execute("ATTACH DATABASE ? AS side", (str(side_path),))
    conn.execute(f"INSERT INTO main.[{plan.name}] SELECT * FROM side.[{plan.name}]")
    conn.commit()
    conn.execute("DETACH DATABASE side")


def _create_fts(conn: sqlite3.Connection, schemas, resources: dict[str, dict]) -> None:
    """Full-text search for the tables whose schema lists ``fts`` columns: the FTS5 table
    sqlite-utils' enable_fts makes (``<table>_fts``, external content, so Datasette's
    ``_search`` finds it), with accents folded so "etats" finds "États"."""
    for name, schema in schemas.items():
        cols = list(schema.doc.get("fts") or [])
        if not cols or name not in resources:
            continue
        col_sql = ", ".join(f"[{c}]" for c in cols)
        conn.execute(f"CREATE VIRTUAL TABLE [{name}_fts] USING FTS5 ({col_sql}, content=[{name}], "
                     "tokenize='unicode61 remove_diacritics 2')")
        conn.execute(f"INSERT INTO [{name}_fts] (rowid, {col_sql}) SELECT rowid, {col_sql} FROM [{name}]")


def _create_views(conn: sqlite3.Connection, views_path: Path) -> None:
    created: dict[str, str] = {}
    for view in load_views(views_path):
        sql = f"CREATE VIEW {view['name']} AS {view['sql']}"
        try:
            # As sqlite-utils' create_view(replace=True): a view named again replaces the
            # earlier one, unless its SQL is the same.
            if view["name"] in created and created[view["name"]] != sql:
                conn.execute(f"DROP VIEW [{view['name']}]")
            if created.get(view["name"]) != sql:
                conn.execute(sql)
                created[view["name"]] = sql
            conn.execute(f"select * from [{view['name']}] limit 0")
        except sqlite3.Error as exc:
            raise BuildError(f"view {view['name']} does not compile ({exc})", str(views_path),
                             "fix its SQL") from exc
