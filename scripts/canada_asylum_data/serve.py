"""What serving needs besides the command (site.py renders that): the inspect file that
lets Datasette serve the immutable database without counting rows at start-up, and the
build stamp that says whether the database is current with datapackage/."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import BuildError
from .files import atomic_write, sha256_of
from .paths import Paths

STAMP = "build-stamp.json"


def package_fingerprint(paths: Paths) -> str:
    digest = hashlib.sha256()
    for path in (paths.descriptor, paths.views):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def database_is_current(paths: Paths) -> bool:
    stamp = paths.build / STAMP
    if not (paths.db.exists() and paths.inspect_file.exists() and stamp.exists()):
        return False
    try:
        return json.loads(stamp.read_text())["fingerprint"] == package_fingerprint(paths)
    except (ValueError, KeyError):
        return False


def write_stamp(paths: Paths) -> None:
    atomic_write(paths.build / STAMP, json.dumps({"fingerprint": package_fingerprint(paths)}) + "\n")


def inspect(db: Path, out: Path) -> Path:
    """Write Datasette's inspect file (hash, size, row counts), as `datasette inspect` does,
    so the immutable database is served without counting rows at start-up."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
            tables = {n: {"count": conn.execute(f"select count(*) from [{n}]").fetchone()[0]} for n in names}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BuildError(f"cannot inspect the database ({exc})", str(db)) from exc
    # the hash is what datasette.inspect.inspect_hash computes
    data = {db.stem: {"hash": sha256_of(db), "size": db.stat().st_size, "file": str(db),
                      "tables": tables}}
    return atomic_write(out, json.dumps(data, indent=2) + "\n")
