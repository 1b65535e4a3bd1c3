"""The ``canada-asylum-data`` command. Thin commands over the library; domain errors become
``Error: <what>, <where>, <what to do>`` with a non-zero exit and no traceback unless
``--debug``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from . import pipeline
from .cli_release import RELEASE_COMMANDS
from .cli_support import (ClickProgress as Progress, Context, InterruptibleGroup, handle_errors, mirror_option,
                          no_cache_option, online_option, silent_option)
from .paths import find_root


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    results = pipeline.fetch(obj.paths, progress, mirror=mirror, online=online,
                             only=set(only) if only else None)
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

    Sources whose raw file, record in sources.d/, alias files and parser code are all
    unchanged since they were last parsed are read from build/cache/parsed/.

    \b
    Example:
      canada-asylum-data package
    """
    pipeline.package(obj.paths, Progress(silent), workers=1 if obj.debug else None,
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
    report = pipeline.validate_stage(obj.paths, progress, frictionless=not no_frictionless,
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
    pipeline.build(obj.paths, Progress(silent))


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
    pipeline.metadata(obj.paths, Progress(silent), check=check)


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
    pipeline.refresh(obj.paths, Progress(silent), mirror=mirror, online=online,
                     use_cache=not no_cache, workers=1 if obj.debug else None)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8001, show_default=True, type=int, help="Port to listen on.")
@click.option("--rebuild", is_flag=True, help="Rebuild the database even if it is current.")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Server processes answering on the one port (1 to 32): 1 runs `datasette serve`, "
                   "more run the same site in that many uvicorn worker processes.")
@click.option("--dry-run", is_flag=True, help="Print the server command instead of running it.")
@click.option("--setting", "settings", type=(str, str), multiple=True, metavar="NAME VALUE",
              help="A Datasette setting on top of the site's own (e.g. --setting base_url /asylum/).")
@silent_option
@click.pass_obj
@handle_errors
def serve(obj, host, port, rebuild, workers, dry_run, settings, silent):
    """Serve the data with Datasette (read-only, immutable), building the database first
    if it is missing, older than datapackage/ or not the file its build stamp describes
    (truncated or edited). Needs no network. A running server keeps serving the
    generation it started with until it is restarted.

    With --workers N (a host with spare cores) N processes share the port, so a slow page
    in one does not hold up the requests the others answer.

    \b
    Examples:
      canada-asylum-data serve --port 8001
      canada-asylum-data serve --workers 2
    """
    import dataclasses

    from .runs import project_lock
    from .serve import pin_generation
    from .site import check_workers, describe, serve_command, shell_quote, workers_command

    check_workers(workers)
    progress = Progress(silent)
    paths = obj.paths
    site = describe(paths, dict(settings))
    with project_lock(paths, progress):
        pipeline.ensure_database(paths, progress, rebuild=rebuild)
        if not dry_run:  # serve the generation just verified, whatever a later refresh installs
            db, inspect_file = pin_generation(paths)
            site = dataclasses.replace(site, database=db, inspect_file=inspect_file)
    env: dict[str, str] = {}
    if workers == 1:
        cmd = serve_command(site, host, port)
    else:
        env, cmd = workers_command(site, host, port, workers)
    if dry_run:
        click.echo(shell_quote(cmd, env))
        return
    if workers > 1:
        from .asgi import build, serve_args

        # build the site once here: what would stop every worker stops here with an Error:
        build(serve_args(env))
    if env and not os.environ.get("DATASETTE_SECRET"):
        # one signing secret for every worker (each would make its own): a cookie one
        # worker signs is then valid on the others
        import secrets

        env["DATASETTE_SECRET"] = secrets.token_hex(32)
    env = {**os.environ, **env}
    progress.say(f"serve: http://{host}:{port}/ (this generation until restarted"
                 f"{f'; {workers} worker processes' if workers > 1 else ''})")
    # the process that replaces this one (Datasette, or uvicorn's supervisor of the
    # workers) inherits the lock that pins the generation
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)
    sys.exit(__import__("subprocess").call(cmd, env=env))


# The release commands (diff, changelog, bump-version, publish, export) live in their own
# module, which imports nothing from this one.
for _command in RELEASE_COMMANDS:
    cli.add_command(_command)
