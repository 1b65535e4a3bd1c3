"""Release tooling: the change report on real vintage pairs, the publish command, the
offline export, versions, and the GitHub workflows."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from canada_asylum_data.cli import cli
from canada_asylum_data.diff import (compare_packages, format_periods, insert_section,
                                     release_section, render_markdown)
from canada_asylum_data.fetch import copy_from_mirror
from canada_asylum_data.normalize import normalize
from canada_asylum_data.package import write_package
from canada_asylum_data.paths import Paths
from canada_asylum_data.publish import next_version, read_live_hash, set_version
from canada_asylum_data.serve import write_stamp
from canada_asylum_data.site import (SETTINGS, content_hash, describe, publish_command,
                                     site_plugins)
from canada_asylum_data.sources import load_all_sources

from .conftest import DATAPACKAGE, ROOT

OLD = ["ircc-odp-office-province-2024-02", "unhcr-asylum-applications-2025.12.0"]
NEW = ["ircc-odp-office-province-2025-07", "unhcr-asylum-applications-2025.12.1"]
INPUTS_SKIP = {"data", "datapackage.json"}


def copy_inputs(dest: Path) -> Path:
    """The package's hand-written inputs (schemas, aliases, sources, package.yaml...)."""
    dest.mkdir(parents=True)
    for item in DATAPACKAGE.iterdir():
        if item.name in INPUTS_SKIP or item.name.startswith("."):
            continue
        (shutil.copytree if item.is_dir() else shutil.copyfile)(item, dest / item.name)
    return dest


def build_package(root: Path, ids: list[str], mirror: Path) -> Path:
    dp = copy_inputs(root / "datapackage")
    raw = root / "raw"
    raw.mkdir()
    sources = load_all_sources(dp)
    by_id = {s.id: s for s in sources}
    raw_files = {sid: copy_from_mirror(by_id[sid], mirror, raw).path for sid in ids}
    result = normalize(sources, raw_files, dp)
    write_package(result.tables, dp, sources)
    return dp


@pytest.fixture(scope="module")
def vintage_diff(mirror, tmp_path_factory):
    old = build_package(tmp_path_factory.mktemp("old"), OLD, mirror)
    new = build_package(tmp_path_factory.mktemp("new"), NEW, mirror)
    return old, new, compare_packages(old, new, "2024-02 / 2025.12.0", "2025-07 / 2025.12.1")


def _table(diff, name):
    return next(t for t in diff.tables if t.name == name)


def test_diff_ircc_vintages_names_new_months_and_revised_2023_total(vintage_diff):
    _, _, diff = vintage_diff
    office = _table(diff, "ircc_claimants_office_province")
    assert office.new_periods[0] == "2024-03" and office.new_periods[-1] == "2025-07"
    assert len(office.new_periods) == 17
    report = render_markdown(diff)
    assert "new 2024-03..2025-07 (17 periods)" in report
    # The publisher's grand total for 2023, revised between the two vintages.
    line = next(l for l in report.splitlines()
                if "ircc_claimants_office_province" in l and "Total / 2023 Total" in l and 'scope={"year": 2023}' in l)
    assert "| 143,795 | 143,310 |" in line
    assert "ircc-odp-office-province-2024-02 (2024-02-29)" in line
    assert "ircc-odp-office-province-2025-07 (2025-07-31)" in line
    assert "now from ircc-odp-office-province-2025-07" in report


def test_diff_unhcr_vintages_names_revised_usa_to_canada_2025(vintage_diff):
    _, _, diff = vintage_diff
    apps = _table(diff, "unhcr_asylum_applications")
    change = next(c for c in apps.changes if c.key.get("year") == "2025" and c.key.get("origin_code") == "USA"
                  and c.key.get("asylum_code") == "CAN" and c.key.get("app_type") == "N")
    assert (change.old, change.new) == ("1916", "1927")
    assert (change.old_vintage, change.new_vintage) == ("2025.12.0", "2025.12.1")
    report = render_markdown(diff, max_rows=10_000)
    assert re.search(r"year=2025, origin_code=USA, asylum_code=CAN.*\| applied \| 1,916 \| 1,927 \|", report)


def test_diff_reports_validation_and_checksums(vintage_diff):
    _, _, diff = vintage_diff
    report = render_markdown(diff)
    assert "## Validation and reconciliation (new side)" in report
    assert "reconciliation:" in report
    assert "## Sources whose checksum changed\n\nNone." in report


