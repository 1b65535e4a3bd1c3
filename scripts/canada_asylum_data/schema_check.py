"""The table schema files (``datapackage/schemas/*.yaml``) checked as inputs.

Each file is validated against :data:`TABLE_SCHEMA` (JSON Schema, draft 2020-12; the
shared ``_common.yaml`` against :data:`COMMON_SCHEMA`) as it is read, before anything
uses it, then, once ``use:`` fields are expanded, against the rules JSON Schema cannot
state: every column named by ``primary_key``, ``foreign_keys``, ``facets``, ``sort``,
``sort_desc`` and ``row_sums`` exists; a constraint's value has the column's type
(``minimum: "0"`` on an integer column); a ``pattern`` compiles; a foreign key points at
a table and columns that exist. Unknown keys are errors: a misspelt key (``units:``, or a
description with an unquoted ``, `` inside ``{...}``) would otherwise drop published
metadata without a word.

A problem is a :class:`~.errors.ConfigError` naming the file and line, the key path in
it, and the fix.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

#: Frictionless field types.
TYPES = ["string", "integer", "number", "boolean", "date", "datetime", "time", "year",
         "yearmonth", "duration", "geopoint", "geojson", "object", "array", "list", "any"]
COLUMN = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}
COLUMNS = {"type": "array", "items": COLUMN, "minItems": 1, "uniqueItems": True}
TEXT = {"type": "string", "minLength": 1}

CONSTRAINTS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "boolean"},
        "unique": {"type": "boolean"},
        "minimum": {"type": ["number", "string"]},
        "maximum": {"type": ["number", "string"]},
        "minLength": {"type": "integer", "minimum": 0},
        "maxLength": {"type": "integer", "minimum": 0},
        "pattern": {"type": "string"},
        "enum": {"type": "array", "minItems": 1},
    },
}
FIELD_PROPERTIES = {
    "name": COLUMN,
    "type": {"enum": TYPES},
    "format": {"type": "string"},
    "title": TEXT,
    "description": TEXT,
    "unit": TEXT,
    "missing": TEXT,
    "constraints": CONSTRAINTS,
    # a country code column the normalize stage fills by resolving this printed-label column
    # (and the publisher's own code, where it prints one) through the country aliases
    "from_label": COLUMN,
}
FIELD = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**FIELD_PROPERTIES, "use": COLUMN},
    # a field is either written out (name, type, ...) or taken from _common.yaml (use:)
    "if": {"not": {"required": ["use"]}},
    "then": {"required": ["name", "type", "description", "missing"]},
}
TABLE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "A table schema of canada-asylum-data (datapackage/schemas/<table>.yaml)",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "title", "description", "fields"],
    "properties": {
        "name": COLUMN,
        "title": TEXT,
        "title_fr": TEXT,
        "description": TEXT,
        "description_fr": TEXT,
        "caveats": TEXT,
        "primary_key": COLUMNS,
        "fields": {"type": "array", "minItems": 1, "items": FIELD},
        "foreign_keys": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["fields", "reference"],
            "properties": {"fields": COLUMNS, "reference": {
                "type": "object", "additionalProperties": False,
                "required": ["resource", "fields"],
                "properties": {"resource": COLUMN, "fields": COLUMNS}}}}},
        "missing_values": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False, "required": ["value", "label"],
            "properties": {"value": {"type": "string"}, "label": TEXT}}},
        "reconcile": {"enum": ["exact", "rounded5"]},
        "row_sums": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["parts", "total"],
            "properties": {"parts": COLUMNS, "total": COLUMN}}},
        "facets": {"type": "array", "items": COLUMN, "uniqueItems": True},
        "sort": COLUMN,
        "sort_desc": COLUMN,
        # columns the database indexes besides the facets (filters and joins)
        "index": {"type": "array", "items": COLUMN, "uniqueItems": True},
        # how coverage counts periods when the columns do not say (cumulative snapshots)
        "granularity": {"enum": ["quarter"]},
        # how the change report shows the table: every revised value, or a summary
        "change_report": {"enum": ["values", "summary"]},
        # columns indexed for full-text search (_search and the site search)
        "fts": {"type": "array", "items": COLUMN, "minItems": 1, "uniqueItems": True},
        # the column Datasette shows for a foreign key pointing at this table
        "label_column": COLUMN,
    },
}
COMMON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Shared field definitions (datapackage/schemas/_common.yaml)",
    "type": "object",
    "additionalProperties": False,
    "required": ["fields"],
    "properties": {"fields": {
        "type": "object",
        "propertyNames": COLUMN,
        "additionalProperties": {
            "type": "object", "additionalProperties": False, "properties": FIELD_PROPERTIES,
            "required": ["type", "description", "missing"]}}},
}

#: What to do, per JSON Schema keyword that failed.
FIXES = {
    "additionalProperties": "remove or rename the unknown key (a typo? a description with an "
                            "unquoted ', ' inside {...}? quote it); the keys allowed are in "
                            "canada_asylum_data/schema_check.py",
    "required": "add the missing key",
    "type": "write the value with the type shown",
    "enum": "use one of the values shown",
    "pattern": "column names are lower case a-z, 0-9 and _",
    "minItems": "give at least one item, or remove the key",
    "uniqueItems": "list each item once",
    "minLength": "write some text, or remove the key",
}


@lru_cache(maxsize=None)
def _validator(which: str):
    import jsonschema  # imported when first needed

    schema = TABLE_SCHEMA if which == "table" else COMMON_SCHEMA
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _path_text(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line(doc, path, lines: dict[int, int]) -> int | None:
    """The line of the deepest mapping or list on ``path`` that the loader recorded."""
    line = lines.get(id(doc))
    node = doc
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        line = lines.get(id(node), line)
    return line


def _where(path: Path, line: int | None, keys) -> str:
    return f"{path}" + (f" line {line}" if line else "") + f" ({_path_text(keys)})"


#: Files already found valid in this process: (path, mtime, size). A refresh reads the
#: schemas in several stages; each file is validated once.
_VALID: set[tuple[str, int, int]] = set()


def check_document(doc, path: Path, common: bool = False) -> None:
    """Validate one schema file (as loaded) against its JSON Schema."""
    if not isinstance(doc, dict):
        raise ConfigError("the schema file is not a mapping of keys", str(path),
                          "start from an existing file in datapackage/schemas/")
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key in _VALID:
        return
    validator = _validator("common" if common else "table")
    if validator.is_valid(doc):
        if key:
            _VALID.add(key)
        return
    # Read again, recording lines, to say where the first problem is.
    from .yamlio import read_yaml

    lines: dict[int, int] = {}
    doc = read_yaml(path, lines)
    errors = sorted(validator.iter_errors(doc),
                    key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    err = errors[0]
    keys = list(err.absolute_path)
    what = err.message
    if err.validator == "required" and keys[:1] == ["fields"] and len(keys) == 2 \
            and "'name'" in err.message:
        what = f"field {keys[1] + 1} has no `name`"
        fix = "give it `name: <column>` (with type, description, missing) or `use: <a field of _common.yaml>`"
    else:
        fix = FIXES.get(err.validator, "fix the value as the message says")
    more = f" (and {len(errors) - 1} more problem(s) in this file)" if len(errors) > 1 else ""
    raise ConfigError(f"schema error: {what}{more}", _where(path, _line(doc, keys, lines), keys), fix)


def _value_fits(value, ftype: str) -> bool:
    if ftype == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if ftype == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ftype == "boolean":
        return isinstance(value, bool)
    if ftype in ("date", "datetime", "time", "year", "yearmonth"):
        return isinstance(value, (str, int, dt.date)) and not isinstance(value, bool)
    if ftype == "string":
        return isinstance(value, str)
    return True


def check_expanded(name: str, doc: dict, path: Path) -> None:
    """The rules across keys, on a schema whose ``use:`` fields are expanded. Lines are
    found (by reading the file again) only when there is something to report."""
    try:
        _check_expanded(name, doc, path, {}, [None] * len(doc["fields"]))
    except ConfigError:
        from .yamlio import read_yaml

        lines: dict[int, int] = {}
        raw = read_yaml(path, lines)
        field_lines = [lines.get(id(f)) for f in raw["fields"]]
        lines.update({id(doc.get(k)): lines[id(raw[k])] for k in raw
                      if isinstance(raw[k], (list, dict)) and id(raw[k]) in lines})
        for key in ("foreign_keys", "row_sums"):
            for mine, theirs in zip(doc.get(key) or [], raw.get(key) or []):
                if id(theirs) in lines:
                    lines[id(mine)] = lines[id(theirs)]
        _check_expanded(name, doc, path, lines, field_lines)
        raise


def _check_expanded(name: str, doc: dict, path: Path, lines: dict[int, int],
                    field_lines: list[int | None]) -> None:
    fields = doc["fields"]
    names = [f.get("name") for f in fields]
    for i, f in enumerate(fields):
        where = f"{path}" + (f" line {field_lines[i]}" if field_lines[i] else "") + f" (fields[{i}] {f.get('name')!r})"
        for key in ("name", "type", "description", "missing"):
            if not f.get(key):
                raise ConfigError(f"schema error: field {i + 1} has no `{key}`", where,
                                  f"add `{key}:` to the field (or to its entry in _common.yaml)")
        if names.count(f["name"]) > 1:
            raise ConfigError(f"schema error: column {f['name']!r} is listed twice", where,
                              "remove one of them")
        ftype = f["type"]
        cons = f.get("constraints") or {}
        for key in ("minimum", "maximum"):
            if key in cons and (ftype in ("string", "boolean") or not _value_fits(cons[key], ftype)):
                raise ConfigError(
                    f"schema error: constraint {key}: {cons[key]!r} does not fit the {ftype} column "
                    f"{f['name']!r}", where,
                    f"write {key} as a bare {ftype} (e.g. `{key}: 0`), or remove it" if ftype not in
                    ("string", "boolean") else f"remove {key} (a {ftype} column has no order)")
        for value in cons.get("enum") or []:
            if not _value_fits(value, ftype):
                raise ConfigError(f"schema error: enum value {value!r} does not fit the {ftype} column "
                                  f"{f['name']!r}", where, f"write each enum value as a {ftype}")
        if "pattern" in cons:
            try:
                re.compile(cons["pattern"])
            except re.error as exc:
                raise ConfigError(f"schema error: pattern {cons['pattern']!r} of column {f['name']!r} "
                                  f"is not a regular expression ({exc})", where,
                                  "fix the pattern (Python re syntax)") from exc

    def need(columns, key_path: list, what: str) -> None:
        for column in columns:
            if column not in names:
                raise ConfigError(
                    f"schema error: {what} names column {column!r}, which is not a field of "
                    f"{name}", _where(path, _line(doc, key_path, lines), key_path),
                    f"use one of the fields ({', '.join(names)}), or add the field")

    need(doc.get("primary_key") or [], ["primary_key"], "primary_key")
    for i, fk in enumerate(doc.get("foreign_keys") or []):
        need(fk["fields"], ["foreign_keys", i], "a foreign key")
        if len(fk["fields"]) != len(fk["reference"]["fields"]):
            raise ConfigError("schema error: a foreign key has not as many fields as its reference",
                              _where(path, _line(doc, ["foreign_keys", i], lines), ["foreign_keys", i]),
                              "list one referenced column per column")
    need(doc.get("facets") or [], ["facets"], "facets")
    need(doc.get("index") or [], ["index"], "index")
    for i, f in enumerate(doc["fields"]):
        if f.get("from_label"):
            need([f["from_label"]], ["fields", i, "from_label"], "from_label")
    need(doc.get("fts") or [], ["fts"], "fts")
    if doc.get("label_column"):
        need([doc["label_column"]], ["label_column"], "label_column")
    for key in ("sort", "sort_desc"):
        if doc.get(key):
            need([doc[key]], [key], key)
    for i, rule in enumerate(doc.get("row_sums") or []):
        need([*rule["parts"], rule["total"]], ["row_sums", i], "a row_sums rule")


def check_references(schemas: dict) -> None:
    """Foreign keys point at tables and columns that exist."""
    for schema in schemas.values():
        for i, fk in enumerate(schema.doc.get("foreign_keys") or []):
            ref = fk["reference"]
            target = schemas.get(ref["resource"])
            where = f"{schema.path} (foreign_keys[{i}].reference)"
            if target is None:
                raise ConfigError(f"schema error: a foreign key points at table {ref['resource']!r}, "
                                  "which has no schema", where,
                                  f"use one of {', '.join(sorted(schemas))}")
            missing = [c for c in ref["fields"] if c not in target.field_names]
            if missing:
                raise ConfigError(f"schema error: a foreign key points at column(s) {missing} of "
                                  f"{target.name}, which it lacks", where,
                                  f"use fields of {target.name} ({', '.join(target.field_names)})")
