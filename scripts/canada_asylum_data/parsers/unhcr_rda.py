"""UNHCR asylum applications and decisions, from the R data files of UNHCR's own
``refugees`` package (``data/asylum_applications.rda``, ``data/asylum_decisions.rda``).

Each file is an RData file (bzip2-compressed as shipped) holding one data.frame in long
form: one row per year x origin x asylum country x procedure type x application type (not in
decisions) x decision level x persons/cases. We keep every row whose country of asylum is
Canada (``coa_iso == "CAN"``) or whose country of origin is the United States
(``coo_iso == "USA"``), all years and all codes, and keep UNHCR's letter codes as they are;
:data:`CODE_LISTS` says what each code means (as far as UNHCR documents it).

Quirks handled here (see unhcr/SOURCES.md):

* ``coo_iso`` is not always ISO 3166-1: UNHCR uses ``UNK`` (unknown), ``XXA`` (stateless) and
  ``TIB`` (Tibetan). Codes go through the country resolver (alias file
  ``datapackage/aliases/unhcr.yml`` first), then the printed name as a fallback; a code that
  resolves to nothing is an error.
* the dec_level and app_type code ``NA`` is a real code ("new applications"), not R's
  missing value (UNHCR's build script only treats ``-`` as missing).
* counts are R doubles; :func:`~canada_asylum_data.cells.read_count` turns them into ints.
* the files print no totals, so ``Parsed.totals`` stays empty.
"""

from __future__ import annotations

import bz2
import math
import lzma
import zlib
from pathlib import Path

from functools import lru_cache

from ..cells import clean_text, read_count
from ..errors import ConfigError
from .base import Parsed, fail, read_bytes
from ..limits import MB, Limits

FAMILY = "unhcr"
#: Caps checked before pyreadr reads the file (limits.check_raw): the real files are at most
#: 527 KiB. librdata is native code: its parse runs where an abort is caught (native=True).
LIMITS = Limits("rdata", max_bytes=64 * MB, native=True)

#: What we keep: rows about Canada as country of asylum, or the US as country of origin.
ASYLUM_KEPT = "CAN"
ORIGIN_KEPT = "USA"

_KEYS = ["year", "coo_name", "coo", "coo_iso", "coa_name", "coa", "coa_iso", "procedure_type"]

#: series (fact table) -> (name of the data.frame in the .rda, its columns, count columns
#: -> our names, code columns -> (our name, code list)).
LAYOUTS: dict[str, dict] = {
    "unhcr_asylum_applications": {
        "object": "asylum_applications",
        "columns": _KEYS + ["app_type", "dec_level", "app_pc", "applied"],
        "codes": {"procedure_type": "procedure_type", "app_type": "app_type",
                  "dec_level": "dec_level", "app_pc": "app_pc"},
        "counts": {"applied": "applied"},
    },
    "unhcr_asylum_decisions": {
        "object": "asylum_decisions",
        "columns": _KEYS + ["dec_level", "dec_pc", "dec_recognized", "dec_other",
                            "dec_rejected", "dec_closed", "dec_total"],
        "codes": {"procedure_type": "procedure_type", "dec_level": "dec_level",
                  "dec_pc": "dec_pc"},
        "counts": {"dec_recognized": "recognized", "dec_other": "complementary_protection",
                   "dec_rejected": "rejected", "dec_closed": "otherwise_closed",
                   "dec_total": "total_decisions"},
    },
}

#: Option of the mid-year releases (``YYYY.6.x``): their last year holds January-June only.
FIRST_HALF = "first_half"
#: Table of the first halves of a yearly table (same columns plus the half-year columns).
H1_SUFFIX = "_h1"


@lru_cache(maxsize=None)
def primary_key(table: str) -> tuple[str, ...]:
    """The table's primary key, as its schema in datapackage/schemas/ declares it."""
    from ..schemas import load_schemas

    schema_dir = Path(__file__).resolve().parents[3] / "datapackage" / "schemas"
    schemas = load_schemas(schema_dir)
    if table not in schemas or not schemas[table].primary_key:
        raise ConfigError(f"no schema with a primary key for table {table!r}", str(schema_dir),
                          f"add datapackage/schemas/{table}.yaml")
    return tuple(schemas[table].primary_key)