def test_diff_cli_between_folders_and_changelog(vintage_diff, tmp_path):
    old, new, _ = vintage_diff
    out, csv_out = tmp_path / "report.md", tmp_path / "changes.csv"
    runner = CliRunner()
    result = runner.invoke(cli, ["diff", "--old", str(old), "--new", str(new), "--output", str(out),
                                 "--csv", str(csv_out), "--exit-code", "--silent"])
    assert result.exit_code == 1, result.output
    assert "143,310" in out.read_text()
    assert "unhcr_asylum_applications" in csv_out.read_text()
    changelog = tmp_path / "CHANGELOG.md"
    result = runner.invoke(cli, ["changelog", "--old", str(old), "--new", str(new), "--file", str(changelog),
                                 "--silent"])
    assert result.exit_code == 0, result.output
    text = changelog.read_text()
    assert text.startswith("# Changelog")
    assert "- `ircc_claimants_office_province`: new month 2024-03..2025-07" in text
    # Re-running replaces the section instead of adding a second one.
    runner.invoke(cli, ["changelog", "--old", str(old), "--new", str(new), "--file", str(changelog), "--silent"])
    assert changelog.read_text().count("\n## ") == 1


def test_diff_same_package_has_no_changes():
    diff = compare_packages(DATAPACKAGE, DATAPACKAGE, validate=False)
    assert not diff.changed
    assert "**No changes**" in render_markdown(diff)
    assert release_section(diff, "2026.01.01").endswith("- No data changes.\n")


