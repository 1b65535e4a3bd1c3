"""What serving needs besides the command (site.py renders that): the inspect file that
lets Datasette serve the immutable database without counting rows at start-up, the
build stamp that says whether the database is current with datapackage/ and is the file
it was built as, and the pinned generation a running server reads (:func:`pin_generation`)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
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


#: Where a running server's generation is kept: build/serving/<stamp>/, hard links to the
#: database and inspect file it verified. A refresh installs new files by rename, so the
#: links keep naming the generation the server started with.
SERVING = "serving"
IN_USE = ".in-use"


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # a file system without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def pin_generation(paths: Paths) -> tuple[Path, Path]:
    """The verified database and inspect file as build/serving/<stamp>/ (hard links), held
    with a shared lock the server process inherits, so nothing deletes them while it runs;
    folders of generations no server holds are deleted. Call with the project lock held,
    after the database was verified. Returns (database, inspect file)."""
    stamp = read_stamp(paths)
    folder = paths.build / SERVING / str(stamp["database_sha256"])[:16]
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    os.set_inheritable(fd, True)  # held by the server for as long as it runs
    db, inspect_file = folder / paths.db.name, folder / paths.inspect_file.name
    _link_or_copy(paths.db, db)
    _link_or_copy(paths.inspect_file, inspect_file)
    for other in (paths.build / SERVING).iterdir():
        if other != folder and other.is_dir():
            probe = os.open(other / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a server still runs on it
            finally:
                os.close(probe)
            shutil.rmtree(other, ignore_errors=True)
    return db, inspect_file


def hold_generation(db: Path) -> int | None:
    """In a process that serves ``db``: when it is a pinned generation
    (build/serving/<stamp>/), take the shared lock :func:`pin_generation` takes, so the
    generation stays while this process runs even if the one that pinned it is gone (the
    worker processes of ``serve --workers N``). Returns the descriptor to keep open, or
    None for a database that is not a pinned generation."""
    marker = db.parent / IN_USE
    if db.parent.parent.name != SERVING or not marker.is_file():
        return None
    fd = os.open(marker, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd
