"""A content-addressed cache of parsed sources (``build/cache/parsed/``).

Parsing is a pure function of the raw file, the source's entry in sources.yml, the
alias files, this package's code and the versions of the libraries that read the files;
the cache key is a sha256 over all of them, so any change to any of them is a miss and
the source is parsed again. A damaged entry is a miss too. Entries not used by the
latest run are deleted, so the folder holds one entry per source.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
from dataclasses import asdict
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .files import atomic_write, sha256_of

#: Libraries whose behaviour shapes what a parser returns.
LIBRARIES = ("python-calamine", "openpyxl", "lxml", "pyreadr", "pandas", "pycountry", "pyyaml")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 over this package's Python files and the reading libraries' versions."""
    h = hashlib.sha256(sys.version.encode())
    for lib in LIBRARIES:
        try:
            h.update(f"{lib}=={version(lib)}".encode())
        except PackageNotFoundError:
            h.update(f"{lib} missing".encode())
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(source, raw_file: Path, alias_dir: Path, extra: str = "") -> str:
    h = hashlib.sha256(code_digest().encode())
    h.update(json.dumps(asdict(source), sort_keys=True, default=str).encode())
    h.update(sha256_of(raw_file).encode())
    for path in sorted(alias_dir.glob("*.yml")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(extra.encode())
    return h.hexdigest()


class ParseCache:
    def __init__(self, folder: Path):
        self.folder = folder
        self.used: set[str] = set()

    def get(self, key: str):
        self.used.add(key)
        try:
            with (self.folder / f"{key}.pickle").open("rb") as fh:
                return pickle.load(fh)
        except FileNotFoundError:
            return None
        except Exception:  # a damaged entry is a miss  # noqa: BLE001
            return None

    def put(self, key: str, value) -> None:
        self.used.add(key)
        atomic_write(self.folder / f"{key}.pickle", pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def prune(self) -> None:
        """Delete the entries this run did not use."""
        if self.folder.is_dir():
            for path in self.folder.glob("*.pickle"):
                if path.stem not in self.used:
                    path.unlink(missing_ok=True)
