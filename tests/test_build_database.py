"""The database build (database.py): tables, rows, markers as NULL, indexes and views;
a bad cell or a broken table is a BuildError that names it and leaves no file behind.
(tests/test_database_dump.py checks the whole database built from the committed package.)"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from canada_asylum_data.database import build_database
from canada_asylum_data.errors import BuildError

from .conftest import DATAPACKAGE

#: Reference tables and three fact tables; two tables come after irb_rpd_claims in the
#: build order.
SMALL = ("countries", "provinces", "sources", "irb_rpd_claims", "ircc_claimants_gender",
         "rcmp_interceptions")
VIEW = "views:\n  - name: rpd_by_year\n    title: t\n    description: d\n    sql: >-\n" \
       "      select year, count(*) as n from irb_rpd_claims group by year\n"


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


def _build(dp: Path, db: Path) -> Path:
    return build_database(dp, db, dp / "views.yml")


def test_tables_rows_indexes_and_views(small_package, tmp_path):
    db = _build(small_package, tmp_path / "build" / "db.db")
    assert sorted(p.name for p in db.parent.iterdir()) == ["db.db"]  # no temporary file left
    conn = sqlite3.connect(db)
    assert conn.execute("select count(*) from irb_rpd_claims").fetchone()[0] > 1000
    assert conn.execute("select count(*) from rpd_by_year").fetchone()[0] > 5
    # markers are NULL, numbers are numbers, and the schema's index is used
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


@pytest.mark.parametrize("new, message", [
    ("x12", "year = 'x12' in row 3 is not an integer"),
    ("2019.5", "year = 2019.5 in row 3 is not an integer"),
    ("2019,9", "Incorrect number of bindings supplied"),
])
def test_bad_cell_is_a_build_error(small_package, tmp_path, new, message):
    line = (small_package / "data" / "irb_rpd_claims.csv").read_text(encoding="utf-8").splitlines()[3]
    _spoil(small_package, "irb_rpd_claims", line.split(",")[0] + ",", new + ",")
    db = tmp_path / "build" / "db.db"
    with pytest.raises(BuildError) as info:
        _build(small_package, db)
    assert info.value.what.startswith("table irb_rpd_claims has a value that does not fit its schema")
    assert message in info.value.what
    assert info.value.where == str(small_package / "data" / "irb_rpd_claims.csv")
    assert list(db.parent.iterdir()) == []  # no database, no temporary file


def test_first_broken_table_in_build_order_is_reported(small_package, tmp_path):
    """irb_rpd_claims comes before rcmp_interceptions in the build order: with both broken,
    the build reports irb_rpd_claims."""
    _spoil(small_package, "irb_rpd_claims", ",", ",oops,")
    rcmp = (small_package / "data" / "rcmp_interceptions.csv").read_text(encoding="utf-8").splitlines()[3]
    _spoil(small_package, "rcmp_interceptions", rcmp.split(",")[0] + ",", "x,")
    with pytest.raises(BuildError) as info:
        _build(small_package, tmp_path / "build" / "db.db")
    assert info.value.what.startswith("table irb_rpd_claims has a value"), info.value.what