_DOC = ("UNHCR, refugees R package documentation of asylum_applications / asylum_decisions "
        "(https://github.com/PopulationStatistics/refugees, man/asylum_applications.Rd)")
_UNDOC = "Meaning not documented by UNHCR"


def _undocumented(extra: str = "") -> dict:
    text = _UNDOC + " (the refugees package documentation names only the common codes)."
    return {"label_en": "", "label_fr": "", "description": f"{text} {extra}".strip()}


#: Meaning of every UNHCR letter code that appears in the files, from the documentation of
#: UNHCR's refugees package (quoted in the description). Codes the documentation does not
#: explain keep an empty label and say so; nothing here is guessed.
CODE_LISTS: dict[str, dict[str, dict[str, str]]] = {
    "procedure_type": {
        "G": {"label_en": "Government", "label_fr": "Gouvernement",
              "description": "Asylum claim lodged with the government authorities. UNHCR: \"The "
                             "procedure type describes the authority with whom the asylum claim "
                             f"was lodged\" (G - Government). Source: {_DOC}."},
        "J": {"label_en": "Joint", "label_fr": "Conjointe",
              "description": "Claim lodged in a procedure run jointly by the government and "
                             f"UNHCR (J - Joint). Source: {_DOC}."},
        "U": {"label_en": "UNHCR", "label_fr": "HCR",
              "description": "Claim lodged with UNHCR, which determines refugee status under its "
                             f"mandate (U - UNHCR). Source: {_DOC}."},
    },
    "app_type": {
        "N": {"label_en": "New", "label_fr": "Nouvelle",
              "description": "New application. UNHCR: \"The application type describes the stage "
                             f"of the procedure\" (N - New). Source: {_DOC}."},
        "R": {"label_en": "Repeat", "label_fr": "Réitérée",
              "description": f"Repeat application (R - Repeat). Source: {_DOC}."},
        "A": {"label_en": "Appeal", "label_fr": "Appel",
              "description": f"Appeal (A - Appeal). Source: {_DOC}."},
        "V": _undocumented("In the USA -> Canada rows it is the application type of 2000-2005 "
                           "(new applications are coded N from 2006)."),
        "NR": _undocumented(),
        "J": _undocumented(),
        "NA": _undocumented("As a decision level, NA means \"New applications\"."),
        "RA": _undocumented("As a decision level, RA means \"repeat/reopened applications\"."),
        "FA": _undocumented(),
        "SP": _undocumented(),
    },
    "dec_level": {
        "NA": {"label_en": "New applications", "label_fr": "Nouvelles demandes",
               "description": "UNHCR: \"The decision level provides more detail of the stage of "
                              f"the procedure\" (NA - New applications). Source: {_DOC}. Note: "
                              "the code is the two letters N and A, not a missing value."},
        "RA": {"label_en": "Repeat/reopened applications",
               "label_fr": "Demandes réitérées ou rouvertes",
               "description": f"RA - repeat/reopened applications. Source: {_DOC}."},
        "AR": {"label_en": "Administrative review", "label_fr": "Révision administrative",
               "description": f"AR - administrative review. Source: {_DOC}."},
        "FI": _undocumented("It is the decision level of most new (N) applications, including "
                            "Canada's; the project's source notes read it as first instance."),
        "FA": _undocumented("USA -> Canada new applications of 2007 carry it."),
        "JR": _undocumented(),
        "EO": _undocumented(),
        "IN": _undocumented(),
        "TA": _undocumented(),
        "SP": _undocumented(),
        "CA": _undocumented(),
        "BL": _undocumented(),
        "TP": _undocumented(),
        "TR": _undocumented(),
        "0": _undocumented("Appears once, in the mid-year release 2023.6.0 (Türkiye -> Canada, "
                           "first half of 2023, application type R, 5 persons); no later release "
                           "uses it. Kept as published."),
    },
    "app_pc": {
        "P": {"label_en": "Persons", "label_fr": "Personnes",
              "description": "The figures count persons. UNHCR: the data type \"describes whether "
                             "the data provided reflects cases or persons\"; most governments "
                             f"report persons. Source: {_DOC}."},
        "C": {"label_en": "Cases", "label_fr": "Dossiers",
              "description": "The figures count cases; \"a case can contain information on one or "
                             "more persons\" (UNHCR names the USA as a country reporting cases). "
                             f"Source: {_DOC}."},
    },
}
CODE_LISTS["dec_pc"] = {code: dict(v) for code, v in CODE_LISTS["app_pc"].items()}


