"""One module per upstream format. ``get_parser(name)`` returns its ``parse`` function."""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Parsed, ParserFn, Total

__all__ = ["Parsed", "Total", "ParserFn", "get_parser", "get_module", "parser_reference_tables", "NO_PARSER"]

#: Parser name for files kept for provenance only (no rows come from them).
NO_PARSER = "none"


def get_module(name: str):
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        raise ConfigError(f"unknown parser {name!r}", "datapackage/sources.yml",
                          "use the name of a module in canada_asylum_data/parsers") from exc


def get_parser(name: str) -> ParserFn:
    return get_module(name).parse


def parser_reference_tables(names: set[str]) -> dict[str, list[dict]]:
    """Lookup tables a parser publishes with its codes (a module-level ``reference_tables()``)."""
    out: dict[str, list[dict]] = {}
    for name in sorted(names):
        fn = getattr(get_module(name), "reference_tables", None)
        if fn is not None:
            out.update(fn())
    return out
