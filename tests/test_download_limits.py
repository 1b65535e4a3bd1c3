"""Downloads that cannot flood or escape, and cannot hang: size caps, file-type checks, mirror
paths kept inside the mirror, an overall deadline per file. Each case runs the weekly
workflow's command against a local 127.0.0.1 server and checks the `Error:` text, the exit
code and that every output (datapackage/, metadata.yml, build/raw/) is byte-identical."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from .conftest import copy_project, run
from .webserver import Reply, Server

OGL = [{"name": "OGL-Canada-2.0", "title": "Open Government Licence - Canada",
        "path": "https://open.canada.ca/en/open-government-licence-canada"}]


def outputs(root: Path) -> dict[str, str]:
    """Every file of the package, the metadata and build/, but the project lock (build/.lock,
    which every writing command takes: it holds no output)."""
    files = [*(root / "datapackage").rglob("*"), root / "metadata.yml", *(root / "build").rglob("*")]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(files) if p.is_file() and p.name != ".lock"}


def project(tmp_path: Path, *records: dict) -> Path:
    """A project whose only sources are ``records`` (the committed outputs stay as they are)."""
    root = copy_project(tmp_path / "project")
    folder = root / "datapackage" / "sources.d"
    for f in folder.glob("*.yml"):
        f.unlink()
    (folder / "test.yml").write_text(yaml.safe_dump({"sources": list(records)}), encoding="utf-8")
    (root / "build" / "raw").mkdir(parents=True)
    (root / "build" / "raw" / "kept.txt").write_text("an earlier good file\n", encoding="utf-8")
    return root


def record(sid: str, url: str, kind: str = "live", ext: str = ".htm", **more) -> dict:
    rec = {"id": sid, "kind": kind, "title": "t", "publisher": "IRB", "url": url,
           "licenses": OGL, "parser": "irb_stat_html", "series": "irb_rpd_claims",
           "options": {"extension": ext, "mirror_folder": "irb"}}
    rec.update(more)
    return rec


def refresh_fails(root: Path, *args: str) -> str:
    before = outputs(root)
    result = run(root, "refresh", *args, "--silent")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert outputs(root) == before  # nothing installed, nothing half-written
    return result.output


@pytest.fixture()
def server():
    with Server() as s:
        yield s


def test_live_download_over_the_documented_cap_is_refused(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CANADA_ASYLUM_DATA_MAX_DOWNLOAD", "1000")
    server.routes["/big.aspx"] = Reply(b"<html>" + b"x" * 5000 + b"</html>")
    root = project(tmp_path, record("irb-rpd-2024", f"{server.base}/big.aspx"))
    out = refresh_fails(root, "--online")
    assert "could not download source irb-rpd-2024" in out
    assert "server announces 5013 bytes, more than the 1000 allowed for source irb-rpd-2024" in out


def test_live_body_without_length_is_cut_at_the_cap(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CANADA_ASYLUM_DATA_MAX_DOWNLOAD", "1000")
    # no Content-Length: the cap is enforced while reading
    server.routes["/chunked.aspx"] = Reply(b"<html>" + b"x" * 70000 + b"</html>", no_length=True)
    root = project(tmp_path, record("irb-rpd-2024", f"{server.base}/chunked.aspx"))
    out = refresh_fails(root, "--online")
    assert "body exceeds the 1000 bytes allowed for source irb-rpd-2024" in out


def test_snapshot_larger_than_its_recorded_size_is_refused(server, tmp_path):
    body = b"PK\x03\x04" + b"\0" * 4000
    server.routes["/wb.xlsx"] = Reply(body)
    snap = record("ircc-odp-test-2024-02", f"{server.base}/wb.xlsx", kind="snapshot", ext=".xlsx",
                  mirror_path="crossings/test.xlsx", sha256="0" * 64, bytes=100,
                  parser="ircc_odp_xlsx", series="ircc_claimants_office_province")
    root = project(tmp_path, snap)
    out = refresh_fails(root, "--online")
    assert "server announces 4004 bytes, more than the 100 allowed for source ircc-odp-test-2024-02" in out


def test_html_error_page_is_not_a_workbook(server, tmp_path):
    server.routes["/EN_ODP.xlsx"] = Reply(b"<!DOCTYPE html><html><body>Page not found</body></html>",
                                          headers={"Content-Type": "text/html"})
    live = record("ircc-odp-test-current", f"{server.base}/EN_ODP.xlsx", ext=".xlsx",
                  parser="ircc_odp_xlsx", series="ircc_claimants_office_province")
    root = project(tmp_path, live)
    out = refresh_fails(root, "--online")
    assert "download is not an .xlsx workbook (a zip file): got an HTML page" in out
    assert "source ircc-odp-test-current" in out


def test_html_error_page_is_not_an_rda(server, tmp_path):
    server.routes["/asylum_applications.rda"] = Reply(b"<html><body>rate limited</body></html>")
    live = record("unhcr-test-current", f"{server.base}/asylum_applications.rda", ext=".rda",
                  parser="unhcr_rda", series="unhcr_asylum_applications")
    root = project(tmp_path, live)
    out = refresh_fails(root, "--online")
    assert "download is not an R data file (.rda: bzip2, gzip, xz or plain RDX): got an HTML page" in out


def test_stalled_server_ends_at_the_deadline(server, tmp_path, monkeypatch):
    # one byte every 0.5 s, for ever: only the per-file deadline can end this download
    monkeypatch.setenv("CANADA_ASYLUM_DATA_FETCH_DEADLINE", "2")
    server.routes["/slow.aspx"] = Reply(trickle=0.5)
    root = project(tmp_path, record("irb-rpd-2025", f"{server.base}/slow.aspx"))
    out = refresh_fails(root, "--online")
    assert "could not download source irb-rpd-2025: download not complete within the deadline " \
           "(2 s per file)" in out
    assert "raise $CANADA_ASYLUM_DATA_FETCH_DEADLINE" in out


def test_mirror_symlink_leaving_the_mirror_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "irb").mkdir(parents=True)
    secret = tmp_path / "outside.htm"
    secret.write_text("<html>not a source</html>", encoding="utf-8")
    os.symlink(secret, mirror / "irb" / "rad.htm")
    sha = hashlib.sha256(secret.read_bytes()).hexdigest()
    snap = record("irb-rad-2023", "https://example.invalid/RADStat2023.aspx", kind="snapshot",
                  mirror_path="irb/rad.htm", sha256=sha, bytes=secret.stat().st_size,
                  series="irb_rad_appeals")
    root = project(tmp_path, snap)
    out = refresh_fails(root, "--mirror", str(mirror))
    assert "mirror_path of source irb-rad-2023 leads outside the mirror folder" in out
    assert str(secret) in out


def test_mirror_path_with_dotdot_is_refused(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    snap = record("irb-rad-2023", "https://example.invalid/RADStat2023.aspx", kind="snapshot",
                  mirror_path="../outside.htm", sha256="0" * 64, bytes=10, series="irb_rad_appeals")
    root = project(tmp_path, snap)
    out = refresh_fails(root, "--mirror", str(mirror))
    assert "mirror_path of irb-rad-2023 leaves the mirror folder (../outside.htm)" in out
