"""Second bad-input corpus: hostile files and inputs, as an attacker or an unlucky operator
would send them. Every case is generated here (in tmp_path; nothing large is committed)
and run through the real CLI on a copy of a prepared project. The outcome must be
``Error: <what>, <where>, <what to do>``, exit code 1, no traceback, and ``datapackage/``,
``metadata.yml`` and the database byte-identical.

* raw files beyond their parser's LIMITS (limits.py): an .xlsx zip bomb, a member that
  unpacks 1,000 times its size, a single cell at a far row or column, a dimension that
  claims the whole sheet, a 200 MB IRB page, HTML nested 100,000 deep (a page, and the
  page inside an MHTML archive), MHTML nested 5,000 multiparts deep and one of 200,000
  parts;
* a native reader's crash (calamine's abort on a far cell, with the caps lifted) caught in
  the process it runs in and reported as an Error naming the source, alone or in the pool;
* schema files checked as inputs (schema_check.py): a field without a name, a primary key
  naming a missing column, a constraint of the wrong type, unknown keys, a foreign key to
  nowhere, a pattern that does not compile, a bad `_common.yaml`;
* YAML inputs loaded safely (yamlio.py): a "billion laughs" in a sources.d record (refresh
  hung on it), in a schema's caveats (2.8 GB), in views.yml; an oversized YAML file.
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from pathlib import Path

import pytest

from canada_asylum_data.limits import Limits, check_raw, html_depth

from .conftest import digest_tree, run
from .test_bad_input_corpus import (  # noqa: F401 - base is a fixture
    CACA, IRCC_MIG, IRCC_OFF, IRREG, RAD, RPD, base, mhtml_edit, package_fails, project_with,
    put_raw, sources_of)

MiB = 1 << 20


# --------------------------------------------------------------------------- generators

def _rewrite_zip(data: bytes, member: str, fn) -> bytes:
    """The workbook with one member's bytes passed through ``fn`` (others copied as they are)."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in zin.infolist():
            body = zin.read(info.filename)
            z.writestr(info, fn(body) if info.filename == member else body)
    return out.getvalue()


