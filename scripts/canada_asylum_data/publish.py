"""Deploy the immutable database with Datasette's own publishers (``datasette publish
cloudrun`` or ``datasette publish fly``, the command rendered by site.py), only when its
content changed; and the data version (calendar versioning).

The content hash (site.content_hash) is the SHA-256 of what the site serves: the SQLite
file (its build is deterministic: the same package gives the same bytes), ``metadata.yml``,
the plugins, templates and static files (the data package included), the PyPI plugins and
the settings. It travels with the deployment in ``--version-note`` so the
live value can be read back from ``/-/versions.json`` and compared before the next deploy.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
from pathlib import Path

from .errors import CadError, ConfigError
from .files import atomic_write
from .package_io import descriptor_path, has_package, read_descriptor
from .paths import Paths

NOTE_PREFIX = "canada-asylum-data"
_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


def data_version(paths: Paths) -> str:
    desc = read_descriptor(paths.datapackage)
    version = desc.get("version")
    if not version:
        raise ConfigError("datapackage.json has no version", str(paths.descriptor),
                          "set `version` in datapackage/package.yaml and run `canada-asylum-data package`")
    return str(version)


def version_note(version: str, digest: str) -> str:
    return f"{NOTE_PREFIX} {version} sha256:{digest}"


def read_live_hash(value: str | None) -> str | None:
    """``--live-hash``: a hash, ``sha256:<hash>``, a version note, or a file holding any of
    those (e.g. a saved ``/-/versions.json``). None, empty, or a file with no hash in it
    means nothing is live yet."""
    if not value:
        return None
    text = value
    path = Path(value)
    is_file = len(value) < 300 and path.is_file()
    if is_file:
        text = path.read_text(encoding="utf-8", errors="replace")
    m = _HASH.search(text.strip().lower())
    if not m and is_file:
        return None  # e.g. the live site is not deployed yet: the saved response holds no hash
    if not m:
        raise CadError("cannot read a sha256 from --live-hash", value[:80],
                       "pass the 64-hex hash, or a file holding the live /-/versions.json")
    return m.group(1)


def run(cmd: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd)
    except FileNotFoundError as exc:
        raise CadError("datasette is not on PATH", cmd[0], "install the project: pip install -e .") from exc
    if result.returncode != 0:
        raise CadError(f"`{' '.join(cmd[:3])}` failed with exit code {result.returncode}",
                       "see its output above", "check the platform credentials described in the README (Publishing)")


# --- data version (calendar versioning) ------------------------------------------------

_VERSION_LINE = re.compile(r'^(version:\s*)(["\']?)([^"\'\n]*)(\2)\s*$', re.M)


def next_version(current: str | None, today: _dt.date) -> str:
    """Calendar version for ``today``: YYYY.MM.DD, then YYYY.MM.DD.1, .2 ... on the same day."""
    base = f"{today.year}.{today.month:02d}.{today.day:02d}"
    if not current or not current.startswith(base):
        return base
    rest = current[len(base):]
    n = int(rest[1:]) + 1 if rest.startswith(".") and rest[1:].isdigit() else 1
    return f"{base}.{n}"


_RELEASED_LINE = re.compile(r'^(date-released:\s*)(["\']?)([^"\'\n]*)(\2)\s*$', re.M)


def set_version(datapackage_dir: Path, version: str) -> None:
    """Write ``version`` into package.yaml (input) and datapackage.json (output) in place,
    and into CITATION.cff beside datapackage/ (``version``, and ``date-released`` as the
    version's date), so the citation file names the data a reader downloads."""
    yaml_path = datapackage_dir / "package.yaml"
    text = yaml_path.read_text(encoding="utf-8")
    if not _VERSION_LINE.search(text):
        raise ConfigError("package.yaml has no `version:` line", str(yaml_path), 'add version: "YYYY.MM.DD"')
    new_text = _VERSION_LINE.sub(lambda m: f'{m[1]}"{version}"', text, count=1)
    atomic_write(yaml_path, new_text)
    if has_package(datapackage_dir):
        desc = read_descriptor(datapackage_dir)
        atomic_write(descriptor_path(datapackage_dir),
                     json.dumps({**desc, "version": version}, indent=2, ensure_ascii=False) + "\n")
    cff = datapackage_dir.parent / "CITATION.cff"
    if cff.is_file():
        released = "-".join(version.split(".")[:3])
        text = _VERSION_LINE.sub(lambda m: f'{m[1]}"{version}"', cff.read_text(encoding="utf-8"), count=1)
        atomic_write(cff, _RELEASED_LINE.sub(lambda m: f'{m[1]}"{released}"', text, count=1))
