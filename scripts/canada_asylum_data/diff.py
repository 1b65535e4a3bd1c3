"""Compare two data packages (old vs new) and write a reviewable Markdown change report.

Each side is a folder holding ``datapackage.json`` and ``data/*.csv`` (a working tree
``datapackage/``, or one extracted from a git revision). Rows are matched per table on the
descriptor's ``primaryKey``; where that key contains ``source_id`` and the rest of the key
is still unique on both sides, ``source_id`` is dropped from the match so a value that a
newer vintage revised (a different source file) shows as *revised* rather than as one row
removed and one added. The report lists, per table: new and dropped periods, rows added and
removed, revised values (old and new value with each side's vintage and source id), the
sources whose checksum changed, and the new side's validation summary.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CadError, ConfigError
from .package_io import has_package, read_descriptor, read_rows
from .progress import SILENT, Progress
from .schemas import load_schemas

#: Columns that describe where a value came from rather than the value itself.
BOOKKEEPING = {"source_id", "source_locator", "vintage", "notes", "suppressed_measures"}
#: Tables that record how the package was made; only counted, never listed row by row.
PERIOD_COLUMNS = ("month", "year", "period_end")


@dataclass
class Change:
    table: str
    key: dict
    column: str
    old: str
    new: str
    old_source: str = ""
    new_source: str = ""
    old_vintage: str = ""
    new_vintage: str = ""

    @property
    def size(self) -> int:
        try:
            return abs(int(self.new) - int(self.old))
        except ValueError:
            return -1


@dataclass
class TableDiff:
    name: str
    old_rows: int = 0
    new_rows: int = 0
    added: list[dict] = field(default_factory=list)
    removed: list[dict] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    period_column: str | None = None
    new_periods: list[str] = field(default_factory=list)
    dropped_periods: list[str] = field(default_factory=list)
    sources_old: set[str] = field(default_factory=set)
    sources_new: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.changes or self.old_rows != self.new_rows)


@dataclass
class PackageDiff:
    old_label: str
    new_label: str
    old_version: str | None
    new_version: str | None
    tables: list[TableDiff] = field(default_factory=list)
    checksum_changes: list[dict] = field(default_factory=list)
    validation: object | None = None  # validate.Report of the new side
    #: Supporting tables the report summarises (schema key ``change_report: summary``).
    summary_tables: set[str] = field(default_factory=set)

    @property
    def changed(self) -> bool:
        return bool(self.checksum_changes or any(t.changed for t in self.tables))


# --- reading both sides ---------------------------------------------------------------

def extract_revision(repo: Path, rev: str, dest: Path, subdir: str = "datapackage") -> Path:
    """Write ``subdir`` as it was at git revision ``rev`` into ``dest``; returns the folder."""
    try:
        proc = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev, subdir],
                              capture_output=True)
    except FileNotFoundError as exc:
        raise CadError("git is not installed", f"reading revision {rev}", "install git or pass a folder") from exc
    if proc.returncode != 0:
        raise CadError(f"cannot read {subdir}/ at git revision {rev!r}",
                       proc.stderr.decode(errors="replace").strip()[-300:] or str(repo),
                       "pass a revision that exists and has a committed data package, or a folder")
    tar_path = dest / "rev.tar"
    tar_path.write_bytes(proc.stdout)
    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(dest)
    tar_path.unlink()
    return dest / subdir


def resolve_side(spec: str, repo: Path, workdir: Path, name: str) -> tuple[Path, str]:
    """A folder path, or a git revision (extracted into ``workdir/name``)."""
    as_path = Path(spec)
    if as_path.is_dir():
        folder = as_path / "datapackage" if has_package(as_path / "datapackage") else as_path
        return folder, str(spec)
    target = workdir / name
    target.mkdir(parents=True, exist_ok=True)
    return extract_revision(repo, spec, target), f"git {spec}"


# --- comparing -------------------------------------------------------------------------

def _match_key(pk: list[str], old: list[dict], new: list[dict]) -> list[str]:
    if "source_id" not in pk:
        return pk
    reduced = [k for k in pk if k != "source_id"]
    for rows in (old, new):
        keys = [tuple(r.get(k, "") for k in reduced) for r in rows]
        if len(keys) != len(set(keys)):
            return pk
    return reduced


def _period_column(fields: list[str]) -> str | None:
    return next((c for c in PERIOD_COLUMNS if c in fields), None)


def compare_table(name: str, schema: dict, old: list[dict], new: list[dict]) -> TableDiff:
    fields = [f["name"] for f in schema.get("fields", [])]
    pk = schema.get("primaryKey") or fields
    pk = [pk] if isinstance(pk, str) else list(pk)
    key = _match_key(pk, old, new)
    out = TableDiff(name, len(old), len(new))
    before = {tuple(r.get(k, "") for k in key): r for r in old}
    after = {tuple(r.get(k, "") for k in key): r for r in new}
    out.added = [after[k] for k in sorted(set(after) - set(before))]
    out.removed = [before[k] for k in sorted(set(before) - set(after))]
    columns = [c for c in fields if c not in key and c not in BOOKKEEPING]
    for k in sorted(set(before) & set(after)):
        a, b = before[k], after[k]
        for col in columns:
            if a.get(col, "") != b.get(col, ""):
                out.changes.append(Change(name, dict(zip(key, k)), col, a.get(col, ""), b.get(col, ""),
                                          a.get("source_id", ""), b.get("source_id", ""),
                                          a.get("vintage", ""), b.get("vintage", "")))
    out.period_column = _period_column(fields)
    if out.period_column:
        p_old = {r.get(out.period_column, "") for r in old} - {""}
        p_new = {r.get(out.period_column, "") for r in new} - {""}
        out.new_periods = sorted(p_new - p_old)
        out.dropped_periods = sorted(p_old - p_new)
    out.sources_old = {r["source_id"] for r in old if r.get("source_id")}
    out.sources_new = {r["source_id"] for r in new if r.get("source_id")}
    return out


def _read(folder: Path, resource: dict) -> list[dict]:
    path = folder / resource["path"]
    if not path.is_file():
        raise ConfigError(f"table {resource['name']} is listed but its file is missing", str(path),
                          "run `canada-asylum-data package` again")
    return read_rows(path)


def compare_sides(repo: Path, working: Path, old_spec: str, new_spec: str | None,
                  with_frictionless: bool = False, progress: Progress = SILENT) -> tuple[Path, PackageDiff]:
    """Compare two packages named as git revisions or folders (``new_spec`` None: the
    working package ``working``). Returns the work folder holding extracted revisions
    (remove it with :func:`cleanup`) and the comparison."""
    work = tempdir()
    try:
        old_dir, old_label = resolve_side(old_spec, repo, work, "old")
        if new_spec is None:
            new_dir, new_label = working, "working tree"
        else:
            new_dir, new_label = resolve_side(new_spec, repo, work, "new")
        for folder, label, spec in ((old_dir, old_label, old_spec), (new_dir, new_label, new_spec)):
            if not has_package(folder):
                raise CadError(f"no datapackage.json in {label}", spec or str(folder),
                               "pass a folder or git revision that has a data package (--old/--new)")
        progress.say(f"diff: comparing {old_label} -> {new_label}")
        return work, compare_packages(old_dir, new_dir, old_label, new_label,
                                      with_frictionless=with_frictionless, schema_dir=working / "schemas")
    except BaseException:
        cleanup(work)
        raise


def compare_packages(old_dir: Path, new_dir: Path, old_label: str = "old", new_label: str = "new",
                     validate: bool = True, with_frictionless: bool = False,
                     schema_dir: Path | None = None) -> PackageDiff:
    """Compare two package folders. ``schema_dir`` (default: the new side's schemas/) says
    which tables the report only summarises."""
    hint = "run `canada-asylum-data package`, or pass a folder or git revision that has one"
    old_desc, new_desc = read_descriptor(old_dir, hint), read_descriptor(new_dir, hint)
    old_res = {r["name"]: r for r in old_desc.get("resources", [])}
    new_res = {r["name"]: r for r in new_desc.get("resources", [])}
    result = PackageDiff(old_label, new_label, old_desc.get("version"), new_desc.get("version"))
    schema_dir = schema_dir or new_dir / "schemas"
    if schema_dir.is_dir():
        result.summary_tables = {name for name, s in load_schemas(schema_dir).items()
                                 if s.change_report == "summary"}
    for name in sorted(set(old_res) | set(new_res)):
        schema = (new_res.get(name) or old_res[name]).get("schema", {})
        old_rows = _read(old_dir, old_res[name]) if name in old_res else []
        new_rows = _read(new_dir, new_res[name]) if name in new_res else []
        result.tables.append(compare_table(name, schema, old_rows, new_rows))
    if "sources" in old_res and "sources" in new_res:
        before = {r["id"]: r for r in _read(old_dir, old_res["sources"])}
        after = {r["id"]: r for r in _read(new_dir, new_res["sources"])}
        for sid in sorted(set(before) | set(after)):
            a, b = before.get(sid, {}), after.get(sid, {})
            if a.get("sha256", "") != b.get("sha256", ""):
                result.checksum_changes.append({"id": sid, "old": a.get("sha256", "") or "(none)",
                                                "new": b.get("sha256", "") or "(none)",
                                                "vintage_old": a.get("vintage", ""),
                                                "vintage_new": b.get("vintage", "")})
    if validate and (new_dir / "schemas").is_dir():
        from .validate import validate_package

        result.validation = validate_package(new_dir, with_frictionless=with_frictionless)
    return result


# --- the Markdown report ---------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _next(period: str) -> str | None:
    m = _MONTH.match(period)
    if m:
        y, mo = int(m[1]), int(m[2])
        return f"{y + mo // 12}-{mo % 12 + 1:02d}"
    if period.isdigit():
        return str(int(period) + 1)
    return None


def format_periods(periods: list[str]) -> str:
    """Collapse consecutive months or years into ranges: ``2024-03..2025-07 (17)``."""
    if not periods:
        return ""
    runs: list[list[str]] = [[periods[0]]]
    for p in periods[1:]:
        if _next(runs[-1][-1]) == p:
            runs[-1].append(p)
        else:
            runs.append([p])
    parts = [r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs]
    return ", ".join(parts) + (f" ({len(periods)} periods)" if len(periods) > 1 else "")


def _fmt(value: str) -> str:
    if value.isdigit() and len(value) > 3:
        return f"{int(value):,}"
    return value if value != "" else "(empty)"


def _key_text(key: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(diff: PackageDiff, max_rows: int = 40) -> str:
    lines = [f"# Data change report: {diff.old_label} -> {diff.new_label}", ""]
    if diff.old_version != diff.new_version:
        lines.append(f"Data version: {diff.old_version} -> {diff.new_version}")
    else:
        lines.append(f"Data version: {diff.new_version} (unchanged)")
    lines.append("")
    if not diff.changed:
        lines += ["**No changes**: every table has the same rows and values.", ""]
    fact = [t for t in diff.tables if t.name not in diff.summary_tables]
    lines += ["## Summary", "",
              "| table | rows before | rows after | added | removed | revised values | new periods |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for t in diff.tables:
        lines.append(f"| `{t.name}` | {t.old_rows:,} | {t.new_rows:,} | {len(t.added):,} | "
                     f"{len(t.removed):,} | {len(t.changes):,} | {_cell(format_periods(t.new_periods))} |")
    lines.append("")

    periods = [t for t in fact if t.new_periods or t.dropped_periods]
    if periods:
        lines += ["## New periods per series", ""]
        for t in periods:
            if t.new_periods:
                lines.append(f"- `{t.name}` ({t.period_column}): new {format_periods(t.new_periods)}")
            if t.dropped_periods:
                lines.append(f"- `{t.name}` ({t.period_column}): **dropped** {format_periods(t.dropped_periods)}")
        lines.append("")

    moved = [t for t in fact if t.sources_old != t.sources_new]
    if moved:
        lines += ["## Source files feeding each table", ""]
        for t in moved:
            gone, came = sorted(t.sources_old - t.sources_new), sorted(t.sources_new - t.sources_old)
            lines.append(f"- `{t.name}`: " + "; ".join(
                ([f"now from {', '.join(came)}"] if came else []) +
                ([f"no longer from {', '.join(gone)}"] if gone else [])))
        lines.append("")

    revised = [t for t in fact if t.changes]
    if revised:
        lines += ["## Revised values", "",
                  f"Largest revisions first; at most {max_rows} per table (the full list: "
                  "`canada-asylum-data diff --csv FILE`).", ""]
        for t in revised:
            lines += [f"### `{t.name}`: {len(t.changes):,} revised values", "",
                      "| row | column | old | new | old source (vintage) | new source (vintage) |",
                      "|---|---|---:|---:|---|---|"]
            for c in sorted(t.changes, key=lambda c: (-c.size, json.dumps(c.key)))[:max_rows]:
                lines.append(f"| {_cell(_key_text(c.key))} | {c.column} | {_fmt(c.old)} | {_fmt(c.new)} | "
                             f"{c.old_source} ({c.old_vintage or '-'}) | {c.new_source} ({c.new_vintage or '-'}) |")
            if len(t.changes) > max_rows:
                lines.append(f"| ... {len(t.changes) - max_rows:,} more | | | | | |")
            lines.append("")

    rows = [t for t in fact if t.added or t.removed]
    if rows:
        lines += ["## Rows added or removed", ""]
        for t in rows:
            lines.append(f"- `{t.name}`: {len(t.added):,} added, {len(t.removed):,} removed")
            for label, items in (("removed", t.removed), ("added", t.added)):
                if label == "added" and t.new_periods:
                    continue  # new periods are summarised above
                for r in items[: min(10, max_rows)]:
                    shown = {k: v for k, v in r.items() if k not in BOOKKEEPING and v != ""}
                    lines.append(f"  - {label}: {_cell(_key_text(shown))[:200]} ({r.get('source_id', '')})")
                if len(items) > min(10, max_rows):
                    lines.append(f"  - ... {len(items) - min(10, max_rows):,} more {label}")
        lines.append("")

    meta = [t for t in diff.tables if t.name in diff.summary_tables and t.changed]
    if meta:
        lines += ["## Bookkeeping tables", ""]
        for t in meta:
            lines.append(f"- `{t.name}`: {t.old_rows:,} -> {t.new_rows:,} rows "
                         f"({len(t.added):,} added, {len(t.removed):,} removed, {len(t.changes):,} values changed)")
        lines.append("")

    lines += ["## Sources whose checksum changed", ""]
    if diff.checksum_changes:
        lines += ["| source | old sha256 | new sha256 | vintage |", "|---|---|---|---|"]
        for c in diff.checksum_changes:
            lines.append(f"| `{c['id']}` | `{c['old'][:16]}` | `{c['new'][:16]}` | "
                         f"{c['vintage_old'] or '-'} -> {c['vintage_new'] or '-'} |")
    else:
        lines.append("None.")
    lines.append("")

    lines += ["## Validation and reconciliation (new side)", ""]
    report = diff.validation
    if report is None:
        lines.append("Not run (no schemas next to the new package).")
    else:
        lines.append(("Valid" + (" (reconciliation only)" if not report.frictionless_ran else "") + ". "
                      if report.valid else "**NOT valid.** ") + report.summary())
        for c in report.failed[:max_rows]:
            lines.append(f"- failed: `{c.table}` {_cell(c.key)}: {_cell(c.detail)}")
        if report.known:
            lines.append(f"- {len(report.known)} known publisher discrepancies (recorded, not failures)")
        for e in report.frictionless_errors[:max_rows]:
            lines.append(f"- frictionless: {_cell(e)}")
    lines.append("")
    return "\n".join(lines)


def changes_csv(diff: PackageDiff) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "key", "column", "old_value", "new_value", "old_source_id", "old_vintage",
                "new_source_id", "new_vintage"])
    for t in diff.tables:
        for c in t.changes:
            w.writerow([t.name, json.dumps(c.key, ensure_ascii=False), c.column, c.old, c.new,
                        c.old_source, c.old_vintage, c.new_source, c.new_vintage])
    return buf.getvalue()


def release_section(diff: PackageDiff, version: str, date: str | None = None) -> str:
    """A compact CHANGELOG.md section generated from the change report."""
    head = f"## {version}" + (f" ({date})" if date else "")
    lines = [head, ""]
    if not diff.changed:
        return "\n".join(lines + ["- No data changes.", ""])
    for t in diff.tables:
        if t.name in diff.summary_tables or not t.changed:
            continue
        bits = []
        if t.new_periods:
            bits.append(f"new {t.period_column} {format_periods(t.new_periods)}")
        if t.dropped_periods:
            bits.append(f"dropped {format_periods(t.dropped_periods)}")
        if t.changes:
            bits.append(f"{len(t.changes):,} revised values")
        added = len(t.added) if not t.new_periods else 0
        if added:
            bits.append(f"{added:,} rows added")
        if t.removed:
            bits.append(f"{len(t.removed):,} rows removed")
        if t.sources_new - t.sources_old:
            bits.append("now from " + ", ".join(sorted(t.sources_new - t.sources_old)))
        lines.append(f"- `{t.name}`: " + ("; ".join(bits) or f"{t.old_rows:,} -> {t.new_rows:,} rows"))
    for c in diff.checksum_changes:
        lines.append(f"- source `{c['id']}` updated (sha256 {c['old'][:12]} -> {c['new'][:12]})")
    if diff.validation is not None:
        lines.append(f"- validation: {diff.validation.summary()}")
    return "\n".join(lines + [""])


CHANGELOG_HEADER = ("# Changelog\n\nData versions use calendar versioning (YYYY.MM.DD). Each section is "
                    "generated from the change report (`canada-asylum-data changelog`).\n\n")


def insert_section(changelog: str, section: str, version: str) -> str:
    """Put ``section`` first (after the header), replacing an earlier section for ``version``."""
    text = changelog or CHANGELOG_HEADER
    pattern = re.compile(rf"^## {re.escape(version)}\b.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub("", text)
    m = re.search(r"^## ", text, re.M)
    if m:
        return text[:m.start()] + section + "\n" + text[m.start():]
    return text.rstrip("\n") + "\n\n" + section


def tempdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="cad-diff-"))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
