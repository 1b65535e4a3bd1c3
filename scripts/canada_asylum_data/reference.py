"""Reference tables read from hand-maintained input files in datapackage/ (no raw source):
``definitions`` (definitions.yml), ``events`` (events.yml) and ``categories``
(categories.yml, English and French labels for category codes)."""

from __future__ import annotations

from pathlib import Path

import yaml

from .yamlio import read_yaml
from .errors import ConfigError

DEFINITION_KEYS = ("unit", "counts", "publisher", "counted_when", "not_comparable_with")
EVENT_KEYS = ("event_date", "event_id", "category", "title_en", "title_fr", "description",
              "source_url", "verified")
CATEGORY_KEYS = ("category", "code", "label_en", "label_fr", "description")


def _load(path: Path, key: str):
    if not path.exists():
        return None
    try:
        doc = read_yaml(path) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name} is not valid YAML ({exc})", str(path)) from exc
    if key not in doc:
        raise ConfigError(f"{path.name} lacks the top-level key {key!r}", str(path))
    return doc[key]


def _require(row: dict, keys: tuple[str, ...], where: str, path: Path) -> dict:
    missing = [k for k in keys if row.get(k) in (None, "")]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}", str(path),
                          "fill in every field")
    return {k: str(row[k]).strip() for k in keys}


def definition_rows(path: Path) -> list[dict]:
    tables = _load(path, "tables") or {}
    rows = []
    for table, spec in tables.items():
        defaults = {k: spec.get(k) for k in DEFINITION_KEYS if k != "counts"}
        for measure, value in (spec.get("measures") or {}).items():
            row = dict(defaults)
            row.update(value if isinstance(value, dict) else {"counts": value})
            rows.append({"table_name": table, "measure": measure,
                         **_require(row, DEFINITION_KEYS, f"definition {table}.{measure}", path)})
    return sorted(rows, key=lambda r: (r["table_name"], r["measure"]))


def event_rows(path: Path) -> list[dict]:
    rows = [_require(e, EVENT_KEYS, f"event {e.get('event_id')!r}", path) for e in (_load(path, "events") or [])]
    return sorted(rows, key=lambda r: (r["event_date"], r["event_id"]))


def category_rows(path: Path) -> list[dict]:
    rows = [_require(c, CATEGORY_KEYS, f"category {c.get('category')}/{c.get('code')}", path)
            for c in (_load(path, "categories") or [])]
    return sorted(rows, key=lambda r: (r["category"], r["code"]))


def reference_tables(datapackage_dir: Path) -> dict[str, list[dict]]:
    """Tables such as definitions and events, keyed by table name (only those whose input
    file exists)."""
    out = {}
    for name, loader in (("definitions", definition_rows), ("events", event_rows),
                         ("categories", category_rows)):
        path = datapackage_dir / f"{name}.yml"
        if path.exists():
            out[name] = loader(path)
    return out
