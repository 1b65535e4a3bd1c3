"""The fast database build (database.py) makes the database the sqlite-utils build made:
the same table, index and view SQL; the same rows whether the largest table is loaded by a
second process or not; the same kind of errors, in the same order, as a serial build."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from canada_asylum_data import database
from canada_asylum_data.database import (INDEX_COLUMNS, _create_views, build_database, load_views,
                                         plan_table)
from canada_asylum_data.errors import BuildError
from canada_asylum_data.schemas import load_schemas

from .conftest import DATAPACKAGE

#: Reference tables and three fact tables; irb_rpd_claims (the most cells) is the one the
#: second process loads, and two tables come after it in the build order.
SMALL = ("countries", "provinces", "sources", "irb_rpd_claims", "ircc_claimants_gender",
         "rcmp_interceptions")
VIEW = "views:\n  - name: rpd_by_year\n    title: t\n    description: d\n    sql: >-\n" \
       "      select year, count(*) as n from irb_rpd_claims group by year\n"


def _schema_rows(conn: sqlite3.Connection) -> list[tuple]:
    return conn.execute("select type, name, tbl_name, sql from sqlite_master order by rowid").fetchall()


def _dump_sha(path: Path) -> str:
    digest = hashlib.sha256()
    conn = sqlite3.connect(path)
    for line in conn.iterdump():
        digest.update(line.encode())
    conn.close()
    return digest.hexdigest()


def test_schema_sql_is_what_sqlite_utils_writes():
    """Every table, index and view of the committed package, created empty, as the former
    build made them with sqlite-utils (its create, create_index and create_view calls)."""
    import sqlite_utils

    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text(encoding="utf-8"))
    schemas = load_schemas(DATAPACKAGE / "schemas")
    order = sorted(desc["resources"], key=lambda r: (bool(r["schema"].get("foreignKeys")), r["name"]))
    views = load_views(DATAPACKAGE / "views.yml")

    reference = sqlite_utils.Database(memory=True)
    for res in order:
        schema, name = res["schema"], res["name"]
        columns = {f["name"]: {"integer": int, "number": float, "boolean": int}.get(f["type"], str)
                   for f in schema["fields"]}
        pk = schema.get("primaryKey")
        table = reference.table(name)
        table.create(columns, pk=pk if pk and len(pk) > 1 else (pk[0] if pk else None),
                     not_null={f["name"] for f in schema["fields"]
                               if (f.get("constraints") or {}).get("required")},
                     foreign_keys=[(fk["fields"][0], fk["reference"]["resource"],
                                    fk["reference"]["fields"][0])
                                   for fk in schema.get("foreignKeys", []) if len(fk["fields"]) == 1])
        for col in list(schemas[name].doc.get("facets") or []) + list(INDEX_COLUMNS):
            if col in columns:
                table.create_index([col], if_not_exists=True, find_unique_name=True)
    for view in views:
        reference.create_view(view["name"], view["sql"], replace=True)

    conn = sqlite3.connect(":memory:")
    by_name = {r["name"]: r for r in desc["resources"]}
    for res in order:
        plan = plan_table(DATAPACKAGE, res, schemas, by_name)
        conn.execute(plan.create_sql)
        for sql in plan.index_sql:
            conn.execute(sql)
    _create_views(conn, DATAPACKAGE / "views.yml")
    assert _schema_rows(conn) == _schema_rows(reference.conn)


@pytest.fixture
def small_package(tmp_path) -> Path:
    """datapackage/ with the SMALL tables only (schemas and data copied) and one view."""
    dp = tmp_path / "datapackage"
    (dp / "data").mkdir(parents=True)
    shutil.copytree(DATAPACKAGE / "schemas", dp / "schemas")
    desc = json.loads((DATAPACKAGE / "datapackage.json").read_text(encoding="utf-8"))
    desc["resources"] = [r for r in desc["resources"] if r["name"] in SMALL]
    for res in desc["resources"]:
        shutil.copyfile(DATAPACKAGE / res["path"], dp / res["path"])
    (dp / "datapackage.json").write_text(json.dumps(desc), encoding="utf-8")
    (dp / "views.yml").write_text(VIEW, encoding="utf-8")
    return dp


@pytest.fixture
def two_cores(monkeypatch):
    """Pretend there is a second core, and record which tables the second process loaded."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    copied: list[str] = []
    copy = database._copy_side_table

    def spy(conn, plan, side_path):
        copied.append(plan.name)
        copy(conn, plan, side_path)

    monkeypatch.setattr(database, "_copy_side_table", spy)
    return copied


