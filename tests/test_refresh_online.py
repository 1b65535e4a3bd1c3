"""The weekly refresh end to end, offline: the workflow's own command against a local HTTP
server on 127.0.0.1 that stands in for every publisher URL.

* held snapshots are not downloaded again (no request reaches their url or archive_url);
* a live series whose bytes equal a known vintage records nothing;
* a new IRB year page in the IRB statistics template becomes a new vintage record in
  sources.d/ and new rows in the package;
* changed content for that live series becomes a second vintage that supersedes the first,
  its changed value listed in `revisions`, no failure;
* a broken page ends in `Error:`, a non-zero exit and untouched outputs (the workflow's
  failure branch: an issue, not a commit).
"""

from __future__ import annotations

import csv
import hashlib
import io
import shlex
from pathlib import Path

import pytest
import yaml

from canada_asylum_data.live import known_vintages
from canada_asylum_data.sources import load_all_sources

from .conftest import FIXTURES, ROOT, copy_project, run
from .webserver import Reply, Server

WORKFLOW = ROOT / ".github" / "workflows" / "refresh.yml"
#: The refresh command of the weekly workflow, as this test runs it.
REFRESH = ["refresh", "--online", "--silent"]
NEW_YEAR = "irb-rpd-2024"
PAGE = (FIXTURES / "irb" / "rpd-stat-2024.htm").read_bytes()
BROKEN = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"


def workflow_refresh_command() -> list[str]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = doc["jobs"]["refresh"]["steps"]
    step = next(s for s in steps if s.get("id") == "refresh")
    line = next(l for l in step["run"].splitlines() if "canada-asylum-data refresh" in l)
    words = [w for w in shlex.split(line.split("|")[0]) if ">" not in w]  # drop 2>&1
    assert words[0] == "canada-asylum-data"
    return words[1:]


def test_weekly_workflow_runs_the_command_this_test_runs():
    assert workflow_refresh_command() == REFRESH
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = {s.get("name") or s.get("id") or "": s for s in doc["jobs"]["refresh"]["steps"]}
    failure = next(s for s in steps.values() if "gh issue create" in str(s.get("run")))
    assert "failure()" in failure["if"] and "steps.refresh.outcome == 'failure'" in failure["if"]
    pr = next(s for s in steps.values() if "create-pull-request" in str(s.get("uses")))
    assert pr["with"]["body-path"] == "build/change-report.md"
    assert "datapackage" in pr["with"]["add-paths"].split()
    report = next(s for s in steps.values() if "canada-asylum-data diff" in str(s.get("run")))
    assert "sources.d/vintage_" in report["run"] and "build/change-report.md" in report["run"]
    cache = next(s for s in steps.values() if "actions/cache" in str(s.get("uses")))
    assert cache["with"]["path"] == "build/raw"


def _table(root: Path, name: str) -> list[dict]:
    text = (root / "datapackage" / "data" / f"{name}.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _state(root: Path) -> dict[str, str]:
    files = [*(root / "datapackage").rglob("*"), root / "metadata.yml", root / "build" / "canada_asylum.db"]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(files) if p.is_file()}


@pytest.fixture(scope="module")
def scenario(mirror, tmp_path_factory):
    """A project whose every URL points at the local server, with all snapshots held."""
    root = copy_project(tmp_path_factory.mktemp("online"))
    result = run(root, "fetch", "--mirror", str(mirror), "--silent")
    assert result.exit_code == 0, result.output
    with Server() as server:
        folder = root / "datapackage" / "sources.d"
        paths: dict[str, str] = {}
        for f in sorted(folder.glob("*.yml")):
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
            for rec in doc["sources"]:
                for key, prefix in (("url", "u"), ("archive_url", "a")):
                    if rec.get(key):  # one local path per distinct URL: shared URLs stay shared
                        paths.setdefault(rec[key], f"/{prefix}{len(paths)}")
                        rec[key] = server.base + paths[rec[key]]
            f.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        sources = load_all_sources(root / "datapackage")
        live_paths = {}
        for s in sources:
            if not s.live:
                continue
            path = s.url[len(server.base):]
            live_paths[s.id] = path
            known = sorted(known_vintages(s, sources), key=lambda k: k.vintage or "")
            if known:  # the publisher still serves its newest known version: nothing new
                server.routes[path] = Reply((mirror / known[-1].mirror_path).read_bytes())
        held = {s.id: s for s in sources if not s.live and s.sha256}
        yield root, server, live_paths, held


def _no_snapshot_requested(server, held, live_paths):
    live = set(live_paths.values())
    asked = {p for p in server.hits if p not in live}
    held_paths = {u[len(server.base):] for s in held.values() for u in (s.url, s.archive_url)
                  if u and u[len(server.base):] not in live}
    assert not asked & held_paths, sorted(asked & held_paths)


