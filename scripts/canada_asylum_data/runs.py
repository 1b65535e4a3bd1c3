"""What makes a run safe to stop at any point.

* **One writer at a time**: :func:`project_lock` takes ``build/.lock`` (``fcntl.flock``);
  a second run waits for it, at most ``$CANADA_ASYLUM_DATA_LOCK_WAIT`` seconds (default
  600), then stops with an ``Error:``. Whoever holds the lock first completes an
  interrupted install (:func:`recover`) and deletes what dead runs left (:func:`sweep`):
  every writer of those folders holds the lock, so a temporary file found then belongs to
  no live process.
* **All or nothing**: a refresh lays out the whole new generation (package, metadata,
  database, inspect file, build stamp) in staging folders, then :func:`install_generation`
  writes an install record (``build/install.json``, atomically) listing every move, does
  the renames and deletes the record. A run that finds the record does the moves left
  (roll forward); a staging folder without a record is deleted. Outputs are therefore the
  previous generation or the complete new one after a crash at any point.
* **Workers die with their parent**: :func:`worker_options` gives a process pool an
  initializer that asks Linux to kill the worker when its parent dies
  (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) and ignores Ctrl-C (the parent stops the pool:
  :func:`stop_pool` kills the workers on Ctrl-C, lets running tasks finish on an error).
* **A test hook**, :func:`checkpoint`: ``CANADA_ASYLUM_DATA_TEST_PAUSE=<stage>`` makes a
  run print ``paused at <stage>`` on stderr and wait there until it is killed;
  ``CANADA_ASYLUM_DATA_TEST_FAIL=<stage>`` raises a simulated "No space left on device"
  there. Stages: ``fetch`` (a raw file copied, not yet installed), ``parse`` (pool
  started), ``validate`` (Frictionless started), ``build`` (the first table written),
  ``metadata`` (written to staging), ``install`` (the record written, one file moved).
  Used by tests/test_interrupted_runs.py only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

from .errors import CadError
from .files import atomic_write, staged_folder
from .paths import Paths
from .progress import SILENT, Progress

LOCK_NAME = ".lock"
JOURNAL_NAME = "install.json"
LOCK_WAIT_ENV = "CANADA_ASYLUM_DATA_LOCK_WAIT"
LOCK_WAIT = 600.0
PAUSE_ENV = "CANADA_ASYLUM_DATA_TEST_PAUSE"
FAIL_ENV = "CANADA_ASYLUM_DATA_TEST_FAIL"
#: Staging folders: the new package in datapackage/, the new database (with its inspect
#: file, build stamp and metadata.yml) in build/.
PACKAGE_STAGING = ".staging-"
BUILD_STAGING = ".build-"
#: (folder relative to the project root, glob) of what a dead run may leave behind.
LEFTOVERS = (("datapackage", PACKAGE_STAGING + "*"), ("build", BUILD_STAGING + "*"),
             (".", ".*.part"), ("datapackage", ".*.part"), ("datapackage/data", ".*.part"),
             ("build", ".*.part"), ("build/raw", ".*.part"), ("build/cache/parsed", ".*.part"))
#: Signals held back while the install record is acted on (SIGKILL cannot be: the next
#: run completes the install).
HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class LockError(CadError):
    default_hint = "wait for the other run to finish, or stop it"


# --- test hook -------------------------------------------------------------------------

def checkpoint(stage: str) -> None:
    """Pause or fail here when a test asks for ``stage`` (see the module docstring)."""
    if os.environ.get(FAIL_ENV) == stage:
        raise OSError(errno.ENOSPC, f"No space left on device (simulated: ${FAIL_ENV}={stage})")
    if os.environ.get(PAUSE_ENV) == stage:
        print(f"paused at {stage} (${PAUSE_ENV})", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


# --- workers ---------------------------------------------------------------------------

PR_SET_PDEATHSIG = 1


def kill_when_parent_dies(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent (pid ``parent``) dies; exit at
    once if it is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def die_with_parent(parent: int) -> None:
    """Process-pool initializer: SIGKILL this worker when its parent dies (Linux), and
    leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kill_when_parent_dies(parent)


def worker_options() -> dict:
    """Keyword arguments for ``ProcessPoolExecutor`` (and the parent pid for a forked child)."""
    return {"initializer": die_with_parent, "initargs": (os.getpid(),)}


def stop_pool(pool, now: bool) -> None:
    """Shut a ``ProcessPoolExecutor`` down, cancelling what has not started. With ``now``
    (Ctrl-C) the workers are killed instead of finishing their task; the parent's end of
    the result pipe is closed too, so the pool's manager thread sees the end of a result a
    killed worker was writing instead of waiting for it forever. Without ``now`` (an error
    elsewhere) the running tasks finish, which cannot hang."""
    if now:
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
        writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
        with contextlib.suppress(Exception):
            writer.close()
    pool.shutdown(wait=True, cancel_futures=True)


