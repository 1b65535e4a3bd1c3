"""One description of the Datasette site, rendered three ways.

:func:`describe` says what the site is: the database (and its inspect file), metadata.yml,
the plugins and templates folders, the static mounts (``/static/`` and ``/datapackage/``,
the data package itself, which every page's footer and the dictionary page link to), the
settings, and the Datasette plugins installed from PyPI. :func:`serve_command` renders it
as ``datasette serve`` (``canada-asylum-data serve``; with ``--workers N``,
:func:`workers_command` hands the same arguments to N uvicorn worker processes, each
building its Datasette from them in asgi.py), :func:`publish_command` as
``datasette publish cloudrun|fly`` (``canada-asylum-data publish``), and
:func:`relocate` lays the same site out in another folder (``canada-asylum-data export``
copies it there and writes the command that serves it). Whatever is added here reaches
all three.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CadError
from .files import sha256_of
from .paths import Paths

SETTINGS = {
    "sql_time_limit_ms": "3000",
    "max_returned_rows": "5000",
    "facet_time_limit_ms": "500",
    "allow_download": "on",
    "default_cache_ttl": "86400",
    "num_sql_threads": "3",
    # no "suggested facets" block: it ran a query per column on every new table URL
    # (~16% of a table page's CPU); the declared facets and ?_facet= links stay
    "suggest_facets": "off",
}
#: The site's public URL (its root, base_url included, e.g. https://asylum.example.org/ or
#: https://example.org/asylum/): robots.txt's Sitemap line, the sitemap's and the home
#: page's absolute URLs. Unset: robots.txt has no Sitemap line and the sitemap falls back to
#: the address the request came to (never trusted for anything cached as the site's own).
SITE_URL_ENV = "CANADA_ASYLUM_DATA_SITE_URL"
#: The ``datasette serve`` arguments (a JSON list, what :func:`serve_command` renders after
#: ``serve``) from which each uvicorn worker of ``serve --workers N`` builds the site (asgi.py).
SERVE_ARGS_ENV = "CANADA_ASYLUM_DATA_SERVE_ARGS"
#: ``serve --workers``: how many server processes at most.
MAX_WORKERS = 32
PLATFORMS = ("cloudrun", "fly")
#: Cloud Run: scale to zero at rest, up to this many read-only instances under load.
MAX_INSTANCES = 10
MEMORY = "1Gi"


@dataclass(frozen=True)
class Site:
    root: Path
    database: Path
    inspect_file: Path | None
    metadata: Path
    plugins_dir: Path | None
    templates_dir: Path | None
    #: URL mount -> folder served there as static files.
    static: dict[str, Path] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    #: Datasette plugins installed from PyPI (requirement strings).
    plugins: tuple[str, ...] = ()
    #: The Datasette requirement (version range) the site runs on.
    datasette: str = "datasette"

    def folders(self) -> dict[str, Path]:
        """Every folder the site serves files from: plugins, templates and static mounts."""
        out = {}
        if self.plugins_dir:
            out["plugins"] = self.plugins_dir
        if self.templates_dir:
            out["templates"] = self.templates_dir
        out.update({f"static:{mount}": folder for mount, folder in self.static.items()})
        return out


def _dependencies(root: Path) -> list[str]:
    path = root / "pyproject.toml"
    if not path.is_file():
        return []
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    return [d.replace(" ", "") for d in doc.get("project", {}).get("dependencies", [])]


def site_plugins(root: Path) -> tuple[str, ...]:
    """The Datasette plugins the site uses: pyproject dependencies named ``datasette-*``."""
    return tuple(sorted(d for d in _dependencies(root) if re.match(r"^datasette-[A-Za-z0-9_.-]", d)))


def datasette_requirement(root: Path) -> str:
    """The Datasette version the site runs on, as pyproject pins it."""
    return next((d for d in _dependencies(root) if re.match(r"^datasette($|[<>=!~;\[])", d)), "datasette")


def describe(paths: Paths, settings: dict[str, str] | None = None) -> Site:
    """The project's site: what `serve` runs, `publish` deploys and `export` copies.
    ``settings``: Datasette settings on top of :data:`SETTINGS` (``base_url`` must start
    and end with ``/``: Datasette joins it to paths as it is)."""
    extra = dict(settings or {})
    base_url = extra.get("base_url")
    if base_url is not None and not (base_url.startswith("/") and base_url.endswith("/")):
        raise CadError(f"base_url {base_url!r} must start and end with /", "--setting base_url",
                       "write it like /asylum/")
    root = paths.root
    static = {"static": root / "static"} if (root / "static").is_dir() else {}
    # The data package itself (datapackage.json + CSVs with the publishers' markers).
    static["datapackage"] = paths.datapackage
    return Site(
        root=root, database=paths.db, inspect_file=paths.inspect_file, metadata=paths.metadata,
        plugins_dir=root / "plugins" if (root / "plugins").is_dir() else None,
        templates_dir=root / "templates" if (root / "templates").is_dir() else None,
        static=static, settings={**SETTINGS, **extra}, plugins=site_plugins(root),
        datasette=datasette_requirement(root))


def relocate(site: Site, root: Path) -> Site:
    """The same site laid out under ``root``: the database and metadata.yml at the top,
    each folder under its own name (``plugins/``, ``templates/``, ``static/``,
    ``datapackage/``). No inspect file: Datasette counts the rows at start-up."""
    return replace(
        site, root=root, database=root / site.database.name, inspect_file=None,
        metadata=root / "metadata.yml",
        plugins_dir=root / "plugins" if site.plugins_dir else None,
        templates_dir=root / "templates" if site.templates_dir else None,
        static={mount: root / mount for mount in site.static})


def _rel(site: Site, path: Path) -> str:
    return str(path.relative_to(site.root)) if path.is_relative_to(site.root) else str(path)


def _site_options(site: Site, relative: bool) -> list[str]:
    """--metadata, --plugins-dir, --template-dir and --static, shared by every command."""
    show = (lambda p: _rel(site, p)) if relative else str
    cmd = ["--metadata", show(site.metadata)]
    if site.plugins_dir:
        cmd += ["--plugins-dir", show(site.plugins_dir)]
    if site.templates_dir:
        cmd += ["--template-dir", show(site.templates_dir)]
    for mount, folder in site.static.items():
        cmd += ["--static", f"{mount}:{show(folder)}"]
    return cmd


def _setting_options(site: Site) -> list[str]:
    return [x for key, value in site.settings.items() for x in ("--setting", key, value)]


def serve_command(site: Site, host: str, port: int, relative: bool = False,
                  program: tuple[str, ...] = (sys.executable, "-m", "datasette")) -> list[str]:
    """``datasette serve`` of the site (immutable, read-only); paths absolute, or relative
    to the site's root with ``relative``."""
    show = (lambda p: _rel(site, p)) if relative else str
    cmd = [*program, "serve", "-i", show(site.database)]
    if site.inspect_file:
        cmd += ["--inspect-file", show(site.inspect_file)]
    return cmd + _site_options(site, relative) + ["--host", host, "--port", str(port)] + _setting_options(site)


