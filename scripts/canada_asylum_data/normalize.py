"""Run every parser over the raw files and turn their output into the published tables.

What this stage adds to the parsers' rows, the same way for every source:
``source_id``, ``vintage``, ``country_code`` (through ``country_aliases``),
``suppressed_measures`` and notes from unreadable cells; printed totals become
``published_totals`` rows; where a series has several vintages, each period comes from the
newest vintage that covers it (so the first half of a year comes from that year's mid-year
release, the full years from the newest release) and every value that differs between
consecutive vintages for the same period goes to ``revisions``. Reference tables (countries,
provinces, country_aliases, sources, coverage) are derived here too.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .cache import ParseCache, cache_key
from .cells import Count
from .countries import CountryResolver, all_countries
from .coverage import coverage_rows
from .schemas import load_schemas
from .errors import CadError, ParseError
from .limits import check_raw, run_isolated
from .parsers import NO_PARSER, Parsed, get_module, parser_reference_tables
from .progress import SILENT, Progress
from .provinces import PROVINCES
from .sources import Source
from .revisions import compare_vintages, period_of, vintage_cells, vintage_order
from .reference import reference_tables
from .runs import checkpoint, stop_pool, worker_options


@dataclass
class Normalized:
    tables: dict[str, list[dict]] = field(default_factory=dict)


def family(source: Source) -> str:
    """The publisher family a source belongs to (alias files are per family)."""
    return source.options.get("family") or source.id.split("-")[0]


def parse_source(source: Source, path: Path) -> Parsed:
    """Check the raw file against its parser's LIMITS, then parse it."""
    module = get_module(source.parser)
    check_raw(path, source, getattr(module, "LIMITS", None))
    parse = module.parse
    try:
        return parse(path, source)
    except CadError:
        raise
    except Exception as exc:  # a parser bug or a library error the parser did not wrap
        raise ParseError(f"unexpected {type(exc).__name__} while parsing: {exc}",
                         f"in source {source.id} ({path.name})",
                         "run with --debug for the traceback and fix the parser") from exc


def resolve_countries(row: dict, source: Source, resolver: CountryResolver,
                      columns: tuple[tuple[str, str], ...]) -> dict:
    """Fill the country code columns of one row (in place) from the printed labels/codes.
    ``columns``: the table's (label column, code column) pairs, from its schema (fields with
    ``from_label``). Where a publisher prints its own code (UNHCR), that code is resolved
    first, then the label."""
    for label_col, code_col in columns:
        if label_col not in row:
            continue
        printed_code = row.get(code_col)
        code = resolver.resolve(printed_code, family(source)) if printed_code else None
        if code is None:
            code = resolver.resolve(row[label_col], family(source))
        if code is None:
            shown = f"{row[label_col]!r}" + (f" (code {printed_code!r})" if printed_code else "")
            raise ParseError(f"country {shown} does not resolve to a code",
                             f"in source {source.id} at {row.get('source_locator')}",
                             f"add it to datapackage/aliases/{family(source)}.yml")
        row[code_col] = code
    return row


def _finish_row(row: dict, source: Source, vintage: str | None, resolver: CountryResolver,
                columns: tuple[tuple[str, str], ...]) -> dict:
    out: dict = {}
    suppressed: list[str] = []
    notes: list[str] = []
    for key, value in row.items():
        if isinstance(value, Count):
            out[key] = value.csv
            if value.suppressed:
                suppressed.append(key)
            if value.note:
                notes.append(f"{key}: {value.note}")
        else:
            out[key] = value
    resolve_countries(out, source, resolver, columns)
    if suppressed or any(isinstance(v, Count) for v in row.values()):
        out["suppressed_measures"] = ",".join(suppressed)
    if row.get("notes"):
        notes.insert(0, row["notes"])
    out["notes"] = "; ".join(notes)
    out["source_id"] = source.id
    out["vintage"] = vintage or ""
    return out


def _total_row(total, source: Source, vintage: str | None) -> dict:
    value = total.value
    notes = [n for n in (total.notes, value.note) if n]
    return {
        "fact_table": total.fact_table,
        "measure": total.measure,
        "scope": json.dumps(total.scope, sort_keys=True, ensure_ascii=False, default=str),
        "label": total.label,
        "value": value.csv,
        "publisher_inconsistent": bool(getattr(total, "inconsistent", False)),
        "source_id": source.id,
        "source_locator": total.source_locator,
        "vintage": vintage or "",
        "notes": "; ".join(notes),
    }


def _vintage(source: Source, parsed: Parsed) -> str | None:
    return parsed.file_facts.get("vintage") or source.vintage


