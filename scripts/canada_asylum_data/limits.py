"""Size and shape limits on raw files, checked before a parsing library sees the bytes.

Each parser module declares its caps as a module constant ``LIMITS = Limits(...)`` next to
its layout quirks; :func:`check_raw` (called by :func:`normalize.parse_source` for every
raw file) enforces them, so a zip bomb, a sheet whose single cell sits at XFD1048576, a
200 MB page or a 200,000-part MHTML archive ends in a :class:`LimitError` naming the
source, the file and the cap instead of exhausting memory or aborting the process.

What is measured, per kind of file:

* every kind: the file size (``max_bytes``), from ``stat`` before anything is read;
* ``workbook`` (.xlsx): with :mod:`zipfile` only (no spreadsheet library), the number of
  zip members, the sum of their unpacked sizes (``max_unpacked_bytes``), the unpacked to
  packed ratio of every member over 1 MiB (``max_ratio``), and the sheet dimension: each
  member is unpacked in bounded blocks (its CRC checked) and every ``<dimension ref=...>``
  and every ``r="..."`` cell/row reference in it is read (``max_rows``, ``max_cols``);
* ``html``: the element nesting depth (``max_html_depth``), by a tag scan that skips
  comments, scripts and styles and closes the elements HTML lets a page leave open;
* ``mhtml``: the MIME part count (``max_parts``: boundary delimiter lines) and the number
  of multipart containers (``max_multiparts``, which bounds their nesting); the decoded
  page's depth is checked by :func:`check_html_depth` before lxml parses it.

Readers written in native code (``native=True``: calamine, librdata) can still abort the
whole process on a file the checks let through; :func:`run_isolated` runs such a parse in
a forked child process whose death becomes a :class:`~.errors.ParseError` naming the
source.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ParseError
from .runs import die_with_parent

if TYPE_CHECKING:  # pragma: no cover
    from .sources import Source

KB = 1 << 10
MB = 1 << 20

#: Kinds of raw file :func:`check_raw` knows how to measure.
KINDS = ("workbook", "html", "mhtml", "rdata")
#: A workbook member smaller than this is not held to ``max_ratio`` (tiny XML parts of
#: real workbooks compress very well).
RATIO_FLOOR = 1 * MB
#: Unpacked block size when scanning workbook members.
BLOCK = 4 * MB
#: Elements HTML never closes (no end tag).
VOID = frozenset(b"area base br col embed hr img input keygen link meta param source track wbr"
                 .split())
#: Elements whose end tag a page may leave out: a new one closes the open one.
SELF_CLOSING_SIBLINGS = frozenset(b"p li dt dd tr td th option thead tbody tfoot".split())


@dataclass(frozen=True)
class Limits:
    """The caps one parser accepts (``None``: not checked for this kind)."""

    kind: str
    max_bytes: int
    max_unpacked_bytes: int | None = None
    max_ratio: float | None = None
    max_members: int | None = None
    max_rows: int | None = None
    max_cols: int | None = None
    max_html_depth: int | None = None
    max_parts: int | None = None
    max_multiparts: int | None = None
    #: The parse goes through a native reader: run it where a crash is caught.
    native: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}; one of {KINDS}")


class LimitError(ParseError):
    """A raw file is larger or deeper than its parser accepts."""


def _hint(source: "Source", cap: str) -> str:
    return (f"the file is damaged or not what the source record says (get it again from the "
            f"publisher); if the publisher really ships such a file, raise {cap} in LIMITS "
            f"in canada_asylum_data/parsers/{source.parser}.py")


def _size(n: float) -> str:
    if n >= MB:
        return f"{n / MB:,.1f} MiB"
    if n >= KB:
        return f"{n / KB:,.1f} KiB"
    return f"{int(n):,} bytes"


def _where(source: "Source", path: Path, detail: str = "") -> str:
    return f"in source {source.id} ({source.mirror_name})" + (f" at {detail}" if detail else "")


def check_raw(path: Path, source: "Source", limits: Limits | None) -> None:
    """Raise :class:`LimitError` when the raw file at ``path`` exceeds ``limits``."""
    if limits is None:
        return
    try:
        size = path.stat().st_size
    except OSError:
        return  # the parser reports a file it cannot read
    if size > limits.max_bytes:
        raise LimitError(f"the raw file is {_size(size)} ({size:,} bytes), more than the "
                         f"{_size(limits.max_bytes)} this parser accepts (max_bytes)",
                         _where(source, path, path.name), _hint(source, "max_bytes"))
    if limits.kind == "workbook":
        _check_workbook(path, source, limits)
    elif limits.kind == "html" and limits.max_html_depth:
        check_html_depth(path.read_bytes(), source, path.name, limits.max_html_depth)
    elif limits.kind == "mhtml":
        _check_mhtml(path.read_bytes(), source, path, limits)


# --------------------------------------------------------------------------- workbooks

_DIMENSION = re.compile(rb"dimension\b[^>]*?\sref\s*=\s*[\"']([^\"']*)[\"']")
_REF = re.compile(r"\$?([A-Za-z]{1,4})\$?(\d{1,12})")
#: The r="B5" / r="5" attribute of a cell or row in any spelling XML allows (slow to scan:
#: used only on a block where the usual spelling r="..." is not the only one).
_ANY_REF = re.compile(rb"<(?:\w+:)?(?:c|row)\s[^>]*?\br\s*=\s*[\"']\$?([A-Za-z]{0,4})\$?(\d{1,12})[\"']")
_UNUSUAL_REF = re.compile(rb"r(?:\s+=|=\s+[\"']|=')")
_TAG_NAME = re.compile(rb"<(?:\w+:)?(c|row)\s")


@lru_cache(maxsize=None)
def _suspect_refs(letters: int, digits: int) -> re.Pattern:
    """r="..." references with at least ``letters`` column letters or ``digits`` row
    digits: the only ones that can exceed the caps (a literal prefix keeps the scan fast)."""
    return re.compile(rb'r="\$?(?:([A-Za-z]{%d,4})\$?(\d{1,12})|([A-Za-z]{0,4})\$?(\d{%d,12}))"'
                      % (letters, digits))


def _refs_in(text: bytes, lim: Limits) -> list[tuple[bytes, bytes]]:
    """(column letters, row digits) of the cell and row references in ``text`` that may
    exceed the caps (all of them where unusual spellings are present)."""
    if _UNUSUAL_REF.search(text):
        return _ANY_REF.findall(text)
    letters = len(_col_letters(lim.max_cols)) if lim.max_cols else 5
    digits = len(str(lim.max_rows)) if lim.max_rows else 13
    out = []
    for m in _suspect_refs(letters, digits).finditer(text):
        at = m.start()
        if at == 0 or text[at - 1:at] not in b" \t\r\n":
            continue  # e.g. sqref="...": not an attribute named r
        tag = _TAG_NAME.match(text, text.rfind(b"<", 0, at))
        if tag:
            out.append((m.group(1) or m.group(3), m.group(2) or m.group(4)))
    return out


def _col_letters(n: int) -> str:
    out = ""
    while n:
        n, rest = divmod(n - 1, 26)
        out = chr(65 + rest) + out
    return out


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


def _check_workbook(path: Path, source: "Source", lim: Limits) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip at all: the parser says what the file is instead
    with zf:
        infos = zf.infolist()
        if lim.max_members and len(infos) > lim.max_members:
            raise LimitError(f"the workbook holds {len(infos):,} zip members, more than the "
                             f"{lim.max_members:,} this parser accepts (max_members)",
                             _where(source, path, path.name), _hint(source, "max_members"))
        total = sum(i.file_size for i in infos)
        biggest = max(infos, key=lambda i: i.file_size, default=None)
        if lim.max_unpacked_bytes and total > lim.max_unpacked_bytes:
            raise LimitError(
                f"the workbook unpacks to {_size(total)} ({total:,} bytes from {path.stat().st_size:,}; "
                f"a zip bomb?), more than the {_size(lim.max_unpacked_bytes)} this parser accepts "
                f"(max_unpacked_bytes)",
                _where(source, path, f"{path.name} member {biggest.filename}"),
                _hint(source, "max_unpacked_bytes"))
        for info in infos:
            ratio = info.file_size / max(info.compress_size, 1)
            if lim.max_ratio and info.file_size > RATIO_FLOOR and ratio > lim.max_ratio:
                raise LimitError(
                    f"a workbook member unpacks {ratio:,.0f} times its packed size "
                    f"({info.file_size:,} bytes from {info.compress_size:,}; a zip bomb?), more "
                    f"than the {lim.max_ratio:,.0f} times this parser accepts (max_ratio)",
                    _where(source, path, f"{path.name} member {info.filename}"),
                    _hint(source, "max_ratio"))
        if lim.max_rows or lim.max_cols:
            for info in infos:
                if info.filename.lower().endswith(".xml") and not info.is_dir():
                    _check_sheet_shape(zf, info, source, path, lim)


def _check_sheet_shape(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: "Source", path: Path,
                       lim: Limits) -> None:
    """The largest row and column any reference in this member names (read in bounded blocks)."""
    max_row = max_col = 0
    dims: list[str] = []
    tail = b""
    try:
        with zf.open(info) as fh:
            while True:
                block = fh.read(BLOCK)
                if not block:
                    break
                text = tail + block
                dims += [m.decode("ascii", "replace") for m in _DIMENSION.findall(text)]
                refs = _refs_in(text, lim)
                if refs:
                    max_row = max(max_row, max(int(r) for _, r in refs))
                    max_col = max(max_col, max(_col_number(c.decode("ascii")) for c, _ in refs))
                tail = text[-512:]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise LimitError(f"cannot unpack a workbook member ({type(exc).__name__}: {exc})",
                         _where(source, path, f"{path.name} member {info.filename}"),
                         "the file is damaged or truncated: get it again from the publisher") from exc
    for ref in dims:
        for letters, digits in _REF.findall(ref):
            max_row, max_col = max(max_row, int(digits)), max(max_col, _col_number(letters))
    sheet = f"{path.name} member {info.filename}"
    if lim.max_rows and max_row > lim.max_rows:
        raise LimitError(f"a sheet reaches row {max_row:,} (dimension {', '.join(dims) or 'not stated'}), "
                         f"more than the {lim.max_rows:,} rows this parser accepts (max_rows)",
                         _where(source, path, sheet), _hint(source, "max_rows"))
    if lim.max_cols and max_col > lim.max_cols:
        raise LimitError(f"a sheet reaches column {max_col:,} (dimension {', '.join(dims) or 'not stated'}), "
                         f"more than the {lim.max_cols:,} columns this parser accepts (max_cols)",
                         _where(source, path, sheet), _hint(source, "max_cols"))


# --------------------------------------------------------------------------- HTML and MHTML

_TOKEN = re.compile(
    rb"<!--.*?(?:-->|\Z)"  # a comment
    rb"|<(script|style)\b[^>]*>.*?(?:</\1\s*>|\Z)"  # raw text: no elements inside
    rb"|<(/?)([A-Za-z][A-Za-z0-9:._-]*)(?:\s[^>]*)?>",  # a start or end tag
    re.S | re.I)


def html_depth(data: bytes | str, stop_at: int | None = None) -> int:
    """The element nesting depth of an HTML page, as a browser would build it, closely
    enough to bound it (an upper bound on malformed pages); stops counting past ``stop_at``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    stack: list[bytes] = []
    deepest = 0
    for m in _TOKEN.finditer(data):
        name = m.group(3)
        if name is None:
            continue
        name = name.lower()
        if m.group(2):  # end tag: close up to the element it names, if open
            if name in stack:
                del stack[len(stack) - 1 - stack[::-1].index(name):]
            continue
        if name in VOID or m.group(0).endswith(b"/>"):
            continue
        if name in SELF_CLOSING_SIBLINGS and name in stack[-3:]:
            del stack[len(stack) - 1 - stack[::-1].index(name):]
        stack.append(name)
        if len(stack) > deepest:
            deepest = len(stack)
            if stop_at is not None and deepest > stop_at:
                break
    return deepest


