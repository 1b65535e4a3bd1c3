"""Progress output that ``--silent`` turns off, written to stderr so stdout stays clean.

The stages report through a :class:`Progress` they are given; this plain one prints
messages and no bars. The command line passes a subclass that draws bars (cli_support.py),
so no stage depends on the command-line library."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Progress:
    def __init__(self, silent: bool = False):
        self.silent = silent

    def say(self, message: str) -> None:
        if not self.silent:
            print(message, file=sys.stderr, flush=True)

    def items(self, items: Iterable[T], label: str, length: int | None = None,
              show: Callable[[T | None], str] | None = None) -> Iterator[T]:
        """Iterate over ``items`` (a bar labelled ``label`` where a subclass draws one)."""
        yield from items

    @contextlib.contextmanager
    def bytes_bar(self, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
        """A function to call with each block's byte count (a bar where a subclass draws one)."""
        yield lambda n: None


SILENT = Progress(silent=True)