def test_diff_bad_revision_is_a_clean_error():
    result = CliRunner().invoke(cli, ["diff", "--old", "no-such-revision-xyz", "--silent"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read datapackage/ at git revision 'no-such-revision-xyz'")


def test_format_periods_and_changelog_insertion():
    assert format_periods(["2023-11", "2023-12", "2024-01", "2024-05"]) == "2023-11..2024-01, 2024-05 (4 periods)"
    assert format_periods(["2021", "2022"]) == "2021..2022 (2 periods)"
    text = insert_section("# Changelog\n\nintro\n\n## 2026.01.01\n\n- old\n", "## 2026.02.01\n\n- new\n", "2026.02.01")
    assert text.index("## 2026.02.01") < text.index("## 2026.01.01")


# --- versions ---------------------------------------------------------------------------

def test_calendar_versions_and_set_version(tmp_path):
    assert next_version("2026.11.24", dt.date(2026, 12, 1)) == "2026.12.01"
    assert next_version("2026.12.01", dt.date(2026, 12, 1)) == "2026.12.01.1"
    assert next_version("2026.12.01.1", dt.date(2026, 12, 1)) == "2026.12.01.2"
    dp = tmp_path / "datapackage"
    dp.mkdir()
    (dp / "package.yaml").write_text('name: x\nversion: "2026.11.24"\ntitle: t\n')
    (dp / "datapackage.json").write_text(json.dumps({"name": "x", "version": "2026.11.24", "resources": []}))
    set_version(dp, "2026.12.01")
    assert yaml.safe_load((dp / "package.yaml").read_text())["version"] == "2026.12.01"
    assert list(json.loads((dp / "datapackage.json").read_text())) == ["name", "version", "resources"]
    assert json.loads((dp / "datapackage.json").read_text())["version"] == "2026.12.01"
    # the citation file beside datapackage/ follows: version and its date
    (tmp_path / "CITATION.cff").write_text('cff-version: 1.2.0\nversion: "2026.12.01"\n'
                                           'date-released: "2026-12-01"\ntitle: t\n')
    set_version(dp, "2026.12.02.1")
    cff = yaml.safe_load((tmp_path / "CITATION.cff").read_text())
    assert (cff["version"], cff["date-released"], cff["title"]) == ("2026.12.02.1", "2026-12-02", "t")


def test_committed_package_has_a_calendar_version():
    version = json.loads((DATAPACKAGE / "datapackage.json").read_text())["version"]
    assert re.match(r"^\d{4}\.\d{2}\.\d{2}(\.\d+)?$", version)


# --- publish and export (on a small project built from two real tables) -----------------

@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """A project folder holding a copy of the committed package trimmed to a few tables, with
    the database built (fast), metadata.yml generated and pyproject.toml copied."""
    from canada_asylum_data.database import build_database
    from canada_asylum_data.metadata import write_metadata
    from canada_asylum_data.serve import inspect

    root = tmp_path_factory.mktemp("project")
    dp = copy_inputs(root / "datapackage")
    keep = {"rcmp_interceptions", "provinces", "sources", "countries"}
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text())
    desc["resources"] = [r for r in desc["resources"] if r["name"] in keep]
    (dp / "data").mkdir()
    for r in desc["resources"]:
        shutil.copyfile(DATAPACKAGE / r["path"], dp / r["path"])
    (dp / "datapackage.json").write_text(json.dumps(desc, indent=2, ensure_ascii=False) + "\n")
    (dp / "views.yml").write_text("views: []\n")
    shutil.copyfile(ROOT / "pyproject.toml", root / "pyproject.toml")
    paths = Paths(root)
    paths.build.mkdir()
    build_database(dp, paths.db, paths.views)
    inspect(paths.db, paths.inspect_file)
    write_metadata(dp, paths.views, paths.metadata)
    write_stamp(paths)  # the stamp covers metadata.yml too
    return paths


def test_publish_dry_run_prints_the_exact_cloudrun_command(small_project):
    paths = small_project
    before = sorted(p for p in paths.root.rglob("*"))
    result = CliRunner().invoke(cli, ["--root", str(paths.root), "publish", "--dry-run", "--silent"])
    assert result.exit_code == 0, result.output
    # writes nothing (the project lock file it took is no output)
    assert sorted(p for p in paths.root.rglob("*") if p.name != ".lock") == before
    plugins = site_plugins(paths.root)
    digest = content_hash(describe(paths))
    version = json.loads(paths.descriptor.read_text())["version"]
    extra = " ".join(f"--setting {k} {v}" for k, v in SETTINGS.items())
    expected = (["datasette", "publish", "cloudrun", "build/canada_asylum.db", "--metadata", "metadata.yml",
                 "--static", "datapackage:datapackage"]
                + [x for p in plugins for x in ("--install", p)]
                + ["--version-note", f"canada-asylum-data {version} sha256:{digest}",
                   "--extra-options", extra, "--service", "canada-asylum-data", "--memory", "1Gi",
                   "--min-instances", "0", "--max-instances", "10"])
    import shlex

    assert shlex.split(result.output.strip()) == expected
    assert "--setting default_cache_ttl 86400" in extra
    assert "--setting sql_time_limit_ms 3000" in extra


def test_publish_dry_run_fly_and_plugins_from_pyproject(small_project, tmp_path):
    paths = small_project
    result = CliRunner().invoke(cli, ["--root", str(paths.root), "publish", "--platform", "fly",
                                      "--service", "cad-test", "--dry-run", "--silent"])
    assert result.exit_code == 0, result.output
    import shlex

    cmd = shlex.split(result.output.strip())
    assert cmd[:4] == ["datasette", "publish", "fly", "build/canada_asylum.db"]
    assert cmd[cmd.index("--app") + 1] == "cad-test"
    assert ["--setting", "default_cache_ttl", SETTINGS["default_cache_ttl"]] == \
        cmd[cmd.index("default_cache_ttl") - 1: cmd.index("default_cache_ttl") + 2]
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\ndependencies=["datasette>=0.65", "datasette-render-markdown>=2.2", "click"]\n')
    assert site_plugins(tmp_path) == ("datasette-render-markdown>=2.2",)
    cmd = publish_command(describe(Paths(tmp_path)), "cloudrun", "s", "note")
    assert cmd[cmd.index("--install"):cmd.index("--install") + 2] == ["--install", "datasette-render-markdown>=2.2"]


def test_publish_skips_when_live_hash_matches(small_project, tmp_path):
    paths = small_project
    digest = content_hash(describe(paths))
    live = tmp_path / "versions.json"
    live.write_text(json.dumps({"datasette": {"version": "0.65.5",
                                              "note": f"canada-asylum-data 2026.11.24 sha256:{digest}"}}))
    assert read_live_hash(str(live)) == digest
    assert read_live_hash(f"sha256:{digest}") == digest
    assert read_live_hash(None) is None
    result = CliRunner().invoke(cli, ["--root", str(paths.root), "publish", "--live-hash", str(live)])
    assert result.exit_code == 0, result.output
    assert "is current; nothing to deploy" in result.output
    bad = CliRunner().invoke(cli, ["--root", str(paths.root), "publish", "--live-hash", "nonsense"])
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: cannot read a sha256 from --live-hash")


def test_export_writes_an_offline_copy(small_project, tmp_path):
    paths = small_project
    out = tmp_path / "offline"
    result = CliRunner().invoke(cli, ["--root", str(paths.root), "export", "--output", str(out), "--silent"])
    assert result.exit_code == 0, result.output
    version = json.loads(paths.descriptor.read_text())["version"]
    zname = f"canada-asylum-data-{version}.zip"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [zname, "canada_asylum.db", "metadata.yml", "README.md", "SHA256SUMS", "serve.sh", "datapackage"])
    assert (out / "datapackage" / "data" / "rcmp_interceptions.csv").is_file()
    with zipfile.ZipFile(out / zname) as zf:
        names = zf.namelist()
        assert names[0] == "datapackage.json"
        assert "data/rcmp_interceptions.csv" in names
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
        assert zf.read("data/rcmp_interceptions.csv") == (paths.datapackage / "data/rcmp_interceptions.csv").read_bytes()
    readme = (out / "README.md").read_text()
    assert f"data version {version}" in readme and "How to cite" in readme and "sqlite3" in readme
    sums = (out / "SHA256SUMS").read_text()
    assert zname in sums and "canada_asylum.db" in sums
    # Deterministic: a second export gives byte-identical files.
    first = (out / zname).read_bytes()
    CliRunner().invoke(cli, ["--root", str(paths.root), "export", "--output", str(out), "--silent"])
    assert (out / zname).read_bytes() == first


