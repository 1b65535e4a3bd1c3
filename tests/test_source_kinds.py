"""Source records: snapshots and live series, archive URLs that return the original bytes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from canada_asylum_data.errors import ConfigError
from canada_asylum_data.fetch import MAGIC
from canada_asylum_data.live import known_vintages
from canada_asylum_data.sources import load_all_sources, load_sources

from .conftest import DATAPACKAGE

WAYBACK = re.compile(r"^https://web\.archive\.org/web/(\d{14})(id_)?/")
#: Files whose records another change replaces (UNHCR's seven releases as raw-bytes URLs).
REWRITTEN_ELSEWHERE = {"unhcr.yml"}


def records():
    for f in sorted((DATAPACKAGE / "sources.d").glob("*.yml")):
        for rec in yaml.safe_load(f.read_text(encoding="utf-8"))["sources"]:
            yield f.name, rec


def test_every_record_says_its_kind():
    for name, rec in records():
        if name in REWRITTEN_ELSEWHERE:
            continue
        assert rec.get("kind") in ("snapshot", "live"), (name, rec["id"])


def test_wayback_urls_fetch_original_bytes():
    for name, rec in records():
        for key in ("url", "archive_url", "capture_url"):
            m = WAYBACK.match(str(rec.get(key) or ""))
            if m:
                assert m.group(2) == "id_", (name, rec["id"], key, rec[key])


def test_held_snapshots_archive_is_a_file_not_a_page():
    for name, rec in records():
        if name in REWRITTEN_ELSEWHERE or not rec.get("sha256") or not rec.get("archive_url"):
            continue
        url = rec["archive_url"]
        assert "github.com/" not in url or url.startswith("https://raw.githubusercontent.com/"), \
            (rec["id"], url)
        # a Wayback capture of a page is not the bytes of a browser-saved copy of it
        if rec.get("capture_url"):
            assert not WAYBACK.match(url), rec["id"]


def test_live_series_are_complete_and_find_their_vintages():
    sources = load_all_sources(DATAPACKAGE)
    live = {s.id: s for s in sources if s.live}
    wanted = {"irb-rpd-2024", "irb-rpd-2025", "irb-rad-2024", "irb-rad-2025", "irb-irregular-current",
              "ircc-odp-office-province-current", "ircc-odp-gender-current",
              "unhcr-asylum-applications-current", "unhcr-asylum-decisions-current"}
    assert wanted <= set(live), sorted(wanted - set(live))
    for s in live.values():
        assert s.sha256 is None and s.extension, s.id
        assert s.url.startswith("https://"), s.id
    # the 18 irregular-crosser snapshots are versions of the current page
    assert len(known_vintages(live["irb-irregular-current"], sources)) == 18
    assert {k.id for k in known_vintages(live["ircc-odp-office-province-current"], sources)} == {
        "ircc-odp-office-province-2024-02", "ircc-odp-office-province-2025-07"}
    # UNHCR's current release is a file URL returning the .rda, not a page or the API root
    for sid in ("unhcr-asylum-applications-current", "unhcr-asylum-decisions-current"):
        assert live[sid].url.endswith(".rda") and live[sid].extension in MAGIC
        assert known_vintages(live[sid], sources), sid


def test_a_live_record_with_a_checksum_is_refused(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text(yaml.safe_dump({"sources": [{
        "id": "x", "kind": "live", "title": "t", "publisher": "p", "url": "https://x", "parser": "none",
        "series": "s", "licenses": ["OGL"], "sha256": "0" * 64, "mirror_path": "a/x.htm"}]}),
        encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_sources(path)
    assert "x is a live series but pins a sha256" in err.value.message
