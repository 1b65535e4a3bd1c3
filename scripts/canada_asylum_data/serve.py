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


def fingerprint(descriptor: Path, views: Path, metadata: Path) -> str:
    """SHA-256 over the files a database and its site are built from: the package
    descriptor (which holds every CSV's hash), views.yml and metadata.yml."""
    digest = hashlib.sha256()
    for path in (descriptor, views, metadata):
        digest.update(path.name.encode() + b"\0")
        if path.exists():
            digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def package_fingerprint(paths: Paths) -> str:
    return fingerprint(paths.descriptor, paths.views, paths.metadata)


def read_stamp(paths: Paths) -> dict:
    try:
        stamp = json.loads((paths.build / STAMP).read_text())
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        return {}


def database_is_current(paths: Paths) -> bool:
    """The database, its inspect file and stamp exist and the stamp's fingerprint is that
    of the installed package, views and metadata (the database's own checksum is checked
    by :func:`database_matches_stamp`, which reads the whole file)."""
    if not (paths.db.exists() and paths.inspect_file.exists()):
        return False
    return read_stamp(paths).get("fingerprint") == package_fingerprint(paths)


def database_matches_stamp(paths: Paths) -> bool:
    """The database file is byte for byte the one the stamp describes (size and SHA-256):
    a truncated or edited database does not match."""
    stamp = read_stamp(paths)
    try:
        return (paths.db.stat().st_size == stamp.get("bytes")
                and sha256_of(paths.db) == stamp.get("database_sha256"))
    except OSError:
        return False


def stamp_data(db: Path, fingerprint_: str) -> str:
    return json.dumps({"fingerprint": fingerprint_, "database_sha256": sha256_of(db),
                       "bytes": db.stat().st_size}, indent=1) + "\n"


def write_stamp(paths: Paths) -> None:
    """Stamp the installed database as built from the installed package."""
    atomic_write(paths.build / STAMP, stamp_data(paths.db, package_fingerprint(paths)))


def inspect(db: Path, out: Path, file: Path | None = None) -> Path:
    """Write Datasette's inspect file (hash, size, row counts), as `datasette inspect` does,
    so the immutable database is served without counting rows at start-up. ``file``: the
    path to record when ``db`` is a staged copy that will be renamed there."""
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
    data = {db.stem: {"hash": sha256_of(db), "size": db.stat().st_size, "file": str(file or db),
                      "tables": tables}}
    return atomic_write(out, json.dumps(data, indent=2) + "\n")
