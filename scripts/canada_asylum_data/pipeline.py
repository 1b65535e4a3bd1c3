"""The stages: fetch -> package (validated in staging before it is installed) -> validate
-> build -> metadata, and refresh, which runs them all.

Each stage takes the project's :class:`~.paths.Paths` and a :class:`~.progress.Progress`,
returns what it produced and raises a :class:`~.errors.CadError` when it cannot; none of
them prints anything but progress, and none imports the command-line library (cli.py and
cli_release.py parse options, call a stage and print its result).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CadError, SourceError, ValidationError
from .files import atomic_write, staged_folder
from .paths import MIRROR_ENV, Paths
from .progress import SILENT, Progress

#: How many failing checks a validation error lists.
SHOWN_PROBLEMS = 20


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

def package(paths: Paths, progress: Progress = SILENT, workers: int | None = None,
            validate: bool = False, use_cache: bool = True):
    """Parse build/raw/ and write datapackage/. The package is written in full to a
    staging folder; with ``validate`` it is validated there (see :func:`validate_stage`),
    and only then installed, so a failure leaves the previous package untouched.
    ``use_cache``: reuse build/cache/parsed/ for sources whose inputs are unchanged, and
    Frictionless-validate only the resources the ledger does not already vouch for.
    Returns the normalize result (tables, vintage comparisons, ...)."""
    from .cache import ParseCache
    from .fetch import present_raw_files
    from .normalize import normalize
    from .package import install_package, stage_package
    from .sources import load_all_sources

    sources = load_all_sources(paths.datapackage)
    raw = present_raw_files(sources, paths.raw)
    if not raw:
        raise CadError("no raw files to package", str(paths.raw), "run `canada-asylum-data fetch` first")
    cache = ParseCache(paths.parse_cache) if use_cache else None
    result = normalize(sources, raw, paths.datapackage, progress=progress, workers=workers,
                       cache=cache)
    with staged_folder(paths.datapackage, ".staging-") as staging:
        names = stage_package(result.tables, paths.datapackage, sources, staging)
        if validate:
            validate_stage(paths, progress, folder=staging, incremental=use_cache)
        install_package(staging, names, paths.datapackage)
    progress.say(f"package: wrote {len(result.tables)} tables to {paths.datapackage / 'data'}")
    return result


# --- validate ------------------------------------------------------------------------

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

def build(paths: Paths, progress: Progress = SILENT) -> Path:
    """Build build/canada_asylum.db from datapackage/, with its inspect file and the stamp
    that tells :func:`database_is_current` which package it was built from."""
    from .database import build_database
    from .serve import inspect, write_stamp

    build_database(paths.datapackage, paths.db, paths.views, progress=progress)
    inspect(paths.db, paths.inspect_file)
    write_stamp(paths)
    progress.say(f"build: wrote {paths.db}")
    return paths.db


def ensure_database(paths: Paths, progress: Progress = SILENT, rebuild: bool = False) -> Path:
    """The database, built first when it is missing, older than datapackage/ or ``rebuild``."""
    from .serve import database_is_current

    if rebuild or not database_is_current(paths):
        build(paths, progress)
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


def refresh(paths: Paths, progress: Progress = SILENT, mirror: Path | None = None,
            online: bool = False, use_cache: bool = True, workers: int | None = None) -> Refreshed:
    """Every stage in order. The new package is validated before it replaces datapackage/,
    so a refresh that fails validation leaves the previous package, database and metadata
    untouched."""
    fetched = fetch(paths, progress, mirror=mirror, online=online)
    packaged = package(paths, progress, workers=workers, validate=True, use_cache=use_cache)
    return Refreshed(fetched, packaged, build(paths, progress), metadata(paths, progress))
