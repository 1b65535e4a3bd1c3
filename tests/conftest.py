"""Shared fixtures. Tests over the real raw files need the mirror folder
(``../shared/sources`` or $CANADA_ASYLUM_DATA_MIRROR): they run whenever it exists, and
fail (never skip) when it is missing in CI."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from canada_asylum_data.cli import cli

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


OUTPUTS = {"data", "datapackage.json"}
SITE = ("plugins", "templates", "static")


def copy_project(dest: Path, with_outputs: bool = True) -> Path:
    """A project folder with the committed inputs (and outputs) but its own build/."""
    (dest / "datapackage").mkdir(parents=True)
    for src in DATAPACKAGE.iterdir():
        if src.name in OUTPUTS or src.name.startswith("."):
            continue
        if src.is_dir():
            shutil.copytree(src, dest / "datapackage" / src.name)
        else:
            shutil.copy2(src, dest / "datapackage" / src.name)
    for name in SITE:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    if with_outputs:
        shutil.copytree(DATAPACKAGE / "data", dest / "datapackage" / "data")
        shutil.copy2(DATAPACKAGE / "datapackage.json", dest / "datapackage" / "datapackage.json")
        shutil.copy2(ROOT / "metadata.yml", dest / "metadata.yml")
    return dest


def run(root: Path, *args: str):
    return CliRunner().invoke(cli, ["--root", str(root), *args], catch_exceptions=False)


def digest_tree(root: Path) -> dict[str, str]:
    files = sorted(p for p in [*(root / "datapackage").rglob("*"), root / "metadata.yml",
                               root / "build" / "canada_asylum.db"] if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="session")
def fresh(mirror, tmp_path_factory):
    """A project refreshed from scratch from the mirror (no committed outputs copied)."""
    root = copy_project(tmp_path_factory.mktemp("fresh"), with_outputs=False)
    result = run(root, "refresh", "--mirror", str(mirror), "--silent")
    assert result.exit_code == 0, result.output
    return root




def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(root: Path, *args: str, log_name: str = "serve.log"):
    """Start the real `canada-asylum-data serve` on ``root`` (its own session, output to
    build/<log_name>) on a free port and wait until it answers. Returns (process, base URL,
    log path); stop it with :func:`stop_serve`."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    exe = Path(sys.executable).with_name("canada-asylum-data")
    log_path = root / "build" / log_name
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:  # a file, not a pipe: the access log never blocks
        proc = subprocess.Popen([str(exe), "--root", str(root), "serve", "--port", str(port), "--silent", *args],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            httpx.get(base + "/robots.txt", timeout=2)
            return proc, base, log_path
        except httpx.HTTPError:
            if proc.poll() is not None or time.time() > deadline:
                stop_serve(proc)
                raise AssertionError(log_path.read_text()[-3000:])
            time.sleep(0.3)


def stop_serve(proc) -> None:
    """End a server :func:`start_serve` started, and everything in its session."""
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def served_site(tmp_path_factory):
    """The committed data package built and served by the real `serve` command (with the
    project's plugins, templates and settings) on 127.0.0.1, shared by the site tests.
    Yields (base URL, project root)."""
    root = copy_project(tmp_path_factory.mktemp("served") / "site")
    result = run(root, "build", "--silent")
    assert result.exit_code == 0, result.output
    proc, base, _ = start_serve(root)
    try:
        yield base, root
    finally:
        stop_serve(proc)


def set_checksum(root: Path, source_id: str, data: bytes) -> None:
    """Accept new bytes for one source, as a reviewer would in sources.yml."""
    from canada_asylum_data.sources import load_all_sources

    src = {s.id: s for s in load_all_sources(root / "datapackage")}[source_id]
    for path in [root / "datapackage" / "sources.yml", *(root / "datapackage" / "sources.d").glob("*.yml")]:
        text = path.read_text()
        if src.sha256 in text:
            text = text.replace(src.sha256, hashlib.sha256(data).hexdigest())
            text = text.replace(f"bytes: {src.bytes}\n", f"bytes: {len(data)}\n", 1)
            path.write_text(text)
            return
    raise AssertionError(f"no record for {source_id}")
