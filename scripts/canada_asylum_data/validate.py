"""Validation as data: Frictionless validation of the package plus reconciliation of the
detail rows against every total the publishers printed. The exit code comes from the
report.

Reconciliation rules (per table, the schema's ``reconcile`` key):

* ``exact`` — where no detail cell in scope is suppressed or unreadable, the sum equals
  the total; otherwise the sum of readable cells never exceeds it.
* ``rounded5`` — each printed cell is rounded to the nearest 5 on its own (true value
  within +/-2), ``--`` is 1 to 4, a literal 0 is 0, and the total is rounded separately:
  the range the detail implies must overlap the total's own range.

Within rows, a schema's ``row_sums`` (e.g. accepted + rejected + abandoned +
withdrawn_other = finalized) must hold exactly on rows with no suppressed part.
Totals flagged ``publisher_inconsistent``, and rows whose notes record a publisher
inconsistency, are reported as known discrepancies with the numbers, never silently passed.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cells import SUPPRESSED
from .errors import ValidationError
from .schemas import load_schemas

ROUNDING = 2  # largest distance between a true value and its value rounded to 5
SUPPRESSED_RANGE = {"exact": (0, None), "rounded5": (1, 4)}


@dataclass
class Check:
    check: str
    table: str
    key: str
    status: str  # ok, known, failed
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    frictionless_errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def known(self) -> list[Check]:
        return [c for c in self.checks if c.status == "known"]

    @property
    def valid(self) -> bool:
        return not self.failed and not self.frictionless_errors

    def to_json(self) -> str:
        return json.dumps({"valid": self.valid, "frictionless_errors": self.frictionless_errors,
                           "checks": [asdict(c) for c in self.checks]}, indent=2, ensure_ascii=False)

    def summary(self) -> str:
        ok = sum(c.status == "ok" for c in self.checks)
        return (f"frictionless: {'valid' if not self.frictionless_errors else f'{len(self.frictionless_errors)} error(s)'}; "
                f"reconciliation: {ok} ok, {len(self.known)} known publisher discrepancies, "
                f"{len(self.failed)} failed")


def read_table(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _num(value: str) -> int | None:
    return int(value) if value and value.isdigit() else None


@dataclass
class Agg:
    total: int = 0
    n: int = 0
    suppressed: int = 0
    unreadable: int = 0
    zeros: int = 0


def _aggregate(rows: list[dict], keys: tuple[str, ...], measure: str) -> dict[tuple, Agg]:
    out: dict[tuple, Agg] = defaultdict(Agg)
    for row in rows:
        agg = out[tuple(row.get(k, "") for k in keys)]
        value = row.get(measure, "")
        agg.n += 1
        if value == SUPPRESSED:
            agg.suppressed += 1
        elif _num(value) is None:
            agg.unreadable += 1
        else:
            agg.total += int(value)
            agg.zeros += value == "0"
    return out


def _judge(rule: str, agg: Agg, total: int) -> tuple[bool, str]:
    if rule == "rounded5":
        rounded = agg.n - agg.suppressed - agg.unreadable - agg.zeros
        lo = agg.total - ROUNDING * rounded + agg.suppressed * 1
        hi = agg.total + ROUNDING * rounded + agg.suppressed * 4 + (10**9 if agg.unreadable else 0)
        ok = lo <= total + ROUNDING and hi >= total - ROUNDING
        return ok, (f"detail sum {agg.total} over {agg.n} cells ({agg.suppressed} '--') implies "
                    f"{lo}..{hi}; printed total {total} (+/-{ROUNDING})")
    if agg.suppressed or agg.unreadable:
        ok = agg.total <= total
        return ok, (f"readable detail sum {agg.total} <= printed total {total} "
                    f"({agg.suppressed} suppressed, {agg.unreadable} unreadable cells)")
    return agg.total == total, f"detail sum {agg.total} vs printed total {total}"


def reconcile(tables: dict[str, list[dict]], schemas) -> list[Check]:
    checks: list[Check] = []
    totals = tables.get("published_totals", [])
    cache: dict[tuple, dict[tuple, Agg]] = {}
    for t in totals:
        table, measure = t["fact_table"], t["measure"]
        scope = json.loads(t["scope"])
        key = f"{t['label']} {t['scope']} {measure} ({t['source_id']} {t['source_locator']})"
        total = _num(t["value"])
        if table not in tables:
            checks.append(Check("total", table, key, "failed", "fact table missing from the package"))
            continue
        if total is None:
            checks.append(Check("total", table, key, "ok", f"printed total is {t['value']!r}: nothing to check"))
            continue
        keys = tuple(sorted(scope))
        cache_key = (table, measure, keys)
        if cache_key not in cache:
            cache[cache_key] = _aggregate(tables[table], keys, measure)
        agg = cache[cache_key].get(tuple(str(scope[k]) for k in keys))
        if agg is None:
            checks.append(Check("total", table, key, "failed", "no detail rows in scope"))
            continue
        rule = schemas[table].doc.get("reconcile", "exact")
        ok, detail = _judge(rule, agg, total)
        inconsistent = t.get("publisher_inconsistent") == "true"
        if inconsistent:
            status = "known" if not ok else "failed"
            detail += ("; recorded as a publisher inconsistency" if not ok else
                       "; flagged as a publisher inconsistency but it now adds up: review the flag")
        else:
            status = "ok" if ok else "failed"
        checks.append(Check(f"total ({rule})", table, key, status, detail))
    for name, schema in schemas.items():
        for rule in schema.doc.get("row_sums") or []:
            parts, whole = rule["parts"], rule["total"]
            for row in tables.get(name, []):
                values = [_num(row.get(p, "")) for p in parts]
                total = _num(row.get(whole, ""))
                if total is None or any(v is None for v in values):
                    continue
                if sum(values) != total:  # type: ignore[arg-type]
                    known = "publisher inconsistency" in row.get("notes", "")
                    checks.append(Check("row sum", name, f"{row.get('source_id')} {row.get('source_locator')}",
                                        "known" if known else "failed",
                                        f"{' + '.join(parts)} = {sum(values)} but {whole} = {total}"
                                        + ("; recorded in the row's notes as a publisher inconsistency"
                                           if known else "")))
            checks.append(Check("row sum", name, f"{' + '.join(parts)} = {whole}", "ok",
                                "checked on every row with no suppressed part"))
    return checks


def _frictionless_group(descriptor: str, names: list[str], limit: int) -> list[str]:
    """Validate some resources of the package (foreign keys resolved within the package)."""
    from frictionless import Package, system

    out: list[str] = []
    with system.use_context(trusted=True):
        package = Package(descriptor)
        for name in names:
            report = package.get_resource(name).validate(limit_errors=limit)
            out += [f"{name}: {error.type}: {error.message}" for task in report.tasks
                    for error in task.errors[:limit]]
            out += [f"{name}: {error.type}: {error.message}" for error in report.errors[:limit]]
    return out


def frictionless_errors(descriptor: Path, limit: int = 50, workers: int | None = None) -> list[str]:
    """Frictionless validation of the package metadata and of every resource (types,
    constraints, primary keys, foreign keys). Resources are shared out over a process pool
    (largest first, balanced by size); each worker loads the whole package, so foreign keys
    are checked against the referenced resources."""
    from concurrent.futures import ProcessPoolExecutor

    from frictionless import FrictionlessException, Package, system

    with system.use_context(trusted=True):
        try:
            Package(str(descriptor)).to_descriptor(validate=True)
        except FrictionlessException as exc:
            return [f"package: {e.type}: {e.message}" for e in exc.to_errors()]
    desc = json.loads(descriptor.read_text(encoding="utf-8"))
    workers = max(1, min(workers or os.cpu_count() or 1, len(desc["resources"])))
    groups: list[list[str]] = [[] for _ in range(workers)]
    load = [0] * workers
    for res in sorted(desc["resources"], key=lambda r: -int(r.get("bytes") or 0)):
        i = load.index(min(load))
        groups[i].append(res["name"])
        load[i] += int(res.get("bytes") or 0) + 50_000
    if workers == 1:
        found = [_frictionless_group(str(descriptor), groups[0], limit)]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(_frictionless_group, [str(descriptor)] * workers, groups,
                                  [limit] * workers))
    errors = [e for group in found for e in group]
    order = {r["name"]: i for i, r in enumerate(desc["resources"])}
    return sorted(errors, key=lambda e: order.get(e.split(":", 1)[0], -1))


def validate_package(datapackage_dir: Path, with_frictionless: bool = True,
                     schema_dir: Path | None = None) -> Report:
    """Validate a package folder (datapackage.json + data/); the reconciliation rules come
    from the schemas in ``schema_dir`` (default: the folder's own schemas/)."""
    descriptor = datapackage_dir / "datapackage.json"
    if not descriptor.is_file():
        raise ValidationError("no data package to validate", str(descriptor),
                              "run `canada-asylum-data package` first")
    schemas = load_schemas(schema_dir or datapackage_dir / "schemas")
    desc = json.loads(descriptor.read_text(encoding="utf-8"))
    tables = {r["name"]: read_table(datapackage_dir / r["path"]) for r in desc["resources"]}
    report = Report()
    if with_frictionless:
        report.frictionless_errors = frictionless_errors(descriptor)
    report.checks = reconcile(tables, schemas)
    return report