def check_html_depth(data: bytes | str, source: "Source", where: str, max_depth: int) -> None:
    depth = html_depth(data, stop_at=max_depth)
    if depth > max_depth:
        raise LimitError(f"the HTML nests elements more than {max_depth} deep (max_html_depth); "
                         "a parser would drop or recurse through such a page",
                         f"in source {source.id} ({source.mirror_name}) at {where}",
                         _hint(source, "max_html_depth"))


_BOUNDARY = re.compile(rb"boundary\s*=\s*")
_BOUNDARY_VALUE = re.compile(rb"\"([^\"\r\n]{1,200})\"|([^\s;\"]{1,200})")


def _check_mhtml(data: bytes, source: "Source", path: Path, lim: Limits) -> None:
    # found case-blind in a lower-cased copy (same offsets), read case-kept from the file
    boundaries = []
    for m in _BOUNDARY.finditer(data.lower()):
        value = _BOUNDARY_VALUE.match(data, m.end())
        if value:
            boundaries.append(value.group(1) or value.group(2))
    if lim.max_multiparts and len(boundaries) > lim.max_multiparts:
        raise LimitError(f"the MHTML archive declares {len(boundaries):,} multipart containers "
                         f"(nested parts), more than the {lim.max_multiparts:,} this parser accepts "
                         "(max_multiparts)", _where(source, path, f"{path.name} MIME structure"),
                         _hint(source, "max_multiparts"))
    if lim.max_parts:
        parts = 0
        for boundary in set(boundaries):
            delimiter = b"--" + boundary
            parts += data.count(b"\n" + delimiter) + data.startswith(delimiter)
        if parts > lim.max_parts:
            raise LimitError(f"the MHTML archive has {parts:,} MIME parts, more than the "
                             f"{lim.max_parts:,} this parser accepts (max_parts)",
                             _where(source, path, f"{path.name} MIME structure"),
                             _hint(source, "max_parts"))


