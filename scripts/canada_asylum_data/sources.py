"""Load and check ``datapackage/sources.yml``: one record per upstream file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .yamlio import read_yaml
from .errors import ConfigError

REQUIRED = ("id", "title", "publisher", "url", "licenses", "parser", "series")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("snapshot", "live")


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    publisher: str
    url: str
    parser: str
    series: str
    licenses: tuple[str, ...]
    #: ``snapshot``: a fixed file (an archived page, a past release), never downloaded again
    #: once held, checked against ``sha256``. ``live``: a URL the publisher overwrites; each
    #: version it served is recorded as its own snapshot record (a vintage), see live.py.
    kind: str = "snapshot"
    archive_url: str | None = None
    mirror_path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    retrieved: str | None = None
    published: str | None = None
    vintage: str | None = None
    period_start: str | None = None
    period_end: str | None = None
    notes: str | None = None
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def mirrored(self) -> bool:
        """True when we hold a verified copy (a checksum to check against)."""
        return self.sha256 is not None

    @property
    def live(self) -> bool:
        return self.kind == "live"

    @property
    def extension(self) -> str:
        """The file type expected from this source (".xlsx", ".htm", ".rda", ...)."""
        if self.mirror_path:
            return "".join(Path(self.mirror_path).suffixes[-1:]).lower()
        return str(self.options.get("extension") or "").lower()

    @property
    def mirror_name(self) -> str:
        return self.mirror_path or self.id

    @property
    def raw_name(self) -> str:
        """File name in build/raw/: the id plus the mirror file's extension."""
        suffix = ("".join(Path(self.mirror_path).suffixes[-1:]) if self.mirror_path
                  else str(self.options.get("extension") or ""))
        return f"{self.id}{suffix}"


def load_sources(path: Path) -> list[Source]:
    """Read sources.yml; raise ConfigError naming the record and field on any problem."""
    try:
        doc = read_yaml(path)
    except FileNotFoundError as exc:
        raise ConfigError("sources file not found", str(path)) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"sources file is not valid YAML ({exc})", str(path)) from exc
    records = (doc or {}).get("sources") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise ConfigError("sources file has no `sources:` list", str(path))
    seen: set[str] = set()
    out = []
    for i, rec in enumerate(records):
        where = f"{path} record {i + 1}"
        if not isinstance(rec, dict):
            raise ConfigError("record is not a mapping", where)
        missing = [k for k in REQUIRED if not rec.get(k)]
        if missing:
            raise ConfigError(f"record lacks {', '.join(missing)}", f"{where} ({rec.get('id')})")
        sid = rec["id"]
        if not _ID.match(sid):
            raise ConfigError(f"source id {sid!r} is not lower-case a-z0-9_.-", where)
        if sid in seen:
            raise ConfigError(f"source id {sid!r} is listed twice", where)
        seen.add(sid)
        sha = rec.get("sha256")
        if sha is not None and not _SHA.match(str(sha)):
            raise ConfigError(f"sha256 of {sid} is not 64 hex digits", where)
        if sha is not None and not rec.get("mirror_path"):
            raise ConfigError(f"{sid} has a sha256 but no mirror_path", where)
        kind = rec.get("kind", "snapshot")
        if kind not in KINDS:
            raise ConfigError(f"kind of {sid} is {kind!r}, not one of {', '.join(KINDS)}", where)
        if kind == "live" and sha is not None:
            raise ConfigError(f"{sid} is a live series but pins a sha256", where,
                              "a live record names the URL only; each version it served is its own "
                              "kind: snapshot record (with sha256) pointing at it with live_series")
        mpath = rec.get("mirror_path")
        if mpath is not None and (Path(str(mpath)).is_absolute() or ".." in Path(str(mpath)).parts):
            raise ConfigError(f"mirror_path of {sid} leaves the mirror folder ({mpath})", where,
                              "give a path relative to the mirror folder, without '..'")
        known = {f for f in Source.__dataclass_fields__}
        extra = {k: v for k, v in rec.items() if k not in known}
        fields = {k: v for k, v in rec.items() if k in known and k != "options"}
        fields["licenses"] = tuple(rec["licenses"])
        for key in ("retrieved", "published", "vintage", "period_start", "period_end"):
            if fields.get(key) is not None:
                fields[key] = str(fields[key])
        out.append(Source(**fields, options={**extra, **(rec.get("options") or {})}))
    return out


def load_all_sources(datapackage_dir: Path) -> list[Source]:
    """sources.yml plus any per-family fragments in sources.d/*.yml (merged in order)."""
    out = load_sources(datapackage_dir / "sources.yml")
    for frag in sorted((datapackage_dir / "sources.d").glob("*.yml")):
        out += load_sources(frag)
    ids = [s.id for s in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"source ids listed twice: {', '.join(dup)}", str(datapackage_dir))
    return out
