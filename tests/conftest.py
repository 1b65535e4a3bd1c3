"""Shared fixtures. Tests over the real raw files need the mirror folder
(``../shared/sources`` or $CANADA_ASYLUM_DATA_MIRROR): they run whenever it exists, and
fail (never skip) when it is missing in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from canada_asylum_data.sources import Source, load_all_sources

ROOT = Path(__file__).resolve().parent.parent
DATAPACKAGE = ROOT / "datapackage"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def mirror_path() -> Path:
    return Path(os.environ.get("CANADA_ASYLUM_DATA_MIRROR", ROOT.parent / "shared" / "sources"))


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = mirror_path()
    if not path.is_dir():
        message = f"mirror of raw sources not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must test the real files)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def sources() -> dict[str, Source]:
    return {s.id: s for s in load_all_sources(DATAPACKAGE)}


@pytest.fixture(scope="session")
def real_file(mirror, sources):
    """real_file(source_id) -> (Source, Path of the mirrored raw file)."""

    def get(source_id: str) -> tuple[Source, Path]:
        src = sources[source_id]
        return src, mirror / src.mirror_path

    return get
