"""Reconciliation works column by column (pandas) for speed; these tests hold it to the
plain row-by-row definition: csv.DictReader rows, ``_num`` for every cell, one dict of
groups per total."""

from __future__ import annotations

import csv
import io
import json
import random
import types
from collections import defaultdict
from pathlib import Path

import pytest

import pandas as pd

from canada_asylum_data import validate
from canada_asylum_data.errors import ValidationError
from canada_asylum_data.validate import (Agg, Check, _counts, _group_sums, _judge, _num,
                                         reconcile, validate_package)
from canada_asylum_data.package_io import read_rows as read_table

SUPPRESSED = "--"


def _reference_aggregate(rows, keys, measure):
    out = defaultdict(lambda: [0, 0, 0, 0, 0])  # total, n, suppressed, unreadable, zeros
    for row in rows:
        agg = out[tuple(row.get(k, "") for k in keys)]
        value = row.get(measure, "")
        agg[1] += 1
        if value == SUPPRESSED:
            agg[2] += 1
        elif _num(value) is None:
            agg[3] += 1
        else:
            agg[0] += int(value)
            agg[4] += value == "0"
    return {k: validate.Agg(*v) for k, v in out.items()}


def _aggregate(rows, keys, measure):
    """The fast path's groups, for rows given as dicts."""
    frame = pd.DataFrame(rows, dtype=str)
    return {k: Agg(*v) for k, v in _group_sums(frame, keys, _counts(frame[measure])).items()}


def _reference_reconcile(tables, schemas):
    """The row-by-row reconciliation the fast one replaced."""
    checks = []
    for t in tables.get("published_totals", []):
        table, measure = t["fact_table"], t["measure"]
        scope = json.loads(t["scope"])
        key = f"{t['label']} {t['scope']} {measure} ({t['source_id']} {t['source_locator']})"
        total = _num(t["value"])
        if table not in tables:
            checks.append(Check("total", table, key, "failed", "fact table missing from the package"))
            continue
        if total is None:
            checks.append(Check("total", table, key, "ok", f"printed total is {t['value']!r}: nothing to check"))
            continue
        keys = tuple(sorted(scope))
        agg = _reference_aggregate(tables[table], keys, measure).get(tuple(str(scope[k]) for k in keys))
        if agg is None:
            checks.append(Check("total", table, key, "failed", "no detail rows in scope"))
            continue
        rule = schemas[table].doc.get("reconcile", "exact")
        ok, detail = _judge(rule, agg, total)
        if t.get("publisher_inconsistent") == "true":
            status = "known" if not ok else "failed"
            detail += ("; recorded as a publisher inconsistency" if not ok else
                       "; flagged as a publisher inconsistency but it now adds up: review the flag")
        else:
            status = "ok" if ok else "failed"
        checks.append(Check(f"total ({rule})", table, key, status, detail))
    for name, schema in schemas.items():
        for rule in schema.doc.get("row_sums") or []:
            parts, whole = rule["parts"], rule["total"]
            for row in tables.get(name, []):
                values = [_num(row.get(p, "")) for p in parts]
                total = _num(row.get(whole, ""))
                if total is None or any(v is None for v in values) or sum(values) == total:
                    continue
                known = "publisher inconsistency" in row.get("notes", "")
                checks.append(Check("row sum", name, f"{row.get('source_id')} {row.get('source_locator')}",
                                    "known" if known else "failed",
                                    f"{' + '.join(parts)} = {sum(values)} but {whole} = {total}"
                                    + ("; recorded in the row's notes as a publisher inconsistency"
                                       if known else "")))
            checks.append(Check("row sum", name, f"{' + '.join(parts)} = {whole}", "ok",
                                "checked on every row with no suppressed part"))
    return checks


def _schemas(rule="exact", row_sums=None):
    doc = {"reconcile": rule, "row_sums": row_sums}
    return {"f": types.SimpleNamespace(doc=doc), "published_totals": types.SimpleNamespace(doc={})}


def _csv(rows: list[list], **kw) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n", **kw).writerows(rows)
    return buf.getvalue()


