"""The parse cache (build/cache/parsed/) and the validation ledger (build/validated.json)
save work on a refresh whose inputs did not change, and never hide a change: any change
to what a cached result or a Frictionless verdict depends on means doing the work again."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from canada_asylum_data import ledger
from canada_asylum_data.cache import ParseCache

from .conftest import DATAPACKAGE, digest_tree, run


@pytest.fixture
def warm(fresh, tmp_path) -> Path:
    """A copy of a refreshed project, with its cache and ledger."""
    dest = tmp_path / "warm"
    shutil.copytree(fresh, dest)
    assert list((dest / "build" / "cache" / "parsed").glob("*.pickle"))
    assert (dest / "build" / "validated.json").is_file()
    return dest


def _outputs(root: Path) -> dict[str, str]:
    digests = digest_tree(root)
    digests.pop("build/canada_asylum.db")
    return digests


def test_unchanged_refresh_reuses_parsed_sources_and_verdicts(warm, mirror):
    before = _outputs(warm)
    entries = sorted(p.name for p in (warm / "build" / "cache" / "parsed").glob("*.pickle"))
    result = run(warm, "refresh", "--mirror", str(mirror))
    assert result.exit_code == 0, result.output
    assert f"parse: {len(entries)} source(s) unchanged since they were last parsed" in result.output
    desc = json.loads((warm / "datapackage" / "datapackage.json").read_text())
    assert (f"validate: {len(desc['resources'])} resource(s) unchanged since Frictionless passed them"
            in result.output)
    assert _outputs(warm) == before
    assert sorted(p.name for p in (warm / "build" / "cache" / "parsed").glob("*.pickle")) == entries


def test_damaged_or_stale_cache_entries_are_misses(warm, mirror):
    before = _outputs(warm)
    folder = warm / "build" / "cache" / "parsed"
    entries = sorted(folder.glob("*.pickle"))
    entries[0].write_bytes(b"not a pickle")
    entries[1].write_bytes(entries[1].read_bytes()[:100])  # truncated
    (folder / ("0" * 64 + ".pickle")).write_bytes(b"left over from an older run")
    result = run(warm, "refresh", "--mirror", str(mirror))
    assert result.exit_code == 0, result.output
    assert f"parse: {len(entries) - 2} source(s) unchanged" in result.output
    assert _outputs(warm) == before
    assert not (folder / ("0" * 64 + ".pickle")).exists()  # pruned
    assert len(list(folder.glob("*.pickle"))) == len(entries)


def test_an_alias_change_parses_everything_again(warm, mirror):
    aliases = warm / "datapackage" / "aliases" / "irb.yml"
    aliases.write_text(aliases.read_text() + "\n# touched\n")
    result = run(warm, "refresh", "--mirror", str(mirror))
    assert result.exit_code == 0, result.output
    assert "unchanged since they were last parsed" not in result.output


def test_no_cache_option_does_all_the_work(warm, mirror):
    before = _outputs(warm)
    result = run(warm, "refresh", "--mirror", str(mirror), "--no-cache")
    assert result.exit_code == 0, result.output
    assert "unchanged since" not in result.output
    assert _outputs(warm) == before


def test_a_schema_change_is_validated_again_and_can_fail(warm, mirror):
    """The ledger vouches for content + schema: a tightened constraint is checked by
    Frictionless on the next refresh, and the failing package is not installed."""
    schema = warm / "datapackage" / "schemas" / "irb_rpd_claims.yaml"
    text = schema.read_text()
    assert "{use: year, constraints: {required: true, minimum: 2013, maximum: 2100}}" in text
    schema.write_text(text.replace("minimum: 2013, maximum: 2100", "minimum: 2013, maximum: 2015"))
    before = digest_tree(warm)
    result = run(warm, "refresh", "--mirror", str(mirror))
    assert result.exit_code == 1
    assert "checking 1" in result.output  # only the changed resource goes through Frictionless
    assert "irb_rpd_claims: constraint-error" in result.output
    assert "Error: data package failed validation" in result.output
    assert digest_tree(warm) == before


def test_ledger_digests_follow_content_schema_and_references():
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text())
    base = ledger.resource_digests(desc)
    assert len(set(base.values())) == len(base)

    def changed(edit) -> set[str]:
        other = copy.deepcopy(desc)
        edit({r["name"]: r for r in other["resources"]})
        after = ledger.resource_digests(other)
        return {name for name in base if base[name] != after[name]}

    def new_hash(res):
        res["irb_rpd_claims"]["hash"] = "sha256:" + "0" * 64

    def new_country(res):
        res["countries"]["hash"] = "sha256:" + "1" * 64

    def new_description(res):
        res["irb_rpd_claims"]["schema"]["fields"][0]["description"] = "changed"

    assert changed(new_hash) == {"irb_rpd_claims"}
    # countries is referenced by every table with a country code: all are checked again
    referencing = {r["name"] for r in desc["resources"]
                   if any(fk["reference"]["resource"] == "countries"
                          for fk in r["schema"].get("foreignKeys", []))}
    assert referencing and changed(new_country) == referencing | {"countries"}
    assert changed(new_description) == {"irb_rpd_claims"}


def test_ledger_records_only_what_passed(tmp_path):
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text())
    path = tmp_path / "validated.json"
    names = [r["name"] for r in desc["resources"]]
    assert ledger.to_validate(desc, path) == names  # no ledger: everything
    path.write_text("{not json")
    assert ledger.to_validate(desc, path) == names  # unreadable ledger: everything
    ledger.record(desc, path)
    assert ledger.to_validate(desc, path) == []
    desc["resources"][0]["hash"] = "sha256:" + "2" * 64
    assert ledger.to_validate(desc, path) == [names[0]]


def test_parse_cache_roundtrip_and_prune(tmp_path):
    cache = ParseCache(tmp_path / "parsed")
    assert cache.get("a" * 64) is None
    cache.put("b" * 64, {"rows": [1, 2]})
    later = ParseCache(tmp_path / "parsed")
    assert later.get("b" * 64) == {"rows": [1, 2]}
    later.prune()
    assert (tmp_path / "parsed" / ("b" * 64 + ".pickle")).exists()
    ParseCache(tmp_path / "parsed").prune()  # used nothing: everything goes
    assert not list((tmp_path / "parsed").glob("*.pickle"))
