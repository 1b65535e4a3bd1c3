"""Release commands: diff, changelog, bump-version, publish, export. cli.py adds them to
the main group (RELEASE_COMMANDS); this module imports nothing from it."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click

from . import pipeline
from .cli_support import ClickProgress as Progress, handle_errors, silent_option, write_output
from .errors import CadError

old_option = click.option(
    "--old", "old_spec", default="HEAD", show_default=True, metavar="REV|DIR",
    help="The package to compare against: a git revision (its datapackage/) or a folder.")
new_option = click.option(
    "--new", "new_spec", default=None, metavar="REV|DIR",
    help="The changed package: a git revision or a folder (default: the working datapackage/).")


@click.command()
@old_option
@new_option
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the Markdown report to this file (default: standard output).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every revised value as CSV to this file.")
@click.option("--max-rows", default=40, show_default=True, type=click.IntRange(1),
              help="List at most this many revised values per table in the report.")
@click.option("--frictionless", is_flag=True, help="Also run Frictionless validation on the new side (slower).")
@click.option("--exit-code", is_flag=True, help="Exit with status 1 when anything changed (like `git diff`).")
@silent_option
@click.pass_obj
@handle_errors
def diff(obj, old_spec, new_spec, output, csv_path, max_rows, frictionless, exit_code, silent):
    """Write a Markdown change report between two data packages: new periods per series,
    revised values (old and new, with both vintages), rows added or removed, sources whose
    checksum changed, and the validation result of the new side.

    By default compares the committed datapackage/ (git HEAD) with the working tree, e.g.
    after `canada-asylum-data refresh`.

    \b
    Examples:
      canada-asylum-data diff --output build/change-report.md
      canada-asylum-data diff --old v2026.11.24 --new HEAD
      canada-asylum-data diff --old /tmp/old-package --new datapackage
    """
    from .diff import changes_csv, cleanup, compare_sides, render_markdown

    progress = Progress(silent)
    work, result = compare_sides(obj.paths.root, obj.paths.datapackage, old_spec, new_spec, frictionless, progress)
    try:
        write_output(render_markdown(result, max_rows=max_rows), output)
        if csv_path:
            write_output(changes_csv(result), csv_path)
    finally:
        cleanup(work)
    progress.say("diff: " + ("changes found" if result.changed else "no changes"))
    if exit_code and result.changed:
        raise click.exceptions.Exit(1)


@click.command()
@old_option
@new_option
@click.option("--file", "changelog_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The changelog to update (default: CHANGELOG.md in the project folder).")
@click.option("--dry-run", is_flag=True, help="Print the new section instead of writing it.")
@silent_option
@click.pass_obj
@handle_errors
def changelog(obj, old_spec, new_spec, changelog_path, dry_run, silent):
    """Add a section for the current data version to CHANGELOG.md, generated from the change
    report (re-running replaces that version's section).

    \b
    Example:
      canada-asylum-data changelog --old v2026.11.24
    """
    from .diff import cleanup, compare_sides, insert_section, release_section
    from .publish import data_version

    progress = Progress(silent)
    work, result = compare_sides(obj.paths.root, obj.paths.datapackage, old_spec, new_spec, False, progress)
    cleanup(work)
    version = result.new_version or data_version(obj.paths)
    section = release_section(result, version)
    if dry_run:
        click.echo(section, nl=False)
        return
    path = changelog_path or obj.paths.root / "CHANGELOG.md"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    write_output(insert_section(current, section, version), path)
    progress.say(f"changelog: wrote section {version} to {path}")


@click.command("bump-version")
@click.option("--to", "to_version", metavar="VERSION",
              help="Set this version instead of today's (calendar versioning, YYYY.MM.DD).")
@click.option("--dry-run", is_flag=True, help="Print the new version without writing it.")
@silent_option
@click.pass_obj
@handle_errors
def bump_version(obj, to_version, dry_run, silent):
    """Set the data version (calendar versioning) in datapackage/package.yaml and
    datapackage.json; prints the new version.

    \b
    Example:
      canada-asylum-data bump-version
    """
    import re

    from .publish import data_version, next_version, set_version

    version = to_version or next_version(data_version(obj.paths), _dt.date.today())
    if not re.match(r"^\d{4}\.\d{2}\.\d{2}(\.\d+)?$", version):
        raise CadError(f"version {version!r} is not calendar versioning", "bump-version --to",
                       "use YYYY.MM.DD, e.g. 2026.12.01")
    if not dry_run:
        set_version(obj.paths.datapackage, version)
        Progress(silent).say(f"bump-version: data version is now {version}")
    click.echo(version)


@click.command()
@click.option("--platform", type=click.Choice(["cloudrun", "fly"]), default="cloudrun", show_default=True,
              help="Where to deploy: Google Cloud Run or Fly.io (datasette-publish-fly).")
@click.option("--service", default="canada-asylum-data", show_default=True,
              help="Cloud Run service name, or Fly app name.")
@click.option("--live-hash", metavar="HASH|FILE",
              help="Content hash of the live deployment (or a file holding it, e.g. the live "
                   "/-/versions.json); publish only when ours differs.")
@click.option("--force", is_flag=True, help="Publish even if the content hash matches the live one.")
@click.option("--dry-run", is_flag=True, help="Print the exact command and write nothing.")
@silent_option
@click.pass_obj
@handle_errors
def publish(obj, platform, service, live_hash, force, dry_run, silent):
    """Deploy the immutable database with its metadata and plugins using `datasette publish`
    (Cloud Run or Fly), only when its content hash differs from the live one.

    \b
    Examples:
      canada-asylum-data publish --dry-run
      curl -s https://SITE/-/versions.json > live.json
      canada-asylum-data publish --platform cloudrun --live-hash live.json
    """
    from .publish import data_version, read_live_hash, run, version_note
    from .site import describe, publish_command, shell_quote

    progress = Progress(silent)
    paths = obj.paths
    version = data_version(paths)
    # A dry run writes nothing into the project (a missing database is built and thrown away).
    digest = pipeline.site_content_hash(paths, progress, write=not dry_run)
    cmd = publish_command(describe(paths), platform, service, version_note(version, digest))
    if dry_run:
        click.echo(shell_quote(cmd))
        return
    live = read_live_hash(live_hash)
    if live == digest and not force:
        progress.say(f"publish: live content hash {digest[:12]} is current; nothing to deploy")
        return
    progress.say(f"publish: deploying data version {version} (content {digest[:12]}, live {(live or 'none')[:12]})")
    run(cmd, paths.root)


@click.command()
@click.option("--output", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Folder to write (default: build/export).")
@silent_option
@click.pass_obj
@handle_errors
def export(obj, out_dir, silent):
    """Write a static offline copy: the data package zip, the SQLite file, metadata.yml and a
    README.md a reader can open without any server.

    \b
    Example:
      canada-asylum-data export --output build/export
    """
    from .export import export as do_export

    progress = Progress(silent)
    paths = obj.paths
    pipeline.ensure_database(paths, progress)
    written = do_export(paths, out_dir or paths.build / "export")
    for name in sorted(written):
        progress.say(f"export: {written[name]}")


RELEASE_COMMANDS = (diff, changelog, bump_version, publish, export)
