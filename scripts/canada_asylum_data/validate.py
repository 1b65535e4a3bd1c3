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

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cells import SUPPRESSED
from .errors import ValidationError
from .package_io import descriptor_path, read_descriptor
from .runs import checkpoint, stop_pool, worker_options
from .schemas import load_schemas

ROUNDING = 2  # largest distance between a true value and its value rounded to 5


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
    #: False when Frictionless was not run (reconciliation only).
    frictionless_ran: bool = True

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
        return json.dumps({"valid": self.valid, "frictionless_ran": self.frictionless_ran,
                           "frictionless_errors": self.frictionless_errors,
                           "checks": [asdict(c) for c in self.checks]}, indent=2, ensure_ascii=False)

    def summary(self) -> str:
        ok = sum(c.status == "ok" for c in self.checks)
        if not self.frictionless_ran:
            frictionless = "not run"
        elif self.frictionless_errors:
            frictionless = f"{len(self.frictionless_errors)} error(s)"
        else:
            frictionless = "valid"
        return (f"frictionless: {frictionless}; "
                f"reconciliation: {ok} ok, {len(self.known)} known publisher discrepancies, "
                f"{len(self.failed)} failed")


def read_frame(path: Path):
    """A package CSV as a DataFrame of strings, cells exactly as written ('' stays '')."""
    import pandas as pd  # imported when first needed: it takes a while

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                           encoding="utf-8")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValidationError(f"cannot read table {path.stem} ({exc})", str(path),
                              "run `canada-asylum-data package` to regenerate it") from exc


def _num(value: str) -> int | None:
    return int(value) if value and value.isdigit() else None


@dataclass
class Agg:
    total: int = 0
    n: int = 0
    suppressed: int = 0
    unreadable: int = 0
    zeros: int = 0


def _counts(cells) -> dict:
    """Per-row columns for Agg from a column of CSV cells: the readable value (0 if none),
    and 1/0 flags for the cell, a '--', an unreadable cell and a literal 0."""
    values = {cell: _num(cell) for cell in cells.unique()}  # few distinct cells: read once
    readable = cells.map({cell: v is not None for cell, v in values.items()}).astype(bool)
    suppressed = cells.eq(SUPPRESSED)
    largest = max((v for v in values.values() if v is not None), default=0)
    # int64 while a sum cannot overflow; exact Python integers otherwise
    dtype = "int64" if largest * max(len(cells), 1) < 2**62 else object
    return {"total": cells.map({cell: v or 0 for cell, v in values.items()}).astype(dtype),
            "n": 1, "suppressed": suppressed.astype(int),
            "unreadable": (~readable & ~suppressed).astype(int),
            "zeros": cells.eq("0").astype(int)}


def _empty_column(frame):
    """A column of "" cells, for a column the table lacks (as row.get(name, "") reads it)."""
    import pandas as pd

    return pd.Series("", index=frame.index, dtype=object)


def _group_sums(frame, keys: tuple[str, ...], counts) -> dict[tuple, tuple]:
    """The ``counts`` columns summed over the rows grouped by their cells in ``keys`` (a
    table without a key column counts it as ""): key cells -> Agg fields."""
    import pandas as pd

    parts = pd.DataFrame(counts, index=frame.index)
    if not len(frame):
        return {}
    if not keys:
        return {(): tuple(int(v) for v in parts.sum().tolist())}
    for i, k in enumerate(keys):
        parts[f"key{i}"] = frame[k] if k in frame else ""
    grouped = parts.groupby([f"key{i}" for i in range(len(keys))], sort=False).sum()
    index = [k if isinstance(k, tuple) else (k,) for k in grouped.index.tolist()]
    return dict(zip(index, zip(*(grouped[c].tolist() for c in Agg.__dataclass_fields__))))


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


class _Tables(Mapping):
    """Tables by name, each read from its CSV (or converted from row dicts) when first
    needed and kept."""

    def __init__(self, tables: Mapping):
        self._source = tables
        self._frames: dict = {}

    def __getitem__(self, name: str):
        if name not in self._frames:
            table = self._source[name]
            if isinstance(table, Path):
                table = read_frame(table)
            elif isinstance(table, list):
                import pandas as pd

                table = pd.DataFrame(table, dtype=str).fillna("")
            self._frames[name] = table
        return self._frames[name]

    def __contains__(self, name) -> bool:
        return name in self._source

    def __iter__(self):
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)


def reconcile(tables: Mapping, schemas) -> list[Check]:
    """Every published total against the detail rows in its scope, then every row_sums
    rule on every row. ``tables`` maps names to CSV paths, DataFrames of strings or lists
    of row dicts (cells as the CSV holds them)."""
    tables = _Tables(tables)
    checks: list[Check] = []
    totals = tables["published_totals"] if "published_totals" in tables else {}
    names = ("fact_table", "measure", "scope", "label", "source_id", "source_locator", "value",
             "publisher_inconsistent")
    columns = [totals[c].tolist() if c in totals else [""] * len(totals) for c in names]
    counts: dict[tuple, dict] = {}  # (table, measure) -> _counts
    sums: dict[tuple, dict[tuple, tuple]] = {}  # (table, measure, keys) -> _group_sums
    for table, measure, scope_text, label, source_id, locator, value, flag in zip(*columns):
        key = f"{label} {scope_text} {measure} ({source_id} {locator})"
        total = _num(value)
        if table not in tables:
            checks.append(Check("total", table, key, "failed", "fact table missing from the package"))
            continue
        if total is None:
            checks.append(Check("total", table, key, "ok", f"printed total is {value!r}: nothing to check"))
            continue
        scope = json.loads(scope_text)
        keys = tuple(sorted(scope))
        if (table, measure, keys) not in sums:
            frame = tables[table]
            if (table, measure) not in counts:
                cells = frame[measure] if measure in frame else _empty_column(frame)
                counts[table, measure] = _counts(cells)
            sums[table, measure, keys] = _group_sums(frame, keys, counts[table, measure])
        found = sums[table, measure, keys].get(tuple(str(scope[k]) for k in keys))
        if found is None:
            checks.append(Check("total", table, key, "failed", "no detail rows in scope"))
            continue
        agg = Agg(*found)
        rule = schemas[table].doc.get("reconcile", "exact")
        ok, detail = _judge(rule, agg, total)
        if flag == "true":  # publisher_inconsistent
            status = "known" if not ok else "failed"
            detail += ("; recorded as a publisher inconsistency" if not ok else
                       "; flagged as a publisher inconsistency but it now adds up: review the flag")
        else:
            status = "ok" if ok else "failed"
        checks.append(Check(f"total ({rule})", table, key, status, detail))
    for name, schema in schemas.items():
        for rule in schema.doc.get("row_sums") or []:
            parts, whole = rule["parts"], rule["total"]
            if name in tables:
                checks += _row_sum_failures(tables[name], name, parts, whole)
            checks.append(Check("row sum", name, f"{' + '.join(parts)} = {whole}", "ok",
                                "checked on every row with no suppressed part"))
    return checks


