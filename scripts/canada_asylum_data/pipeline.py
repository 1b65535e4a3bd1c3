"""The stages: fetch -> package (validated in staging before it is installed) -> validate
-> build -> metadata, and refresh, which runs them all.

Each stage takes the project's :class:`~.paths.Paths` and a :class:`~.progress.Progress`,
returns what it produced and raises a :class:`~.errors.CadError` when it cannot; none of
them prints anything but progress, and none imports the command-line library (cli.py and
cli_release.py parse options, call a stage and print its result).

Every stage that writes holds the project lock (runs.project_lock, re-entrant), and every
install goes through one install record (runs.install_generation), so a run stopped at
any point leaves the previous outputs or the complete new ones, and the next run cleans up.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError, CadError, SourceError, ValidationError
from .files import atomic_write
from .package_io import DESCRIPTOR
from .paths import MIRROR_ENV, Paths
from .progress import SILENT, Progress
from .runs import BUILD_STAGING, PACKAGE_STAGING, checkpoint, install_generation, project_lock, staged

#: How many failing checks a validation error lists.
SHOWN_PROBLEMS = 20


def locked(stage):
    """Run ``stage(paths, progress, ...)`` holding the project lock (see runs.py)."""

    @functools.wraps(stage)
    def wrapper(paths: Paths, *args, **kwargs):
        progress = args[0] if args else kwargs.get("progress", SILENT)
        with project_lock(paths, progress):
            return stage(paths, *args, **kwargs)

    return wrapper


# --- fetch ---------------------------------------------------------------------------

def resolve_mirror(paths: Paths, mirror: Path | None, online: bool) -> Path | None:
    """The folder to copy raw files from: ``mirror``, else the default mirror when it
    exists; None (download) with ``online``."""
    if online:
        return None
    if mirror is not None:
        if not mirror.is_dir():
            raise CadError("mirror folder not found", str(mirror),
                           f"pass --mirror DIR pointing at the sources folder, or unset ${MIRROR_ENV}")
        return mirror
    default = paths.default_mirror
    return default if default.is_dir() else None


@locked
def fetch(paths: Paths, progress: Progress = SILENT, mirror: Path | None = None,
          online: bool = False, only: set[str] | None = None) -> list:
    """Bring the raw files into build/raw/ (see fetch.py); returns one ``Fetched`` a source."""
    from .sources import load_all_sources

    sources = load_all_sources(paths.datapackage)
    if only:
        unknown = sorted(set(only) - {s.id for s in sources})
        if unknown:
            raise SourceError(f"unknown source id(s) {', '.join(unknown)}", "fetch --only",
                              f"use the id of a record in {paths.datapackage / 'sources.d'}")
    where = resolve_mirror(paths, mirror, online)
    progress.say(f"fetch: {'from mirror ' + str(where) if where else 'downloading from the publishers'}")
    return fetch_all(sources, paths.raw, mirror=where, progress=progress, only=only,
                     records_dir=paths.datapackage / "sources.d")


def fetch_all(sources: list, raw_dir: Path, mirror: Path | None = None,
              progress: Progress = SILENT, client=None,
              only: set[str] | None = None, records_dir: Path | None = None,
              online: bool | None = None) -> list:
    """Bring every source into raw_dir.

    Snapshots: held and verified -> kept (never downloaded again); else from the mirror; else,
    online, downloaded. Live series (online only, i.e. without a mirror unless ``online``):
    downloaded and handed to :func:`.live.take_vintage`, which writes a new vintage record in
    ``records_dir`` (datapackage/sources.d/) when the bytes match no known vintage."""
    from .fetch import (Fetched, NotPublished, _client, _is_current, copy_from_mirror, download,
                        mirror_file, raw_path)
    from .live import known_vintages, take_vintage

    online = (mirror is None) if online is None else online
    raw_dir.mkdir(parents=True, exist_ok=True)
    results: list[Fetched] = []
    chosen = [s for s in sources if only is None or s.id in only]
    own = client is None and online
    client = client or (_client() if online else None)
    try:
        for source in progress.items(chosen, "fetch", show=lambda s: s.id if s else ""):
            final = raw_path(source, raw_dir)
            if source.live:
                if not online:
                    results.append(Fetched(source.id, None, "missing",
                                           note="live series: fetched online only"))
                    continue
                try:
                    got = take_vintage(source, sources, raw_dir, records_dir, client=client,
                                       progress=progress)
                    results.append(got)
                    if got.how == "new-vintage":
                        progress.say(f"fetch: {source.id}: {got.note}")
                except NotPublished as exc:
                    if known_vintages(source, sources):
                        raise  # it was published there: the publisher moved or removed it
                    results.append(_not_published(source, exc))
            elif _is_current(source, final):
                results.append(Fetched(source.id, final, "cached", source.sha256, source.bytes))
            elif mirror is not None and source.mirror_path and mirror_file(source, mirror).is_file():
                results.append(copy_from_mirror(source, mirror, raw_dir))
            elif online and (source.url or source.archive_url):
                try:
                    results.append(download(source, raw_dir, client=client, progress=progress))
                except NotPublished as exc:
                    if source.sha256:
                        raise  # a file the package was built from is gone: say so
                    results.append(_not_published(source, exc))
            elif mirror is not None:
                results.append(copy_from_mirror(source, mirror, raw_dir))
            else:
                results.append(Fetched(source.id, None, "missing", note="not held"))
    finally:
        if own and client is not None:
            client.close()
    _write_log(raw_dir, results)
    return results


def _not_published(source, exc: SourceError):
    """A source never held whose urls all answer 404/410 (e.g. next year's IRB page) stays
    missing (coverage says so); any other failure stops the fetch."""
    from .fetch import Fetched

    return Fetched(source.id, None, "missing", note=f"not published yet (404/410): {exc.where}")


def _write_log(raw_dir: Path, results: list) -> None:
    from .fetch import LOG_NAME

    log = {r.source_id: {"how": r.how, "sha256": r.sha256, "bytes": r.bytes, "note": r.note}
           for r in results}
    atomic_write(raw_dir / LOG_NAME, json.dumps(log, indent=2, sort_keys=True) + "\n")


# --- package -------------------------------------------------------------------------

def _normalize(paths: Paths, progress: Progress, workers: int | None, use_cache: bool):
    """Parse build/raw/ (parsers + normalize): returns (sources, normalize result)."""
    from .cache import ParseCache
    from .fetch import present_raw_files
    from .normalize import normalize
    from .sources import load_all_sources

    sources = load_all_sources(paths.datapackage)
    raw = present_raw_files(sources, paths.raw)
    if not raw:
        raise CadError("no raw files to package", str(paths.raw), "run `canada-asylum-data fetch` first")
    cache = ParseCache(paths.parse_cache) if use_cache else None
    result = normalize(sources, raw, paths.datapackage, progress=progress, workers=workers,
                       cache=cache)
    return sources, result


def _package_moves(paths: Paths, staging: Path, names: list[str]) -> tuple[list, list]:
    """The renames that install a staged package (CSVs, then the descriptor) and the CSVs
    of tables it no longer has."""
    from .package import DATA_DIR

    moves = [(staging / name, paths.datapackage / name) for name in names]
    kept = {paths.datapackage / name for name in names}
    stale = [p for p in sorted((paths.datapackage / DATA_DIR).glob("*.csv")) if p not in kept]
    return moves, stale


def link_inputs(paths: Paths, staging: Path) -> None:
    """Make a staged package readable as a whole project folder: every input of
    datapackage/ (schemas/, sources.d/, views.yml, ...) linked beside its own data/ and
    datapackage.json, so the database and metadata are built from the staged package."""
    from .package import DATA_DIR

    for entry in sorted(paths.datapackage.iterdir()):
        if entry.name.startswith(".") or entry.name in (DATA_DIR, DESCRIPTOR):
            continue
        (staging / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())


@locked
def package(paths: Paths, progress: Progress = SILENT, workers: int | None = None,
            validate: bool = False, use_cache: bool = True):
    """Parse build/raw/ and write datapackage/. The package is written in full to a
    staging folder; with ``validate`` it is validated there (see :func:`validate_stage`),
    and only then installed (one install record: runs.install_generation), so a failure
    leaves the previous package untouched.
    ``use_cache``: reuse build/cache/parsed/ for sources whose inputs are unchanged, and
    Frictionless-validate only the resources the ledger does not already vouch for.
    Returns the normalize result (tables, vintage comparisons, ...)."""
    from .package import stage_package

    sources, result = _normalize(paths, progress, workers, use_cache)
    with staged(paths, paths.datapackage, PACKAGE_STAGING) as staging:
        names = stage_package(result.tables, paths.datapackage, sources, staging)
        if validate:
            validate_stage(paths, progress, folder=staging, incremental=use_cache)
        moves, stale = _package_moves(paths, staging, names)
        install_generation(paths, moves, stale, [staging], progress)
    progress.say(f"package: wrote {len(result.tables)} tables to {paths.datapackage / 'data'}")
    return result


# --- validate ------------------------------------------------------------------------

@locked
def validate_stage(paths: Paths, progress: Progress = SILENT, frictionless: bool = True,
                   folder: Path | None = None, incremental: bool = False,
                   report_path: Path | None = None):
    """Validate ``folder`` (default datapackage/) and return the report. Frictionless
    checks every resource, or with ``incremental`` only those the ledger
    (build/validated.json) does not vouch for; when Frictionless passed, every resource is
    recorded in the ledger. A failing package raises :class:`ValidationError` whose
    ``details`` list the first problems."""
    from . import ledger
    from .package_io import read_descriptor
    from .validate import validate_package

    folder = folder or paths.datapackage
    names = None
    if frictionless and incremental:
        desc = read_descriptor(folder)
        names = ledger.to_validate(desc, paths.ledger)
        skipped = len(desc["resources"]) - len(names)
        if skipped:
            progress.say(f"validate: {skipped} resource(s) unchanged since Frictionless passed "
                         f"them ({paths.ledger}); checking {len(names)}")
    report = validate_package(folder, with_frictionless=frictionless,
                              schema_dir=paths.datapackage / "schemas", resources=names)
    if report_path is not None:
        atomic_write(report_path, report.to_json() + "\n")
    progress.say("validate: " + report.summary())
    if not report.valid:
        error = ValidationError(
            f"data package failed validation ({len(report.frictionless_errors)} frictionless "
            f"error(s), {len(report.failed)} failed reconciliation check(s))",
            str(paths.datapackage) + (" (new package, not installed)" if folder != paths.datapackage else ""))
        error.details = report.frictionless_errors[:SHOWN_PROBLEMS] + [
            f"{c.table}: {c.check}: {c.key}: {c.detail}" for c in report.failed[:SHOWN_PROBLEMS]]
        raise error
    if frictionless:
        ledger.record(read_descriptor(folder), paths.ledger)
    return report


# --- build ---------------------------------------------------------------------------

def build_into(paths: Paths, package_dir: Path, out: Path, metadata_file: Path,
               progress: Progress = SILENT) -> list[tuple[Path, Path]]:
    """Build the database, its inspect file and build stamp from ``package_dir`` into the
    staging folder ``out``; returns the renames that install them (the database last)."""
    from .database import build_database
    from .serve import STAMP, fingerprint, inspect, stamp_data

    db = out / paths.db.name
    views = package_dir / paths.views.name
    try:
        build_database(package_dir, db, views, progress=progress)
        inspect(db, out / paths.inspect_file.name, file=paths.db)
        atomic_write(out / STAMP, stamp_data(db, fingerprint(package_dir / DESCRIPTOR, views,
                                                             metadata_file)))
    except OSError as exc:
        raise BuildError(f"cannot write the database ({exc.strerror or exc})", str(out),
                         "free disk space (or fix the permissions) and run again; the previous "
                         "outputs are unchanged") from exc
    return [(out / paths.inspect_file.name, paths.inspect_file), (out / STAMP, paths.build / STAMP),
            (db, paths.db)]


@locked
def build(paths: Paths, progress: Progress = SILENT) -> Path:
    """Build build/canada_asylum.db from datapackage/, with its inspect file and the stamp
    that tells :func:`database_is_current` which package it was built from; the three are
    built in a staging folder and installed together."""
    with staged(paths, paths.build, BUILD_STAGING) as out:
        moves = build_into(paths, paths.datapackage, out, paths.metadata, progress)
        install_generation(paths, moves, staging=[out], progress=progress)
    progress.say(f"build: wrote {paths.db}")
    return paths.db


@locked
def ensure_database(paths: Paths, progress: Progress = SILENT, rebuild: bool = False) -> Path:
    """The database, verified: rebuilt first when it is missing, older than datapackage/,
    views.yml or metadata.yml, not the file its build stamp describes (truncated, edited),
    or with ``rebuild``. Raises BuildError when even the rebuilt file does not verify."""
    from .serve import database_is_current, database_matches_stamp

    if rebuild:
        build(paths, progress)
    elif not database_is_current(paths):
        if paths.db.exists():
            progress.say("build: the database is older than datapackage/, views.yml or metadata.yml; rebuilding")
        build(paths, progress)
    elif not database_matches_stamp(paths):
        progress.say(f"build: {paths.db} is not the file its build stamp describes (truncated or "
                     "edited?); rebuilding")
        build(paths, progress)
    if not (database_is_current(paths) and database_matches_stamp(paths)):
        raise BuildError("the database does not match its build stamp even after a rebuild",
                         str(paths.db), "check the disk, delete build/ and run `canada-asylum-data build`")
    return paths.db


def site_content_hash(paths: Paths, progress: Progress = SILENT, write: bool = True) -> str:
    """The content hash of the site to publish (site.content_hash). The database is built
    first if it is not current; with ``write`` False (a dry run) that build goes to a
    temporary folder and is thrown away, so nothing in the project changes."""
    from .database import build_database
    from .serve import database_is_current
    from .site import content_hash, describe

    site = describe(paths)
    if database_is_current(paths) or write:
        ensure_database(paths, progress)
        return content_hash(site)
    tmp = Path(tempfile.mkdtemp(prefix="cad-publish-"))
    try:
        progress.say("publish: database not built; building a temporary copy to hash it")
        build_database(paths.datapackage, tmp / paths.db.name, paths.views, progress=progress)
        return content_hash(site, tmp / paths.db.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- metadata ------------------------------------------------------------------------

@locked
def metadata(paths: Paths, progress: Progress = SILENT, check: bool = False) -> Path:
    """Write metadata.yml from datapackage/, or with ``check`` fail if it would change."""
    from .metadata import check_metadata, write_metadata

    if check:
        check_metadata(paths.datapackage, paths.views, paths.metadata)
        progress.say("metadata: metadata.yml is up to date")
    else:
        write_metadata(paths.datapackage, paths.views, paths.metadata)
        progress.say(f"metadata: wrote {paths.metadata}")
    return paths.metadata


# --- refresh -------------------------------------------------------------------------

@dataclass
class Refreshed:
    fetched: list
    packaged: object
    database: Path
    metadata: Path


@locked
def refresh(paths: Paths, progress: Progress = SILENT, mirror: Path | None = None,
            online: bool = False, use_cache: bool = True, workers: int | None = None) -> Refreshed:
    """Every stage in order, all or nothing: the new package is staged and validated, the
    metadata and the database (with its inspect file and stamp) are built from the staged
    package, and only then are all of them installed together (runs.install_generation).
    A refresh that fails or is stopped at any point leaves the previous package, database
    and metadata as they were (or, stopped during the install itself, the next run
    completes it)."""
    from .metadata import write_metadata
    from .package import stage_package

    fetched = fetch(paths, progress, mirror=mirror, online=online)
    sources, packaged = _normalize(paths, progress, workers, use_cache)
    with staged(paths, paths.datapackage, PACKAGE_STAGING) as staging, \
            staged(paths, paths.build, BUILD_STAGING) as out:
        names = stage_package(packaged.tables, paths.datapackage, sources, staging)
        validate_stage(paths, progress, folder=staging, incremental=use_cache)
        link_inputs(paths, staging)
        meta = out / paths.metadata.name
        try:
            write_metadata(staging, staging / paths.views.name, meta)
            checkpoint("metadata")
        except OSError as exc:
            raise CadError(f"cannot write metadata.yml ({exc.strerror or exc})", str(out),
                           "free disk space and run again; the previous outputs are unchanged") from exc
        moves = build_into(paths, staging, out, meta, progress)
        package_moves, stale = _package_moves(paths, staging, names)
        install_generation(paths, package_moves + [(meta, paths.metadata)] + moves, stale,
                           [staging, out], progress)
    progress.say(f"refresh: installed {len(packaged.tables)} tables, {paths.metadata.name} and {paths.db}")
    return Refreshed(fetched, packaged, paths.db, paths.metadata)
