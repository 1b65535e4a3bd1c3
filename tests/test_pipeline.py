"""The whole pipeline over the real raw files: refresh reproduces the committed package
byte for byte, it validates, and the database and metadata are complete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from canada_asylum_data.schemas import load_schemas
from canada_asylum_data.validate import validate_package

from .conftest import DATAPACKAGE, ROOT, copy_project, digest_tree, run

def test_refresh_reproduces_the_committed_package_byte_for_byte(fresh):
    committed = sorted(p.relative_to(DATAPACKAGE) for p in (DATAPACKAGE / "data").glob("*.csv"))
    produced = sorted(p.relative_to(fresh / "datapackage") for p in (fresh / "datapackage" / "data").glob("*.csv"))
    assert produced == committed
    for rel in [*committed, Path("datapackage.json")]:
        assert (fresh / "datapackage" / rel).read_bytes() == (DATAPACKAGE / rel).read_bytes(), (
            f"{rel} differs from a fresh refresh: run `canada-asylum-data refresh` and commit")
    assert (fresh / "metadata.yml").read_bytes() == (ROOT / "metadata.yml").read_bytes()


def test_refresh_twice_is_deterministic(fresh, mirror):
    before = digest_tree(fresh)
    result = run(fresh, "refresh", "--mirror", str(mirror), "--silent")
    assert result.exit_code == 0, result.output
    after = digest_tree(fresh)
    before.pop("build/canada_asylum.db"), after.pop("build/canada_asylum.db")
    assert before == after


def test_frictionless_validate_command_passes():
    exe = Path(sys.executable).with_name("frictionless")
    result = subprocess.run([str(exe), "validate", "--trusted", str(DATAPACKAGE / "datapackage.json")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_committed_package_reconciles():
    report = validate_package(DATAPACKAGE, with_frictionless=False)
    assert report.failed == [], "\n".join(f"{c.table} {c.key}: {c.detail}" for c in report.failed[:20])
    assert sum(c.status == "ok" for c in report.checks) > 1000


def test_metadata_is_current():
    result = run(ROOT, "metadata", "--check")
    assert result.exit_code == 0, result.output


def test_every_table_and_column_is_described():
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text())
    schemas = load_schemas(DATAPACKAGE / "schemas")
    problems = []
    for res in desc["resources"]:
        for key in ("title", "description", "title_fr", "description_fr", "licenses"):
            if not res.get(key):
                problems.append(f"{res['name']}: no {key}")
        if "source_id" in [f["name"] for f in res["schema"]["fields"]] and not res.get("sources"):
            problems.append(f"{res['name']}: no sources")
        for f in res["schema"]["fields"]:
            if len(f.get("description", "")) < 10:
                problems.append(f"{res['name']}.{f['name']}: no description")
            if not f.get("missing"):
                problems.append(f"{res['name']}.{f['name']}: meaning of missing values not stated")
        # Every number column states its unit, except calendar positions and ranks.
        for f in schemas[res["name"]].fields:
            if (f["type"] in ("integer", "number") and not f.get("unit")
                    and f["name"] not in ("year", "quarter", "month", "rank")):
                problems.append(f"{res['name']}.{f['name']}: no unit")
    metadata = yaml.safe_load((ROOT / "metadata.yml").read_text())
    tables = metadata["databases"]["canada_asylum"]["tables"]
    for res in desc["resources"]:
        entry = tables.get(res["name"]) or {}
        if not entry.get("description"):
            problems.append(f"metadata.yml: {res['name']} has no description")
        for f in res["schema"]["fields"]:
            if not (entry.get("columns") or {}).get(f["name"]):
                problems.append(f"metadata.yml: {res['name']}.{f['name']} not described")
    views = yaml.safe_load((DATAPACKAGE / "views.yml").read_text())["views"]
    for view in views:
        if not tables.get(view["name"], {}).get("description"):
            problems.append(f"metadata.yml: view {view['name']} has no description")
    assert problems == []


def test_every_fact_row_is_traceable():
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text())
    import csv

    for res in desc["resources"]:
        names = [f["name"] for f in res["schema"]["fields"]]
        if "source_locator" not in names:
            continue
        with (DATAPACKAGE / res["path"]).open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                assert row["source_id"] and row["source_locator"], (res["name"], row)


def test_database_has_keys_indexes_and_views(fresh):
    import sqlite_utils

    db = sqlite_utils.Database(fresh / "build" / "canada_asylum.db")
    rpd = db["irb_rpd_claims"]
    assert rpd.pks == ["year", "country_label"]
    assert any(fk.other_table == "countries" for fk in rpd.foreign_keys)
    assert any(ix.columns == ["country_code"] for ix in rpd.indexes)
    assert "us_claims_by_year" in db.view_names()
    # markers become NULL, never 0
    supp = db.execute("select count(*) from irb_rpd_claims where suppressed_measures like '%accepted%' "
                      "and accepted is not null").fetchone()[0]
    assert supp == 0
    assert (fresh / "build" / "inspect-data.json").is_file()


def test_frictionless_catches_broken_foreign_keys_and_types(tmp_path):
    from canada_asylum_data.validate import frictionless_errors

    root = copy_project(tmp_path / "p")
    path = root / "datapackage" / "data" / "irb_rpd_claims.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace(",AFG,", ",QQQ,", 1)
    lines[2] = lines[2].replace(",ALB,", ",ALB,x", 1)  # a referred count that is not an integer
    path.write_text("".join(lines), encoding="utf-8")
    errors = frictionless_errors(root / "datapackage" / "datapackage.json")
    assert any("irb_rpd_claims: foreign-key" in e for e in errors), errors
    assert any("irb_rpd_claims: type-error" in e for e in errors), errors
