"""Bad raw input stops the pipeline with `Error: ...` naming the source and the location,
exits non-zero, and leaves datapackage/, metadata.yml and the database byte-identical."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import digest_tree, run, set_checksum


@pytest.fixture()
def project(fresh, tmp_path):
    root = tmp_path / "project"
    shutil.copytree(fresh, root)
    return root


def _mirror_with(mirror: Path, tmp: Path, source, data: bytes | None) -> Path:
    """A mirror folder holding the real files, with one replaced (or removed when None)."""
    fake = tmp / "mirror"
    shutil.copytree(mirror, fake, symlinks=True)
    target = fake / source.mirror_path
    target.unlink()
    if data is not None:
        target.write_bytes(data)
    return fake


def _refresh_fails(root: Path, fake_mirror: Path, *expected: str) -> str:
    before = digest_tree(root)
    result = run(root, "refresh", "--mirror", str(fake_mirror), "--silent")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output
    assert digest_tree(root) == before
    return result.output


def mutate(project, mirror, sources, source_id: str, change) -> str:
    src = sources[source_id]
    data = change((mirror / src.mirror_path).read_bytes())
    set_checksum(project, source_id, data)
    (project / "build" / "raw" / src.raw_name).unlink()
    return _mirror_with(mirror, project.parent, src, data)


RPD = "irb-rpd-2013-2023-transcription"
RAD = "irb-rad-2019"


def test_corrupted_workbook(project, mirror, sources):
    fake = mutate(project, mirror, sources, RPD, lambda b: b[:200] + b"\x00garbage" * 50 + b[600:])
    _refresh_fails(project, fake, RPD)


def test_truncated_workbook(project, mirror, sources):
    fake = mutate(project, mirror, sources, RPD, lambda b: b[: len(b) // 2])
    _refresh_fails(project, fake, RPD)


def test_html_page_without_statistics_table(project, mirror, sources):
    def drop_table(b: bytes) -> bytes:
        text = b.decode("utf-8")
        start, end = text.index("<table"), text.index("</table>") + len("</table>")
        return (text[:start] + text[end:]).encode("utf-8")

    fake = mutate(project, mirror, sources, RAD, drop_table)
    _refresh_fails(project, fake, RAD, "table")


def test_renamed_header(project, mirror, sources):
    fake = mutate(project, mirror, sources, RAD, lambda b: b.replace(b'scope="col">Filed<', b'scope="col">Lodged<', 1))
    _refresh_fails(project, fake, RAD)


def test_checksum_mismatch(project, mirror, sources):
    src = sources[RAD]
    (project / "build" / "raw" / src.raw_name).unlink()
    fake = _mirror_with(mirror, project.parent, src, (mirror / src.mirror_path).read_bytes() + b"\n")
    out = _refresh_fails(project, fake, f"checksum mismatch for source {RAD}", src.sha256)
    assert "datapackage/sources.d/" in out


def test_missing_mirror_file(project, mirror, sources):
    src = sources[RAD]
    (project / "build" / "raw" / src.raw_name).unlink()
    fake = _mirror_with(mirror, project.parent, src, None)
    _refresh_fails(project, fake, f"mirror file missing for source {RAD}", src.mirror_path)


def test_refresh_that_fails_validation_installs_nothing(project, mirror):
    """A package that parses but does not reconcile never replaces the previous one."""
    schema = project / "datapackage" / "schemas" / "irb_rpd_claims.yaml"
    text = schema.read_text()
    assert "parts: [accepted, rejected, abandoned, withdrawn_other]" in text
    schema.write_text(text.replace("parts: [accepted, rejected, abandoned, withdrawn_other]",
                                   "parts: [accepted, rejected]"))
    before = digest_tree(project)
    result = run(project, "refresh", "--mirror", str(mirror), "--silent")
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]  # the failed checks are listed above it
    assert last.startswith("Error: data package failed validation"), result.output[-2000:]
    assert "(new package, not installed)" in last and "failed reconciliation check" in last
    assert "accepted + rejected = 207 but finalized = 232" in result.output
    assert "Traceback" not in result.output
    assert digest_tree(project) == before
    assert not list((project / "datapackage").glob(".staging-*"))
