"""IRB "Refugee Protection Claims Made by Irregular Border Crossers - Top 10 Countries of
Alleged Persecution", cumulative tables saved from the Wayback Machine as MHTML (and the
current page itself, plain HTML, as the live series downloads it).

Layout (see shared/sources/irb/SOURCES.md, section 3):

* MIME multipart/related; the page is the first ``text/html`` part (quoted-printable, no
  charset in the MIME header, UTF-8 inside) -> decode QP, then UTF-8. Later parts are the
  Wayback toolbar, CSS, images and a second "donate" frame.
* The table is the one whose ``<caption>`` contains "Irregular Border Crossers" (the first
  ``<table>`` is the Wayback calendar). The caption gives the cumulative period:
  "February 2017 to September 2018" (from Jan 2017 in the 2022-09 and later tables).
* Header row 1: (blank) | Intake | Finalized (5) | Pending; row 2: Accepted | Rejected |
  Abandoned | Withdrawn & Other | Total. In the 2018-09 table the last header reads
  "Pending at end of period (2018-Q2)" although the period ends 2018-09 (publisher typo;
  noted on every row of that table).
* Rows: ``Total (all countries)`` (also ``Total(all countries)``, ``Total``, with
  "Footnote 1" link text in 2018-09..2020-06) -> Totals with scope {period_start,
  period_end}; ten countries; ``Other Countries`` (a fact row, code XOC).
"""

from __future__ import annotations

import calendar
import datetime as dt
import email
import email.errors
import email.message
import email.parser
import email.policy
import re
from pathlib import Path

from ..cells import clean_text, read_count
from ..limits import MB, Limits
from ..sources import Source
from .base import Parsed, Total, fail, read_bytes
from .irb_common import (Layout, cell_text, cells_of, country_row, date_modified, find_captioned_table,
                         flag_inconsistencies, norm_header, parse_document, split_rows, walk_rows)

TABLE = "irb_irregular_crosser_claims"
#: Caps checked before the email library reads the archive (limits.check_raw): the real
#: archives are at most 1.9 MiB, one multipart container of at most 26 parts; the decoded
#: page nests elements 24 deep (checked before lxml parses it).
LIMITS = Limits("mhtml", max_bytes=32 * MB, max_parts=1_000, max_multiparts=4,
                max_html_depth=200)
CAPTION_KEY = "irregular border crossers"
MONTHS = {m.casefold(): i for i, m in enumerate(calendar.month_name) if m}
PERIOD = re.compile(r"(" + "|".join(MONTHS) + r")\s+(\d{4})\s+to\s+(" + "|".join(MONTHS) + r")\s+(\d{4})")
LAYOUT = Layout(
    row1=("", "Intake", "Finalized"),
    row2=(("Accepted", "Rejected", "Abandoned", "Withdrawn & Other", "Total"),),
    measures=("referred", "accepted", "rejected", "abandoned", "withdrawn_other", "finalized", "pending"),
    labels=("Intake", "Accepted", "Rejected", "Abandoned", "Withdrawn & Other", "Finalized Total", "Pending"))
PENDING_PLAIN = norm_header("Pending")
PENDING_QUARTER = re.compile(r"^pending at end of period \((\d{4})-q([1-4])\)$")
FOOTNOTE = re.compile(r"\s*footnote\s*(\d+)\s*$", re.IGNORECASE)
TOTAL_KEYS = frozenset({"total(allcountries)", "total"})
OTHER_KEY = "othercountries"


def _key(label: str) -> str:
    return re.sub(r"\s+", "", label.casefold())


def page_html(data: bytes, source: Source, name: str) -> str:
    """The decoded first text/html part of an MHTML file."""
    if b"\x00" in data[:1024] or data[:2] == b"PK":
        raise fail(source, name, "the file is binary, not an MHTML (MIME) page archive")
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    live_page = not name.lower().endswith((".mht", ".mhtml"))  # downloaded as .htm (live series)
    if live_page and head.startswith((b"<!doctype html", b"<html")):  # the page itself
        try:
            html = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(source, name, f"the page is not valid UTF-8 (byte {exc.start})") from exc
        if "</html>" not in html.lower():
            raise fail(source, name, "the page is truncated (no closing </html>)")
        return html
    try:
        part = _first_part(data)
    except (email.errors.MessageError, ValueError, UnicodeError):
        part = None  # the full parse below says what is wrong
    if part is None or part.get_content_type() != "text/html":
        part = _html_part(data, source, name)
    raw = part.get_payload(decode=True)  # undoes quoted-printable
    if not raw:
        raise fail(source, f"{name} first text/html part", "the HTML part is empty")
    try:
        html = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(source, f"{name} first text/html part",
                   f"the page is not valid UTF-8 after quoted-printable decoding (byte {exc.start})") from exc
    if "</html>" not in html.lower():
        raise fail(source, f"{name} first text/html part", "the page is truncated (no closing </html>)")
    return html


