"""Build ``build/canada_asylum.db`` from the committed data package.

Column types, primary keys and foreign keys come from the schemas; the publishers'
markers (``--`` and empty cells) become NULL; facet columns and the schema's ``index``
columns get indexes; the SQL views in ``datapackage/views.yml`` are created. Tables,
indexes and views are made with sqlite-utils (``Table.create``, ``insert_all``,
``create_index``, ``Database.create_view``). The file is built under a temporary name and
renamed into place.

The cells go in as the CSV text: a marker becomes NULL, a boolean 1 or 0, and the INTEGER
and FLOAT column affinity turns numbers into numbers; a query afterwards finds any number
cell that did not convert (:func:`_check_numbers`).
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import sqlite_utils
import yaml

from .yamlio import read_yaml
from .errors import BuildError, ConfigError
from .files import atomic_path
from .package_io import read_descriptor
from .progress import SILENT, Progress
from .runs import checkpoint
from .schemas import Schema, load_schemas

#: Python type per Table Schema type, from which sqlite-utils names the column type.
COLUMN_TYPES = {"integer": int, "number": float, "boolean": int}
#: Table Schema number type -> SQLite's typeof() and the Python type of a converted cell.
NUMBER_TYPES = {"integer": ("integer", int), "number": ("real", float)}
#: For a file written once and renamed into place: no rollback journal and no fsync (a
#: failed build leaves only a temporary file, which is deleted); a page cache that holds
#: the whole file, so pages are written once, at the end.
PRAGMAS = ("page_size = 16384", "journal_mode = OFF", "synchronous = OFF", "cache_size = -262144")


def load_sql_entries(path: Path, key: str, kind: str) -> list[dict]:
    """Read views.yml or queries.yml: a list under ``key`` of entries that each need a
    name, title, description and sql."""
    if not path.exists():
        return []
    try:
        doc = read_yaml(path) or {}
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


def _foreign_keys(root: Path, res: dict, resources: dict[str, dict]) -> list[tuple[str, str, str]]:
    """Single-column foreign keys as (column, table, column); each target must exist."""
    out = []
    for fk in res["schema"].get("foreignKeys", []):
        if len(fk["fields"]) != 1:
            continue  # only single-column keys become REFERENCES clauses
        other, other_column = fk["reference"]["resource"], fk["reference"]["fields"][0]
        target = resources.get(other)
        if target is None or other_column not in {f["name"] for f in target["schema"]["fields"]}:
            raise BuildError(f"table {res['name']} has a foreign key to {other}.{other_column}, which is "
                             "not in the package", str(root / "datapackage.json"),
                             "run `canada-asylum-data package` to regenerate it")
        out.append((fk["fields"][0], other, other_column))
    return out


def build_database(datapackage_dir: Path, db_path: Path, views_path: Path,
                   progress: Progress = SILENT) -> Path:
    desc = read_descriptor(datapackage_dir)
    schemas = load_schemas(datapackage_dir / "schemas")
    resources = {r["name"]: r for r in desc["resources"]}
    # Reference tables first so foreign keys point at existing tables.
    order = sorted(desc["resources"], key=lambda r: (bool(r["schema"].get("foreignKeys")), r["name"]))
    keys = {r["name"]: _foreign_keys(datapackage_dir, r, resources) for r in order}
    with atomic_path(db_path) as tmp:
        conn = sqlite3.connect(tmp)
        try:
            for pragma in PRAGMAS:
                conn.execute(f"PRAGMA {pragma}")
            db = sqlite_utils.Database(conn)
            for i, res in enumerate(progress.items(order, "build", show=lambda r: r["name"] if r else "")):
                _load_table(db, datapackage_dir / res["path"], res, keys[res["name"]],
                            schemas.get(res["name"]))
                if i == 0:
                    checkpoint("build")
            _create_views(db, views_path)
            _create_fts(conn, schemas, resources)
            conn.commit()
        except sqlite3.OperationalError as exc:  # e.g. "database or disk is full"
            raise BuildError(f"cannot write the database ({exc})", str(db_path),
                             "free disk space and run again; the previous outputs are unchanged") from exc
        finally:
            conn.close()
    return db_path


def _load_table(db: sqlite_utils.Database, path: Path, res: dict, foreign_keys: list,
                schema: Schema | None) -> None:
    """Create one table, fill it from its CSV file, check its numbers and index it."""
    name = res["name"]
    fields = res["schema"]["fields"]
    names = [f["name"] for f in fields]
    pk = res["schema"].get("primaryKey") or []
    table = db.table(name)
    try:
        table.create({f["name"]: COLUMN_TYPES.get(f["type"], str) for f in fields},
                     pk=tuple(pk) if len(pk) > 1 else (pk[0] if pk else None),
                     not_null={f["name"] for f in fields if (f.get("constraints") or {}).get("required")},
                     foreign_keys=foreign_keys)
    except sqlite3.Error as exc:
        raise BuildError(f"table {name} cannot be created ({exc})", str(path), "check its schema") from exc
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != names:
                raise BuildError(f"table {name} has columns {header}, its schema says {names}",
                                 str(path), "run `canada-asylum-data package` to regenerate it")
            db.conn.executemany(_insert_sql(res), reader)
    except OSError as exc:
        raise BuildError(f"cannot read table {name}", str(path)) from exc
    except (ValueError, csv.Error, sqlite3.Error) as exc:
        raise BuildError(f"table {name} has a value that does not fit its schema ({exc})", str(path),
                         "run `canada-asylum-data validate` to find it") from exc
    _check_numbers(db.conn, name, path, {f["name"]: f["type"] for f in fields if f["type"] in NUMBER_TYPES})
    # Facet columns first, then the schema's `index` columns.
    indexed = list((schema.doc.get("facets") or []) + schema.index_columns) if schema else []
    for column in dict.fromkeys(c for c in indexed if c in names):
        table.create_index([column], if_not_exists=True, find_unique_name=True)


def _insert_sql(res: dict) -> str:
    """INSERT for a CSV row bound as text: SQLite turns a marker into NULL (CASE) and "true"
    into 1 and "false" into 0, and the column affinity turns numbers into numbers. One
    ``executemany`` per table: rows go in as the reader yields them, with no Python
    function per cell (insert_all, which builds a dict per row, took the build from about
    2 s to about 6 s on this package: benchmarks/stages.py)."""
    fields = res["schema"]["fields"]
    missing = {m["value"] if isinstance(m, dict) else m for m in res["schema"].get("missingValues", [""])}
    markers = ", ".join("'" + m.replace("'", "''") + "'" for m in sorted(missing))
    values = []
    for i, f in enumerate(fields, 1):
        value = f"lower(?{i}) = 'true'" if f["type"] == "boolean" else f"?{i}"
        values.append(f"CASE WHEN ?{i} IN ({markers}) THEN NULL ELSE {value} END" if markers else value)
    return (f"insert into [{res['name']}] ({', '.join('[' + f['name'] + ']' for f in fields)}) "
            f"values ({', '.join(values)})")


def _check_numbers(conn: sqlite3.Connection, name: str, path: Path, numbers: dict[str, str]) -> None:
    """Raise BuildError for the first number cell that SQLite left as text."""
    if not numbers:
        return
    bad = conn.execute(
        f"select rowid, {', '.join(f'[{c}]' for c in numbers)} from [{name}] where "
        + " or ".join(f"typeof([{c}]) not in ('{NUMBER_TYPES[t][0]}', 'null')" for c, t in numbers.items())
        + " limit 1").fetchone()
    if bad is not None:
        row, *cells = bad
        for (column, ftype), value in zip(numbers.items(), cells):
            if value is not None and type(value) is not NUMBER_TYPES[ftype][1]:
                kind = "an integer" if ftype == "integer" else "a number"
                raise BuildError(f"table {name} has a value that does not fit its schema "
                                 f"({column} = {value!r} in row {row} is not {kind})", str(path),
                                 "run `canada-asylum-data validate` to find it")


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


def _create_views(db: sqlite_utils.Database, views_path: Path) -> None:
    for view in load_views(views_path):
        try:
            # A view named again replaces the earlier one.
            db.create_view(view["name"], view["sql"], replace=True)
            db.execute(f"select * from [{view['name']}] limit 0")
        except sqlite3.Error as exc:
            raise BuildError(f"view {view['name']} does not compile ({exc})", str(views_path),
                             "fix its SQL") from exc