@dataclass
class Prepared:
    """One source parsed and finished (what :func:`normalize` needs from it). Made in a
    worker process, so the per-row work runs on every core, not just the parent's."""

    source_id: str
    vintage: str | None
    tables: dict[str, list[dict]] = field(default_factory=dict)  # finished rows
    totals: list[dict] = field(default_factory=list)  # published_totals rows
    cells: dict | None = None  # vintage_cells, for sources with several vintages
    used: dict = field(default_factory=dict)  # country labels resolved: country_aliases
    error: CadError | None = None  # raised only if this vintage is the one published


def prepare_source(source: Source, path: Path, alias_dir: Path, compare: bool,
                   country_columns: dict[str, tuple[tuple[str, str], ...]]) -> Prepared:
    """Parse one source and finish its rows. A label that does not resolve is an error
    only for the vintage that feeds the fact tables, so it is kept, not raised, here.
    ``country_columns``: table -> its (label, code) column pairs (see resolve_countries)."""
    resolver = CountryResolver(alias_dir)
    parsed = parse_source(source, path)
    vintage = _vintage(source, parsed)
    out = Prepared(source.id, vintage, cells=vintage_cells(parsed) if compare else None)
    try:
        out.tables = {table: [_finish_row(r, source, vintage, resolver, country_columns.get(table, ()))
                              for r in rows]
                      for table, rows in sorted(parsed.tables.items())}
        out.totals = [_total_row(t, source, vintage) for t in parsed.totals]
    except CadError as exc:
        out.tables, out.totals, out.error = {}, [], exc
    out.used = resolver.used
    return out


def parse_all(todo: list[Source], raw_files: dict[str, Path], progress: Progress,
              workers: int | None = None, alias_dir: Path | None = None,
              compare: frozenset[str] = frozenset(),
              cache: ParseCache | None = None,
              country_columns: dict[str, tuple[tuple[str, str], ...]] | None = None) -> dict[str, Prepared]:
    """Parse and finish every source, in a process pool when there is more than one core
    (largest files first). The result does not depend on the order the workers finish in.
    ``compare`` names the sources whose cells are kept for comparing vintages; with a
    ``cache``, a source whose inputs are unchanged since it was last parsed is not
    parsed again."""
    workers = workers or os.cpu_count() or 1
    order = sorted(todo, key=lambda s: -(raw_files[s.id].stat().st_size))
    country_columns = country_columns or {}
    args = [(s, raw_files[s.id], alias_dir, s.id in compare, country_columns) for s in order]
    out: dict[str, Prepared] = {}
    keys: dict[str, str] = {}
    if cache is not None:
        columns_key = json.dumps(sorted(country_columns.items()))
        for source, path, aliases, keep_cells, _ in args:
            keys[source.id] = cache_key(source, path, aliases, f"cells={keep_cells} countries={columns_key}")
            hit = cache.get(keys[source.id])
            if isinstance(hit, Prepared) and hit.source_id == source.id:
                out[source.id] = hit
        args = [a for a in args if a[0].id not in out]
        if out:
            progress.say(f"parse: {len(out)} source(s) unchanged since they were last parsed "
                         f"(cache in {cache.folder})")

    def keep(result: Prepared) -> None:
        out[result.source_id] = result
        if cache is not None:
            cache.put(keys[result.source_id], result)

    if workers <= 1 or len(args) <= 1:
        for a in progress.items(args, "parse", show=lambda a: a[0].id if a else ""):
            keep(run_isolated(prepare_source, a, a[0]) if native_reader(a[0]) else prepare_source(*a))
        return out
    broken: list[tuple] = []
    with ProcessPoolExecutor(max_workers=workers, **worker_options()) as pool:
        futures = {pool.submit(prepare_source, *a): a for a in args}
        try:
            checkpoint("parse")
            for future in progress.items(as_completed(futures), "parse", length=len(futures)):
                try:
                    keep(future.result())
                except BrokenProcessPool:  # a worker died: which source killed it is found below
                    broken.append(futures[future])
        except BaseException as exc:  # an error or Ctrl-C (then the workers are killed)
            stop_pool(pool, now=isinstance(exc, KeyboardInterrupt))
            raise
    # Every source not finished when a worker died is parsed again, one at a time, in a
    # process of its own: the one that kills it again is named in the error.
    for a in sorted(broken, key=args.index):
        keep(run_isolated(prepare_source, a, a[0]))
    return out


def native_reader(source: Source) -> bool:
    """True when the source's parser reads through native code that may abort the process."""
    limits = getattr(get_module(source.parser), "LIMITS", None)
    return bool(limits and limits.native)