def _html_part(data: bytes, source: Source, name: str) -> email.message.Message:
    """The first text/html part, from the whole archive parsed (and checked) by the email library."""
    try:
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
    except (email.errors.MessageError, ValueError, UnicodeError) as exc:
        raise fail(source, name, f"cannot read the MIME structure ({exc})") from exc
    if msg.get_content_type() != "multipart/related" or not msg.is_multipart():
        raise fail(source, f"{name} MIME header",
                   f"content type is {msg.get_content_type()!r}, not an MHTML multipart/related archive")
    if any(isinstance(d, email.errors.CloseBoundaryNotFoundDefect) for d in msg.defects):
        raise fail(source, name, "the MHTML archive is truncated (closing MIME boundary not found)")
    part = next((p for p in msg.walk() if p.get_content_type() == "text/html"), None)
    if part is None:
        raise fail(source, f"{name} MIME parts", "no text/html part")
    return part


#: The blank line that ends the archive's own header block.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
#: What may follow the boundary on a delimiter line: "--" on the closing one, blanks, the
#: line break (the email library's boundary match).
_DELIMITER_TAIL = re.compile(rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)")


def _first_part(data: bytes) -> email.message.Message | None:
    """The first MIME part of a well-formed MHTML archive, parsed on its own by the email
    library; None when the archive is not of the usual shape (then :func:`_html_part` parses
    all of it and says what is wrong).

    The page is the first part of every snapshot, and the parts after it (toolbar, style
    sheets, images) are ~95% of the file, which the email parser would read line by line:
    parsing only the header block and the first part is ~20x cheaper. The part is cut out
    where the email parser would end it (RFC 2046: at a boundary delimiter line, the line
    break before it belonging to the delimiter), so its payload is the same. "Usual shape":
    a multipart/related header block without defects, the first part between two delimiter
    lines, and a closing delimiter line (what the full parse checks).
    """
    head_end = _HEADER_END.search(data)
    if head_end is None:
        return None
    head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        data[:head_end.end()])
    boundary = head.get_boundary()
    if head.defects or head.get_payload() or head.get_content_type() != "multipart/related" \
            or not boundary:
        return None  # (a payload: the headers end before that blank line, in a way of their own)
    try:
        separator = b"--" + boundary.encode("ascii")
    except UnicodeEncodeError:
        return None
    lines = _delimiter_lines(data, separator, head_end.end())
    first, second = next(lines, None), next(lines, None)
    if first is None or second is None or first[2]:
        return None
    if not (second[2] or any(closing for _, _, closing in lines)):
        return None  # truncated
    part = data[first[1]:second[0]]
    # The line break before a delimiter line belongs to the delimiter.
    if part.endswith(b"\r\n"):
        part = part[:-2]
    elif part.endswith((b"\r", b"\n")):
        part = part[:-1]
    return email.message_from_bytes(part, policy=email.policy.compat32)


def _delimiter_lines(data: bytes, separator: bytes, start: int):
    """(start, end, is the closing one) of each boundary delimiter line from ``start`` (a
    line start) on."""
    at = data.find(separator, start)
    while at != -1:
        tail = _DELIMITER_TAIL.match(data, at + len(separator))
        if tail and (at == start or data[at - 1:at] in (b"\r", b"\n")):
            yield at, tail.end(), bool(tail.group(1))
        at = data.find(separator, at + 1)


