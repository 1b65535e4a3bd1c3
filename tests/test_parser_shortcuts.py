"""The parsers' fast paths read exactly what the general (slower) readings read.

* :func:`cells.read_count` / :func:`cells.clean_text` against the readers they replaced
  (kept here as the reference);
* the MHTML reader's shortcut (parse only the archive's header block and first part) against
  the email library's parse of the whole archive, on every real snapshot and on edited ones.
"""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from canada_asylum_data.cells import (INVISIBLE, ODD_SPACES, SUPPRESSED, SUPPRESSED_VARIANTS,
                                      UNREADABLE, Count, clean_text, read_count)
from canada_asylum_data.parsers import irb_irregular_mhtml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MINI = FIXTURES / "irb" / "irregular-2018-09-mini.mht.txt"


# --- cells: the readers as they were before the fast paths -----------------------------

_FOOTNOTE = re.compile(r"\s*(footnote\s*\S*|\*+|\([a-z0-9]\))\s*$", re.IGNORECASE)
_NUMBER = re.compile(r"^\d{1,3}(,\d{3})+$|^\d+$")


def reference_clean_text(raw: object) -> str:
    if raw is None:
        return ""
    text = str(raw)
    for ch in INVISIBLE:
        text = text.replace(ch, "")
    for ch in ODD_SPACES:
        text = text.replace(ch, " ")
    return " ".join(text.split())


def reference_read_count(raw: object) -> Count:
    if raw is None:
        return Count(None, UNREADABLE)
    if isinstance(raw, bool):
        return Count(None, UNREADABLE, f"cell held {raw!r}, not a count")
    if isinstance(raw, int):
        if raw < 0:
            return Count(None, UNREADABLE, f"cell held negative number {raw}")
        return Count(raw)
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            return Count(None, UNREADABLE)
        if raw.is_integer() and raw >= 0:
            return Count(int(raw))
        return Count(None, UNREADABLE, f"cell held {raw!r}, not a whole non-negative count")
    text = reference_clean_text(raw)
    if text == "":
        return Count(None, UNREADABLE)
    if text in SUPPRESSED_VARIANTS:
        return Count(None, SUPPRESSED)
    stripped = _FOOTNOTE.sub("", text).strip()
    stripped = stripped.replace(" ", "")
    if _NUMBER.match(stripped) and len(stripped.replace(",", "")) <= 12:
        return Count(int(stripped.replace(",", "")))
    shown = text if len(text) <= 40 else text[:37] + "..."
    return Count(None, UNREADABLE, f"cell held {shown!r}, not a count; left empty")


def _same(raw: object) -> None:
    got, want = read_count(raw), reference_read_count(raw)
    assert got == want and type(got.value) is type(want.value), raw
    assert clean_text(raw) == reference_clean_text(raw), raw


CELLS = [
    None, "", " ", "0", "00", "007", "1165", "1,165", "12,345,678", "1,23", "1,2345", ",123",
    "123,", "1,,234", "999999999999", "9999999999999", "1,000,000,000,000", "100,000,000,000",
    "--", "-", "\u2013", "\u2014", "\u2013\u2013", " -- ", "\u200b--", "--\u200b", "\u00a0--",
    "---", "--3", "-5", "v", "x", "..", "abc", "12a", "\u0663", "\u0661,\u0662\u0663\u0664",
    "\u00b2", "1\u00a0165", "1\u202f165", "\u200b39", "7,\u200b786", "898\u00a0", "46 Footnote *",
    "46*", "46 (a)", "1165\n", "\n1165", "1165 ", "\t12\t", "1 165", "Total", "United  States",
    "\ufeffTotal", "a\u3000b", "\u2060\u200c\u200d", 0, 5, -1, 10**15, True, False, 0.0, 5.0,
    -0.0, 2.5, -3.0, 1e300, float("nan"), float("inf"), float("-inf"), 3.0e12,
]