# --- lock ------------------------------------------------------------------------------

_held: dict[Path, int] = {}


def lock_path(paths: Paths) -> Path:
    return paths.build / LOCK_NAME


def journal_path(paths: Paths) -> Path:
    return paths.build / JOURNAL_NAME


def _wait_limit() -> float:
    try:
        return float(os.environ.get(LOCK_WAIT_ENV, LOCK_WAIT))
    except ValueError:
        raise LockError(f"${LOCK_WAIT_ENV} is not a number of seconds",
                        os.environ.get(LOCK_WAIT_ENV), "set it to e.g. 60, or unset it") from None


@contextlib.contextmanager
def project_lock(paths: Paths, progress: Progress = SILENT) -> Iterator[None]:
    """Hold ``build/.lock`` for the block (re-entrant within a process). On taking it,
    complete an interrupted install and delete what dead runs left."""
    key = paths.build.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    paths.build.mkdir(parents=True, exist_ok=True)
    where = lock_path(paths)
    fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        limit = _wait_limit()
        deadline = time.monotonic() + limit
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                if time.monotonic() >= deadline:
                    raise LockError(f"another run (pid {holder}) is writing this project and did "
                                    f"not finish within {limit:g} s", str(where),
                                    f"wait for it to finish or stop it, then run again "
                                    f"(${LOCK_WAIT_ENV} sets the wait)") from None
                if not told:
                    progress.say(f"waiting for another run (pid {holder}) to finish ({where})")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = 1
        try:
            recover(paths, progress)
            sweep(paths)
            yield
        finally:
            del _held[key]
    finally:
        os.close(fd)


def holds_lock(paths: Paths) -> bool:
    return paths.build.resolve() in _held


# --- staging and install ---------------------------------------------------------------

@contextlib.contextmanager
def staged(paths: Paths, parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder in ``parent`` to lay out part of a generation; deleted when the block
    ends unless an install record still needs what is in it."""
    with staged_folder(parent, prefix, keep=journal_path(paths).exists) as folder:
        yield folder


def _rel(paths: Paths, path: Path) -> str:
    return str(path.resolve().relative_to(paths.root.resolve())) if path.is_absolute() else str(path)


def install_generation(paths: Paths, moves: list[tuple[Path, Path]], delete: list[Path] = (),
                       staging: list[Path] = (), progress: Progress = SILENT) -> None:
    """Install a generation: every ``(staged, final)`` pair renamed, then ``delete``d files
    (e.g. CSVs of tables the package no longer has) removed and ``staging`` folders with
    them, as one unit (see the module docstring). Needs the project lock."""
    assert holds_lock(paths), "install_generation needs project_lock"
    record = {"moves": [[_rel(paths, s), _rel(paths, d)] for s, d in moves],
              "delete": [_rel(paths, p) for p in delete],
              "staging": [_rel(paths, p) for p in staging]}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        journal = journal_path(paths)
        atomic_write(journal, json.dumps(record, indent=1) + "\n")
        _apply(paths, record)
    except OSError as exc:
        raise CadError(f"the new outputs were only partly installed ({exc.strerror or exc})",
                       str(journal_path(paths)),
                       "fix the cause (e.g. free disk space) and run any command again: it "
                       "completes the install") from exc
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _apply(paths: Paths, record: dict) -> None:
    root = paths.root
    for i, (src, dst) in enumerate(record["moves"]):
        source, target = root / src, root / dst
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        if i == 0:
            checkpoint("install")
    for name in record.get("delete", ()):
        (root / name).unlink(missing_ok=True)
    for name in record.get("staging", ()):
        shutil.rmtree(root / name, ignore_errors=True)
    journal_path(paths).unlink(missing_ok=True)


def recover(paths: Paths, progress: Progress = SILENT) -> bool:
    """Complete an install an interrupted run started (roll forward); True if there was one."""
    journal = journal_path(paths)
    if not journal.exists():
        return False
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        moves = record["moves"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CadError(f"the install record of an interrupted run is unreadable ({exc})",
                       str(journal), "restore the outputs with `git checkout datapackage "
                       "metadata.yml`, delete the record and run `refresh` again") from exc
    progress.say(f"completing the install an interrupted run started ({len(moves)} file(s), {journal})")
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
    try:
        _apply(paths, record)
    except OSError as exc:
        raise CadError(f"cannot complete the install an interrupted run started ({exc.strerror or exc})",
                       str(journal), "fix the cause (e.g. free disk space) and run again") from exc
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    return True


def leftovers(root: Path) -> list[Path]:
    """Temporary files and staging folders under ``root`` (see LEFTOVERS)."""
    return sorted(p for folder, pattern in LEFTOVERS for p in (root / folder).glob(pattern))


def sweep(paths: Paths) -> list[Path]:
    """Delete what dead runs left (only called with the lock held and no install record)."""
    found = leftovers(paths.root)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
