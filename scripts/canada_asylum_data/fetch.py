"""The only module that touches the network or the mirror: bring raw files into
``build/raw/`` and verify them.

* From a mirror folder: copy ``mirror/<mirror_path>``.
* Online: download ``url``, falling back to ``archive_url``; timeouts, retries with
  exponential backoff on timeouts, connection errors, 429 and 5xx; redirects followed up to a
  limit.
* Either way: size and sha256 checked against sources.yml before the file is moved into
  place (written to a temporary file in the same folder, then renamed), so the raw store
  never holds a half-written or unverified file under its final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import ChecksumError, SourceError
from .files import atomic_write, sha256_of
from .progress import SILENT, Progress
from .runs import checkpoint
from .sources import Source

USER_AGENT = "canada-asylum-data (+https://github.com/canada-asylum-data) httpx"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
RETRIES = 3
BACKOFF = 1.0  # seconds; doubled after each failed attempt
MAX_REDIRECTS = 5
CHUNK = 1 << 16
LOG_NAME = "fetch-log.json"


@dataclass
class Fetched:
    source_id: str
    path: Path | None
    how: str  # "cached", "mirror", "download", "archive", "missing"
    sha256: str | None = None
    bytes: int | None = None
    note: str | None = None


def raw_path(source: Source, raw_dir: Path) -> Path:
    return raw_dir / source.raw_name


def _verify(source: Source, path: Path, origin: str) -> tuple[str, int]:
    size = path.stat().st_size
    digest = sha256_of(path)
    if (source.sha256 is not None and digest != source.sha256) or (
            source.bytes is not None and size != source.bytes):
        raise ChecksumError(
            f"checksum mismatch for source {source.id}: expected sha256 {source.sha256} "
            f"({source.bytes} bytes), got {digest} ({size} bytes)", f"from {origin}")
    return digest, size


def _is_current(source: Source, path: Path) -> bool:
    if not path.is_file() or source.sha256 is None:
        return False
    return path.stat().st_size == (source.bytes or path.stat().st_size) and sha256_of(path) == source.sha256


def _tempfile(raw_dir: Path, source: Source) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{source.id}.", suffix=".part", dir=raw_dir)
    os.close(fd)
    return Path(name)


def _install(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def copy_from_mirror(source: Source, mirror: Path, raw_dir: Path) -> Fetched:
    if not source.mirror_path:
        return Fetched(source.id, None, "missing", note="not mirrored (no copy held yet)")
    src = mirror / source.mirror_path
    if not src.is_file():
        raise SourceError(f"mirror file missing for source {source.id}", str(src),
                          "check --mirror (or $CANADA_ASYLUM_DATA_MIRROR) points at the sources folder")
    tmp = _tempfile(raw_dir, source)
    try:
        shutil.copyfile(src, tmp)
        checkpoint("fetch")
        digest, size = _verify(source, tmp, str(src))
        _install(tmp, raw_path(source, raw_dir))
    finally:
        tmp.unlink(missing_ok=True)
    return Fetched(source.id, raw_path(source, raw_dir), "mirror", digest, size)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, (httpx.TimeoutException, httpx.TransportError)):
        return not isinstance(exc, httpx.UnsupportedProtocol)
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code == 429 or code >= 500
    return False


def _download_once(client: httpx.Client, url: str, dest: Path, progress: Progress, label: str) -> None:
    with client.stream("GET", url) as response:
        response.raise_for_status()
        length = response.headers.get("content-length")
        expected = int(length) if length and length.isdigit() else None
        received = 0
        with dest.open("wb") as out, progress.bytes_bar(label, expected) as advance:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                received += len(chunk)
                advance(len(chunk))
        if expected is not None and received != expected:
            raise httpx.RemoteProtocolError(
                f"body truncated: got {received} of {expected} bytes", request=response.request)


def download(source: Source, raw_dir: Path, client: httpx.Client | None = None,
             progress: Progress = SILENT, retries: int = RETRIES, backoff: float = BACKOFF) -> Fetched:
    """Download from url, then archive_url; verify; install atomically."""
    own = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True,
                                    max_redirects=MAX_REDIRECTS,
                                    headers={"User-Agent": USER_AGENT})
    errors: list[str] = []
    try:
        for how, url in (("download", source.url), ("archive", source.archive_url)):
            if not url:
                continue
            delay = backoff
            for attempt in range(1, retries + 1):
                tmp = _tempfile(raw_dir, source)
                try:
                    _download_once(client, url, tmp, progress, f"{source.id} ({how})")
                    digest, size = _verify(source, tmp, url)
                    _install(tmp, raw_path(source, raw_dir))
                    return Fetched(source.id, raw_path(source, raw_dir), how, digest, size,
                                   note=None if source.sha256 else "no checksum on record: not verified")
                except ChecksumError as exc:
                    errors.append(f"{url}: {exc.what}")
                    break  # a wrong body does not get better by retrying; try the archive
                except httpx.HTTPError as exc:
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    if not _retryable(exc) or attempt == retries:
                        break
                    time.sleep(delay)
                    delay *= 2
                finally:
                    tmp.unlink(missing_ok=True)
    finally:
        if own:
            client.close()
    raise SourceError(f"could not download source {source.id}", "; ".join(errors) or "no url",
                      "check the network, or fetch from a mirror with --mirror DIR")


def fetch_all(sources: list[Source], raw_dir: Path, mirror: Path | None = None,
              progress: Progress = SILENT, client: httpx.Client | None = None,
              only: set[str] | None = None) -> list[Fetched]:
    """Bring every source into raw_dir. With a mirror, unmirrored sources are reported as
    missing (offline); without one, every source with a url is downloaded."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    results: list[Fetched] = []
    chosen = [s for s in sources if only is None or s.id in only]
    for source in progress.items(chosen, "fetch", show=lambda s: s.id if s else ""):
        final = raw_path(source, raw_dir)
        if _is_current(source, final):
            results.append(Fetched(source.id, final, "cached", source.sha256, source.bytes))
        elif mirror is not None:
            results.append(copy_from_mirror(source, mirror, raw_dir))
        else:
            results.append(download(source, raw_dir, client=client, progress=progress))
    _write_log(raw_dir, results)
    return results


def _write_log(raw_dir: Path, results: list[Fetched]) -> None:
    log = {r.source_id: {"how": r.how, "sha256": r.sha256, "bytes": r.bytes, "note": r.note}
           for r in results}
    atomic_write(raw_dir / LOG_NAME, json.dumps(log, indent=2, sort_keys=True) + "\n")


def present_raw_files(sources: list[Source], raw_dir: Path) -> dict[str, Path]:
    """Raw files on disk that belong to a source and pass their checksum (if one is on record)."""
    out = {}
    for source in sources:
        path = raw_path(source, raw_dir)
        if path.is_file() and (source.sha256 is None or _is_current(source, path)):
            out[source.id] = path
    return out
