"""Deploy the immutable database with Datasette's own publishers (``datasette publish
cloudrun`` or ``datasette publish fly``), only when its content changed.

The content hash is the SHA-256 of what the site serves: the SQLite file (its build is
deterministic: the same package gives the same bytes), ``metadata.yml``, the plugins
installed and the settings. It travels with the deployment in ``--version-note`` so the
live value can be read back from ``/-/versions.json`` and compared before the next deploy.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import subprocess
from pathlib import Path

from .errors import CadError, ConfigError
from .files import atomic_write, sha256_of
from .package_io import descriptor_path, has_package, read_descriptor
from .paths import Paths
from .serve import SETTINGS

PLATFORMS = ("cloudrun", "fly")
DEFAULT_SERVICE = "canada-asylum-data"
#: Cloud Run: scale to zero at rest, up to this many read-only instances under load.
MAX_INSTANCES = 10
MEMORY = "1Gi"
#: Cache-Control for every page: the database is immutable between deploys, so browsers
#: and the CDN may keep responses for a day (Datasette's default_cache_ttl).
CACHE_TTL = SETTINGS.get("default_cache_ttl", "86400")
NOTE_PREFIX = "canada-asylum-data"
_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


def data_version(paths: Paths) -> str:
    desc = read_descriptor(paths.datapackage)
    version = desc.get("version")
    if not version:
        raise ConfigError("datapackage.json has no version", str(paths.descriptor),
                          "set `version` in datapackage/package.yaml and run `canada-asylum-data package`")
    return str(version)


def site_plugins(root: Path) -> list[str]:
    """The Datasette plugins the site uses: pyproject dependencies named ``datasette-*``."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    deps = doc.get("project", {}).get("dependencies", [])
    return sorted(d.replace(" ", "") for d in deps if re.match(r"^datasette-[A-Za-z0-9_.-]", d))


def _site_files(root: Path) -> list[Path]:
    out = []
    for name in ("plugins", "templates", "static"):
        folder = root / name
        if folder.is_dir():
            out += sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return out


def content_hash(db: Path, metadata: Path, plugins: list[str], settings: dict[str, str],
                 root: Path | None = None) -> str:
    """SHA-256 over the database bytes and everything else the deployed site serves."""
    if not db.is_file():
        raise CadError("no database to hash", str(db), "run `canada-asylum-data build` first")
    digest = hashlib.sha256()
    digest.update(b"db\0" + sha256_of(db).encode())
    digest.update(b"metadata\0" + (metadata.read_bytes() if metadata.is_file() else b""))
    digest.update(b"plugins\0" + json.dumps(plugins).encode())
    digest.update(b"settings\0" + json.dumps(settings, sort_keys=True).encode())
    for path in _site_files(root) if root else []:
        digest.update(str(path.relative_to(root)).encode() + b"\0" + sha256_of(path).encode())
    return digest.hexdigest()


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


def publish_command(paths: Paths, platform: str, service: str, version: str, digest: str,
                    plugins: list[str], max_instances: int = MAX_INSTANCES) -> list[str]:
    """The exact ``datasette publish`` command for a deployment."""
    if platform not in PLATFORMS:
        raise CadError(f"unknown platform {platform!r}", "publish --platform",
                       f"use one of {', '.join(PLATFORMS)}")
    db = paths.db.relative_to(paths.root) if paths.db.is_relative_to(paths.root) else paths.db
    meta = paths.metadata.relative_to(paths.root) if paths.metadata.is_relative_to(paths.root) else paths.metadata
    cmd = ["datasette", "publish", platform, str(db), "--metadata", str(meta)]
    for name in ("plugins", "templates", "static"):
        folder = paths.root / name
        if folder.is_dir():
            flag = {"plugins": "--plugins-dir", "templates": "--template-dir", "static": "--static"}[name]
            cmd += [flag, "static:static" if name == "static" else name]
    for plugin in plugins:
        cmd += ["--install", plugin]
    cmd += ["--version-note", version_note(version, digest)]
    if platform == "cloudrun":
        # datasette publish cloudrun passes settings through --extra-options.
        extra = " ".join(f"--setting {k} {v}" for k, v in SETTINGS.items())
        cmd += ["--extra-options", extra, "--service", service, "--memory", MEMORY,
                "--min-instances", "0", "--max-instances", str(max_instances)]
    else:
        for key, value in SETTINGS.items():
            cmd += ["--setting", key, value]
        cmd += ["--app", service]
    return cmd


def shell_quote(cmd: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(part) for part in cmd)


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


def set_version(datapackage_dir: Path, version: str) -> None:
    """Write ``version`` into package.yaml (input) and datapackage.json (output) in place."""
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