def _last_day(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def parse(path: Path, source: Source) -> Parsed:
    data = read_bytes(path, source)
    name = path.name
    html = page_html(data, source, name)
    doc = parse_document(html, source, f"{name} first text/html part",
                         max_depth=LIMITS.max_html_depth)

    table, where, caption = find_captioned_table(
        doc, CAPTION_KEY, source, name,
        missing="no table captioned '... Irregular Border Crossers ...'",
        many="{n} tables captioned '... Irregular Border Crossers ...'; expected one")

    m = PERIOD.search(caption.casefold())
    if not m:
        raise fail(source, f"{where} caption", "caption gives no period 'Month YYYY to Month YYYY'")
    start = dt.date(int(m.group(2)), MONTHS[m.group(1)], 1)
    end = _last_day(int(m.group(4)), MONTHS[m.group(3)])
    if start > end:
        raise fail(source, f"{where} caption", f"period starts {start} after it ends {end}")
    if source.period_end and str(source.period_end) != end.isoformat():
        raise fail(source, f"{where} caption",
                   f"caption period ends {end}, the source record says {source.period_end}")
    if source.period_start and str(source.period_start) != start.isoformat():
        raise fail(source, f"{where} caption",
                   f"caption period starts {start}, the source record says {source.period_start}")

    head, body = split_rows(table, source, where)
    h1 = cells_of(head[0])
    row1 = [norm_header(cell_text(c)) for c in h1]
    row2 = [norm_header(cell_text(c)) for c in cells_of(head[1])]
    if not LAYOUT.row1_matches(row1):
        raise fail(source, f"{where} header row 1",
                   f"headers {[clean_text(cell_text(c)) for c in h1]} differ from "
                   "['', 'Intake', 'Finalized', 'Pending']")
    if not LAYOUT.row2_matches(row2):
        raise fail(source, f"{where} header row 2",
                   f"headers {[clean_text(cell_text(c)) for c in cells_of(head[1])]} differ from "
                   "['Accepted', 'Rejected', 'Abandoned', 'Withdrawn & Other', 'Total']")
    table_notes: list[str] = []
    if row1[-1] != PENDING_PLAIN:
        q = PENDING_QUARTER.match(row1[-1])
        if not q:
            raise fail(source, f"{where} header row 1 col {len(row1)}",
                       f"header {clean_text(cell_text(h1[-1]))!r} is not 'Pending' or "
                       "'Pending at end of period (YYYY-Qn)'")
        q_end = _last_day(int(q.group(1)), 3 * int(q.group(2)))
        if q_end != end:
            table_notes.append(
                f"the Pending header reads {clean_text(cell_text(h1[-1]))!r} although the caption "
                f"period ends {end.isoformat()} (publisher typo); pending read as at the period end")

    out = Parsed()
    modified = date_modified(doc)
    if modified:
        out.file_facts["vintage"] = modified
    period = {"period_start": start.isoformat(), "period_end": end.isoformat()}
    last_label = None
    for row in walk_rows(body, source, where, LAYOUT.ncells, lambda label: _key(label) in TOTAL_KEYS,
                         "'Total (all countries)'", label_of=lambda printed: FOOTNOTE.sub("", printed).strip(),
                         total_after="a total row after the first data row"):
        if row.is_total:
            notes = list(table_notes)
            fn = FOOTNOTE.search(row.printed)
            if fn:
                notes.append(f"Footnote {fn.group(1)}: {_footnote(doc, fn.group(1))}")
                table_notes.append(f"publisher footnote on the total row: {_footnote(doc, fn.group(1))}")
            for measure, col, raw in zip(LAYOUT.measures, LAYOUT.labels, row.texts[1:]):
                out.totals.append(Total(TABLE, measure, dict(period), read_count(raw), row.label,
                                        f"{where} row {row.index} col {col}", "; ".join(notes) or None))
        else:
            last_label = row.label
            out.add(TABLE, country_row(period, row.label, list(LAYOUT.measures), row.texts[1:],
                                       f"{where} row {row.index}", table_notes))
    if last_label is None or _key(last_label) != OTHER_KEY:
        raise fail(source, where, f"the last row is {last_label!r}, not 'Other Countries'")
    flag_inconsistencies(out.tables[TABLE], out.totals, list(LAYOUT.measures[1:5]))
    return out


def _footnote(doc, number: str) -> str:
    """Text of the page's footnote ``number`` (WET ``<dd id="fnN"><p>...</p>``)."""
    for el in doc.iter("dd"):
        if el.get("id") == f"fn{number}":
            p = el.find("p")
            text = clean_text((p if p is not None else el).text_content())
            if text:
                return text
    return "(footnote text not found on the page)"
