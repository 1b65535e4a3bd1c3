"""A static offline copy: a folder a reader can use without any server.

``<out>/`` holds ``canada-asylum-data-<version>.zip`` (datapackage.json + data/*.csv, a
deterministic zip: sorted entries, fixed timestamps and permissions), the SQLite file,
``metadata.yml``, ``README.md`` (what it is, how to open it, how to cite it, generated from
the package metadata) and ``SHA256SUMS``. Written into a staging folder first and moved
into place at the end, so a failure leaves a previous export untouched.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from .errors import CadError
from .paths import DB_NAME, Paths
from .files import install, sha256_of, staged_folder
from .package_io import read_descriptor
from .publish import data_version

ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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


def readme_text(desc: dict, zip_file: str, db_file: str) -> str:
    version = desc.get("version", "")
    title = desc.get("title", "canada-asylum-data")
    lines = [f"# {title}", "", f"Data version **{version}** of canada-asylum-data"
             + (f" ({desc['homepage']})" if desc.get("homepage") else "") + ".", "",
             (desc.get("description") or "").strip(), "",
             "## What is in this folder", "",
             f"- `{zip_file}`: the Frictionless data package: `datapackage.json` (every table, column, "
             "licence and source described) and `data/<table>.csv`. Open the CSV files in any "
             "spreadsheet program, or load the package with `frictionless` or `pandas`.",
             f"- `{db_file}`: the same tables as one SQLite database (with views). Open it with "
             "`sqlite3`, DB Browser for SQLite, or `datasette " + db_file + " --metadata metadata.yml` "
             "for the same site as the online version.",
             "- `metadata.yml`: titles, descriptions and caveats of every table and column.",
             "- `SHA256SUMS`: checksums of the files above (`sha256sum -c SHA256SUMS`).", "",
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


def export(paths: Paths, out_dir: Path) -> dict[str, Path]:
    """Write the offline copy into ``out_dir``; the database must be built already."""
    if not paths.db.is_file():
        raise CadError("no database to export", str(paths.db), "run `canada-asylum-data build` first")
    version = data_version(paths)
    desc = read_descriptor(paths.datapackage)
    with staged_folder(out_dir.parent, ".export-") as staging:
        zname = zip_name(version)
        write_zip(paths.datapackage, staging / zname)
        shutil.copyfile(paths.db, staging / DB_NAME)
        if paths.metadata.is_file():
            shutil.copyfile(paths.metadata, staging / "metadata.yml")
        (staging / "README.md").write_text(readme_text(desc, zname, DB_NAME), encoding="utf-8")
        names = sorted(p.name for p in staging.iterdir())
        (staging / "SHA256SUMS").write_text(
            "".join(f"{sha256_of(staging / n)}  {n}\n" for n in names), encoding="utf-8")
        return install(staging, out_dir, [p.name for p in sorted(staging.iterdir())],
                       stale="canada-asylum-data-*.zip")