# --- workflows ----------------------------------------------------------------------------

WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


@pytest.mark.parametrize("name", ["test.yml", "refresh.yml", "release.yml", "publish.yml"])
def test_workflow_is_valid_pinned_and_least_privilege(name):
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert doc["jobs"], name
    assert doc["permissions"] == {"contents": "read"}, f"{name}: default permissions must be read-only"
    for job_name, job in doc["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{name}/{job_name}: {step['uses']} is not pinned by SHA"
        for scope, level in (job.get("permissions") or {}).items():
            assert level in ("read", "write", "none")


def _runs(name: str) -> str:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    return "\n".join(s.get("run", "") for job in doc["jobs"].values() for s in job["steps"])


def test_workflows_call_the_documented_commands():
    assert "bash .ci/run" in _runs("test.yml")
    refresh = _runs("refresh.yml")
    for command in ("canada-asylum-data refresh --online", "canada-asylum-data diff",
                    "canada-asylum-data bump-version", "canada-asylum-data changelog"):
        assert command in refresh
    assert "gh issue create" in refresh
    release = _runs("release.yml")
    assert "canada-asylum-data export" in release and "gh release create" in release
    assert "canada-asylum-data publish --platform" in _runs("publish.yml")
    refresh_doc = yaml.safe_load((WORKFLOWS / "refresh.yml").read_text())
    on = refresh_doc.get("on", refresh_doc.get(True))
    assert "schedule" in on and "workflow_dispatch" in on
    perms = refresh_doc["jobs"]["refresh"]["permissions"]
    assert perms == {"contents": "write", "pull-requests": "write", "issues": "write"}


def test_diff_against_a_git_revision(small_project, tmp_path):
    """`--old REV` reads datapackage/ from git (here a throw-away repository)."""
    import subprocess

    repo = tmp_path / "repo"
    shutil.copytree(small_project.datapackage, repo / "datapackage")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "datapackage"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "package"], check=True)
    csv_path = repo / "datapackage" / "data" / "rcmp_interceptions.csv"
    lines = csv_path.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    row = lines[1].rstrip("\n").split(",")
    old_value = row[header.index("interceptions")]
    row[header.index("interceptions")] = "99999"
    csv_path.write_text(lines[0] + ",".join(row) + "\n" + "".join(lines[2:]))
    result = CliRunner().invoke(cli, ["--root", str(repo), "diff", "--old", "HEAD", "--silent"])
    assert result.exit_code == 0, result.output
    assert "# Data change report: git HEAD -> working tree" in result.output
    assert f"| interceptions | {old_value} | 99,999 |" in result.output