def test_refresh_keeps_up_with_live_series(scenario):
    root, server, live_paths, held = scenario
    folder = root / "datapackage" / "sources.d"
    assert workflow_refresh_command() == REFRESH

    # 1. A new IRB year page (IRB statistics template) -> a new vintage record and new rows.
    server.routes[live_paths[NEW_YEAR]] = Reply(PAGE)
    result = run(root, *REFRESH)
    assert result.exit_code == 0, result.output
    first = folder / "vintage_irb-rpd-2024-2025-02-27.yml"
    assert first.is_file(), sorted(p.name for p in folder.iterdir())
    rec = yaml.safe_load(first.read_text(encoding="utf-8"))["sources"][0]
    assert rec["kind"] == "snapshot" and rec["live_series"] == NEW_YEAR
    assert rec["sha256"] == hashlib.sha256(PAGE).hexdigest() and rec["bytes"] == len(PAGE)
    assert rec["vintage"] == "2025-02-27"  # read from the page's "Date modified"
    assert rec["retrieved"] and rec["parser"] == "irb_stat_html"
    assert rec["options"]["vintage_of"] == NEW_YEAR
    us = [r for r in _table(root, "irb_rpd_claims") if r["year"] == "2024" and r["country_code"] == "USA"]
    assert [(r["referred"], r["source_id"]) for r in us] == [("310", "irb-rpd-2024-2025-02-27")]
    ids = {r["id"] for r in _table(root, "sources")}
    assert "irb-rpd-2024-2025-02-27" in ids
    # every live series was asked once; those serving a known version wrote no record
    assert all(server.hits.get(p) == 1 for p in live_paths.values()), server.hits
    assert sorted(p.name for p in folder.glob("vintage_*.yml")) == [first.name]
    _no_snapshot_requested(server, held, live_paths)

    # 2. Changed content for the same live series -> a second vintage supersedes the first.
    changed = (PAGE.replace(b">310<", b">315<", 1).replace(b"2025-02-27", b"2025-05-30"))
    assert changed.count(b">315<") == 1
    server.routes[live_paths[NEW_YEAR]] = Reply(changed)
    result = run(root, *REFRESH)
    assert result.exit_code == 0, result.output
    assert (folder / "vintage_irb-rpd-2024-2025-05-30.yml").is_file()
    us = [r for r in _table(root, "irb_rpd_claims") if r["year"] == "2024" and r["country_code"] == "USA"]
    assert [(r["referred"], r["source_id"]) for r in us] == [("315", "irb-rpd-2024-2025-05-30")]
    revised = [r for r in _table(root, "revisions")
               if r["new_source_id"] == "irb-rpd-2024-2025-05-30" and r["measure"] == "referred"]
    assert [(r["old_value"], r["new_value"], r["old_source_id"]) for r in revised] == [
        ("310", "315", "irb-rpd-2024-2025-02-27")]
    _no_snapshot_requested(server, held, live_paths)

    # 3. Unchanged live content a week later: nothing new, nothing changes.
    before = _state(root)
    result = run(root, *REFRESH)
    assert result.exit_code == 0, result.output
    assert _state(root) == before

    # 4. A broken page: Error:, non-zero exit, outputs and records untouched.
    server.routes[live_paths[NEW_YEAR]] = Reply(BROKEN)
    result = run(root, *REFRESH)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: the live series irb-rpd-2024 served a file its parser "
                                    "cannot read"), result.output
    assert "nothing was recorded" in result.output and "update the parser irb_stat_html" in result.output
    assert "Traceback" not in result.output
    assert _state(root) == before
    _no_snapshot_requested(server, held, live_paths)


def test_reissued_cumulative_table_becomes_a_newer_vintage_of_the_held_one(mirror, tmp_path):
    """The irregular-crosser page keeps its versions side by side (one per quarter); a page
    re-issued for a quarter already held supersedes that snapshot instead of duplicating it."""
    import dataclasses

    import httpx

    from canada_asylum_data.live import take_vintage

    sources = load_all_sources(ROOT / "datapackage")
    live = next(s for s in sources if s.id == "irb-irregular-current")
    held = next(s for s in sources if s.id == "irb-irregular-2024-03")
    page = (mirror / held.mirror_path).read_bytes().replace(b">2024-05-22<", b">2024-06-03<")
    with Server() as server:
        server.routes["/irregular"] = Reply(page)
        url = server.base + "/irregular"
        moved = [dataclasses.replace(s, url=url) if s.url == live.url else s for s in sources]
        live = dataclasses.replace(live, url=url)
        with httpx.Client() as client:
            got = take_vintage(live, moved, tmp_path / "raw", tmp_path / "sources.d", client=client)
    assert got.how == "new-vintage"
    (record_file,) = (tmp_path / "sources.d").glob("vintage_*.yml")
    rec = yaml.safe_load(record_file.read_text(encoding="utf-8"))["sources"][0]
    assert rec["id"] == "irb-irregular-current-2024-06-03"
    assert rec["period_end"] == "2024-03-31" and rec["options"]["vintage_of"] == "irb-irregular-2024-03"
