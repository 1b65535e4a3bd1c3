"""The ``canada-asylum-data`` command. Thin commands over the library; domain errors become
``Error: <what>, <where>, <what to do>`` with a non-zero exit and no traceback unless
``--debug``."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from .errors import CadError, ValidationError
from .paths import MIRROR_ENV, Paths, find_root
from .progress import Progress


class Context:
    def __init__(self, root: Path, debug: bool):
        self.paths = Paths(root)
        self.debug = debug


def handle_errors(fn):
    """Turn library errors into `Error: ...` (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool(ctx.find_object(Context) and ctx.find_object(Context).debug)
        try:
            return fn(*args, **kwargs)
        except CadError as exc:
            if debug:
                raise
            raise click.ClickException(exc.message) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise click.Abort()
        except Exception as exc:  # noqa: BLE001 - last line of defence for users
            if debug:
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc}, in {ctx.command.name}, "
                "run again with --debug for the traceback and report it") from exc

    return wrapper


silent_option = click.option("--silent", is_flag=True, help="Print no progress output.")
mirror_option = click.option(
    "--mirror", type=click.Path(file_okay=False, path_type=Path), envvar=MIRROR_ENV,
    help=f"Copy raw files from this folder instead of downloading them (default: "
         f"${MIRROR_ENV}, else ../shared/sources when it exists).")
online_option = click.option("--online", is_flag=True,
                             help="Download from the publishers' URLs even if a mirror exists.")
