"""Write the data package: ``datapackage/data/<table>.csv`` and ``datapackage.json``.

Output is deterministic (rows sorted by primary key, fixed column order, no timestamps)
and atomic: everything is written into a staging folder first (:func:`stage_package`); the
pipeline installs it together with the metadata and database built from it
(runs.install_generation). :func:`write_package` stages and installs a package folder in
one go, for folders outside a project's pipeline (tests, fixtures).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import yaml

from .yamlio import read_yaml
from .errors import ConfigError, ValidationError
from .files import install, staged_folder
from .package_io import DESCRIPTOR
from .schemas import Schema, load_schemas
from .sources import Source

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
DATA_DIR = "data"


def _sort_part(value) -> tuple:
    """One primary-key cell's sort key: numbers in numeric order before text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, str(value))


def _cell(value) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def render_csv(schema: Schema, rows: list[dict]) -> bytes:
    """The table as CSV bytes: the schema's columns in order, rows sorted by primary key.

    Works column by column (one list per column, then one transpose): the two largest
    tables hold over a million cells, and a function call per cell was most of the cost."""
    names = schema.field_names
    known = set(names)
    if not known.issuperset(set().union(*rows)):
        for i, row in enumerate(rows):
            if not known.issuperset(row):
                extra = set(row) - known
                raise ConfigError(f"table {schema.name} got columns its schema lacks: {sorted(extra)}",
                                  f"row {i + 1} from {row.get('source_id')} at {row.get('source_locator')}",
                                  f"add them to {schema.path} or drop them in the parser")
    pk = schema.primary_key or names
    keys = list(zip(*([_sort_part(row.get(k)) for row in rows] for k in pk)))
    order = sorted(range(len(rows)), key=keys.__getitem__)
    columns = []
    for name in names:
        values = [rows[i].get(name) for i in order]
        columns.append([v if type(v) is str else _cell(v) for v in values])
    lines = list(zip(*columns))
    pk_cells = list(zip(*(columns[names.index(k)] for k in pk)))
    if len(set(pk_cells)) != len(pk_cells):
        seen: dict[tuple, int] = {}
        for i, key in enumerate(pk_cells):
            if key in seen:
                other, row = rows[order[seen[key]]], rows[order[i]]
                raise ValidationError(
                    f"duplicate primary key {dict(zip(pk, key))} in table {schema.name}",
                    f"rows from {other.get('source_id')} at {other.get('source_locator')} and "
                    f"{row.get('source_id')} at {row.get('source_locator')}",
                    "the parser must emit one row per key")
            seen[key] = i
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    writer.writerows(lines)
    return buf.getvalue().encode("utf-8")


def render_all(schemas: dict[str, Schema], tables: dict[str, list[dict]]) -> dict[str, bytes]:
    """Every table as CSV bytes, in one process (rendering in forked processes saved no time
    a user would feel: benchmarks/stages.py render)."""
    return {name: render_csv(schemas[name], rows) for name, rows in tables.items()}


def _sources_for(rows: list[dict], sources: dict[str, Source]) -> list[dict]:
    ids = sorted({r.get("source_id") for r in rows if r.get("source_id")})
    return [{"title": sources[i].title, "path": sources[i].url} for i in ids if i in sources]


def _licenses_for(rows: list[dict], sources: dict[str, Source], default: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for sid in sorted({r.get("source_id") for r in rows if r.get("source_id")}):
        for lic in sources[sid].licenses if sid in sources else ():
            if isinstance(lic, dict):
                seen.setdefault(lic.get("name", ""), {k: lic[k] for k in ("name", "title", "path") if k in lic})
    return list(seen.values()) or default


def descriptor(package_meta: dict, schemas: dict[str, Schema], tables: dict[str, list[dict]],
               files: dict[str, bytes], sources: dict[str, Source]) -> dict:
    resources = []
    for name in sorted(tables):
        schema = schemas[name]
        doc = schema.doc
        data = files[name]
        resource = {
            "name": name,
            "type": "table",
            "path": f"{DATA_DIR}/{name}.csv",
            "scheme": "file",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "dialect": {"delimiter": ",", "quoteChar": "\"", "header": True, "lineTerminator": "\n"},
            "title": doc.get("title", name),
            "description": doc.get("description", ""),
            "bytes": len(data),
            "hash": "sha256:" + hashlib.sha256(data).hexdigest(),
            "schema": schema.table_schema(),
        }
        for key in ("title_fr", "description_fr", "caveats"):
            if doc.get(key):
                resource[key] = doc[key]
        src = _sources_for(tables[name], sources)
        if src:
            resource["sources"] = src
        resource["licenses"] = _licenses_for(tables[name], sources, package_meta.get("licenses", []))
        resources.append(resource)
    meta = {k: v for k, v in package_meta.items()}
    out = {"$schema": PROFILE}
    out.update(meta)
    out["sources"] = [{"title": s.title, "path": s.url} for s in sorted(sources.values(), key=lambda s: s.id)
                      if s.mirrored]
    out["resources"] = resources
    return out


def load_package_meta(datapackage_dir: Path) -> dict:
    path = datapackage_dir / "package.yaml"
    try:
        return read_yaml(path) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read package metadata ({exc})", str(path)) from exc


def stage_package(tables: dict[str, list[dict]], datapackage_dir: Path, sources: list[Source],
                  staging: Path) -> list[str]:
    """Write all tables and the descriptor into ``staging``, laid out like datapackage/
    (``data/*.csv`` + ``datapackage.json``); returns the files written, relative to
    ``staging``, the descriptor last (the order :func:`install_package` moves them in)."""
    schemas = load_schemas(datapackage_dir / "schemas")
    missing = sorted(set(tables) - set(schemas))
    if missing:
        raise ConfigError(f"no schema for table(s) {', '.join(missing)}",
                          str(datapackage_dir / "schemas"), "write datapackage/schemas/<table>.yaml")
    files = render_all(schemas, tables)
    desc = descriptor(load_package_meta(datapackage_dir), schemas, tables, files,
                      {s.id: s for s in sources})
    (staging / DATA_DIR).mkdir(parents=True, exist_ok=True)
    names = []
    for name, data in files.items():
        (staging / DATA_DIR / f"{name}.csv").write_bytes(data)
        names.append(f"{DATA_DIR}/{name}.csv")
    (staging / DESCRIPTOR).write_bytes((json.dumps(desc, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return names + [DESCRIPTOR]


def install_package(staging: Path, names: list[str], datapackage_dir: Path) -> dict[str, Path]:
    """Move a staged package into datapackage/ (each rename atomic, the descriptor last)
    and delete the CSV files of tables it no longer has."""
    return install(staging, datapackage_dir, names, stale=f"{DATA_DIR}/*.csv")


def write_package(tables: dict[str, list[dict]], datapackage_dir: Path, sources: list[Source]) -> dict[str, Path]:
    """Stage and install the package in one go (no validation between: the pipeline's
    package stage validates the staged package before it installs it)."""
    with staged_folder(datapackage_dir, ".staging-") as staging:
        names = stage_package(tables, datapackage_dir, sources, staging)
        return install_package(staging, names, datapackage_dir)