# --------------------------------------------------------------------------- native readers

def _child(conn, err, fn: Callable, args: tuple, parent: int) -> None:
    die_with_parent(parent)  # a SIGKILL of the run takes this process with it
    os.dup2(err.fileno(), 2)  # what a native reader prints as it dies goes into the error
    faulthandler.disable()  # the parent reports this process's death
    try:
        result = ("ok", fn(*args))
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
        result = ("error", exc)
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001 - e.g. an exception that does not pickle
        conn.send(("error", ParseError(f"the parser failed ({type(exc).__name__}: {exc})")))
    finally:
        conn.close()


def describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = {"SIGABRT": ", the native reader aborted", "SIGKILL": ", killed (out of memory?)",
                 "SIGSEGV": ", the native reader crashed"}.get(name, "")
        return f"killed by {name}{extra}"
    return f"exit code {code}"


def worker_died(source: "Source", how: str) -> ParseError:
    return ParseError(f"the process parsing the raw file died ({how})",
                      f"in source {source.id} ({source.mirror_name})",
                      "the file is probably damaged or hostile: compare it with the publisher's "
                      "copy, and tighten LIMITS in its parser so such a file is refused before "
                      "it is read")


def run_isolated(fn: Callable, args: tuple, source: "Source") -> Any:
    """``fn(*args)`` in a forked child process: its result or exception comes back; if the
    child dies (a native reader's abort, a segfault, the kernel's OOM killer) the death is
    raised as a ParseError naming ``source``."""
    if "fork" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return fn(*args)
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    with tempfile.TemporaryFile() as err:
        sys.stderr.flush()
        proc = ctx.Process(target=_child, args=(sender, err, fn, args, os.getpid()), daemon=True)
        proc.start()
        sender.close()
        answered = False
        try:
            status, payload = receiver.recv()
            answered = True
        except EOFError:
            proc.join()
            how = describe_exit(proc.exitcode)
            said = _first_line(err)
            raise worker_died(source, f"{how}: {said}" if said else how) from None
        finally:
            receiver.close()
            if proc.is_alive() and answered:
                proc.join(5)
            if proc.is_alive():  # interrupted (Ctrl-C), or it sent its answer but hangs on exit
                proc.kill()
                proc.join()
        err.seek(0)
        said = err.read(64 * KB).decode("utf-8", "replace")
        if said:  # warnings the parse printed
            sys.stderr.write(said)
    if status == "ok":
        return payload
    raise payload


def _first_line(fh) -> str:
    fh.seek(0)
    for line in fh.read(4 * KB).decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
