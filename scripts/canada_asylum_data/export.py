"""An offline copy: a folder a reader can use without any server, or serve as the same site.

``<out>/`` holds ``canada-asylum-data-<version>.zip`` (datapackage.json + data/*.csv, a
deterministic zip: sorted entries, fixed timestamps and permissions), the SQLite file,
``metadata.yml``, the site's ``plugins/``, ``templates/``, ``static/`` and ``datapackage/``
folders as site.py describes them, ``serve.sh`` (the same Datasette command as `serve`),
``README.md`` (what it is, how to open it, what differs from the online site, how to cite
it, generated from the package metadata) and ``SHA256SUMS``. Written into a staging folder
first and moved into place at the end, so a failure leaves a previous export untouched.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from .errors import CadError
from .paths import Paths
from .files import install, sha256_of, staged_folder
from .package_io import read_descriptor
from .publish import data_version
from .site import Site, describe, relocate, serve_command, shell_quote, site_files

ZIP_TIME = (1980, 1, 1, 0, 0, 0)
SERVE_SCRIPT = "serve.sh"


def zip_name(version: str) -> str:
    return f"canada-asylum-data-{version}.zip"


def write_zip(datapackage_dir: Path, out: Path) -> Path:
    desc = read_descriptor(datapackage_dir)
    members = ["datapackage.json"] + sorted(r["path"] for r in desc.get("resources", []))
    with zipfile.ZipFile(out, "w") as zf:
        for name in members:
            path = datapackage_dir / name
            if not path.is_file():
                raise CadError(f"file {name} listed in datapackage.json is missing", str(path),
                               "run `canada-asylum-data package` again")
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, path.read_bytes(), compresslevel=9)
    return out


def readme_text(desc: dict, zip_file: str, db_file: str, site: Site) -> str:
    version = desc.get("version", "")
    title = desc.get("title", "canada-asylum-data")
    install = shell_quote(["pip", "install", site.datasette, *site.plugins])
    folders = [f"`{name.split(':', 1)[-1]}/`" for name in site.folders()]
    lines = [f"# {title}", "", f"Data version **{version}** of canada-asylum-data"
             + (f" ({desc['homepage']})" if desc.get("homepage") else "") + ".", "",
             (desc.get("description") or "").strip(), "",
             "## What is in this folder", "",
             f"- `{zip_file}`: the Frictionless data package: `datapackage.json` (every table, column, "
             "licence and source described) and `data/<table>.csv`. Open the CSV files in any "
             "spreadsheet program, or load the package with `frictionless` or `pandas`.",
             f"- `{db_file}`: the same tables as one SQLite database (with views). Open it with "
             "`sqlite3` or DB Browser for SQLite.",
             "- `metadata.yml`: titles, descriptions and caveats of every table and column.",
             f"- {', '.join(folders)}: the site's plugins, page templates and static files, and "
             "the data package as the site serves it at `/datapackage/`.",
             f"- `{SERVE_SCRIPT}`: serves this folder as the same site as the online version.",
             "- `SHA256SUMS`: checksums of every file above (`sha256sum -c SHA256SUMS`).", "",
             "## Opening it as the same site", "",
             "Install Datasette and the site's plugins, then run the script:", "",
             f"    {install}", f"    ./{SERVE_SCRIPT}", "",
             "and open http://127.0.0.1:8001/. It runs the command `canada-asylum-data serve` runs "
             "(same metadata, settings, plugins, templates and static mounts). What differs from the "
             "online site: Datasette counts the rows at start-up (the online site reads them from an "
             "inspect file), and the hosting settings of the deployment (instances, memory) do not "
             "apply.", "",
             "## Tables", "", "| table | what |", "|---|---|"]
    for res in desc.get("resources", []):
        lines.append(f"| `{res['name']}` | {res.get('title', '')} |")
    lines += ["", "## Reading the numbers", "",
              "Missing is not zero: `--` in a CSV (NULL in SQL) means the publisher suppressed the "
              "value. IRCC/CBSA figures are rounded to the nearest 5. Every row's `source_id` and "
              "`source_locator` lead to the published file and cell it came from (see the "
              "`sources` table).", "",
              "## How to cite", "",
              "Cite the publisher and the table, and this package with its version and your access date:", "",
              f"> <Publisher>, \"<table title>\", via canada-asylum-data (data version {version}, "
              "table `<table>`), accessed YYYY-MM-DD.", "",
              "## Licences", ""]
    for lic in desc.get("licenses", []):
        lines.append(f"- {lic.get('title') or lic.get('name')}: {lic.get('path', '')}")
    return "\n".join(lines) + "\n"


def serve_script(site: Site) -> str:
    """A shell script that serves the exported folder as the same site."""
    cmd = serve_command(site, "127.0.0.1", 8001, relative=True, program=("datasette",))
    return ("#!/bin/sh\n# Serve this folder as the canada-asylum-data site on http://127.0.0.1:8001/\n"
            "# (needs: " + shell_quote(["pip", "install", site.datasette, *site.plugins]) + ").\n"
            "# Extra options are passed on, e.g. ./serve.sh --port 8080\n"
            'cd "$(dirname "$0")" || exit 1\n'
            f'exec {shell_quote(cmd)} "$@"\n')


def export(paths: Paths, out_dir: Path) -> dict[str, Path]:
    """Write the offline copy into ``out_dir``; the database must be built already. The
    folder holds the site exactly as site.py describes it (database, metadata, plugins,
    templates, static files, the data package), laid out by site.relocate, and
    ``serve.sh`` runs the same Datasette command as `serve`."""
    site = describe(paths)
    if not site.database.is_file():
        raise CadError("no database to export", str(site.database), "run `canada-asylum-data build` first")
    version = data_version(paths)
    desc = read_descriptor(paths.datapackage)
    exported = relocate(site, out_dir)
    with staged_folder(out_dir.parent, ".export-") as staging:
        zname = zip_name(version)
        write_zip(paths.datapackage, staging / zname)
        shutil.copyfile(site.database, staging / exported.database.name)
        for name, path in site_files(site):
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, staging / name)
        (staging / SERVE_SCRIPT).write_text(serve_script(exported), encoding="utf-8")
        os.chmod(staging / SERVE_SCRIPT, 0o755)
        (staging / "README.md").write_text(readme_text(desc, zname, exported.database.name, exported),
                                           encoding="utf-8")
        names = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        (staging / "SHA256SUMS").write_text(
            "".join(f"{sha256_of(staging / n)}  {n}\n" for n in names), encoding="utf-8")
        return install(staging, out_dir, names + ["SHA256SUMS"],
                       stale=("canada-asylum-data-*.zip",
                              *(f"{name.split(':', 1)[-1]}/**/*" for name in site.folders())))
