"""Write the data package: ``datapackage/data/<table>.csv`` and ``datapackage.json``.

Output is deterministic (rows sorted by primary key, fixed column order, no timestamps)
and atomic: everything is written into a staging folder first and only moved into place
once every table has been written and checked, so a failure leaves the previous package
untouched.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from .yamlio import load_yaml
from .errors import ConfigError, ValidationError
from .schemas import Schema, load_schemas
from .sources import Source

PROFILE = "https://datapackage.org/profiles/2.0/datapackage.json"
DATA_DIR = "data"
DESCRIPTOR = "datapackage.json"


def _sort_key(row: dict, pk: list[str]):
    return tuple((0, v, "") if isinstance(v, int) and not isinstance(v, bool) else (1, 0, str(v))
                 for v in (row.get(k) for k in pk))


def _cell(value) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    return str(value)


def render_csv(schema: Schema, rows: list[dict]) -> bytes:
    names = schema.field_names
    known = set(names)
    for i, row in enumerate(rows):
        if not known.issuperset(row):
            extra = set(row) - known
            raise ConfigError(f"table {schema.name} got columns its schema lacks: {sorted(extra)}",
                              f"row {i + 1} from {row.get('source_id')} at {row.get('source_locator')}",
                              f"add them to {schema.path} or drop them in the parser")
    pk = schema.primary_key or names
    ordered = sorted(rows, key=lambda r: _sort_key(r, pk))
    lines = [[_cell(row.get(n)) for n in names] for row in ordered]
    pk_index = [names.index(k) for k in pk]
    seen: dict[tuple, int] = {}
    for i, line in enumerate(lines):
        key = tuple(line[j] for j in pk_index)
        if key in seen:
            other, row = ordered[seen[key]], ordered[i]
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
        return load_yaml(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read package metadata ({exc})", str(path)) from exc


def write_package(tables: dict[str, list[dict]], datapackage_dir: Path, sources: list[Source],
                  check: Callable[[Path], None] | None = None) -> dict[str, Path]:
    """Write all tables and the descriptor; returns table -> CSV path.

    The package is first written in full to a staging folder laid out like datapackage/
    (``data/*.csv`` + ``datapackage.json``); ``check(staging)``, when given, validates it
    there and raises to stop. Only then are the files moved into place, so a package that
    fails to build or to validate never replaces the previous one."""
    schemas = load_schemas(datapackage_dir / "schemas")
    missing = sorted(set(tables) - set(schemas))
    if missing:
        raise ConfigError(f"no schema for table(s) {', '.join(missing)}",
                          str(datapackage_dir / "schemas"), "write datapackage/schemas/<table>.yaml")
    files = {name: render_csv(schemas[name], rows) for name, rows in tables.items()}
    desc = descriptor(load_package_meta(datapackage_dir), schemas, tables, files,
                      {s.id: s for s in sources})
    desc_bytes = (json.dumps(desc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    data_dir = datapackage_dir / DATA_DIR
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=datapackage_dir))
    try:
        (staging / DATA_DIR).mkdir()
        for name, data in files.items():
            (staging / DATA_DIR / f"{name}.csv").write_bytes(data)
        (staging / DESCRIPTOR).write_bytes(desc_bytes)
        if check is not None:
            check(staging)
        # Everything is written and checked: move into place (each rename is atomic).
        for name in files:
            os.replace(staging / DATA_DIR / f"{name}.csv", data_dir / f"{name}.csv")
        for stale in data_dir.glob("*.csv"):
            if stale.stem not in files:
                stale.unlink()
        os.replace(staging / DESCRIPTOR, datapackage_dir / DESCRIPTOR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: data_dir / f"{name}.csv" for name in files}