def _row_sum_failures(frame, name: str, parts: list[str], whole: str) -> list[Check]:
    """Rows where every part and the total are readable and the parts do not add up."""
    column = {c: frame[c].tolist() if c in frame else [None if c.startswith("source_") else ""] * len(frame)
              for c in (*parts, whole, "notes", "source_id", "source_locator")}
    out = []
    for i, cells in enumerate(zip(*(column[c] for c in (*parts, whole)))):
        *values, total = [_num(cell) for cell in cells]
        if total is None or any(v is None for v in values) or sum(values) == total:
            continue
        known = "publisher inconsistency" in column["notes"][i]
        out.append(Check("row sum", name, f"{column['source_id'][i]} {column['source_locator'][i]}",
                         "known" if known else "failed",
                         f"{' + '.join(parts)} = {sum(values)} but {whole} = {total}"
                         + ("; recorded in the row's notes as a publisher inconsistency"
                            if known else "")))
    return out


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


@contextmanager
def frictionless_started(descriptor: Path, limit: int = 50, workers: int | None = None,
                         resources: list[str] | None = None) -> Iterator[Callable[[], list[str]]]:
    """Start Frictionless validation of the package metadata and of every resource (types,
    constraints, primary keys, foreign keys), or only of the named ``resources``, and
    yield a function that waits for the errors; the caller can do other work meanwhile.
    Resources are shared out over a process pool (largest first, balanced by size); each
    worker loads the whole package, so foreign keys are checked against the referenced
    resources."""
    from concurrent.futures import ProcessPoolExecutor

    from frictionless import FrictionlessException, Package, system

    with system.use_context(trusted=True):
        try:
            Package(str(descriptor)).to_descriptor(validate=True)
        except FrictionlessException as exc:
            errors = [f"package: {e.type}: {e.message}" for e in exc.to_errors()]
            yield lambda: errors
            return
    desc = read_descriptor(descriptor.parent)
    chosen = [r for r in desc["resources"] if resources is None or r["name"] in resources]
    workers = max(1, min(workers or os.cpu_count() or 1, len(chosen)))
    groups: list[list[str]] = [[] for _ in range(workers)]
    load = [0] * workers
    for res in sorted(chosen, key=lambda r: -int(r.get("bytes") or 0)):
        i = load.index(min(load))
        groups[i].append(res["name"])
        load[i] += int(res.get("bytes") or 0) + 50_000
    order = {r["name"]: i for i, r in enumerate(desc["resources"])}

    def errors_of(found: list[list[str]]) -> list[str]:
        errors = [e for group in found for e in group]
        return sorted(errors, key=lambda e: order.get(e.split(":", 1)[0], -1))

    if not chosen or workers == 1:
        yield lambda: errors_of([_frictionless_group(str(descriptor), g, limit) for g in groups])
        return
    pool = ProcessPoolExecutor(max_workers=workers, **worker_options())
    try:
        futures = [pool.submit(_frictionless_group, str(descriptor), g, limit) for g in groups]
        yield lambda: errors_of([f.result() for f in futures])
    except BaseException as exc:  # on an error elsewhere or Ctrl-C, stop validation nobody will read
        stop_pool(pool, now=isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def frictionless_errors(descriptor: Path, limit: int = 50, workers: int | None = None,
                        resources: list[str] | None = None) -> list[str]:
    """Frictionless errors of the package (see :func:`frictionless_started`)."""
    with frictionless_started(descriptor, limit, workers, resources) as errors:
        return errors()


def validate_package(datapackage_dir: Path, with_frictionless: bool = True,
                     schema_dir: Path | None = None, resources: list[str] | None = None) -> Report:
    """Validate a package folder (datapackage.json + data/); the reconciliation rules come
    from the schemas in ``schema_dir`` (default: the folder's own schemas/). Frictionless
    checks the package metadata and every resource, or only the named ``resources``, in
    worker processes while this one reconciles every table."""
    desc = read_descriptor(datapackage_dir)
    descriptor = descriptor_path(datapackage_dir)
    schemas = load_schemas(schema_dir or datapackage_dir / "schemas")
    report = Report(frictionless_ran=with_frictionless)
    with ExitStack() as stack:
        errors = (stack.enter_context(frictionless_started(descriptor, resources=resources))
                  if with_frictionless else list)
        checkpoint("validate")
        report.checks = reconcile({r["name"]: datapackage_dir / r["path"] for r in desc["resources"]},
                                  schemas)
        report.frictionless_errors = errors()
    return report
