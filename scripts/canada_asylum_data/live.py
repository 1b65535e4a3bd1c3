"""Live series: URLs the publisher overwrites (IRB statistics pages, IRCC's open-data
workbooks, UNHCR's current release).

A live record (``kind: live`` in datapackage/sources.d/) names the URL, the parser and the
series, never a checksum. Every version of the file it ever served that the package uses is
its own ``kind: snapshot`` record (a *vintage*) with sha256, bytes, retrieval date and the
vintage read from the file, pointing back at it with ``live_series: <live id>`` (or sharing
its ``url``). :func:`take_vintage` downloads the URL and

* bytes equal to a known vintage -> nothing new (the file is installed under that vintage's
  name in build/raw/ if it was not held);
* new bytes -> parsed with the series' own parser (a file it cannot read stops the refresh
  with an ``Error:`` and writes nothing), then recorded as a NEW vintage: a record file
  ``sources.d/vintage_<id>.yml`` for review in the refresh pull request, and the raw file in
  build/raw/, so the same refresh packages it like any other source.

Options of a live record: ``extension`` (".htm", ".xlsx", ".rda": the file type, checked on
download), ``mirror_folder`` (where the reviewer files the new vintage in the mirror),
``new_vintage_of`` (the ``vintage_of`` group new vintages join, so the newest supersedes the
older ones and differences go to ``revisions``; leave it out for series whose versions are
kept side by side, like the cumulative irregular-crosser tables); any other option (e.g.
``workbook``) is copied to the vintage records for the parser.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path

import httpx

from .errors import CadError, ConfigError, ParseError
from .files import sha256_of
from .progress import SILENT, Progress
from .sources import Source, load_sources

LIVE_ONLY_OPTIONS = {"extension", "mirror_folder", "new_vintage_of", "live_series"}
RECORD_PREFIX = "vintage_"


def known_vintages(live: Source, sources: list[Source]) -> list[Source]:
    """Snapshot records that are versions of this live series."""
    group = live.options.get("new_vintage_of")
    return [s for s in sources if not s.live and s.sha256
            and (s.options.get("live_series") == live.id or s.url == live.url
                 or (group and s.options.get("vintage_of") == group))]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.") or "undated"


def vintage_record(live: Source, digest: str, size: int, vintage: str, vintage_from: str,
                   retrieved: str, taken: list[str], ids: set[str]) -> dict:
    """The sources.d record of a new vintage of ``live``."""
    new_id = f"{live.id}-{_slug(vintage)}"
    if new_id in ids:
        new_id = f"{new_id}-{digest[:8]}"
    folder = live.options.get("mirror_folder") or live.id.split("-")[0]
    options = {k: v for k, v in live.options.items() if k not in LIVE_ONLY_OPTIONS}
    if live.options.get("new_vintage_of"):
        options["vintage_of"] = live.options["new_vintage_of"]
    record = {
        "id": new_id,
        "kind": "snapshot",
        "live_series": live.id,
        "title": f"{live.title} (version retrieved {retrieved})",
        "publisher": live.publisher,
        "url": live.url,
        "archive_url": None,
        "mirror_path": f"{folder}/{new_id}{live.extension}",
        "sha256": digest,
        "bytes": size,
        "licenses": [dict(x) if isinstance(x, dict) else x for x in live.licenses],
        "retrieved": retrieved,
        "published": None,
        "vintage": vintage,
        "period_start": live.period_start,
        "period_end": live.period_end,
        "parser": live.parser,
        "series": live.series,
    }
    if options:
        record["options"] = options
    record["notes"] = (
        f"Recorded by `refresh --online` on {retrieved} from the live series {live.id} ({live.url}): "
        f"its bytes differ from every known vintage ({', '.join(taken) or 'none held'}). The vintage "
        f"{vintage} is {vintage_from}. To review: check the figures against the page, put the file in "
        f"the mirror at mirror_path, and add an archived copy as archive_url (e.g. a Wayback capture "
        f"as https://web.archive.org/web/<timestamp>id_/<url>).")
    return record


def _dump(record: dict) -> str:
    import yaml

    head = ("# A new vintage of a live series, written by `canada-asylum-data refresh --online`.\n"
            "# INPUT once reviewed: it is proposed in the refresh pull request (see README,\n"
            "# \"Updating the data\").\n")
    return head + yaml.safe_dump({"sources": [record]}, sort_keys=False, allow_unicode=True,
                                 width=100)


def take_vintage(live: Source, sources: list[Source], raw_dir: Path, records_dir: Path | None,
                 client: httpx.Client | None = None, progress: Progress = SILENT,
                 today: dt.date | None = None):
    """Download a live series and record new bytes as a new vintage (see the module docstring)."""
    from .fetch import Fetched, _install, _is_current, download_to, max_download_bytes, raw_path
    from .normalize import parse_source

    if records_dir is None:
        raise ConfigError(f"live series {live.id} needs the sources.d folder to record vintages",
                          "fetch", "call pipeline.fetch_all with records_dir=datapackage/sources.d")
    raw_dir.mkdir(parents=True, exist_ok=True)
    known = known_vintages(live, sources)
    cap = max_download_bytes(live, [k.bytes for k in known if k.bytes])
    tmp, _, url = download_to(live, raw_dir, [("download", live.url)], client, progress,
                              max_bytes=cap, verify=False)
    try:
        digest, size = sha256_of(tmp), tmp.stat().st_size
        same = next((k for k in known if k.sha256 == digest and (k.bytes in (None, size))), None)
        if same is not None:
            held = raw_path(same, raw_dir)
            if not _is_current(same, held):
                _install(tmp, held)
            return Fetched(live.id, held, "unchanged", digest, size,
                           note=f"same bytes as the known vintage {same.id}")
        retrieved = (today or dt.date.today()).isoformat()
        ids = {s.id for s in sources}
        # Parse the new bytes with the series' own parser before anything is written.
        probe = vintage_record(live, digest, size, retrieved, "the retrieval date", retrieved,
                               [k.id for k in known], ids)
        candidate = _as_source(probe, raw_dir)
        named = tmp.with_name(f".{candidate.id}.probe{live.extension}")
        os.replace(tmp, named)
        tmp = named
        try:
            parsed = parse_source(candidate, tmp)
        except CadError as exc:
            raise ParseError(
                f"the live series {live.id} served a file its parser cannot read ({exc.what})",
                f"{url}, {exc.where}" if exc.where else url,
                "nothing was recorded; the publisher may have changed the layout: update the "
                f"parser {live.parser} and its test, then run the refresh again") from exc
        vintage = parsed.file_facts.get("vintage")
        record = vintage_record(
            live, digest, size, str(vintage or retrieved),
            "read from the file" if vintage else "the retrieval date (the file states none)",
            retrieved, [k.id for k in known], ids)
        starts, ends = _periods(parsed)
        if ends:
            record["period_start"], record["period_end"] = min(starts or ends), max(ends)
            same_period = [k for k in known if k.period_end in ends]
            if same_period and not live.options.get("new_vintage_of"):
                # a re-issue of a table already held (same period): a newer vintage of it,
                # so the newest supersedes it and the differences go to revisions
                old = max(same_period, key=lambda k: k.vintage or "")
                record.setdefault("options", {})["vintage_of"] = old.options.get("vintage_of") or old.id
        records_dir.mkdir(parents=True, exist_ok=True)
        target = records_dir / f"{RECORD_PREFIX}{record['id']}.yml"
        fd, part = tempfile.mkstemp(prefix=f".{record['id']}.", suffix=".part", dir=records_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_dump(record))
        try:
            load_sources(Path(part))  # the record must load like any other
            new = raw_path(_as_source(record, raw_dir), raw_dir)
            _install(tmp, new)
            os.replace(part, target)
        finally:
            Path(part).unlink(missing_ok=True)
        return Fetched(live.id, new, "new-vintage", digest, size,
                       note=f"new vintage {record['id']} recorded in {target.name}")
    finally:
        tmp.unlink(missing_ok=True)


def _periods(parsed) -> tuple[set[str], set[str]]:
    """The period_start and period_end values of a parsed file's rows (as ISO strings)."""
    starts: set[str] = set()
    ends: set[str] = set()
    for rows in parsed.tables.values():
        for row in rows:
            if row.get("period_start"):
                starts.add(str(row["period_start"])[:10])
            if row.get("period_end"):
                ends.add(str(row["period_end"])[:10])
    return starts, ends


def _as_source(record: dict, scratch: Path) -> Source:
    fd, name = tempfile.mkstemp(prefix=".record.", suffix=".yml", dir=scratch)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_dump(record))
        return load_sources(Path(name))[0]
    finally:
        Path(name).unlink(missing_ok=True)
