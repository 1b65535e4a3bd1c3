"""The SQLite database built from the committed data package has a fixed content: the
SHA-256 of its ``iterdump()`` text (schema, rows, indexes and views) is committed in
``tests/fixtures/database-dump.sha256``. A change to how the database is built that is
meant to keep its content must keep this digest.

When the data or the layout changes on purpose, regenerate the digest with:

    .venv/bin/python tests/test_database_dump.py --write
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGEST_FILE = HERE / "fixtures" / "database-dump.sha256"


def dump_digest(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        digest = hashlib.sha256()
        for line in conn.iterdump():
            digest.update(line.encode("utf-8") + b"\n")
        return digest.hexdigest()
    finally:
        conn.close()


def build_committed(folder: Path) -> Path:
    from canada_asylum_data.database import build_database

    root = HERE.parent
    return build_database(root / "datapackage", folder / "canada_asylum.db",
                          root / "datapackage" / "views.yml")


def test_database_dump_is_unchanged(tmp_path):
    expected = DIGEST_FILE.read_text(encoding="utf-8").split()[0]
    assert dump_digest(build_committed(tmp_path)) == expected, (
        "the database built from datapackage/ changed; if that is intended, run "
        "`.venv/bin/python tests/test_database_dump.py --write` and commit the new digest")


if __name__ == "__main__":  # pragma: no cover
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_database_dump.py --write")
    with tempfile.TemporaryDirectory() as tmp:
        DIGEST_FILE.write_text(dump_digest(build_committed(Path(tmp))) + "\n", encoding="utf-8")
    print(DIGEST_FILE.read_text(encoding="utf-8"), end="")