def _package(tmp_path: Path, fact: str, totals: list[list]) -> tuple[Path, list[dict]]:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "f.csv").write_bytes(fact.encode("utf-8"))
    header = ["fact_table", "measure", "scope", "label", "value", "publisher_inconsistent",
              "source_id", "source_locator"]
    (tmp_path / "data" / "published_totals.csv").write_text(_csv([header, *totals]), encoding="utf-8")
    return tmp_path, [{"name": "f", "path": "data/f.csv"},
                      {"name": "published_totals", "path": "data/published_totals.csv"}]


def _total(scope: dict, value: str, measure="m", table="f", flag="false", i=0) -> list:
    return [table, measure, json.dumps(scope), f"label {i}", value, flag, "src", f"loc {i}"]


def _both(folder: Path, resources: list[dict], schemas) -> tuple[list[Check], list[Check]]:
    """(fast reconciliation of the files, row-by-row reconciliation of DictReader rows)."""
    rows = {r["name"]: read_table(folder / r["path"]) for r in resources}
    paths = {r["name"]: folder / r["path"] for r in resources}
    return reconcile(paths, schemas), _reference_reconcile(rows, schemas)


CELLS = ["", "0", "00", "1", "5", "12", "307", "--", "-", "-5", "x", " 3", "3 ", "\u0663", "a,b",
         'q"q', "  ", "2017-01", "\u00e9t\u00e9", "NA", "5,0", "99999999999999999999"]
KEY_VALUES = ["", "1", "5", "x", "a,b", 'q"q', " 3", "\u00e9t\u00e9", "--", "0", 1, 5, True, None]


def _random_fact_table(rng: random.Random) -> str:
    """A well-formed CSV (as the package writer makes them) with messy cells."""
    header = rng.sample(["a", "b", "m", "n", "notes", "source_id", "source_locator"], rng.randint(2, 7))
    rows = [header]
    for _ in range(rng.randint(0, 40)):
        row = [rng.choice(CELLS) if rng.random() < 0.7 else str(rng.randint(0, 30))
               for _ in header]
        if "notes" in header and rng.random() < 0.2:
            row[header.index("notes")] = "a publisher inconsistency"
        rows.append(row)
    return _csv(rows)


@pytest.mark.parametrize("seed", range(40))
def test_same_checks_as_row_by_row_on_random_tables(tmp_path, seed):
    rng = random.Random(seed)
    totals = []
    for i in range(rng.randint(1, 40)):
        scope = {k: rng.choice(KEY_VALUES) for k in rng.sample(["a", "b", "zz"], rng.randint(0, 2))}
        totals.append(_total(scope, rng.choice(["", "7", "--", "12", "0", "300", "x", "5"]),
                             measure=rng.choice(["m", "n", "a"]), table=rng.choice(["f", "f", "g"]),
                             flag=rng.choice(["true", "false"]), i=i))
    row_sums = [{"parts": rng.sample(["m", "n", "b"], rng.randint(1, 2)), "total": rng.choice(["a", "m"])}]
    schemas = _schemas(rng.choice(["exact", "rounded5"]), row_sums if rng.random() < 0.7 else None)
    folder, resources = _package(tmp_path, _random_fact_table(rng), totals)
    fast, slow = _both(folder, resources, schemas)
    assert fast == slow
    rows = {r["name"]: read_table(folder / r["path"]) for r in resources}
    assert reconcile(rows, schemas) == slow  # tables given as DictReader rows


def test_odd_count_cells_are_unreadable_or_read_as_python_does(tmp_path):
    """Only str.isdigit() cells count: '-5', ' 3', '5,0' are unreadable; an Arabic-Indic
    digit is a digit; '--' is suppressed."""
    fact = _csv([["a", "m"], ["x", "-5"], ["x", " 3"], ["x", "5,0"], ["x", "\u0663"], ["x", "--"],
                 ["x", "0"], ["x", "10"]])
    folder, resources = _package(tmp_path, fact, [_total({"a": "x"}, "20")])
    fast, slow = _both(folder, resources, _schemas("rounded5"))
    assert fast == slow
    assert fast[0].detail.startswith("detail sum 13 over 7 cells (1 '--') implies 10..1000000021")
    agg = _aggregate(read_table(folder / "data" / "f.csv"), ("a",), "m")[("x",)]
    assert (agg.total, agg.n, agg.suppressed, agg.unreadable, agg.zeros) == (13, 7, 1, 3, 1)