@pytest.mark.parametrize("raw", CELLS, ids=repr)
def test_read_count_same_as_reference(raw):
    _same(raw)


@given(st.text(alphabet=st.sampled_from(list("0123456789,- .*()aFfootne\u200b\u00a0\u2013\u0663\n\t"))))
def test_read_count_same_as_reference_on_cell_like_text(raw):
    _same(raw)


@given(st.one_of(st.text(), st.integers(), st.floats(), st.none()))
def test_read_count_same_as_reference_on_anything(raw):
    _same(raw)


@given(st.integers(min_value=0, max_value=10**13))
def test_formatted_numbers_same_as_reference(n):
    _same(f"{n:,}")
    _same(str(n))
    _same(float(n))


# --- MHTML: first part alone vs the whole archive ---------------------------------------

def _full_parse_html(data: bytes) -> bytes:
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True)


def _fast_html(data: bytes) -> bytes | None:
    part = irb_irregular_mhtml._first_part(data)
    if part is None or part.get_content_type() != "text/html":
        return None
    return part.get_payload(decode=True)


def test_first_part_shortcut_on_every_real_snapshot(mirror, sources):
    snapshots = [s for s in sources.values() if s.parser == "irb_irregular_mhtml" and not s.live]
    assert len(snapshots) == 18
    for src in snapshots:
        data = (mirror / src.mirror_path).read_bytes()
        fast = _fast_html(data)
        assert fast is not None, f"{src.id}: the shortcut is not taken"
        assert fast == _full_parse_html(data), src.id


def _mini() -> bytes:
    return MINI.read_bytes()


BOUNDARY = b"------MultipartBoundary--fixture0000----"


@pytest.mark.parametrize("edit", [
    lambda b: b,
    lambda b: b.replace(b"\r\n", b"\n"),  # LF line ends
    lambda b: b.replace(BOUNDARY + b"\r\n", BOUNDARY + b" \t\r\n"),  # blanks after boundaries
    lambda b: b.replace(b"\r\n\r\n\r\n" + BOUNDARY, b"\r\n\r\nThis is a preamble.\r\n" + BOUNDARY, 1),
    lambda b: b.replace(b"\r\n" + BOUNDARY + b"\r\nContent-Type: text/css",
                        b"\r\n\r\n\r\n" + BOUNDARY + b"\r\nContent-Type: text/css", 1),  # blank lines
    lambda b: b.replace(b"</html>", b"</html>\r\nnot " + BOUNDARY[2:] + b" a boundary\r\n", 1),
], ids=["as-is", "lf", "blanks", "preamble", "blank-lines-before-next", "boundary-in-text"])
def test_first_part_shortcut_on_edited_fixture(edit):
    data = edit(_mini())
    fast = _fast_html(data)
    assert fast is not None
    assert fast == _full_parse_html(data)


@pytest.mark.parametrize("edit", [
    lambda b: b[: len(b) * 2 // 3],  # truncated: no closing boundary
    lambda b: b.replace(b"Content-Type: text/html\r\nContent-ID", b"Content-Type: text/plain\r\nContent-ID", 1),
    lambda b: b.replace(b"multipart/related", b"multipart/mixed", 1),
    lambda b: b.replace(b'boundary="', b'bndry="', 1),
    lambda b: b.replace(BOUNDARY + b"--", BOUNDARY + b"-x", 1),
    lambda b: b.replace(b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nnot a header line\r\n", 1),
    lambda b: b.replace(b"\r\n", b"\r"),  # line ends the shortcut does not look for
    lambda b: b.replace(b"\r\n", b"\r").replace(b"Content-Type: text/css", b"\n\nContent-Type: text/css"),
], ids=["truncated", "first-part-not-html", "not-related", "no-boundary", "no-close", "header-defect",
        "cr", "cr-then-lf"])
def test_unusual_archives_take_the_full_parse(edit):
    """Anything out of the ordinary goes to the full parse, which keeps its own checks and
    error messages."""
    assert _fast_html(edit(_mini())) is None
