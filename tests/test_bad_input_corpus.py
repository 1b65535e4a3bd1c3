"""A corpus of bad raw input across every parser.

Each case takes a real raw file from the mirror, mutates it (truncated, empty, zero bytes,
wrong file type behind the right name, missing table or sheet, renamed/reordered header,
extra/missing column, text or a negative number in a count cell, duplicate keys, unknown
country label, wrong encoding, a very large cell), accepts the new bytes in sources.d as a
reviewer would, and runs ``canada-asylum-data package``. The outcome must be
``Error: ...`` naming the source id and the location, exit code 1, no traceback, and
``datapackage/``, ``metadata.yml`` and the database byte-identical (sha256 of every file).

Speed: every case runs the real CLI on a copy of one prepared project whose ``build/raw``
holds only the mutated source's file, so the step parses that one file (a failing parse
stops ``package`` before anything is written either way). A few cases run with every raw
file present (``test_full_project_*``) to show the same through the whole parse.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import io
import lzma
import quopri
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import openpyxl
import pytest

from canada_asylum_data.cells import Count
from canada_asylum_data.normalize import parse_source
from canada_asylum_data.sources import load_all_sources

from .conftest import DATAPACKAGE, copy_project, digest_tree, run, set_checksum

RPD = "irb-rpd-2013-2023-transcription"
RAD = "irb-rad-2019"
IRREG = "irb-irregular-2018-09"
CACA = "canada-ca-claims-2019"
IRCC_MIG = "ircc-odp-secondary-migration-2024-02"
IRCC_OFF = "ircc-odp-office-province-2024-02"
UNHCR_APP = "unhcr-asylum-applications-2025.12.1"
UNHCR_DEC = "unhcr-asylum-decisions-2025.12.1"


# --------------------------------------------------------------------------- the project

@pytest.fixture(scope="module")
def base(mirror, tmp_path_factory):
    """A project with the committed inputs, every raw file fetched, and the three outputs the
    corpus guards: datapackage/ (the committed tables, or packaged here when none are
    committed), metadata.yml and the database."""
    root = copy_project(tmp_path_factory.mktemp("corpus") / "base", with_outputs=False)
    result = run(root, "fetch", "--mirror", str(mirror), "--silent")
    assert result.exit_code == 0, result.output
    if (DATAPACKAGE / "datapackage.json").is_file():
        shutil.copytree(DATAPACKAGE / "data", root / "datapackage" / "data")
        shutil.copy2(DATAPACKAGE / "datapackage.json", root / "datapackage" / "datapackage.json")
    else:
        result = run(root, "package", "--silent")
        assert result.exit_code == 0, result.output
    for args in (["build"], ["metadata"]):
        result = run(root, *args, "--silent")
        assert result.exit_code == 0, result.output
    return root


def project_with(base: Path, dest: Path, keep_raw: set[str] | None) -> Path:
    """A copy of ``base``; build/raw holds only the sources in ``keep_raw`` (None = all)."""
    shutil.copytree(base / "datapackage", dest / "datapackage")
    shutil.copy2(base / "metadata.yml", dest / "metadata.yml")
    (dest / "build" / "raw").mkdir(parents=True)
    for name in ("canada_asylum.db", "inspect-data.json", "build-stamp.json"):
        if (base / "build" / name).exists():
            shutil.copy2(base / "build" / name, dest / "build" / name)
    for path in (base / "build" / "raw").iterdir():
        if keep_raw is None or path.stem in keep_raw or path.name in keep_raw:
            shutil.copy2(path, dest / "build" / "raw" / path.name)
    return dest


def sources_of(root: Path) -> dict:
    return {s.id: s for s in load_all_sources(root / "datapackage")}


def put_raw(root: Path, source_id: str, data: bytes) -> None:
    src = sources_of(root)[source_id]
    set_checksum(root, source_id, data)
    (root / "build" / "raw" / src.raw_name).write_bytes(data)


def package_fails(root: Path, source_id: str, where: str | None) -> str:
    before = digest_tree(root)
    assert "build/canada_asylum.db" in before and "metadata.yml" in before
    result = run(root, "package", "--silent")
    out = result.output
    assert result.exit_code == 1, out
    assert out.startswith("Error: "), out
    assert "Traceback" not in out, out
    assert source_id in out, out
    if where:
        assert re.search(where, out), f"location {where!r} not in: {out}"
    assert digest_tree(root) == before, "outputs changed after a failed package"
    return out


# --------------------------------------------------------------------------- mutators

def truncate_half(b: bytes) -> bytes:
    return b[: len(b) // 2]


def empty(_: bytes) -> bytes:
    return b""


def zeros(b: bytes) -> bytes:
    return b"\x00" * min(len(b), 4096)


def png(_: bytes) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 200


def pdf(_: bytes) -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF\n"


def html_error_page(_: bytes) -> bytes:
    return b"<!DOCTYPE html><html><head><title>503</title></head><body>Service unavailable</body></html>"


def csv_text(_: bytes) -> bytes:
    return b"year,country,claims\n2019,United States,100\n"


def other_raw(base_attr: str) -> Callable[[bytes], bytes]:
    """Another source's real bytes behind this source's name (e.g. an xlsx behind .htm)."""

    def change(_: bytes, *, _attr=base_attr) -> bytes:
        return OTHER[_attr]

    return change


OTHER: dict[str, bytes] = {}


# ---- HTML (IRB RAD pages and canada.ca pages)

def _text(b: bytes) -> str:
    return b.decode("utf-8")


def html_edit(fn: Callable[[str], str]) -> Callable[[bytes], bytes]:
    return lambda b: fn(_text(b)).encode("utf-8")


def _first_table_span(t: str) -> tuple[int, int]:
    i = t.index("<table")
    return i, t.index("</table>", i) + len("</table>")


def drop_all_tables(t: str) -> str:
    return re.sub(r"<table.*?</table>", "", t, flags=re.S)


def drop_first_table(t: str) -> str:
    i, j = _first_table_span(t)
    return t[:i] + t[j:]


def _body_rows(t: str) -> list[tuple[int, int]]:
    i, j = _first_table_span(t)
    body = t.index("<tbody", i)
    return [(body + m.start(), body + m.end())
            for m in re.finditer(r"<tr\b.*?</tr>", t[body:j], flags=re.S)]


def _edit_row(t: str, k: int, fn: Callable[[str], str]) -> str:
    s, e = _body_rows(t)[k]
    return t[:s] + fn(t[s:e]) + t[e:]


def _cells(row: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", row, flags=re.S)]


def _set_cell(row: str, c: int, content: str) -> str:
    m = list(re.finditer(r"(<t[dh]\b[^>]*>)(.*?)(</t[dh]>)", row, flags=re.S))[c]
    return row[:m.start()] + m.group(1) + content + m.group(3) + row[m.end():]


def cell(k: int, c: int, content: str) -> Callable[[bytes], bytes]:
    return html_edit(lambda t: _edit_row(t, k, lambda r: _set_cell(r, c, content)))


def drop_cell(k: int, c: int) -> Callable[[bytes], bytes]:
    def fn(row: str) -> str:
        m = list(re.finditer(r"<t[dh]\b[^>]*>.*?</t[dh]>", row, flags=re.S))[c]
        return row[:m.start()] + row[m.end():]

    return html_edit(lambda t: _edit_row(t, k, fn))


def add_cell(k: int) -> Callable[[bytes], bytes]:
    return html_edit(lambda t: _edit_row(t, k, lambda r: r.replace("</tr>", "<td>7</td></tr>")))


def duplicate_row(k: int) -> Callable[[bytes], bytes]:
    def fn(t: str) -> str:
        s, e = _body_rows(t)[k]
        return t[:e] + t[s:e] + t[e:]

    return html_edit(fn)


def replace_once(old: str, new: str) -> Callable[[bytes], bytes]:
    def fn(t: str) -> str:
        assert old in t, old
        return t.replace(old, new, 1)

    return html_edit(fn)


def swap_headers(a: str, b: str) -> Callable[[bytes], bytes]:
    def fn(t: str) -> str:
        i, j = _first_table_span(t)
        head = t[i:j].replace(f">{a}<", ">\x00A<", 1).replace(f">{b}<", f">{a}<", 1).replace(">\x00A<", f">{b}<", 1)
        assert head != t[i:j]
        return t[:i] + head + t[j:]

    return html_edit(fn)


def utf16(b: bytes) -> bytes:
    return _text(b).encode("utf-16")


def latin1_with_accents(b: bytes) -> bytes:
    t = _text(b).replace("</caption>", " – Côte d’Ivoire é</caption>", 1)
    return t.encode("cp1252", errors="replace")


def huge_cell(k: int, c: int) -> Callable[[bytes], bytes]:
    return cell(k, c, "9" * 5_000_000)


# ---- MHTML (IRB irregular crossers): edit the quoted-printable HTML part

def mhtml_edit(fn: Callable[[str], str]) -> Callable[[bytes], bytes]:
    def change(b: bytes) -> bytes:
        head_end = b.index(b"Content-Transfer-Encoding: quoted-printable")
        start = b.index(b"\r\n\r\n", head_end) + 4 if b"\r\n\r\n" in b[head_end:head_end + 2000] \
            else b.index(b"\n\n", head_end) + 2
        end = b.index(b"------MultipartBoundary", start)
        html = quopri.decodestring(b[start:end]).decode("utf-8")
        new = quopri.encodestring(fn(html).encode("utf-8"))
        return b[:start] + new + b"\n" + b[end:]

    return change


def _irregular_table_edit(fn: Callable[[str], str]) -> Callable[[str], str]:
    def edit(html: str) -> str:
        key = html.lower().index("irregular border crossers", html.lower().index("<caption"))
        i = html.rindex("<table", 0, key)
        j = html.index("</table>", i) + len("</table>")
        return html[:i] + fn(html[i:j]) + html[j:]

    return edit


def irr_row(k: int, fn: Callable[[str], str]) -> Callable[[bytes], bytes]:
    def edit_table(table: str) -> str:
        body = table.index("<tbody")
        rows = list(re.finditer(r"<tr\b.*?</tr>", table[body:], flags=re.S))
        m = rows[k]
        s, e = body + m.start(), body + m.end()
        return table[:s] + fn(table[s:e]) + table[e:]

    return mhtml_edit(_irregular_table_edit(edit_table))


def irr_replace(old: str, new: str) -> Callable[[bytes], bytes]:
    def fn(table: str) -> str:
        assert old in table, old
        return table.replace(old, new, 1)

    return mhtml_edit(_irregular_table_edit(fn))


# ---- XLSX (IRB RPD transcription and IRCC open data)

def xlsx_edit(fn: Callable[[openpyxl.Workbook], None]) -> Callable[[bytes], bytes]:
    def change(b: bytes) -> bytes:
        wb = openpyxl.load_workbook(io.BytesIO(b))
        fn(wb)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    return change


def ws_set(sheet: int, ref: str, value) -> Callable[[bytes], bytes]:
    def fn(wb):
        wb.worksheets[sheet][ref] = value

    return xlsx_edit(fn)


def drop_sheet(sheet: int) -> Callable[[bytes], bytes]:
    return xlsx_edit(lambda wb: wb.remove(wb.worksheets[sheet]))


def rename_sheet(sheet: int, name: str) -> Callable[[bytes], bytes]:
    def fn(wb):
        wb.worksheets[sheet].title = name

    return xlsx_edit(fn)


def insert_col(sheet: int, idx: int) -> Callable[[bytes], bytes]:
    return xlsx_edit(lambda wb: wb.worksheets[sheet].insert_cols(idx))


def delete_col(sheet: int, idx: int) -> Callable[[bytes], bytes]:
    return xlsx_edit(lambda wb: wb.worksheets[sheet].delete_cols(idx))


def copy_row(sheet: int, src: int, dst: int) -> Callable[[bytes], bytes]:
    def fn(wb):
        ws = wb.worksheets[sheet]
        for c in range(1, ws.max_column + 1):
            ws.cell(dst, c).value = ws.cell(src, c).value

    return xlsx_edit(fn)


def swap_cells(sheet: int, a: str, b: str) -> Callable[[bytes], bytes]:
    def fn(wb):
        ws = wb.worksheets[sheet]
        ws[a].value, ws[b].value = ws[b].value, ws[a].value

    return xlsx_edit(fn)


def empty_sheet(sheet: int) -> Callable[[bytes], bytes]:
    def fn(wb):
        ws = wb.worksheets[sheet]
        ws.delete_rows(1, ws.max_row)

    return xlsx_edit(fn)


def zip_without_workbook(_: bytes) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return out.getvalue()


# ---- R data files (UNHCR): decompress, edit the XDR stream, compress the same way

def rda_edit(fn: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def change(b: bytes) -> bytes:
        if b[:3] == b"BZh":
            return bz2.compress(fn(bz2.decompress(b)))
        if b[:2] == b"\x1f\x8b":
            return gzip.compress(fn(gzip.decompress(b)), mtime=0)
        return lzma.compress(fn(lzma.decompress(b)))

    return change


def xdr_rename(old: bytes, new: bytes, count: int = 1) -> Callable[[bytes], bytes]:
    assert len(old) == len(new)

    def fn(raw: bytes) -> bytes:
        assert old in raw, old
        return raw.replace(old, new, count)

    return rda_edit(fn)


def rda_truncated_stream(b: bytes) -> bytes:
    return rda_edit(lambda raw: raw[: len(raw) // 3])(b)


def rda_plain_text(_: bytes) -> bytes:
    return gzip.compress(b"RDX3\nA\nthis is not XDR\n" * 10, mtime=0)


# --------------------------------------------------------------------------- the corpus

@dataclass
class Case:
    id: str
    source: str
    change: Callable[[bytes], bytes]
    where: str | None = r"at |sheet|cell|row|column|\.htm|\.mht|\.xlsx|\.rda"
    #: "error", or "unreadable": the design's rule for a count cell that holds no number in
    #: a non-strict source (IRB, canada.ca): NULL plus a note, never a number.
    outcome: str = "error"
    injected: str = ""


L = r"at |sheet|cell|row|col|header|caption|table|\.htm|\.mht|\.xlsx|\.rda|data\.frame"

CASES = [
    # IRB RPD workbook (irb_rpd_xlsx)
    Case("rpd-truncated", RPD, truncate_half, L),
    Case("rpd-empty", RPD, empty, L),
    Case("rpd-zero-bytes", RPD, zeros, L),
    Case("rpd-pdf-behind-xlsx", RPD, pdf, L),
    Case("rpd-zip-not-workbook", RPD, zip_without_workbook, L),
    Case("rpd-missing-sheet", RPD, drop_sheet(10), r"Sheet|sheet"),
    Case("rpd-renamed-header", RPD, ws_set(0, "B1", "Claims made"), r"Sheet1!B1"),
    Case("rpd-reordered-header", RPD, swap_cells(0, "B1", "C1"), r"Sheet1!B1|Sheet1!C1"),
    Case("rpd-extra-column", RPD, insert_col(0, 3), r"Sheet1!"),
    Case("rpd-missing-column", RPD, delete_col(0, 5), r"Sheet1!"),
    Case("rpd-duplicate-country", RPD, copy_row(0, 3, 4), r"Sheet1!A4"),
    Case("rpd-unknown-country", RPD, ws_set(0, "A3", "Atlantis"), r"Atlantis|Sheet1"),
    Case("rpd-text-in-count", RPD, ws_set(0, "B3", "12abc"), r"Sheet1!B3", outcome="unreadable", injected="12abc"),
    Case("rpd-negative-count", RPD, ws_set(0, "B3", -373), r"Sheet1!B3", outcome="unreadable", injected="-373"),
    Case("rpd-huge-cell", RPD, ws_set(0, "B3", "9" * 32000), r"Sheet1!B3", outcome="unreadable", injected="999999"),
    # IRB RAD pages (irb_stat_html)
    Case("rad-truncated", RAD, truncate_half, L),
    Case("rad-empty", RAD, empty, L),
    Case("rad-zero-bytes", RAD, zeros, L),
    Case("rad-xlsx-behind-htm", RAD, other_raw("xlsx"), L),
    Case("rad-no-table", RAD, html_edit(drop_all_tables), L),
    Case("rad-renamed-header", RAD, replace_once(">Filed<", ">Lodged<"), L),
    Case("rad-reordered-header", RAD, swap_headers("Filed", "Total Finalizations"), L),
    Case("rad-extra-column", RAD, add_cell(3), L),
    Case("rad-missing-column", RAD, drop_cell(3, 2), L),
    Case("rad-text-in-count", RAD, cell(3, 1, "12abc"), L, outcome="unreadable", injected="12abc"),
    Case("rad-negative-count", RAD, cell(3, 1, "-12"), L, outcome="unreadable", injected="-12"),
    Case("rad-duplicate-country", RAD, duplicate_row(3), L),
    Case("rad-unknown-country", RAD, cell(3, 0, "Atlantis"), r"Atlantis|row"),
    Case("rad-utf16", RAD, utf16, L),
    Case("rad-cp1252", RAD, latin1_with_accents, L),
    Case("rad-huge-cell", RAD, huge_cell(3, 1), L, outcome="unreadable", injected="999999"),
    # IRB irregular crossers (irb_irregular_mhtml)
    Case("irregular-truncated", IRREG, truncate_half, L),
    Case("irregular-empty", IRREG, empty, L),
    Case("irregular-zero-bytes", IRREG, zeros, L),
    Case("irregular-html-not-mhtml", IRREG, html_error_page, L),
    Case("irregular-png", IRREG, png, L),
    Case("irregular-no-table", IRREG, mhtml_edit(lambda h: re.sub(r"<table.*?</table>", "", h, flags=re.S)), L),
    Case("irregular-renamed-header", IRREG, irr_replace("Intake", "Arrivals"), L),
    Case("irregular-missing-column", IRREG, irr_row(2, lambda r: re.sub(r"<td\b[^>]*>.*?</td>", "", r, count=1, flags=re.S)), L),
    Case("irregular-extra-column", IRREG, irr_row(2, lambda r: r.replace("</tr>", "<td>7</td></tr>")), L),
    Case("irregular-text-in-count", IRREG, irr_row(2, lambda r: _set_cell(r, 1, "12abc")), L, outcome="unreadable", injected="12abc"),
    Case("irregular-unknown-country", IRREG, irr_row(2, lambda r: _set_cell(r, 0, "Atlantis")), r"Atlantis|row"),
    Case("irregular-duplicate-country", IRREG, irr_row(2, lambda r: r + r), L),
    # canada.ca pages (canada_ca_claims_html)
    Case("canada-ca-truncated", CACA, truncate_half, L),
    Case("canada-ca-empty", CACA, empty, L),
    Case("canada-ca-zero-bytes", CACA, zeros, L),
    Case("canada-ca-csv-behind-htm", CACA, csv_text, L),
    Case("canada-ca-no-rcmp-table", CACA, html_edit(drop_first_table), L),
    Case("canada-ca-renamed-header", CACA, replace_once(">Provinces<", ">Regions<"), L),
    Case("canada-ca-reordered-months", CACA, swap_headers("Jan", "Feb"), L),
    Case("canada-ca-extra-column", CACA, add_cell(1), L),
    Case("canada-ca-missing-column", CACA, drop_cell(1, 3), L),
    Case("canada-ca-text-in-count", CACA, cell(1, 1, "12abc"), L, outcome="unreadable", injected="12abc"),
    Case("canada-ca-negative-count", CACA, cell(1, 1, "-871"), L, outcome="unreadable", injected="-871"),
    Case("canada-ca-duplicate-province", CACA, duplicate_row(1), L),
    Case("canada-ca-unknown-province", CACA, cell(1, 0, "Atlantis"), L),
    Case("canada-ca-utf16", CACA, utf16, L),
    Case("canada-ca-huge-cell", CACA, huge_cell(1, 1), L, outcome="unreadable", injected="999999"),
    # IRCC open data workbooks (ircc_odp_xlsx)
    Case("ircc-truncated", IRCC_MIG, truncate_half, L),
    Case("ircc-empty", IRCC_MIG, empty, L),
    Case("ircc-zero-bytes", IRCC_MIG, zeros, L),
    Case("ircc-html-behind-xlsx", IRCC_MIG, html_error_page, L),
    Case("ircc-renamed-sheet", IRCC_MIG, rename_sheet(0, "Data"), r"sheet"),
    Case("ircc-empty-sheet", IRCC_MIG, empty_sheet(0), r"sheet"),
    Case("ircc-wrong-title", IRCC_MIG, ws_set(0, "A1", "Asylum claimants"), r"sheet|title"),
    Case("ircc-renamed-year-header", IRCC_OFF, ws_set(0, "C3", "Year 2015"), r"sheet|cell"),
    Case("ircc-text-in-count", IRCC_MIG, ws_set(0, "D5", "12abc"), r"D5"),
    Case("ircc-negative-count", IRCC_MIG, ws_set(0, "D5", "-5"), r"D5"),
    Case("ircc-missing-column", IRCC_OFF, delete_col(0, 4), r"sheet|cell"),
    Case("ircc-unknown-province", IRCC_OFF, ws_set(0, "B8", "Atlantis"), r"sheet|cell|Atlantis"),
    Case("ircc-huge-cell", IRCC_MIG, ws_set(0, "D5", "9" * 32000), r"D5"),
    # UNHCR R data files (unhcr_rda)
    Case("unhcr-truncated", UNHCR_APP, truncate_half, L),
    Case("unhcr-empty", UNHCR_APP, empty, L),
    Case("unhcr-zero-bytes", UNHCR_APP, zeros, L),
    Case("unhcr-csv-behind-rda", UNHCR_APP, csv_text, L),
    Case("unhcr-truncated-stream", UNHCR_APP, rda_truncated_stream, L),
    Case("unhcr-not-xdr", UNHCR_APP, rda_plain_text, L),
    Case("unhcr-renamed-frame", UNHCR_APP, xdr_rename(b"asylum_applications", b"asylum_applicationz"), L),
    Case("unhcr-renamed-column", UNHCR_DEC, xdr_rename(b"\tdec_total", b"\tdec_totax"), L),
]
IDS = [c.id for c in CASES]
assert len(CASES) >= 40 and len(set(IDS)) == len(IDS)


@pytest.fixture(scope="module")
def mutated(base, mirror):
    """case id -> mutated bytes (computed lazily, once)."""
    sources = sources_of(base)
    OTHER["xlsx"] = (mirror / sources[RPD].mirror_path).read_bytes()
    cache: dict[str, bytes] = {}

    def get(case: Case) -> bytes:
        if case.id not in cache:
            original = (mirror / sources[case.source].mirror_path).read_bytes()
            data = case.change(original)
            assert data != original, f"{case.id}: the mutation changed nothing"
            cache[case.id] = data
        return cache[case.id]

    return get


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bad_input_case(case, base, mutated, tmp_path):
    root = project_with(base, tmp_path / "p", keep_raw={case.source})
    put_raw(root, case.source, mutated(case))
    if case.outcome == "error":
        package_fails(root, case.source, case.where)
    else:
        package_reads_unreadable(root, case)


def package_reads_unreadable(root: Path, case: Case) -> None:
    """The cell becomes NULL with a short note saying what it held; no number comes from it."""
    result = run(root, "package", "--silent")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    noted = 0
    for path in (root / "datapackage" / "data").glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("source_id") != case.source:
                    continue
                assert max(map(len, row.values())) < 2000, f"{path.name}: a huge field was written"
                assert case.injected not in [v for k, v in row.items() if k != "notes"], row
                if case.injected.lstrip("-") in (row.get("notes") or "") and "cell held" in row["notes"]:
                    noted += 1
    assert noted >= 1, f"no row of {case.source} notes the unreadable cell {case.injected!r}"


@pytest.mark.parametrize("case_id", ["canada-ca-truncated", "canada-ca-unknown-province", "rad-no-table"])
def test_full_project_bad_input(case_id, base, mutated, tmp_path):
    """The same outcome with every raw file present (the whole parse, not one file)."""
    case = next(c for c in CASES if c.id == case_id)
    root = project_with(base, tmp_path / "p", keep_raw=None)
    put_raw(root, case.source, mutated(case))
    package_fails(root, case.source, case.where)


def test_unknown_country_label_is_refused_after_parsing(base, mutated, tmp_path):
    """A label the parser accepts but no alias resolves stops packaging, naming the cell."""
    case = next(c for c in CASES if c.id == "rpd-unknown-country")
    root = project_with(base, tmp_path / "p", keep_raw={case.source})
    put_raw(root, case.source, mutated(case))
    out = package_fails(root, case.source, None)
    assert "Atlantis" in out


def test_unchecked_change_is_not_parsed(base, mutated, tmp_path):
    """Bytes whose checksum is not on record are never parsed into the package."""
    case = next(c for c in CASES if c.id == "rad-text-in-count")
    root = project_with(base, tmp_path / "p", keep_raw={case.source})
    src = sources_of(root)[case.source]
    (root / "build" / "raw" / src.raw_name).write_bytes(mutated(case))
    result = run(root, "package", "--silent")
    # either refused, or packaged without that source: its mutated cell never appears
    if result.exit_code == 0:
        for path in (root / "datapackage" / "data").glob("*.csv"):
            assert "12abc" not in path.read_text(encoding="utf-8")
    else:
        assert result.output.startswith("Error: ") and "Traceback" not in result.output


def test_debug_shows_the_traceback(base, mutated, tmp_path):
    case = next(c for c in CASES if c.id == "rad-empty")
    root = project_with(base, tmp_path / "p", keep_raw={case.source})
    put_raw(root, case.source, mutated(case))
    from click.testing import CliRunner

    from canada_asylum_data.cli import cli

    result = CliRunner().invoke(cli, ["--root", str(root), "--debug", "package", "--silent"])
    assert result.exit_code != 0
    assert result.exception is not None and not isinstance(result.exception, SystemExit)


def test_parse_errors_are_domain_errors(base, mutated):
    """Straight through the library: every corpus case raises a CadError (no bare exception)."""
    from canada_asylum_data.errors import CadError

    sources = sources_of(base)
    for case in [c for c in CASES if c.source in (RAD, CACA, IRREG)][:12]:
        path = base / "build" / f"corpus-{case.id}"
        path.write_bytes(mutated(case))
        try:
            parsed = parse_source(sources[case.source], path)
        except CadError as exc:
            assert case.source in exc.message
        else:  # accepted by the parser: then normalization must refuse it (checked via CLI above)
            assert any(isinstance(v, Count) for rows in parsed.tables.values() for r in rows for v in r.values())
        finally:
            path.unlink()


# --------------------------------------------------------------------------- network, through the CLI

class _Served:
    """A local HTTP server on 127.0.0.1 serving one real raw file in good and bad ways."""

    def __init__(self, body: bytes):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hits: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                n = hits[self.path] = hits.get(self.path, 0) + 1
                status, data, ctype = 200, body, "application/octet-stream"
                if self.path == "/changed":  # same size, other bytes
                    data = body[:-18] + b"\n<!-- changed -->\n"
                elif self.path == "/bigger":
                    data = body + b"\n<!-- changed -->\n"
                elif self.path == "/flaky" and n == 1:
                    status, data = 500, b"oops"
                elif self.path == "/error-page":
                    data, ctype = b"<html><body>Service unavailable</body></html>", "text/html"
                elif self.path == "/truncated":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    return
                elif self.path != "/good" and self.path != "/flaky":
                    status, data = 404, b"not found"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _point_source_at(root: Path, source_id: str, url: str, archive_url: str) -> None:
    src = sources_of(root)[source_id]
    for path in (root / "datapackage" / "sources.d").glob("*.yml"):
        text = path.read_text()
        marker = f"id: {source_id}\n"
        if marker not in text:
            continue
        start = text.index(marker)
        end = text.find("\n- id:", start)
        end = len(text) if end < 0 else end
        block = text[start:end].replace(f"url: {src.url}\n", f"url: {url}\n", 1)
        if src.archive_url:
            block = block.replace(f"archive_url: {src.archive_url}\n", f"archive_url: {archive_url}\n", 1)
        path.write_text(text[:start] + block + text[end:])
    changed = sources_of(root)[source_id]
    assert changed.url == url and (not src.archive_url or changed.archive_url == archive_url), \
        "could not point the source at the local server"


@pytest.mark.parametrize("path, ok, expected", [
    ("/good", True, None),
    ("/flaky", True, None),
    ("/changed", False, "checksum mismatch for source " + RAD),
    ("/bigger", False, "more than the 111752 allowed for source " + RAD),
    ("/error-page", False, RAD),
    ("/truncated", False, RAD),
    ("/missing", False, RAD),
])
def test_fetch_online_through_the_cli(base, mirror, tmp_path, path, ok, expected):
    """`fetch --online --only ID` against 127.0.0.1: good and retried downloads land verified;
    every fault is `Error: ...` naming the source, and build/raw holds nothing half-written."""
    root = project_with(base, tmp_path / "p", keep_raw=set())
    src = sources_of(root)[RAD]
    served = _Served((mirror / src.mirror_path).read_bytes())
    try:
        _point_source_at(root, RAD, served.url + path, served.url + "/missing")
        before = digest_tree(root)
        result = run(root, "fetch", "--online", "--only", RAD, "--silent")
    finally:
        served.close()
    raw = root / "build" / "raw"
    leftovers = [p.name for p in raw.iterdir() if p.name != "fetch-log.json"] if raw.exists() else []
    if ok:
        assert result.exit_code == 0, result.output
        assert leftovers == [src.raw_name]
        assert hashlib.sha256((raw / src.raw_name).read_bytes()).hexdigest() == src.sha256
    else:
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and "Traceback" not in result.output, result.output
        assert expected in result.output, result.output
        assert leftovers == [], leftovers
    after = digest_tree(root)
    assert {k: v for k, v in after.items() if k.startswith("datapackage/data") or k == "metadata.yml"} == \
        {k: v for k, v in before.items() if k.startswith("datapackage/data") or k == "metadata.yml"}