def test_total_with_no_rows_in_scope_fails(tmp_path):
    fact = _csv([["a", "m"], ["x", "5"], ["y", "6"]])
    folder, resources = _package(tmp_path, fact, [_total({"a": "z"}, "5"), _total({"a": 1}, "5"),
                                                  _total({"a": "x"}, "5")])
    fast, slow = _both(folder, resources, _schemas())
    assert fast == slow
    assert [(c.status, c.detail) for c in fast] == [
        ("failed", "no detail rows in scope"), ("failed", "no detail rows in scope"),
        ("ok", "detail sum 5 vs printed total 5")]


def test_an_unreadable_table_is_a_validation_error(tmp_path):
    folder, resources = _package(tmp_path, "a,m\nx,5\n", [_total({"a": "x"}, "5")])
    (folder / "data" / "f.csv").write_bytes(b"a,m\n\xff\xfe,5\n")
    (folder / "datapackage.json").write_text(json.dumps({"resources": resources}))
    (folder / "schemas").mkdir()
    with pytest.raises(ValidationError, match="cannot read table f"):
        validate_package(folder, with_frictionless=False, schema_dir=folder / "schemas")


def test_huge_counts_add_up_exactly(tmp_path):
    """Sums past float64's exact range (2**53) are still exact."""
    big, odd = 2**60 + 1, 2**52 + 1
    fact = _csv([["a", "m", "n", "b"], ["x", str(big), "1", ""], ["x", str(big), "2", ""],
                 ["y", "3", str(big), ""], *[["z", "1", "1", str(odd)]] * 3])
    folder, resources = _package(tmp_path, fact, [_total({"a": "x"}, str(2 * big)),
                                                  _total({"a": "y"}, "3"),
                                                  _total({"a": "z"}, str(3 * odd), measure="b")])
    schemas = _schemas(row_sums=[{"parts": ["m", "n"], "total": "a"}])
    fast, slow = _both(folder, resources, schemas)
    assert fast == slow
    assert fast[0].detail == f"detail sum {2 * big} vs printed total {2 * big}"
    assert fast[2].detail == f"detail sum {3 * odd} vs printed total {3 * odd}"


def test_many_key_columns_with_many_values():
    """Grouping keys whose combinations do not fit in one 64-bit number."""
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(7)]
    rows = [{**{k: str(rng.randrange(900)) for k in keys}, "m": str(rng.randrange(50))}
            for _ in range(2000)]
    rows += [dict(r, m="1") for r in rows[:300]]  # some groups of more than one row
    assert _aggregate(rows, tuple(keys), "m") == _reference_aggregate(rows, tuple(keys), "m")
    assert _aggregate(rows, ("k0", "k1"), "m") == _reference_aggregate(rows, ("k0", "k1"), "m")
    assert _aggregate(rows, (), "m") == _reference_aggregate(rows, (), "m")


def test_row_sum_failures_name_their_rows(tmp_path):
    fact = _csv([["a", "m", "n", "notes", "source_id", "source_locator"],
                 ["5", "2", "3", "", "s1", "r1"],
                 ["6", "2", "3", "", "s2", "r2"],
                 ["7", "2", "3", "a publisher inconsistency", "s3", "r3"],
                 ["8", "2", "--", "", "s4", "r4"]])
    folder, resources = _package(tmp_path, fact, [])
    fast, slow = _both(folder, resources, _schemas(row_sums=[{"parts": ["m", "n"], "total": "a"}]))
    assert fast == slow
    assert [(c.key, c.status, c.detail) for c in fast[:2]] == [
        ("s2 r2", "failed", "m + n = 5 but a = 6"),
        ("s3 r3", "known", "m + n = 5 but a = 7; recorded in the row's notes as a publisher inconsistency")]