def normalize(sources: list[Source], raw_files: dict[str, Path], datapackage_dir: Path,
              progress: Progress = SILENT, workers: int | None = None,
              cache: ParseCache | None = None) -> Normalized:
    CountryResolver(datapackage_dir / "aliases")  # alias files are checked before any parsing
    todo = [s for s in sources if s.parser != NO_PARSER and s.id in raw_files]
    # Vintages: sources sharing `vintage_of` are versions of one series; newest wins.
    groups: dict[str, list[Source]] = defaultdict(list)
    for source in todo:
        groups[source.options.get("vintage_of") or source.id].append(source)
    compare = frozenset(s.id for members in groups.values() if len(members) > 1 for s in members)
    schemas = load_schemas(datapackage_dir / "schemas")
    country_columns = {name: s.country_columns for name, s in schemas.items() if s.country_columns}
    prepared = parse_all(todo, raw_files, progress, workers, datapackage_dir / "aliases", compare,
                         cache, country_columns)
    if cache is not None:
        cache.prune()

    newest: set[str] = set()
    revision_rows: list[dict] = []
    published: dict[str, dict[str, list[dict]]] = {}  # source id -> table -> rows published
    for key, members in groups.items():
        members.sort(key=lambda s: (vintage_order(prepared[s.id].vintage), s.id))
        newest.add(members[-1].id)
        for old, new in zip(members, members[1:]):
            a, b = prepared[old.id], prepared[new.id]
            revision_rows += compare_vintages(old.id, a.cells, a.vintage, new.id, b.cells,
                                              b.vintage)
        published.update(_newest_per_period([prepared[s.id] for s in members]))

    tables: dict[str, list[dict]] = defaultdict(list)
    totals: list[dict] = []
    used: dict = {}
    for source in todo:
        result = prepared[source.id]
        if source.id not in newest and not published.get(source.id):
            continue
        if result.error is not None:
            raise result.error
        for table, rows in published[source.id].items():
            tables[table] += rows
        if source.id in newest:
            totals += result.totals
        used.update(result.used)

    tables["published_totals"] = totals
    tables["revisions"] = revision_rows
    tables["countries"] = [
        {"code": c.code, "name_en": c.name_en, "name_fr": c.name_fr, "iso_alpha2": c.iso_alpha2,
         "iso_numeric": c.iso_numeric, "kind": c.kind, "notes": c.note or ""}
        for c in all_countries()
    ]
    tables["provinces"] = [
        {"code": code, "name_en": en, "name_fr": fr, "kind": kind} for code, en, fr, kind in PROVINCES
    ]
    tables["country_aliases"] = [
        {"source_family": fam, "label": label, "code": code, "resolved_by": how}
        for (fam, label), (code, how) in sorted(used.items())
    ]
    tables["sources"] = [source_row(s) for s in sources]
    tables.update(reference_tables(datapackage_dir))
    tables.update(parser_reference_tables({s.parser for s in todo}))
    granularities = {name: s.granularity for name, s in schemas.items() if s.granularity}
    tables["coverage"] = coverage_rows(sources, raw_files, tables, newest, granularities)
    return Normalized(dict(tables))


def _newest_per_period(members: list[Prepared]) -> dict[str, dict[str, list[dict]]]:
    """The rows each vintage of one series publishes (members oldest first): every table's
    rows for a period come from the newest vintage that has that period in that table. With
    UNHCR, the full years come from the newest release and each first half (a table of its
    own) from the mid-year release of that year; an older vintage adds nothing for a period
    a newer one covers, even where the newer one dropped a row (that is a revision)."""
    out: dict[str, dict[str, list[dict]]] = {}
    covered: dict[str, set] = defaultdict(set)
    for result in reversed(members):
        mine: dict[str, list[dict]] = {}
        for table, rows in result.tables.items():
            periods = {period_of(r) for r in rows}
            keep = [r for r in rows if period_of(r) not in covered[table]]
            if keep:
                mine[table] = keep
            covered[table] |= periods
        out[result.source_id] = mine
    return out


def source_row(s: Source) -> dict:
    return {
        "id": s.id, "title": s.title, "publisher": s.publisher, "url": s.url,
        "archive_url": s.archive_url or "", "mirror_path": s.mirror_path or "",
        "sha256": s.sha256 or "", "bytes": s.bytes if s.bytes is not None else "",
        "license": "; ".join(lic.get("name", "") if isinstance(lic, dict) else str(lic)
                             for lic in s.licenses),
        "retrieved": s.retrieved or "", "published": s.published or "",
        "vintage": s.vintage or "", "period_start": s.period_start or "",
        "period_end": s.period_end or "", "parser": s.parser, "series": s.series,
        "notes": s.notes or "",
    }
