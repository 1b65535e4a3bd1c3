"""Locust load test for the served site: a realistic mix of what journalists do.

Run headless against a server on 127.0.0.1 (bench.py starts the servers and runs this):

    locust -f benchmarks/locustfile.py --headless -u 16 -r 16 -t 120s \
        --host http://127.0.0.1:8001 --csv build/bench/load

Environment:
    BENCH_KIND       "project" (our site: views, canned queries, charts page) or "baseline"
                     (plain `sqlite-utils insert` + default Datasette: the same view and
                     canned-query SQL is sent as ?sql=, pages it does not have are skipped)
    BENCH_MAX_REQUESTS  stop after this many requests (default 20000)
    BENCH_ROOT       project folder (for views.yml / metadata.yml), default: this checkout
    BENCH_MIX        "distinct" (default: random filters, sorts, facets, page sizes and
                     offsets, so that almost every URL is new and no response cache can
                     help) or "repeat" (the small fixed set of URLs of earlier rounds)

The test stops by itself after BENCH_MAX_REQUESTS requests or the -t run time, whichever
comes first.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import httpx
import yaml
from locust import FastHttpUser, between, events, task  # noqa: F401

DB = "canada_asylum"
ROOT = Path(os.environ.get("BENCH_ROOT", Path(__file__).resolve().parent.parent))
KIND = os.environ.get("BENCH_KIND", "project")
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "20000"))
MIX_KIND = os.environ.get("BENCH_MIX", "distinct")

COUNTRIES = ["USA", "HTI", "MEX", "NGA", "COL", "TUR", "IND", "CHN", "IRN", "PAK"]
YEARS = list(range(2013, 2024))


def _views() -> dict[str, str]:
    path = ROOT / "datapackage" / "views.yml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    return {v["name"]: v["sql"] for v in (doc or {}).get("views") or []}


def _queries() -> dict[str, str]:
    path = ROOT / "metadata.yml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    dbs = (doc or {}).get("databases") or {}
    return {k: v["sql"] for k, v in ((dbs.get(DB) or {}).get("queries") or {}).items()}


VIEWS = _views()
QUERIES = _queries()
VIEW = "us_claims_by_year" if "us_claims_by_year" in VIEWS else next(iter(VIEWS), None)
QUERY = "country_claims_by_year" if "country_claims_by_year" in QUERIES else next(iter(QUERIES), None)


def paths_for(kind: str) -> dict[str, tuple[int, callable]]:
    """name -> (weight, function returning a path). Names group the stats."""
    mix = {
        "home": (5, lambda: "/"),
        "db page": (2, lambda: f"/{DB}"),
        "table html + facets": (12, lambda: f"/{DB}/irb_rpd_claims?_facet=year&_facet=country_code"
                                             f"&year={random.choice(YEARS)}"),
        "table html filter": (6, lambda: f"/{DB}/rcmp_interceptions?province_code=QC&_sort=month"),
        "json api _shape=array": (30, lambda: f"/{DB}/irb_rpd_claims.json?_shape=array"
                                               f"&country_code={random.choice(COUNTRIES)}&_sort=year"),
        "json api big page": (8, lambda: f"/{DB}/cbsa_ircc_claimants.json?_shape=array&_size=1000"),
        "csv export": (8, lambda: f"/{DB}/irb_rpd_claims.csv?year={random.choice(YEARS)}&_size=max"),
    }
    if kind == "project":
        if VIEW:
            mix["view"] = (10, lambda: f"/{DB}/{VIEW}.json?_shape=array")
        if QUERY:
            mix["canned query"] = (10, lambda: f"/{DB}/{QUERY}.json?_shape=array&country={random.choice(COUNTRIES)}")
        mix["charts page"] = (5, lambda: "/-/dashboards/journalist")
    else:  # the same SQL, sent as arbitrary SQL to a site without views or canned queries
        if VIEW:
            mix["view"] = (10, lambda: httpx.URL(f"/{DB}.json", params={"sql": VIEWS[VIEW], "_shape": "array"}))
        if QUERY:
            mix["canned query"] = (10, lambda: httpx.URL(f"/{DB}.json", params={
                "sql": QUERIES[QUERY], "_shape": "array", "country": random.choice(COUNTRIES),
                "year_from": "", "year_to": ""}))
    return mix


RPD_SORTS = ["year", "country_code", "referred", "accepted", "rejected", "finalized", "pending", "source_id"]
CBSA_SORTS = ["month", "province_code", "office", "claimants", "source_id"]


def _sort(columns: list[str]) -> str:
    return f"&_{random.choice(['sort', 'sort_desc'])}={random.choice(columns)}"


def _size() -> str:
    return f"&_size={random.randint(10, 200)}"


def distinct_paths_for(kind: str) -> dict[str, tuple[int, callable]]:
    """The same request types and weights as paths_for, each URL drawn at random (filters,
    sort column and direction, facets, page size, offset), so that nearly every URL is new."""
    mix = paths_for(kind)
    mix["db page"] = (2, lambda: f"/{DB}?_r={random.randint(0, 10**9)}")
    mix["home"] = (5, lambda: f"/?_r={random.randint(0, 10**9)}")
    mix["table html + facets"] = (12, lambda: f"/{DB}/irb_rpd_claims?year__gte={random.choice(YEARS)}"
                                             + "".join(f"&_facet={f}" for f in random.sample(
                                                 ["year", "country_code", "source_id"], random.randint(1, 2)))
                                             + _sort(RPD_SORTS) + _size())
    mix["table html filter"] = (6, lambda: f"/{DB}/rcmp_interceptions?year={random.choice(range(2017, 2024))}"
                                           + _sort(["month", "province_code", "interceptions"]) + _size())
    mix["json api _shape=array"] = (30, lambda: f"/{DB}/irb_rpd_claims.json?_shape=array"
                                               f"&country_code={random.choice(COUNTRIES)}"
                                               f"&year__gte={random.choice(YEARS)}" + _sort(RPD_SORTS) + _size())
    mix["json api big page"] = (8, lambda: f"/{DB}/cbsa_ircc_claimants.json?_shape=array&_size=1000"
                                           f"&claimants__gte={random.randint(0, 500)}" + _sort(CBSA_SORTS))
    mix["csv export"] = (8, lambda: f"/{DB}/irb_rpd_claims.csv?year={random.choice(YEARS)}&_size=max"
                                    f"&referred__gte={random.randint(0, 300)}" + _sort(RPD_SORTS))
    if "view" in mix:
        view = mix["view"][1]
        mix["view"] = (10, lambda: str(view()) + f"&_size={random.randint(1, 11)}")
    if "canned query" in mix:
        query = mix["canned query"][1]
        mix["canned query"] = (10, lambda: str(query()) + f"&_r={random.randint(0, 10**9)}")
    if "charts page" in mix:
        mix["charts page"] = (5, lambda: f"/-/dashboards/journalist?_r={random.randint(0, 10**9)}")
    return mix


MIX: dict[str, tuple[int, callable]] = {}


@events.init.add_listener
def probe(environment, **_):
    """Drop from the mix any page the target does not serve (e.g. the charts page when the dashboards plugin is missing)."""
    MIX.clear()
    host = environment.host or "http://127.0.0.1:8001"
    with httpx.Client(base_url=host, timeout=30) as client:
        chosen = distinct_paths_for(KIND) if MIX_KIND == "distinct" else paths_for(KIND)
        for name, (weight, make) in chosen.items():
            status = client.get(str(make())).status_code
            if status == 200:
                MIX[name] = (weight, make)
            else:
                print(f"locustfile: dropping {name!r} from the mix ({status})")
    print(f"locustfile: {KIND} {MIX_KIND} mix: {', '.join(f'{k} x{w}' for k, (w, _) in MIX.items())}")


@events.request.add_listener
def stop_after_max(**_):
    env = _ENV.get("env")
    # a margin: the stats CSV is written about once a second, so up to a second's requests
    # (~900 at this site's rate) and those in flight when locust quits are not in it, and
    # the report must show at least MAX_REQUESTS (with a 1% margin it showed 19,965 of 20,000)
    if env and env.runner and not _ENV.get("stopping") and \
            env.stats.total.num_requests >= MAX_REQUESTS + max(1000, MAX_REQUESTS // 20):
        _ENV["stopping"] = True
        import gevent

        gevent.spawn_later(0, env.runner.quit)


_ENV: dict = {}


@events.init.add_listener
def remember(environment, **_):
    _ENV["env"] = environment


class Reader(FastHttpUser):
    # locust's gevent HTTP client: a few times less CPU per request than the requests-based
    # HttpUser, so the load generator takes less of the machine it shares with the server
    # (its CPU per request is printed beside the servers'); both sites get the same client.
    wait_time = between(0, 0)

    @task
    def one(self):
        names = list(MIX)
        name = random.choices(names, weights=[MIX[n][0] for n in names])[0]
        path = str(MIX[name][1]())
        with self.client.get(path, name=name, catch_response=True, headers={"X-Bench-Name": name}) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
