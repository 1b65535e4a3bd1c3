"""Progress output that ``--silent`` turns off. Written to stderr so stdout stays clean."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterable, Iterator, TypeVar

import click

T = TypeVar("T")


class Progress:
    def __init__(self, silent: bool = False):
        self.silent = silent

    def say(self, message: str) -> None:
        if not self.silent:
            click.echo(message, err=True)

    def items(self, items: Iterable[T], label: str, length: int | None = None,
              show=None) -> Iterator[T]:
        if self.silent:
            yield from items
            return
        with click.progressbar(items, label=label, length=length, file=sys.stderr,
                               item_show_func=show) as bar:
            yield from bar

    @contextlib.contextmanager
    def bytes_bar(self, label: str, total: int | None):
        if self.silent:
            yield lambda n: None
            return
        with click.progressbar(length=total or 0, label=label,
                               file=sys.stderr) as bar:
            yield bar.update


SILENT = Progress(silent=True)
