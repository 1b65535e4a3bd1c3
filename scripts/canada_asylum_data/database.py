"""Build ``build/canada_asylum.db`` from the committed data package with sqlite-utils.

Column types, primary keys and foreign keys come from the schemas; the publishers'
markers (``--`` and empty cells) become NULL; facet and filter columns get indexes; the
SQL views in ``datapackage/views.yml`` are created; the file is built under a temporary
name and renamed into place, then ``datasette inspect`` writes the inspect file used for
immutable serving.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import tempfile
from pathlib import Path

import sqlite_utils
import yaml

from .yamlio import load_yaml
from .errors import BuildError, ConfigError
from .progress import SILENT, Progress
from .schemas import load_schemas

SQL_TYPES = {"integer": int, "number": float, "boolean": int, "string": str, "date": str}
INDEX_COLUMNS = ("year", "month", "country_code", "province_code", "origin_code", "asylum_code",
                 "source_id", "period_end")


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


def _converter(ftype: str, missing: set[str]):
    """A function turning one CSV cell into its SQLite value (markers become NULL)."""
    cast = {"integer": int, "number": float,
            "boolean": lambda v: 1 if v.lower() == "true" else 0}.get(ftype)
    if cast is None:
        return lambda v: None if v in missing else v
    return lambda v: None if v in missing else cast(v)


def build_database(datapackage_dir: Path, db_path: Path, views_path: Path,
                   progress: Progress = SILENT) -> Path:
    descriptor = datapackage_dir / "datapackage.json"
    if not descriptor.is_file():
        raise BuildError("no data package found", str(descriptor))
    try:
        desc = json.loads(descriptor.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BuildError(f"datapackage.json is not valid JSON ({exc})", str(descriptor)) from exc
    schemas = load_schemas(datapackage_dir / "schemas")
    db_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".build-", suffix=".db", dir=db_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        db = sqlite_utils.Database(tmp)
        db.conn.execute("PRAGMA journal_mode = OFF")
        db.conn.execute("PRAGMA synchronous = OFF")
        resources = desc["resources"]
        # Reference tables first so foreign keys point at existing tables.
        order = sorted(resources, key=lambda r: (bool(r["schema"].get("foreignKeys")), r["name"]))
        for res in progress.items(order, "build", show=lambda r: r["name"] if r else ""):
            _load_resource(db, datapackage_dir, res, schemas)
        for view in load_views(views_path):
            try:
                db.create_view(view["name"], view["sql"], replace=True)
                db.execute(f"select * from [{view['name']}] limit 0")
            except sqlite3.Error as exc:
                raise BuildError(f"view {view['name']} does not compile ({exc})", str(views_path),
                                 "fix its SQL") from exc
        db.conn.commit()
        db.conn.close()
        os.replace(tmp, db_path)
    finally:
        tmp.unlink(missing_ok=True)
    return db_path


def _load_resource(db: sqlite_utils.Database, root: Path, res: dict, schemas) -> None:
    name = res["name"]
    schema = res["schema"]
    fields = schema["fields"]
    missing = {m["value"] if isinstance(m, dict) else m for m in schema.get("missingValues", [""])}
    columns = {f["name"]: SQL_TYPES.get(f["type"], str) for f in fields}
    pk = schema.get("primaryKey")
    fks = [(fk["fields"][0], fk["reference"]["resource"], fk["reference"]["fields"][0])
           for fk in schema.get("foreignKeys", []) if len(fk["fields"]) == 1]
    not_null = {f["name"] for f in fields if (f.get("constraints") or {}).get("required")}
    table = db.table(name)
    table.create(columns, pk=pk if pk and len(pk) > 1 else (pk[0] if pk else None),
                 not_null=not_null, foreign_keys=fks)
    path = root / res["path"]
    names = [f["name"] for f in fields]
    convert = [_converter(f["type"], missing) for f in fields]
    sql = (f"insert into [{name}] ({', '.join(f'[{n}]' for n in names)}) "
           f"values ({', '.join('?' for _ in names)})")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header != names:
                raise BuildError(f"table {name} has columns {header}, its schema says {names}", str(path),
                                 "run `canada-asylum-data package` to regenerate it")
            db.conn.executemany(sql, (tuple(c(v) for c, v in zip(convert, row)) for row in reader))
    except OSError as exc:
        raise BuildError(f"cannot read table {name}", str(path)) from exc
    except (ValueError, sqlite3.Error) as exc:
        raise BuildError(f"table {name} has a value that does not fit its schema ({exc})", str(path),
                         "run `canada-asylum-data validate` to find it") from exc
    doc = schemas[name].doc if name in schemas else {}
    for col in list(doc.get("facets") or []) + [c for c in INDEX_COLUMNS if c in columns]:
        if col in columns:
            table.create_index([col], if_not_exists=True, find_unique_name=True)