def zip_bomb(unpacked: int):
    """sheet1.xml padded with ``unpacked`` bytes of blanks before <sheetData> (valid XML, a
    few hundred KiB packed): what a zip bomb looks like to a reader that trusts it."""

    def change(data: bytes) -> bytes:
        zin = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for info in zin.infolist():
                body = zin.read(info.filename)
                if info.filename != "xl/worksheets/sheet1.xml":
                    z.writestr(info, body)
                    continue
                at = body.index(b"<sheetData")
                member = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                member.compress_type = zipfile.ZIP_DEFLATED
                with z.open(member, "w", force_zip64=True) as w:
                    w.write(body[:at])
                    block = b" " * (4 * MiB)
                    for _ in range(unpacked // len(block)):
                        w.write(block)
                    w.write(body[at:])
        return out.getvalue()

    return change


def far_cell(ref: str, row: int, dimension: bool = True, quote: str = '"'):
    """One more cell, at ``ref`` (e.g. XFD1048576), in sheet1; the dimension says so too."""

    def fn(xml: bytes) -> bytes:
        text = xml.decode("utf-8")
        if dimension:
            text = re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="A1:{ref}"/>', text)
        q = quote
        cell = f'<row r="{row}"><c r = {q}{ref}{q} t="inlineStr"><is><t>x</t></is></c></row>' if q != '"' \
            else f'<row r="{row}"><c r="{ref}" t="inlineStr"><is><t>x</t></is></c></row>'
        return text.replace("</sheetData>", cell + "</sheetData>", 1).encode("utf-8")

    return lambda data: _rewrite_zip(data, "xl/worksheets/sheet1.xml", fn)


def dimension_only(ref: str):
    """The sheet's dimension claims A1:<ref>; no cell is added."""

    def fn(xml: bytes) -> bytes:
        text = xml.decode("utf-8")
        new = re.sub(r'<dimension ref="[^"]*"\s*/>', f'<dimension ref="A1:{ref}"/>', text)
        assert new != text
        return new.encode("utf-8")

    return lambda data: _rewrite_zip(data, "xl/worksheets/sheet1.xml", fn)


def big_page(size: int):
    """The real page with ``size`` bytes of blanks in a comment before </body>."""

    def change(data: bytes) -> bytes:
        at = data.index(b"</body>")
        return b"".join([data[:at], b"<!--", b" " * size, b"-->", data[at:]])

    return change


def deep_html(depth: int):
    def change(data: bytes) -> bytes:
        at = data.index(b">", data.index(b"<body")) + 1
        return data[:at] + b"<div>" * depth + b"</div>" * depth + data[at:]

    return change


def deep_mime(depth: int):
    """An MHTML archive whose first part is a multipart nested ``depth`` levels deep."""

    def change(_: bytes) -> bytes:
        out = [b'From: <Saved by Blink>\r\nMIME-Version: 1.0\r\n'
               b'Content-Type: multipart/related; type="text/html"; boundary="b0"\r\n\r\n']
        for i in range(depth):
            out.append(b'--b%d\r\nContent-Type: multipart/related; boundary="b%d"\r\n\r\n' % (i, i + 1))
        out.append(b"--b%d\r\nContent-Type: text/html\r\n\r\n<html><body>x</body></html>\r\n--b%d--\r\n"
                   % (depth, depth))
        out += [b"--b%d--\r\n" % i for i in reversed(range(depth))]
        return b"".join(out)

    return change


def many_parts(n: int):
    """The real archive with ``n`` tiny parts added before its closing delimiter."""

    def change(data: bytes) -> bytes:
        boundary = re.search(rb'boundary="([^"]+)"', data).group(1)
        close = data.rindex(b"--" + boundary + b"--")
        part = b"--" + boundary + b"\r\nContent-Type: image/png\r\nContent-Location: x%d\r\n\r\nx\r\n"
        return data[:close] + b"".join(part % i for i in range(n)) + data[close:]

    return change


@dataclasses.dataclass
class Case:
    id: str
    source: str
    change: object
    expected: tuple[str, ...]


FILE_CASES = [
    Case("ircc-zip-bomb", IRCC_MIG, zip_bomb(256 * MiB),
         ("the workbook unpacks to", "a zip bomb?", "max_unpacked_bytes", "xl/worksheets/sheet1.xml",
          "parsers/ircc_odp_xlsx.py")),
    Case("ircc-member-ratio", IRCC_MIG, zip_bomb(48 * MiB),
         ("a workbook member unpacks", "times its packed size", "max_ratio")),
    Case("ircc-far-cell", IRCC_MIG, far_cell("XFD1048576", 1048576),
         ("a sheet reaches row 1,048,576", "max_rows", "xl/worksheets/sheet1.xml")),
    Case("ircc-far-column", IRCC_MIG, far_cell("XFD1", 1, dimension=False),
         ("a sheet reaches column 16,384", "max_cols")),
    Case("ircc-far-column-other-spelling", IRCC_MIG, far_cell("XFD7", 7, dimension=False, quote="'"),
         ("a sheet reaches column 16,384", "max_cols")),
    Case("ircc-far-cell-office", IRCC_OFF, far_cell("XFD1048576", 1048576),
         ("a sheet reaches row 1,048,576", "max_rows")),
    Case("rpd-far-cell", RPD, far_cell("XFD1048576", 1048576),
         ("a sheet reaches row 1,048,576", "max_rows", "parsers/irb_rpd_xlsx.py")),
    Case("rpd-dimension-claims-whole-sheet", RPD, dimension_only("XFD1048576"),
         ("dimension A1:XFD1048576", "max_rows")),
    Case("rad-200mb-page", RAD, big_page(200_000_000),
         ("the raw file is 190.8 MiB", "max_bytes", "parsers/irb_stat_html.py")),
    Case("rad-nested-100000-deep", RAD, deep_html(100_000),
         ("nests elements more than 200 deep", "max_html_depth")),
    Case("canada-ca-nested-100000-deep", CACA, deep_html(100_000),
         ("nests elements more than 200 deep", "max_html_depth", "parsers/canada_ca_claims_html.py")),
    Case("irregular-nested-mime", IRREG, deep_mime(5_000),
         ("5,001 multipart containers", "max_multiparts", "parsers/irb_irregular_mhtml.py")),
    Case("irregular-200000-parts", IRREG, many_parts(200_000),
         ("200,026 MIME parts", "max_parts")),
    Case("irregular-page-nested-deep", IRREG,
         mhtml_edit(lambda h: h.replace("<body", "<div>" * 20_000 + "<body", 1)),
         ("nests elements more than 200 deep", "first text/html part", "max_html_depth")),
]


@pytest.fixture(scope="module")
def originals(base, mirror):
    sources = sources_of(base)
    return lambda source_id: (mirror / sources[source_id].mirror_path).read_bytes()


@pytest.mark.parametrize("case", FILE_CASES, ids=[c.id for c in FILE_CASES])
def test_hostile_file(case, base, originals, tmp_path):
    root = project_with(base, tmp_path / "p", keep_raw={case.source})
    data = case.change(originals(case.source))
    put_raw(root, case.source, data)
    del data
    out = package_fails(root, case.source, None)
    for text in case.expected:
        assert text in out, f"{text!r} not in: {out}"
    assert "get it again from the publisher" in out, out


# --------------------------------------------------------------------------- native readers

def _no_shape_caps(monkeypatch):
    """Lift the IRCC workbook caps, so a far cell reaches calamine (which aborts on it)."""
    import canada_asylum_data.parsers.ircc_odp_xlsx as ircc

    monkeypatch.setattr(ircc, "LIMITS", dataclasses.replace(ircc.LIMITS, max_rows=None, max_cols=None))
    assert ircc.LIMITS.native


@pytest.mark.parametrize("keep", [{IRCC_MIG}, {IRCC_MIG, IRCC_OFF}], ids=["alone", "in-the-pool"])
def test_native_reader_crash_is_an_error(keep, base, originals, tmp_path, monkeypatch):
    """calamine aborts the process (SIGABRT) on a cell at XFD1048576: the parse runs in a
    process of its own (alone) or a pool worker whose death is caught (with another source),
    and the crash becomes an Error naming the source and what the reader said."""
    _no_shape_caps(monkeypatch)
    root = project_with(base, tmp_path / "p", keep_raw=keep)
    put_raw(root, IRCC_MIG, far_cell("XFD1048576", 1048576)(originals(IRCC_MIG)))
    out = package_fails(root, IRCC_MIG, None)
    assert "the process parsing the raw file died (killed by SIGABRT" in out, out
    assert "memory allocation" in out, out
    assert IRCC_OFF not in out, out


def test_real_files_pass_their_limits_with_room_to_spare(base, mirror):
    """Every real raw file still passes its parser's LIMITS divided by four (the caps are not
    set so tight that a slightly larger release would be refused)."""
    from canada_asylum_data.parsers import get_module

    checked = 0
    for source in sources_of(base).values():
        if source.parser == "none" or not source.mirror_path:
            continue
        limits = getattr(get_module(source.parser), "LIMITS", None)
        assert limits is not None, f"parser {source.parser} declares no LIMITS"
        quarter = {f.name: (max(1, getattr(limits, f.name) // 4) if isinstance(getattr(limits, f.name), int)
                            and not isinstance(getattr(limits, f.name), bool) else getattr(limits, f.name))
                   for f in dataclasses.fields(Limits)}
        if quarter["max_ratio"]:
            quarter["max_ratio"] = limits.max_ratio / 4
        check_raw(mirror / source.mirror_path, source, Limits(**quarter))
        checked += 1
    assert checked >= 40


def test_html_depth_reads_real_pages_like_lxml(mirror):
    """The tag scan behind max_html_depth agrees with lxml's tree on the real pages (within
    the two elements lxml adds), so the cap means what it says."""
    import lxml.html

    pages = sorted(mirror.glob("*/*.htm"))
    assert len(pages) >= 10
    for path in pages:
        data = path.read_bytes()
        doc = lxml.html.document_fromstring(data)
        deepest = max(sum(1 for _ in el.iterancestors()) + 1 for el in doc.iter())
        assert abs(html_depth(data) - deepest) <= 2, path.name
    assert html_depth(b"<p>a<p>b<p>c<ul><li>x<li>y</ul>") == 3
    assert html_depth(b"<!-- <div><div><div> --><script>'<div><div>'</script><br><br>") == 0


# --------------------------------------------------------------------------- schemas

def _edit(root: Path, rel: str, fn) -> None:
    path = root / "datapackage" / rel
    text = path.read_text(encoding="utf-8")
    new = fn(text)
    assert new != text, f"the edit of {rel} changed nothing"
    path.write_text(new, encoding="utf-8")


def _replace(old: str, new: str):
    def fn(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return fn


RAD_SCHEMA = "schemas/irb_rad_appeals.yaml"
SCHEMA_CASES = [
    ("field-without-name", RAD_SCHEMA, _replace("  - name: filed\n    type:", "  - type:"),
     ("field 6 has no `name`", "irb_rad_appeals.yaml line", "(fields[5])", "give it `name: <column>`")),
    ("primary-key-missing-column", RAD_SCHEMA,
     _replace("primary_key: [year, country_label]", "primary_key: [year, no_such_col]"),
     ("primary_key names column 'no_such_col', which is not a field of irb_rad_appeals",
      "irb_rad_appeals.yaml line", "use one of the fields")),
    ("constraint-wrong-type", RAD_SCHEMA,
     _replace("constraints: {minimum: 0}", 'constraints: {minimum: "0"}'),
     ("constraint minimum: '0' does not fit the integer column 'filed'", "(fields[5] 'filed')",
      "write minimum as a bare integer")),
    ("constraint-on-string", RAD_SCHEMA,
     _replace("- use: period_start", "- {use: country_label, name: label2, constraints: {maximum: 3}}\n  - use: period_start"),
     ("constraint maximum: 3 does not fit the string column 'label2'",)),
    ("unknown-field-key", RAD_SCHEMA,
     _replace("    unit: appellants (persons)\n", "    units: appellants (persons)\n"),
     ("'units' was unexpected", "irb_rad_appeals.yaml line", "remove or rename the unknown key")),
    ("unknown-top-level-key", RAD_SCHEMA, _replace("reconcile: exact", "reconcile: exact\nreconcil: exact"),
     ("'reconcil' was unexpected", "(top level)")),
    ("unquoted-comma-in-flow-mapping", "schemas/sources.yaml",
     _replace('description: "Provenance and caveats (third-party copies, inferred periods, known publisher errors)."',
              "description: Provenance and caveats (third-party copies, inferred periods, known publisher errors)."),
     ("'inferred periods', 'known publisher errors).' were unexpected", "sources.yaml line 37", "quote it")),
    ("unknown-reconcile-rule", RAD_SCHEMA, _replace("reconcile: exact", "reconcile: roughly"),
     ("'roughly' is not one of ['exact', 'rounded5']", "(reconcile)", "use one of the values shown")),
    ("foreign-key-to-nowhere", RAD_SCHEMA, _replace("{resource: countries, fields: [code]}", "{resource: nations, fields: [code]}"),
     ("a foreign key points at table 'nations', which has no schema",)),
    ("facet-missing-column", RAD_SCHEMA, _replace("facets: [year, country_code]", "facets: [year, country]"),
     ("facets names column 'country'",)),
    ("pattern-does-not-compile", RAD_SCHEMA,
     _replace("constraints: {minimum: 0}", 'constraints: {minimum: 0, pattern: "[0-9"}'),
     ("is not a regular expression",)),
    ("common-field-unknown-key", "schemas/_common.yaml",
     _replace("  year:\n    type: integer\n", "  year:\n    type: integer\n    nullable: false\n"),
     ("'nullable' was unexpected", "_common.yaml line", "(fields.year)")),
    ("use-of-unknown-common-field", RAD_SCHEMA, _replace("- use: period_start", "- use: period_begin"),
     ("uses unknown common field 'period_begin'", "use one of year, month")),
]


@pytest.mark.parametrize("case_id, rel, change, expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_mistake_is_named(case_id, rel, change, expected, base, tmp_path):
    root = project_with(base, tmp_path / "p", keep_raw={RAD})
    _edit(root, rel, change)
    out = _fails(root, "package")
    assert "schema" in out and rel.split("/")[-1] in out, out
    for text in expected:
        assert text in out, f"{text!r} not in: {out}"


def test_committed_schemas_pass_the_schema_of_schemas():
    from canada_asylum_data.schema_check import COMMON_SCHEMA, TABLE_SCHEMA, _validator
    from canada_asylum_data.schemas import load_schemas
    from canada_asylum_data.yamlio import read_yaml

    from .conftest import DATAPACKAGE

    assert len(load_schemas(DATAPACKAGE / "schemas")) >= 20
    for path in (DATAPACKAGE / "schemas").glob("*.yaml"):
        which = "common" if path.name == "_common.yaml" else "table"
        errors = list(_validator(which).iter_errors(read_yaml(path)))
        assert errors == [], f"{path.name}: {[e.message for e in errors]}"
    assert TABLE_SCHEMA["additionalProperties"] is False and COMMON_SCHEMA["additionalProperties"] is False


# --------------------------------------------------------------------------- YAML

LAUGHS = "\n".join(["x_lol0: &l0 [lol]"] + [
    f"x_lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)])


def _fails(root: Path, *args: str) -> str:
    before = digest_tree(root)
    result = run(root, *args, "--silent")
    out = result.output
    assert result.exit_code == 1, out
    assert out.startswith("Error: ") and "Traceback" not in out, out
    assert digest_tree(root) == before, "outputs changed after a failed run"
    return out


def test_billion_laughs_in_a_sources_record_stops_refresh(base, mirror, tmp_path):
    """refresh hung on this; now it stops before fetching anything."""
    root = project_with(base, tmp_path / "p", keep_raw=set())
    _edit(root, "sources.d/irb.yml", lambda t: LAUGHS + "\n" + t.replace(
        "- id: irb-rad-2019\n", "- id: irb-rad-2019\n  lol: *l9\n", 1))
    out = _fails(root, "refresh", "--mirror", str(mirror))
    assert "YAML alias *l0" in out and "sources.d/irb.yml line 2" in out, out
    assert "write the value out in full" in out, out


def test_billion_laughs_in_schema_caveats(base, tmp_path):
    """2.8 GB before; now refused before anything is built from the file."""
    root = project_with(base, tmp_path / "p", keep_raw={RAD})
    _edit(root, RAD_SCHEMA, _replace("caveats: >-", LAUGHS + "\ncaveats: *l9\nold_caveats: >-"))
    out = _fails(root, "package")
    assert "YAML alias *l0" in out and "irb_rad_appeals.yaml line" in out, out


def test_billion_laughs_in_views(base, tmp_path):
    root = project_with(base, tmp_path / "p", keep_raw=set())
    _edit(root, "views.yml", lambda t: LAUGHS + "\n" + t)
    out = _fails(root, "build")
    assert "YAML alias *l0" in out and "views.yml line 2" in out, out


def test_oversized_yaml_input(base, tmp_path):
    root = project_with(base, tmp_path / "p", keep_raw={RAD})
    _edit(root, "aliases/irb.yml", lambda t: t + "# padding\n" * 300_000)
    out = _fails(root, "package")
    assert "the YAML file is 3,0" in out and "more than the 2,097,152" in out and "aliases/irb.yml" in out, out


def test_anchors_without_aliases_still_load():
    from canada_asylum_data.errors import ConfigError
    from canada_asylum_data.yamlio import load_yaml

    assert load_yaml("a: &x [1, 2]\nb: 3\n") == {"a": [1, 2], "b": 3}
    with pytest.raises(ConfigError, match=r"alias \*x.*line 2"):
        load_yaml("a: &x [1, 2]\nb: *x\n", "f.yml")
