"""What every command shares: the context object, the error handler that turns domain
errors into ``Error: <what>, <where>, <what to do>``, the common options, and progress
bars drawn with Click. Imports nothing from the command modules."""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path

import click

from .errors import CadError
from .paths import MIRROR_ENV, Paths
from .progress import Progress


class Context:
    def __init__(self, root: Path, debug: bool):
        self.paths = Paths(root)
        self.debug = debug


class ClickProgress(Progress):
    """Progress with Click's bars on stderr."""

    def say(self, message: str) -> None:
        if not self.silent:
            click.echo(message, err=True)

    def items(self, items, label, length=None, show=None):
        if self.silent:
            yield from items
            return
        with click.progressbar(items, label=label, length=length, file=sys.stderr,
                               item_show_func=show) as bar:
            yield from bar

    @contextlib.contextmanager
    def bytes_bar(self, label, total):
        if self.silent:
            yield lambda n: None
            return
        with click.progressbar(length=total or 0, label=label, file=sys.stderr) as bar:
            yield bar.update


#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130


class InterruptibleGroup(click.Group):
    """The command group: Ctrl-C anywhere in a command ends it with one `Error:` line and
    exit status 130 (never 0, and not Click's bare "Aborted!")."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            name = ctx.invoked_subcommand or ctx.info_name
            click.echo(f"Error: interrupted (Ctrl-C), in {name}, the outputs are the previous ones "
                       "or the complete new ones and no temporary file is left; run the command "
                       "again", err=True)
            ctx.exit(INTERRUPTED)


def handle_errors(fn):
    """Turn library errors into `Error: ...` (traceback only with --debug). An error's
    ``details`` (e.g. the failing checks of a validation) are printed first."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        debug = bool(ctx.find_object(Context) and ctx.find_object(Context).debug)
        try:
            return fn(*args, **kwargs)
        except CadError as exc:
            for line in getattr(exc, "details", ()):
                click.echo(f"  {line}", err=True)
            if debug:
                raise
            raise click.ClickException(exc.message) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise  # InterruptibleGroup reports it
        except Exception as exc:  # noqa: BLE001 - last line of defence for users
            if debug:
                raise
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {exc}, in {ctx.command.name}, "
                "run again with --debug for the traceback and report it") from exc

    return wrapper


def write_output(text: str, output: Path | None) -> None:
    """``text`` to standard output, or atomically to the file ``output``."""
    from .files import atomic_write

    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(output, text)


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