no_cache_option = click.option(
    "--no-cache", is_flag=True,
    help="Parse every source again and Frictionless-validate every resource, ignoring "
         "build/cache/ and build/validated.json.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project folder holding datapackage/ (default: found from the current folder).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="canada-asylum-data")
@click.pass_context
def cli(ctx, root, debug):
    """Asylum claims in Canada as a validated data package, a SQLite database and a
    Datasette site.

    \b
    Serve the committed data:      canada-asylum-data serve
    Rebuild everything from raw:   canada-asylum-data refresh --mirror ../shared/sources
    """
    ctx.obj = Context((root or find_root()).resolve(), debug)


def _mirror(paths: Paths, mirror: Path | None, online: bool) -> Path | None:
    if online:
        return None
    if mirror is not None:
        if not mirror.is_dir():
            raise CadError("mirror folder not found", str(mirror),
                           f"pass --mirror DIR pointing at the sources folder, or unset ${MIRROR_ENV}")
        return mirror
    default = paths.default_mirror
    return default if default.is_dir() else None


def do_fetch(paths: Paths, mirror: Path | None, online: bool, progress: Progress, only=None):
    from .fetch import fetch_all
    from .sources import load_all_sources

    sources = load_all_sources(paths.datapackage)
    where = _mirror(paths, mirror, online)
    progress.say(f"fetch: {'from mirror ' + str(where) if where else 'downloading from the publishers'}")
    results = fetch_all(sources, paths.raw, mirror=where, progress=progress, only=only,
                        records_dir=paths.datapackage / "sources.d")
    return sources, results


def do_package(paths: Paths, progress: Progress, workers: int | None = None,
               validate: bool = False, use_cache: bool = True):
    """Parse and write datapackage/; with ``validate``, the new package is validated before
    it replaces the committed one. ``use_cache``: reuse build/cache/parsed/ for sources
    whose inputs are unchanged, and Frictionless-validate only the resources the ledger
    (build/validated.json) does not already vouch for."""
    from .cache import ParseCache
    from .fetch import present_raw_files
    from .normalize import normalize
    from .package import write_package
    from .sources import load_all_sources

    sources = load_all_sources(paths.datapackage)
    raw = present_raw_files(sources, paths.raw)
    if not raw:
        raise CadError("no raw files to package", str(paths.raw), "run `canada-asylum-data fetch` first")
    cache = ParseCache(paths.parse_cache) if use_cache else None
    result = normalize(sources, raw, paths.datapackage, progress=progress, workers=workers,
                       cache=cache)
    def check(staging: Path) -> None:
        do_validate(paths, progress, folder=staging, incremental=use_cache)

    written = write_package(result.tables, paths.datapackage, sources,
                            check=check if validate else None, workers=workers)
    progress.say(f"package: wrote {len(written)} tables to {paths.datapackage / 'data'}")
    return result


def do_validate(paths: Paths, progress: Progress, frictionless: bool = True,
                folder: Path | None = None, incremental: bool = False,
                report_path: Path | None = None):
    """Validate ``folder`` (default datapackage/). Frictionless checks every resource, or
    with ``incremental`` only those the ledger does not vouch for; every resource that
    passes is recorded in the ledger."""
    from . import ledger
    from .validate import validate_package

    folder = folder or paths.datapackage
    names = None
    if frictionless and incremental:
        desc = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
        names = ledger.to_validate(desc, paths.ledger)
        skipped = len(desc["resources"]) - len(names)
        if skipped:
            progress.say(f"validate: {skipped} resource(s) unchanged since Frictionless passed "
                         f"them ({paths.ledger}); checking {len(names)}")
    report = validate_package(folder, with_frictionless=frictionless,
                              schema_dir=paths.datapackage / "schemas", resources=names)
    if report_path is not None:
        report_path.write_text(report.to_json() + "\n", encoding="utf-8")
    progress.say("validate: " + report.summary())
    if not report.valid:
        lines = report.frictionless_errors[:20] + [
            f"{c.table}: {c.check}: {c.key}: {c.detail}" for c in report.failed[:20]]
        for line in lines:
            click.echo(f"  {line}", err=True)
        raise ValidationError(
            f"data package failed validation ({len(report.frictionless_errors)} frictionless "
            f"error(s), {len(report.failed)} failed reconciliation check(s))",
            str(paths.datapackage) + (" (new package, not installed)" if folder != paths.datapackage else ""))
    if frictionless and not report.frictionless_errors:
        ledger.record(json.loads((folder / "datapackage.json").read_text(encoding="utf-8")),
                      paths.ledger)
    return report


def do_build(paths: Paths, progress: Progress):
    from .database import build_database
    from .serve import inspect, write_stamp

    build_database(paths.datapackage, paths.db, paths.views, progress=progress)
    inspect(paths.db, paths.inspect_file)
    write_stamp(paths)
    progress.say(f"build: wrote {paths.db}")


def do_metadata(paths: Paths, check: bool, progress: Progress):
    from .metadata import check_metadata, write_metadata

    if check:
        check_metadata(paths.datapackage, paths.views, paths.metadata)
        progress.say("metadata: metadata.yml is up to date")
    else:
        write_metadata(paths.datapackage, paths.views, paths.metadata)
        progress.say(f"metadata: wrote {paths.metadata}")


@cli.command()
@mirror_option
@online_option
@click.option("--only", multiple=True, metavar="SOURCE_ID", help="Fetch only this source (repeatable).")
@silent_option
@click.pass_obj
@handle_errors
def fetch(obj, mirror, online, only, silent):
    """Bring the raw files into build/raw/ and verify their checksums.

    Copies from a mirror folder, or downloads from each source's url (falling back to its
    archive_url) with timeouts and retries. A checksum mismatch stops with an error.

    \b
    Example:
      canada-asylum-data fetch --mirror ../shared/sources
    """
    progress = Progress(silent)
    _, results = do_fetch(obj.paths, mirror, online, progress, set(only) if only else None)
    missing = [r.source_id for r in results if r.how == "missing"]
    progress.say(f"fetch: {len(results) - len(missing)} files ready, {len(missing)} not held "
                 f"(listed as missing in coverage)")


@cli.command()
@no_cache_option
@silent_option
@click.pass_obj
@handle_errors
def package(obj, no_cache, silent):
    """Parse the raw files in build/raw/ and write datapackage/ (CSV + datapackage.json).

    Sources whose raw file, entry in sources.yml, alias files and parser code are all
    unchanged since they were last parsed are read from build/cache/parsed/.

    \b
    Example:
      canada-asylum-data package
    """
    do_package(obj.paths, Progress(silent), workers=1 if obj.debug else None,
               use_cache=not no_cache)


@cli.command()
@click.option("--no-frictionless", is_flag=True, help="Skip Frictionless validation (reconcile only).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full report as JSON to this file.")
@silent_option
@click.pass_obj
@handle_errors
def validate(obj, no_frictionless, report_path, silent):
    """Validate datapackage/ with Frictionless and reconcile it with the published totals.

    Exits non-zero if any check fails; known publisher inconsistencies are reported, not
    failed.

    \b
    Example:
      canada-asylum-data validate --report build/validation.json
    """
    progress = Progress(silent)
    report = do_validate(obj.paths, progress, frictionless=not no_frictionless,
                         report_path=report_path)
    for check in report.known:
        progress.say(f"  known: {check.table}: {check.key}: {check.detail}")


@cli.command()
@silent_option
@click.pass_obj
@handle_errors
def build(obj, silent):
    """Build build/canada_asylum.db from datapackage/ (tables, keys, indexes and views as
    sqlite-utils lays them out).

    \b
    Example:
      canada-asylum-data build
    """
    do_build(obj.paths, Progress(silent))


@cli.command()
@click.option("--check", is_flag=True, help="Fail if metadata.yml differs from what would be generated.")
@silent_option
@click.pass_obj
@handle_errors
def metadata(obj, check, silent):
    """Generate metadata.yml (Datasette) from datapackage/.

    \b
    Examples:
      canada-asylum-data metadata
      canada-asylum-data metadata --check
    """
    do_metadata(obj.paths, check, Progress(silent))


@cli.command()
@mirror_option
@online_option
@no_cache_option
@silent_option
@click.pass_obj
@handle_errors
def refresh(obj, mirror, online, no_cache, silent):
    """Run every stage: fetch, package, validate, build, metadata.

    The new package is validated before it replaces datapackage/, so a refresh that
    fails validation leaves the previous package, database and metadata untouched.
    Reconciliation always covers every table; Frictionless covers every resource whose
    content, schema or referenced resources changed since it last passed (all of them on
    a fresh checkout or with --no-cache; `validate` always checks all).

    \b
    Example:
      canada-asylum-data refresh --mirror ../shared/sources
    """
    progress = Progress(silent)
    do_fetch(obj.paths, mirror, online, progress)
    # Validated before it replaces datapackage/: a failing refresh changes nothing.
    do_package(obj.paths, progress, workers=1 if obj.debug else None, validate=True,
               use_cache=not no_cache)
    do_build(obj.paths, progress)
    do_metadata(obj.paths, False, progress)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.option("--rebuild", is_flag=True, help="Rebuild the database even if it is current.")
@click.option("--dry-run", is_flag=True, help="Print the datasette command instead of running it.")
@silent_option
@click.pass_obj
@handle_errors
def serve(obj, host, port, rebuild, dry_run, silent):
    """Serve the data with Datasette (read-only, immutable), building the database first
    if it is missing or older than datapackage/. Needs no network.

    \b
    Example:
      canada-asylum-data serve --port 8001
    """
    from .serve import database_is_current, datasette_command

    progress = Progress(silent)
    paths = obj.paths
    if rebuild or not database_is_current(paths):
        do_build(paths, progress)
    cmd = datasette_command(paths, host, port)
    if dry_run:
        click.echo(" ".join(cmd))
        return
    progress.say(f"serve: http://{host}:{port}/")
    os.execv(sys.executable, cmd) if os.name == "posix" else sys.exit(__import__("subprocess").call(cmd))


# Commands defined in their own modules register themselves on `cli` when imported.
from . import cli_release  # noqa: E402,F401  (diff, publish, export)


def main() -> None:  # pragma: no cover
    cli()
