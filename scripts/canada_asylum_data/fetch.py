"""The only module that touches the network or the mirror: bring raw files into
``build/raw/`` and verify them.

* From a mirror folder: copy ``mirror/<mirror_path>``.
* Online: download ``url``, falling back to ``archive_url``; timeouts, retries with
  exponential backoff on timeouts, connection errors, 429 and 5xx; redirects followed up to a
  limit.
* Either way: size and sha256 checked against sources.yml before the file is moved into
  place (written to a temporary file in the same folder, then renamed), so the raw store
  never holds a half-written or unverified file under its final name.

Two kinds of source (``kind`` in sources.d): a *snapshot* is a fixed file: once held in
build/raw it is never downloaded again, a missing one comes from the mirror or, online, from
its ``archive_url`` (the fixed archived bytes) and then its ``url``, and a checksum mismatch
is a hard error. A *live* series is a URL the publisher overwrites: online, it is downloaded
every time and handed to :mod:`live`, which records bytes no known vintage has as a new
vintage record in sources.d/ (offline it is skipped: its known vintages are snapshots).

Limits on every download (so a hostile or broken server cannot flood the disk or hang a
refresh): at most ``max_download_bytes`` (a snapshot's ``bytes`` exactly; a live series
``LIVE_MARGIN`` x its largest known vintage; ``DEFAULT_MAX_BYTES`` when nothing is known;
``$CANADA_ASYLUM_DATA_MAX_DOWNLOAD`` overrides the default cap), an overall deadline per file
(``DEADLINE`` seconds from the first request to the last byte, over all retries and the
archive fallback; ``$CANADA_ASYLUM_DATA_FETCH_DEADLINE`` overrides it), and a content check:
the first bytes must look like the file type the source expects (an HTML error page is not
an .xlsx or .rda). Mirror paths are resolved (symlinks included) and refused when they leave
the mirror folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .errors import CadError, ChecksumError, SourceError
from .files import sha256_of
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

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # no size on record: the largest raw file is ~1.5 MB
LIVE_MARGIN = 4  # a live series may grow to this many times its largest known vintage
DEADLINE = 600.0  # seconds per file, all attempts included
MAX_BYTES_ENV = "CANADA_ASYLUM_DATA_MAX_DOWNLOAD"
DEADLINE_ENV = "CANADA_ASYLUM_DATA_FETCH_DEADLINE"

#: What the first bytes of each file type look like. A type not listed is not checked.
MAGIC = {
    ".xlsx": ((b"PK\x03\x04",), "an .xlsx workbook (a zip file)"),
    ".rda": ((b"BZh", b"\x1f\x8b", b"\xfd7zXZ\x00", b"RDX2\n", b"RDX3\n", b"RDA2\n", b"RDA3\n"),
             "an R data file (.rda: bzip2, gzip, xz or plain RDX)"),
}
HTML_TYPES = {".htm", ".html", ".aspx"}
MHTML_TYPES = {".mht", ".mhtml"}
TEXT_TYPES = {".csv", ".tsv", ".txt"}


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise CadError(f"${name} is {value!r}, not a number", "environment",
                       f"unset {name} or give a number") from exc
    if number <= 0:
        raise CadError(f"${name} must be positive, got {value!r}", "environment",
                       f"unset {name} or give a positive number")
    return number


def deadline_seconds() -> float:
    return _env_number(DEADLINE_ENV, DEADLINE)


def max_download_bytes(source: Source, known_sizes: list[int] | tuple = ()) -> int:
    """The largest body accepted for ``source`` (see the module docstring)."""
    default = int(_env_number(MAX_BYTES_ENV, DEFAULT_MAX_BYTES))
    if not source.live and source.bytes is not None:
        return source.bytes
    sizes = [b for b in (*known_sizes, source.bytes) if b]
    return min(default, LIVE_MARGIN * max(sizes)) if sizes else default


def check_content(source: Source, head: bytes, origin: str) -> None:
    """Refuse a body whose first bytes do not look like the file type the source expects."""
    ext = source.extension
    where = f"source {source.id}, from {origin}"
    hint = ("the server answered with something else (often an error or login page); "
            "check the url in datapackage/sources.d/ or try again later")
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:64].lower()
    looks_html = start.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
    if ext in MAGIC:
        magics, what = MAGIC[ext]
        if not head.startswith(magics):
            got = "an HTML page" if looks_html else f"bytes starting {head[:8]!r}"
            raise SourceError(f"download is not {what}: got {got}", where, hint)
    elif ext in HTML_TYPES:
        if not (looks_html or b"<html" in head[:4096].lower()):
            raise SourceError(f"download is not an HTML page: got bytes starting {head[:8]!r}",
                              where, hint)
    elif ext in MHTML_TYPES:
        if not (b"mime-version" in head[:2048].lower() or looks_html):
            raise SourceError(f"download is not an MHTML archive or HTML page: got bytes starting "
                              f"{head[:8]!r}", where, hint)
    elif ext in TEXT_TYPES and looks_html:
        raise SourceError("download is an HTML page, not a data file", where, hint)


class TooLarge(SourceError):
    pass


class DeadlineExceeded(SourceError):
    pass


class NotPublished(SourceError):
    """Every url answered 404/410: the file is not (or no longer) published there."""


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
    if not path.is_file():
        return False
    if source.sha256 is None:  # a snapshot fetched once without a checksum on record: held
        return not source.live
    return path.stat().st_size == (source.bytes or path.stat().st_size) and sha256_of(path) == source.sha256


def _tempfile(raw_dir: Path, source: Source) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{source.id}.", suffix=".part", dir=raw_dir)
    os.close(fd)
    return Path(name)


def _install(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


def mirror_file(source: Source, mirror: Path) -> Path:
    """``mirror/<mirror_path>`` resolved (symlinks followed); refused when it leaves the mirror."""
    root = mirror.resolve()
    path = (mirror / str(source.mirror_path)).resolve()
    if path != root and root not in path.parents:
        raise SourceError(f"mirror_path of source {source.id} leads outside the mirror folder",
                          f"{mirror / str(source.mirror_path)} -> {path}",
                          "fix mirror_path in datapackage/sources.d/ or replace the symlink with the file")
    return path


def copy_from_mirror(source: Source, mirror: Path, raw_dir: Path) -> Fetched:
    if not source.mirror_path:
        return Fetched(source.id, None, "missing", note="not mirrored (no copy held yet)")
    src = mirror_file(source, mirror)
    if not src.is_file():
        raise SourceError(f"mirror file missing for source {source.id}", str(src),
                          "check --mirror (or $CANADA_ASYLUM_DATA_MIRROR) points at the sources folder")
    # a local file: the checksum names a wrong copy better; the cap only stops a runaway one
    cap = LIVE_MARGIN * source.bytes if source.bytes else max_download_bytes(source)
    if src.stat().st_size > cap:
        raise SourceError(f"mirror file of source {source.id} is {src.stat().st_size} bytes, more than "
                          f"the {cap} allowed", str(src), "check the file and the record's bytes")
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


def _download_once(client: httpx.Client, url: str, dest: Path, progress: Progress, label: str,
                   source: Source | None = None, max_bytes: int | None = None,
                   ends_at: float | None = None) -> None:
    """One GET into ``dest``: refused when larger than ``max_bytes``, when its first bytes do not
    look like the source's file type, or when it is not complete by ``ends_at``
    (time.monotonic()); a watchdog closes the connection at the deadline, so a server that
    trickles bytes cannot hold the download."""
    remaining = None if ends_at is None else ends_at - time.monotonic()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded("download deadline passed before the request", url)
    base = client.timeout
    if remaining is None:
        timeout = base
    else:  # no single phase may outlast the deadline
        def cap(value):
            return remaining if value is None else min(value, remaining)

        timeout = httpx.Timeout(connect=cap(base.connect), read=cap(base.read), write=cap(base.write),
                                pool=cap(base.pool))
    expired = threading.Event()
    with client.stream("GET", url, timeout=timeout) as response:
        def stop() -> None:
            expired.set()
            response.close()

        watchdog = threading.Timer(max(remaining, 0.0), stop) if remaining is not None else None
        if watchdog is not None:
            watchdog.daemon = True
            watchdog.start()
        try:
            response.raise_for_status()
            length = response.headers.get("content-length")
            expected = int(length) if length and length.isdigit() else None
            if max_bytes is not None and expected is not None and expected > max_bytes:
                raise TooLarge(f"server announces {expected} bytes, more than the {max_bytes} allowed "
                               f"for source {source.id if source else '?'}", url)
            received = 0
            head = b""
            with dest.open("wb") as out, progress.bytes_bar(label, expected) as advance:
                for chunk in response.iter_bytes():
                    if ends_at is not None and time.monotonic() > ends_at:
                        raise httpx.ReadTimeout("deadline", request=response.request)
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise TooLarge(f"body exceeds the {max_bytes} bytes allowed for source "
                                       f"{source.id if source else '?'}", url)
                    if source is not None and len(head) < 4096:
                        head += chunk[:4096 - len(head)]
                        if len(head) >= 4096:
                            check_content(source, head, url)
                    out.write(chunk)
                    advance(len(chunk))
            if source is not None and len(head) < 4096:
                check_content(source, head, url)
            if expected is not None and received != expected:
                raise httpx.RemoteProtocolError(
                    f"body truncated: got {received} of {expected} bytes", request=response.request)
        except (httpx.HTTPError, OSError) as exc:
            if expired.is_set() or (ends_at is not None and time.monotonic() > ends_at):
                raise DeadlineExceeded(
                    f"download not complete within the deadline ({deadline_seconds():g} s per file)",
                    url, f"the server is too slow or stalled; try again later, or raise ${DEADLINE_ENV}"
                ) from exc
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()


def _client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, follow_redirects=True, max_redirects=MAX_REDIRECTS,
                        headers={"User-Agent": USER_AGENT})


def download_to(source: Source, dest_dir: Path, urls: list[tuple[str, str]],
                client: httpx.Client | None = None, progress: Progress = SILENT,
                retries: int = RETRIES, backoff: float = BACKOFF, max_bytes: int | None = None,
                verify: bool = True) -> tuple[Path, str, str]:
    """Download the first of ``urls`` ((how, url) pairs) that answers with an acceptable body,
    into a temporary file in ``dest_dir``; returns (temp path, how, url). The caller installs
    or removes the file. All attempts share one deadline."""
    own = client is None
    client = client or _client()
    errors: list[str] = []
    not_found: list[str] = []
    limit = max_bytes if max_bytes is not None else max_download_bytes(source)
    ends_at = time.monotonic() + deadline_seconds()
    try:
        for how, url in urls:
            if not url:
                continue
            delay = backoff
            for attempt in range(1, retries + 1):
                tmp = _tempfile(dest_dir, source)
                keep = False
                try:
                    _download_once(client, url, tmp, progress, f"{source.id} ({how})", source,
                                   limit, ends_at)
                    if verify:
                        _verify(source, tmp, url)
                    keep = True
                    return tmp, how, url
                except DeadlineExceeded as exc:
                    raise SourceError(f"could not download source {source.id}: {exc.what}",
                                      "; ".join([*errors, f"{url}"]), exc.hint) from exc
                except ChecksumError as exc:
                    errors.append(f"{url}: {exc.what}")
                    break  # a wrong body does not get better by retrying; try the next url
                except SourceError as exc:  # too large, or not the expected file type
                    errors.append(f"{url}: {exc.what}")
                    break
                except httpx.HTTPError as exc:
                    errors.append(f"{url}: {type(exc).__name__}: {exc}")
                    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (404, 410):
                        not_found.append(url)
                    if not _retryable(exc) or attempt == retries:
                        break
                    pause = min(delay, max(0.0, ends_at - time.monotonic()))
                    time.sleep(pause)
                    delay *= 2
                finally:
                    if not keep:
                        tmp.unlink(missing_ok=True)
    finally:
        if own:
            client.close()
    tried = [u for _, u in urls if u]
    cls = NotPublished if tried and len(not_found) == len(tried) else SourceError
    raise cls(f"could not download source {source.id}", "; ".join(errors) or "no url",
              "check the network and the urls in datapackage/sources.d/, or fetch from a "
              "mirror with --mirror DIR")


def download(source: Source, raw_dir: Path, client: httpx.Client | None = None,
             progress: Progress = SILENT, retries: int = RETRIES, backoff: float = BACKOFF) -> Fetched:
    """Download a snapshot (its fixed archived copy first, then its url); verify; install
    atomically."""
    urls = [("archive", source.archive_url), ("download", source.url)]
    if source.sha256 is None:  # nothing to verify against: the publisher's url first
        urls.reverse()
    tmp, how, _ = download_to(source, raw_dir, urls, client, progress, retries, backoff)
    try:
        digest, size = sha256_of(tmp), tmp.stat().st_size
        _install(tmp, raw_path(source, raw_dir))
    finally:
        tmp.unlink(missing_ok=True)
    return Fetched(source.id, raw_path(source, raw_dir), how, digest, size,
                   note=None if source.sha256 else "no checksum on record: not verified")


def present_raw_files(sources: list[Source], raw_dir: Path) -> dict[str, Path]:
    """Raw files on disk that belong to a snapshot source and pass its checksum (if one is on
    record). Live series have no file of their own: their vintages are snapshots."""
    out = {}
    for source in sources:
        if source.live:
            continue
        path = raw_path(source, raw_dir)
        if path.is_file() and (source.sha256 is None or _is_current(source, path)):
            out[source.id] = path
    return out