def _build(dp: Path, db: Path, parallel: bool) -> Path:
    return build_database(dp, db, dp / "views.yml", parallel_min_bytes=0 if parallel else 10**15)


def test_second_process_gives_the_same_database(small_package, two_cores, tmp_path):
    serial = _build(small_package, tmp_path / "serial" / "db.db", parallel=False)
    assert two_cores == []
    parallel = _build(small_package, tmp_path / "parallel" / "db.db", parallel=True)
    assert two_cores == ["irb_rpd_claims"]
    assert _dump_sha(parallel) == _dump_sha(serial)
    assert sorted(p.name for p in parallel.parent.iterdir()) == ["db.db"]  # no temporary file left
    conn = sqlite3.connect(parallel)
    assert conn.execute("select count(*) from irb_rpd_claims").fetchone()[0] > 1000
    assert conn.execute("select count(*) from rpd_by_year").fetchone()[0] > 5
    # markers are NULL, numbers are numbers, and the index of the copied table works
    assert conn.execute("select count(*) from irb_rpd_claims where typeof(accepted) = 'text'"
                        ).fetchone()[0] == 0
    assert conn.execute("select count(*) from irb_rpd_claims where accepted is null").fetchone()[0] > 0
    plan = conn.execute("explain query plan select * from irb_rpd_claims where country_code = 'USA'"
                        ).fetchall()
    assert "idx_irb_rpd_claims_country_code" in str(plan)


def _spoil(dp: Path, table: str, old: str, new: str) -> None:
    path = dp / "data" / f"{table}.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert old in lines[3]
    lines[3] = lines[3].replace(old, new, 1)
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("new, message", [
    ("x12", "year = 'x12' in row 3 is not an integer"),
    ("2019.5", "year = 2019.5 in row 3 is not an integer"),
    ("2019,9", "Incorrect number of bindings supplied"),
])
def test_bad_cell_is_a_build_error(small_package, two_cores, tmp_path, parallel, new, message):
    line = (small_package / "data" / "irb_rpd_claims.csv").read_text(encoding="utf-8").splitlines()[3]
    _spoil(small_package, "irb_rpd_claims", line.split(",")[0] + ",", new + ",")
    db = tmp_path / "build" / "db.db"
    with pytest.raises(BuildError) as info:
        _build(small_package, db, parallel)
    assert info.value.what.startswith("table irb_rpd_claims has a value that does not fit its schema")
    assert message in info.value.what
    assert info.value.where == str(small_package / "data" / "irb_rpd_claims.csv")
    assert list(db.parent.iterdir()) == []  # no database, no temporary file


@pytest.mark.parametrize("parallel", [False, True])
def test_first_broken_table_in_build_order_is_reported(small_package, two_cores, tmp_path, parallel):
    """irb_rpd_claims (the second process's table) comes before rcmp_interceptions in the
    build order: with both broken, a build reports irb_rpd_claims either way."""
    _spoil(small_package, "irb_rpd_claims", ",", ",oops,")
    rcmp = (small_package / "data" / "rcmp_interceptions.csv").read_text(encoding="utf-8").splitlines()[3]
    _spoil(small_package, "rcmp_interceptions", rcmp.split(",")[0] + ",", "x,")
    with pytest.raises(BuildError) as info:
        _build(small_package, tmp_path / "build" / "db.db", parallel)
    assert info.value.what.startswith("table irb_rpd_claims has a value"), info.value.what