def check_workers(workers: int) -> int:
    """``serve --workers``: 1 to :data:`MAX_WORKERS`."""
    if not 1 <= workers <= MAX_WORKERS:
        raise CadError(f"--workers {workers} is out of range", "serve --workers",
                       f"use a number from 1 to {MAX_WORKERS} (1: one Datasette process)")
    return workers


def workers_command(site: Site, host: str, port: int, workers: int,
                    python: str = sys.executable) -> tuple[dict[str, str], list[str]]:
    """The site served by ``workers`` uvicorn processes on one socket: the environment
    (:data:`SERVE_ARGS_ENV`, the arguments :func:`serve_command` renders) and the
    ``python -m uvicorn`` command whose factory (asgi.py) builds Datasette from them."""
    check_workers(workers)
    args = serve_command(site, host, port, program=())[1:]  # after "serve"
    env = {SERVE_ARGS_ENV: json.dumps(args)}
    # lifespan "on", as `datasette serve` runs uvicorn
    cmd = [python, "-m", "uvicorn", "canada_asylum_data.asgi:app", "--factory", "--workers", str(workers),
           "--lifespan", "on", "--host", host, "--port", str(port)]
    return env, cmd


def publish_command(site: Site, platform: str, service: str, version_note: str,
                    max_instances: int = MAX_INSTANCES) -> list[str]:
    """The exact ``datasette publish`` command (run in the site's root)."""
    if platform not in PLATFORMS:
        raise CadError(f"unknown platform {platform!r}", "publish --platform",
                       f"use one of {', '.join(PLATFORMS)}")
    cmd = ["datasette", "publish", platform, _rel(site, site.database)] + _site_options(site, True)
    for plugin in site.plugins:
        cmd += ["--install", plugin]
    cmd += ["--version-note", version_note]
    if platform == "cloudrun":
        # datasette publish cloudrun passes settings through --extra-options.
        cmd += ["--extra-options", shell_quote(_setting_options(site)), "--service", service,
                "--memory", MEMORY, "--min-instances", "0", "--max-instances", str(max_instances)]
    else:
        cmd += _setting_options(site) + ["--app", service]
    return cmd


def site_files(site: Site) -> list[tuple[str, Path]]:
    """Every file the site serves besides the database, as (path in the site, file):
    metadata.yml and the files of its folders (no caches, no hidden files)."""
    out = [("metadata.yml", site.metadata)] if site.metadata.is_file() else []
    for name, folder in site.folders().items():
        prefix = name.split(":", 1)[-1]
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if path.is_file() and "__pycache__" not in rel.parts and not any(
                    part.startswith(".") for part in rel.parts):
                out.append((f"{prefix}/{rel.as_posix()}", path))
    return out


def content_hash(site: Site, database: Path | None = None) -> str:
    """SHA-256 over the database bytes and everything else the site serves (metadata,
    plugins, templates, static mounts including the data package), the PyPI plugins and
    the settings. ``database``: hash this file instead of the site's own."""
    db = database or site.database
    if not db.is_file():
        raise CadError("no database to hash", str(db), "run `canada-asylum-data build` first")
    digest = hashlib.sha256()
    digest.update(b"db\0" + sha256_of(db).encode())
    digest.update(b"plugins\0" + json.dumps(list(site.plugins)).encode())
    digest.update(b"settings\0" + json.dumps(site.settings, sort_keys=True).encode())
    for name, path in site_files(site):
        digest.update(name.encode() + b"\0" + sha256_of(path).encode())
    return digest.hexdigest()


def public_site_url(environ=None) -> str | None:
    """The configured public URL of the site (:data:`SITE_URL_ENV`), ending in ``/``; None
    when unset or not a plain http(s) URL (no user, query or fragment)."""
    value = (os.environ if environ is None else environ).get(SITE_URL_ENV, "").strip()
    if not value:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc \
            or parts.query or parts.fragment or any(c in value for c in '<>"\' \n'):
        return None
    return value if value.endswith("/") else value + "/"


def shell_quote(cmd: list[str], env: dict[str, str] | None = None) -> str:
    """``cmd`` as a shell line, preceded by the ``NAME=value`` assignments of ``env``."""
    return " ".join([*(f"{name}={shlex.quote(value)}" for name, value in (env or {}).items()),
                     *(shlex.quote(part) for part in cmd)])
