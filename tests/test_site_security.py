"""The published site is locked down: immutable database, SQL time and row limits, no
writes through any endpoint, a runaway query stopped while other requests are answered,
a robots policy and cache headers for immutable content. Runs the real `serve` command
(with the project's plugins/) on 127.0.0.1."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from canada_asylum_data.site import SETTINGS

from .conftest import DATAPACKAGE, ROOT
from .conftest import copy_project, run, start_serve, stop_serve

DB = "canada_asylum"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("secure") / "site", with_outputs=False)
    shutil.copytree(DATAPACKAGE / "data", root / "datapackage" / "data")
    shutil.copy2(DATAPACKAGE / "datapackage.json", root / "datapackage" / "datapackage.json")
    shutil.copytree(ROOT / "plugins", root / "plugins", dirs_exist_ok=True)
    for args in (["build"], ["metadata"]):
        result = run(root, *args, "--silent")
        assert result.exit_code == 0, result.output
    proc, base, _ = start_serve(root)
    before = sha(root / "build" / "canada_asylum.db")
    client = httpx.Client(base_url=base, timeout=30)
    yield client, root
    client.close()
    stop_serve(proc)
    assert sha(root / "build" / "canada_asylum.db") == before, "the database file changed while served"


def sql(client, query: str, **params):
    return client.get(f"/{DB}.json", params={"sql": query, "_shape": "objects", **params})


def any_table(client) -> str:
    rows = sql(client, "select name from sqlite_master where type = 'table' and name not like '%fts%' "
                       "order by name").json()["rows"]
    names = [r["name"] for r in rows]
    return "provinces" if "provinces" in names else names[0]


def test_database_is_immutable_and_limits_are_set(served):
    client, root = served
    from canada_asylum_data.paths import Paths
    from canada_asylum_data.site import describe, serve_command

    cmd = serve_command(describe(Paths(root)), "127.0.0.1", 8001)
    assert cmd[cmd.index("-i") + 1].endswith("canada_asylum.db")  # -i: immutable, opened read-only
    # /-/databases shows the absolute database path: not public
    assert client.get("/-/databases.json").status_code == 404
    settings = client.get("/-/settings.json").json()
    assert settings["sql_time_limit_ms"] == int(SETTINGS["sql_time_limit_ms"]) <= 5000
    assert settings["max_returned_rows"] == int(SETTINGS["max_returned_rows"]) <= 10000
    assert settings["allow_download"] in (True, False)


WRITES = [
    "insert into provinces (code) values ('ZZ')",
    "update provinces set name_en = 'x'",
    "delete from provinces",
    "drop table provinces",
    "create table pwned (x)",
    "attach database '/tmp/pwned.db' as pwned",
    "attach database ':memory:' as m",
    "pragma writable_schema = 1",
    "pragma writable_schema = ON; update sqlite_master set sql = 'x'",
    "pragma journal_mode = wal",
    "vacuum",
    "vacuum into '/tmp/copy-of-site.db'",
    "select 1; drop table provinces",
    "with x as (select 1) insert into provinces (code) select 'ZZ' from x",
    "replace into provinces (code) values ('ON')",
    "reindex",
    "select load_extension('/tmp/evil.so')",
    "select writefile('/tmp/pwned.txt', 'x')",
]


@pytest.mark.parametrize("query", WRITES)
def test_sql_api_refuses_writes(served, query):
    client, root = served
    response = sql(client, query)
    assert response.status_code in (400, 403), (response.status_code, response.text[:300])
    assert response.json().get("ok") is False
    assert not Path("/tmp/pwned.txt").exists() and not Path("/tmp/copy-of-site.db").exists()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", [f"/{DB}/-/query", f"/{DB}", f"/{DB}/-/create", f"/{DB}/provinces/-/insert",
                                  f"/{DB}/provinces/-/drop", f"/{DB}/provinces/ON/-/delete", "/-/permissions"])
def test_no_endpoint_accepts_writes(served, method, path):
    client, _ = served
    response = client.request(method, path, data={"sql": "insert into provinces (code) values ('ZZ')"},
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code in (400, 403, 404, 405), (method, path, response.status_code)
    assert sql(client, "select count(*) as n from provinces where code = 'ZZ'").json()["rows"][0]["n"] == 0


def test_row_limit(served):
    client, _ = served
    limit = int(SETTINGS["max_returned_rows"])
    query = f"with recursive c(x) as (select 1 union all select x + 1 from c limit {limit * 3}) select x from c"
    body = client.get(f"/{DB}.json", params={"sql": query}).json()
    assert len(body["rows"]) == limit
    assert body["truncated"] is True


RUNAWAY = "with recursive c(x) as (select 1 union all select x + 1 from c) select count(*) from c"


def test_runaway_query_is_stopped_while_others_are_answered(served):
    client, _ = served
    limit_s = int(SETTINGS["sql_time_limit_ms"]) / 1000
    table = any_table(client)
    result = {}

    def runaway():
        t0 = time.perf_counter()
        with httpx.Client(base_url=str(client.base_url), timeout=60) as c:
            result["response"] = c.get(f"/{DB}.json", params={"sql": RUNAWAY})
        result["seconds"] = time.perf_counter() - t0

    thread = threading.Thread(target=runaway)
    thread.start()
    time.sleep(0.3)
    latencies = []
    while thread.is_alive() and len(latencies) < 200:
        t0 = time.perf_counter()
        response = client.get(f"/{DB}/{table}.json", params={"_shape": "array", "_size": "5"})
        latencies.append(time.perf_counter() - t0)
        assert response.status_code == 200
    thread.join(timeout=limit_s + 30)
    response = result["response"]
    assert response.status_code == 400, response.text[:300]
    assert "interrupted" in response.text.lower() or "time limit" in response.text.lower()
    assert result["seconds"] < limit_s + 2.0, result["seconds"]
    assert latencies, "no other request was made while the runaway query ran"
    assert max(latencies) < 1.5, f"other requests stalled: max {max(latencies):.2f}s"


def test_robots_policy(served):
    client, _ = served
    response = client.get("/robots.txt")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "User-agent: *" in text and "Disallow: /*?sql=" in text and "Allow: /" in text


def test_cache_headers_for_immutable_content(served):
    client, _ = served
    table = any_table(client)
    for path in [f"/{DB}/{table}", f"/{DB}/{table}.json?_shape=array", f"/{DB}/{table}.csv", "/robots.txt"]:
        response = client.get(path)
        assert response.status_code == 200, path
        cc = response.headers.get("cache-control", "")
        assert "max-age=" in cc, (path, cc)
        assert int(cc.split("max-age=")[1].split(",")[0]) >= 3600, (path, cc)
        assert "private" not in cc and "no-store" not in cc, (path, cc)
    error = client.get(f"/{DB}/no_such_table_here")
    assert error.status_code == 404
    assert "max-age=86400" not in error.headers.get("cache-control", "")


def test_no_in_process_response_cache(served):
    """The CDN is the cache (Cache-Control above); the site itself answers every request."""
    client, _ = served
    path = f"/{DB}/provinces.json?_shape=array&code=QC"
    first, second = client.get(path), client.get(path)
    assert first.content == second.content and first.json()[0]["code"] == "QC"
    assert "x-cache" not in first.headers and "x-cache" not in second.headers
