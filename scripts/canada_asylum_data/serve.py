"""Serve the database with Datasette: read-only, immutable, with the generated metadata
and SQL time and row limits."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from .errors import BuildError
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
STAMP = "build-stamp.json"


def package_fingerprint(paths: Paths) -> str:
    digest = hashlib.sha256()
    for path in (paths.descriptor, paths.views):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def database_is_current(paths: Paths) -> bool:
    stamp = paths.build / STAMP
    if not (paths.db.exists() and paths.inspect_file.exists() and stamp.exists()):
        return False
    try:
        return json.loads(stamp.read_text())["fingerprint"] == package_fingerprint(paths)
    except (ValueError, KeyError):
        return False


def write_stamp(paths: Paths) -> None:
    (paths.build / STAMP).write_text(json.dumps({"fingerprint": package_fingerprint(paths)}) + "\n")


def inspect(db: Path, out: Path) -> Path:
    """Write Datasette's inspect file (hash, size, row counts), as `datasette inspect` does,
    so the immutable database is served without counting rows at start-up."""
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            names = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
            tables = {n: {"count": conn.execute(f"select count(*) from [{n}]").fetchone()[0]} for n in names}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BuildError(f"cannot inspect the database ({exc})", str(db)) from exc
    # the hash is what datasette.inspect.inspect_hash computes
    data = {db.stem: {"hash": sha256_of(db), "size": db.stat().st_size, "file": str(db),
                      "tables": tables}}
    tmp = out.with_suffix(".json.part")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def datasette_command(paths: Paths, host: str, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "datasette", "serve", "-i", str(paths.db),
           "--inspect-file", str(paths.inspect_file), "--metadata", str(paths.metadata),
           "--host", host, "--port", str(port)]
    for key, value in SETTINGS.items():
        cmd += ["--setting", key, value]
    plugins = paths.root / "plugins"
    if plugins.is_dir():
        cmd += ["--plugins-dir", str(plugins)]
    templates = paths.root / "templates"
    if templates.is_dir():
        cmd += ["--template-dir", str(templates)]
    static = paths.root / "static"
    if static.is_dir():
        cmd += ["--static", f"static:{static}"]
    # The data package itself (datapackage.json + CSVs with the publishers' markers).
    cmd += ["--static", f"datapackage:{paths.datapackage}"]
    return cmd + list(extra)
