"""Reading a data package folder (``datapackage.json`` + ``data/*.csv``): the one place
that opens the descriptor, with one error for a package that is missing or unreadable."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator

from .errors import PackageError

DESCRIPTOR = "datapackage.json"


def descriptor_path(folder: Path) -> Path:
    return folder / DESCRIPTOR


def has_package(folder: Path) -> bool:
    return descriptor_path(folder).is_file()


def read_descriptor(folder: Path, hint: str | None = None) -> dict:
    """The parsed ``datapackage.json`` of ``folder``. A missing, unreadable or malformed
    descriptor raises :class:`PackageError` (``hint``: what to do instead of the default,
    running ``package``)."""
    path = descriptor_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PackageError("no data package found", str(path), hint) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PackageError(f"cannot read the data package ({exc})", str(path), hint) from exc
    try:
        desc = json.loads(text)
    except ValueError as exc:
        raise PackageError(f"datapackage.json is not valid JSON ({exc})", str(path), hint) from exc
    if not isinstance(desc, dict) or not isinstance(desc.get("resources"), list):
        raise PackageError("datapackage.json has no list of resources", str(path), hint)
    return desc


def resources(desc: dict) -> dict[str, dict]:
    """Resource name -> resource entry, in descriptor order."""
    return {r["name"]: r for r in desc["resources"]}


def iter_rows(path: Path) -> Iterator[dict]:
    """A package CSV row by row as dicts, every cell the text written ('' stays '')."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PackageError(f"cannot read table {path.stem} ({exc})", str(path)) from exc


def read_rows(path: Path) -> list[dict]:
    """A package CSV as a list of dicts, every cell the text written ('' stays '')."""
    return list(iter_rows(path))
