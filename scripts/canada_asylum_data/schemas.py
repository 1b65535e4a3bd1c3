"""Table schemas: ``datapackage/schemas/<table>.yaml`` (Table Schema + title, French
title/description, caveats, units and the meaning of missing values per column)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from .yamlio import read_yaml
from .errors import ConfigError
from .schema_check import check_document, check_expanded, check_references

COMMON = "_common.yaml"
#: Keys of a field that go into datapackage.json (the rest is project metadata).
FIELD_KEYS = ("name", "type", "format", "title", "description", "unit", "missing", "constraints")


@dataclass
class Schema:
    name: str
    doc: dict
    path: Path

    @property
    def fields(self) -> list[dict]:
        return self.doc["fields"]

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.fields]

    @property
    def primary_key(self) -> list[str]:
        return list(self.doc.get("primary_key") or [])

    def field(self, name: str) -> dict:
        for f in self.fields:
            if f["name"] == name:
                return f
        raise KeyError(name)

    @property
    def index_columns(self) -> list[str]:
        """``index``: the columns the SQLite database indexes for filters and joins (the
        facet columns are indexed too)."""
        return list(self.doc.get("index") or [])

    @property
    def granularity(self) -> str | None:
        """``granularity``: how coverage counts the table's periods when its columns do not
        say (``quarter`` for cumulative quarterly snapshots); None to infer it."""
        return self.doc.get("granularity")

    @property
    def change_report(self) -> str:
        """``change_report``: ``values`` (every revised value is listed, the default) or
        ``summary`` (a supporting table the change report only summarises)."""
        return self.doc.get("change_report") or "values"

    @property
    def country_columns(self) -> tuple[tuple[str, str], ...]:
        """(printed label column, code column) pairs: the code columns whose field says
        ``from_label``, filled by the normalize stage through the country aliases."""
        return tuple((f["from_label"], f["name"]) for f in self.fields if f.get("from_label"))

    def table_schema(self) -> dict:
        """The Frictionless Table Schema for datapackage.json."""
        out: dict = {"fields": [{k: f[k] for k in FIELD_KEYS if k in f} for f in self.fields]}
        if self.primary_key:
            out["primaryKey"] = self.primary_key
        fks = []
        for fk in self.doc.get("foreign_keys") or []:
            ref = fk["reference"]
            fks.append({"fields": list(fk["fields"]),
                        "reference": {"resource": ref["resource"], "fields": list(ref["fields"])}})
        if fks:
            out["foreignKeys"] = fks
        missing = self.doc.get("missing_values")
        out["missingValues"] = ([{"value": m["value"], "label": m["label"]} for m in missing]
                                if missing else [{"value": "", "label": "no value"}])
        return out


def _expand(fields: list, common: dict, path: Path) -> list[dict]:
    out = []
    for i, f in enumerate(fields):
        if not isinstance(f, dict):
            raise ConfigError(f"field {i + 1} is not a mapping", str(path))
        if "use" in f:
            name = f["use"]
            if name not in common:
                raise ConfigError(f"field {i + 1} uses unknown common field {name!r}", str(path),
                                  f"use one of {', '.join(common)} (datapackage/schemas/{COMMON})")
            merged = copy.deepcopy(common[name])
            merged.update({k: v for k, v in f.items() if k != "use"})
            merged["name"] = merged.get("name", name)
            out.append(merged)
        else:
            out.append(f)
    return out


def _read(path: Path):
    try:
        return read_yaml(path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"schema is not valid YAML ({exc})", str(path)) from exc


def load_schemas(schema_dir: Path) -> dict[str, Schema]:
    """Every schema file, each checked as an input (schema_check) before it is used."""
    common_path = schema_dir / COMMON
    common: dict = {}
    if common_path.exists():
        doc = _read(common_path)
        check_document(doc, common_path, common=True)
        common = doc["fields"]
    out: dict[str, Schema] = {}
    for path in sorted(schema_dir.glob("*.yaml")):
        if path.name == COMMON:
            continue
        doc = _read(path)
        check_document(doc, path)
        if doc["name"] != path.stem:
            raise ConfigError(f"schema name {doc['name']!r} differs from its file name", str(path),
                              f"name the table {path.stem!r} or rename the file")
        doc["fields"] = _expand(doc["fields"], common, path)
        check_expanded(doc["name"], doc, path)
        out[doc["name"]] = Schema(doc["name"], doc, path)
    check_references(out)
    return out