def reference_tables() -> dict[str, list[dict]]:
    """Published with the package as the unhcr_codes lookup table."""
    return {"unhcr_codes": code_rows()}


def code_rows() -> list[dict]:
    """Rows of the ``unhcr_codes`` reference table."""
    return [{"code_list": lst, "code": code, **meaning}
            for lst, codes in CODE_LISTS.items() for code, meaning in codes.items()]


# ---------------------------------------------------------------------------------------

_MAGIC = (
    (b"BZh", "bzip2", bz2.BZ2Decompressor),
    (b"\x1f\x8b", "gzip", lambda: zlib.decompressobj(wbits=31)),
    (b"\xfd7zXZ\x00", "xz", lzma.LZMADecompressor),
    (b"RDX", "uncompressed", None),
    (b"RDA", "uncompressed", None),
)


def _container(data: bytes, source, where: str) -> tuple[str, object]:
    for magic, kind, decompressor in _MAGIC:
        if data.startswith(magic):
            return kind, decompressor
    raise fail(source, where, f"not an R data file (.rda): it starts with {data[:12]!r} instead "
                              "of a bzip2/gzip/xz header or RDX2/RDX3")


def _diagnose(data: bytes, kind: str, decompressor) -> str:
    """Say why pyreadr could not read the file (only called after a failure)."""
    if decompressor is None:
        return "the uncompressed R data stream is damaged"
    engine = decompressor()
    try:
        inner = engine.decompress(data)
    except (OSError, ValueError, EOFError, lzma.LZMAError, zlib.error) as exc:
        return f"the {kind} stream is damaged ({exc})"
    if not engine.eof:
        return f"the {kind} stream is truncated (the file ends before the compressed data does)"
    if not inner.startswith((b"RDX", b"RDA")):
        return f"the {kind} file does not hold R data (it starts with {inner[:12]!r})"
    return f"the R data inside the {kind} stream is damaged or of an unsupported kind"


