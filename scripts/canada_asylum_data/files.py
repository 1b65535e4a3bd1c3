"""Small helpers on local files, shared by the stages (no network here: that is fetch.py).

Every output is written atomically: a file through :func:`atomic_write` (or
:func:`atomic_path` for a file another library writes), a set of files through
:func:`staged_folder` and :func:`install`. A temporary name is unique (``tempfile`` in the
target's own folder, so the final rename stays on one file system), and a failure leaves
the previous output untouched and no temporary file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

CHUNK = 1 << 20


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Permissions of a written file as ``open()`` would give it (``mkstemp`` gives 0600).
FILE_MODE = 0o666 & ~_umask()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A unique temporary path beside ``path`` (not yet created) to write to; renamed to
    ``path`` when the block succeeds, deleted when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str, encoding: str = "utf-8") -> Path:
    """Write ``data`` (text is encoded with ``encoding``) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


@contextlib.contextmanager
def staged_folder(parent: Path, prefix: str,
                  keep: Callable[[], bool] | None = None) -> Iterator[Path]:
    """A fresh folder inside ``parent`` to lay out a set of files before :func:`install`;
    removed with whatever is left in it when the block ends, unless ``keep()`` says it is
    still needed (an install record points into it)."""
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield staging
    finally:
        if keep is None or not keep():
            shutil.rmtree(staging, ignore_errors=True)


def install(staging: Path, target: Path, names: Iterable[str],
            stale: str | tuple[str, ...] = ()) -> dict[str, Path]:
    """Move the files ``names`` (paths relative to ``staging``) to the same place under
    ``target``, in the order given, each by an atomic rename; then delete the files under
    ``target`` that match a glob of ``stale`` and were not installed. Returns name -> path."""
    written: dict[str, Path] = {}
    for name in names:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, dest)
        written[name] = dest
    kept = set(written.values())
    for pattern in (stale,) if isinstance(stale, str) else stale:
        for path in target.glob(pattern):
            if path not in kept and path.is_file():
                path.unlink()
    return written