def _read_frame(path: Path, source, layout: dict):
    data = read_bytes(path, source)
    where = path.name
    kind, decompressor = _container(data, source, where)
    try:
        import pyreadr

        objects = pyreadr.read_r(str(path))
    except Exception as exc:  # pyreadr raises LibrdataError/PyreadrError and others
        why = _diagnose(data, kind, decompressor)
        raise fail(source, where, f"cannot read the R data file: {why} (pyreadr: {exc})") from exc
    name = layout["object"]
    if name not in objects:
        found = ", ".join(repr(k) for k in objects) or "no data.frame at all"
        raise fail(source, where, f"no data.frame named {name!r} in the file (found {found})",
                   "check that the file is the refugees package's data/" + name + ".rda")
    frame = objects[name]
    expected = layout["columns"]
    have = [str(c) for c in frame.columns]
    missing = [c for c in expected if c not in have]
    extra = [c for c in have if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing column(s) " + ", ".join(missing))
        if extra:
            parts.append("unexpected column(s) " + ", ".join(extra))
        raise fail(source, f"{where} data.frame {name!r} header",
                   "; ".join(parts) + " (renamed upstream?)")
    return frame


#: Decision outcomes that, as UNHCR documents them, make up dec_total.
DECISION_PARTS = ("recognized", "complementary_protection", "rejected", "otherwise_closed")


def _components_note(row: dict) -> str | None:
    """Publisher inconsistency kept as published: the outcomes do not add up to the total."""
    parts = [row[m].value for m in DECISION_PARTS]
    total = row["total_decisions"].value
    if total is None or any(p is None for p in parts) or sum(parts) == total:
        return None
    return (f"as published by UNHCR, recognized + complementary_protection + rejected + "
            f"otherwise_closed = {sum(parts)}, not total_decisions {total}")


def _first_half_year(source, frame) -> int | None:
    """The year whose rows cover January-June only: the last year of a mid-year release
    (option ``last_year: first_half``), which must be the release's year and the file's
    last year; None for a year-end release."""
    if source.options.get("last_year") != FIRST_HALF:
        return None
    release = str(source.vintage or "")
    head = release.split(".")[0]
    if not head.isdigit() or release.split(".")[1:2] != ["6"]:
        raise fail(source, "sources.d record",
                   f"option last_year: {FIRST_HALF} needs a mid-year release vintage YYYY.6.x, "
                   f"not {release!r}")
    last = int(frame["year"].max())
    if last != int(head):
        raise fail(source, f"{source.mirror_name} column year",
                   f"the last year in the file is {last}, not the release year {head}: the "
                   "file is not the mid-year release its record says")
    return last


def parse(path: Path, source) -> Parsed:
    layout = LAYOUTS.get(source.series)
    if layout is None:
        raise fail(source, path.name,
                   f"the unhcr_rda parser does not know series {source.series!r}",
                   "use one of " + ", ".join(LAYOUTS))
    frame = _read_frame(path, source, layout)
    name = layout["object"]
    table = source.series

    keep = ((frame["coa_iso"] == ASYLUM_KEPT) | (frame["coo_iso"] == ORIGIN_KEPT)).to_numpy()
    positions = keep.nonzero()[0]
    sub = frame.iloc[positions]
    columns = list(sub.columns)
    parsed = Parsed(file_facts={"vintage": source.vintage} if source.vintage else {})
    half_year = _first_half_year(source, frame)
    seen: dict[tuple, str] = {}
    for pos, values in zip(positions, sub.itertuples(index=False, name=None)):
        rec = dict(zip(columns, values))
        locator = f"{name} row {pos + 1}"
        year = rec["year"]
        if not isinstance(year, (int, float)) or not math.isfinite(year) or year % 1:
            raise fail(source, f"{locator} column year", f"year {year!r} is not a whole number")
        row: dict = {"year": int(year)}
        target = table
        if row["year"] == half_year:
            # A mid-year release: its last year is January-June, a period of its own.
            target = table + H1_SUFFIX
            row.update(half="H1", period_start=f"{half_year}-01-01",
                       period_end=f"{half_year}-06-30")
        # UNHCR's own codes (UNK, TIB, ...): normalize resolves them to ours through
        # country_aliases, falling back to the printed name.
        row["origin_code"] = clean_text(rec["coo_iso"])
        row["origin_label"] = clean_text(rec["coo_name"])
        row["asylum_code"] = clean_text(rec["coa_iso"])
        row["asylum_label"] = clean_text(rec["coa_name"])
        for column, code_list in layout["codes"].items():
            value = rec[column]
            if not isinstance(value, str) or value not in CODE_LISTS[code_list]:
                raise fail(source, f"{locator} column {column}",
                           f"unknown {column} code {value!r} (known: "
                           f"{', '.join(CODE_LISTS[code_list])})",
                           "find its meaning in UNHCR's documentation and add it to "
                           "unhcr_rda.CODE_LISTS")
            row[column] = value
        for column, ours in layout["counts"].items():
            row[ours] = read_count(rec[column])
        if table == "unhcr_asylum_decisions":
            note = _components_note(row)
            if note:
                row["notes"] = note
        row["source_locator"] = locator
        pk = primary_key(target)
        key = (target, *(row[k] for k in pk))
        if key in seen:
            raise fail(source, locator,
                       f"duplicate key {dict(zip(pk, key[1:]))} in {target} (also at {seen[key]})")
        seen[key] = locator
        parsed.add(target, row)
    if not positions.size:
        raise fail(source, f"{path.name} data.frame {name!r}",
                   f"no rows with coa_iso {ASYLUM_KEPT} or coo_iso {ORIGIN_KEPT}")
    return parsed
