"""Benchmarks: prints figures, asserts nothing.

    python benchmarks/bench.py [--requests 20000] [--users 16] [--skip-pipeline] [--skip-load]

1. Pipeline, each step a fresh process on a scratch copy of the project (wall time and peak
   RSS of that process, from os.wait4; the short `datasette inspect` child of `build` is
   included in wall time but not in peak memory):
   `refresh --mirror` on a fresh checkout (cold) and once more with unchanged sources
   (again: build/cache/parsed/ and build/validated.json in use), `build`, `validate`.
2. Site, side by side in the same run: our `canada-asylum-data serve` (immutable, indexes,
   views, canned queries, plugins) against a naive baseline (the same CSVs loaded with
   `sqlite-utils insert --csv`, no schemas or indexes, served by `datasette` with default
   settings), each loaded with locust (headless, benchmarks/locustfile.py) with the same mix,
   users and request count. Prints requests, errors, req/s and p50/p95/p99 per request type
   and the ratios.

Targets (from the issue): refresh < 10 s and < 500 MB; build < 2 s; 0 errors over >= 20,000
requests at 16 users; JSON table API p99 < 100 ms; >= 1.5x the baseline's throughput.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
CLI = str(BIN / "canada-asylum-data")
INPUTS = ("sources.yml", "sources.d", "schemas", "aliases", "package.yaml", "views.yml",
          "queries.yml", "categories.yml", "reference")
SITE_DIRS = ("plugins", "templates", "static")


def mirror_dir() -> Path:
    return Path(os.environ.get("CANADA_ASYLUM_DATA_MIRROR", ROOT.parent / "shared" / "sources"))


def scratch_project(dest: Path, with_outputs: bool) -> Path:
    (dest / "datapackage").mkdir(parents=True)
    for name in INPUTS:
        src = ROOT / "datapackage" / name
        if src.is_dir():
            shutil.copytree(src, dest / "datapackage" / name)
        elif src.exists():
            shutil.copy2(src, dest / "datapackage" / name)
    for name in SITE_DIRS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name)
    if with_outputs:
        shutil.copytree(ROOT / "datapackage" / "data", dest / "datapackage" / "data")
        shutil.copy2(ROOT / "datapackage" / "datapackage.json", dest / "datapackage" / "datapackage.json")
        if (ROOT / "metadata.yml").exists():
            shutil.copy2(ROOT / "metadata.yml", dest / "metadata.yml")
    return dest


def measure(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run cmd; wall seconds and peak RSS (MB) of that process (os.wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "exit": proc.returncode,
            "tail": out.decode(errors="replace").strip().splitlines()[-3:]}


def pipeline(work: Path) -> dict[str, dict]:
    results = {}
    proj = scratch_project(work / "pipeline", with_outputs=False)
    refresh = [CLI, "--root", str(proj), "refresh", "--mirror", str(mirror_dir()), "--silent"]
    # Cold: a fresh checkout, nothing in build/ (every source parsed, every resource
    # through Frictionless). Again: the same project refreshed once more with unchanged
    # sources (parse cache and validation ledger in build/ used; the usual weekly case).
    results["refresh (cold)"] = measure(refresh)
    results["refresh (again)"] = measure(refresh)
    if not (proj / "datapackage" / "datapackage.json").exists():
        shutil.rmtree(proj)
        proj = scratch_project(work / "pipeline", with_outputs=True)
        results["note"] = {"text": "refresh wrote no package; build/validate ran on the committed one"}
    results["build"] = measure([CLI, "--root", str(proj), "build", "--silent"])
    results["validate"] = measure([CLI, "--root", str(proj), "validate", "--silent"])
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, log: Path, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/robots.txt", timeout=2)
            return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"server did not start: {' '.join(cmd)}\n{log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def baseline_db(proj: Path, dest: Path) -> Path:
    db = dest / "canada_asylum.db"  # same name, so the same URLs work
    for path in sorted((proj / "datapackage" / "data").glob("*.csv")):
        subprocess.run([str(BIN / "sqlite-utils"), "insert", str(db), path.stem, str(path), "--csv"],
                       check=True, capture_output=True)
    # The same views (plain SQL, so the mix's view and canned-query SQL can run); no types,
    # keys or indexes, which is what the baseline is for.
    import sqlite3

    import yaml

    views = (yaml.safe_load((proj / "datapackage" / "views.yml").read_text()) or {}).get("views") or []
    conn = sqlite3.connect(db)
    for view in views:
        try:
            conn.execute(f"create view [{view['name']}] as {view['sql']}")
        except sqlite3.Error as exc:
            print(f"baseline: view {view['name']} not created ({exc})")
    conn.commit()
    conn.close()
    return db


def load(kind: str, port: int, proj: Path, args, out: Path, label: str | None = None) -> dict:
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_ROOT": str(proj),
           "BENCH_MAX_REQUESTS": str(args.requests), "BENCH_MIX": args.mix}
    prefix = out / f"load-{(label or kind).replace(' ', '-')}"
    cmd = [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(args.users),
           "-r", str(args.users), "-t", f"{args.max_seconds}s", "--host", f"http://127.0.0.1:{port}",
           "--csv", str(prefix), "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    mix_line = [line for line in (result.stdout + result.stderr).splitlines() if "locustfile:" in line]
    rows = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]), "errors": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50": float(row["50%"] or 0),
                "p95": float(row["95%"] or 0), "p99": float(row["99%"] or 0)}
    return {"rows": rows, "mix": mix_line}


def site(work: Path, args) -> dict:
    proj = scratch_project(work / "site", with_outputs=True)
    subprocess.run([CLI, "--root", str(proj), "build", "--silent"], check=True)
    if not (proj / "metadata.yml").exists():
        subprocess.run([CLI, "--root", str(proj), "metadata", "--silent"], check=True)
    base_dir = work / "baseline"
    base_dir.mkdir()
    db = baseline_db(proj, base_dir)
    results = {}
    port = free_port()
    # the cache-free site first: that is the figure a reader of a new URL gets
    ours = start([CLI, "--root", str(proj), "serve", "--port", str(port), "--silent"], port, work / "serve.log",
                 env={"CANADA_ASYLUM_DATA_RESPONSE_CACHE": "0"})
    try:
        results["project"] = load("project", port, proj, args, work)
    finally:
        stop(ours)
    if args.with_cache:
        port = free_port()
        ours = start([CLI, "--root", str(proj), "serve", "--port", str(port), "--silent"], port,
                     work / "serve-cache.log", env={"CANADA_ASYLUM_DATA_RESPONSE_CACHE": "1"})
        try:
            results["project + in-process cache"] = load("project", port, proj, args, work, "project-cache")
        finally:
            stop(ours)
    port = free_port()
    naive = start([str(BIN / "datasette"), "serve", str(db), "--port", str(port)], port, work / "baseline.log")
    try:
        results["baseline"] = load("baseline", port, proj, args, work)
    finally:
        stop(naive)
    return results


BIG = "ircc_claimants_top25_citizenship"
HOSTILE = {  # the requests of the hardening report; the first two are refused (400) now
    "html _size=max, unindexed sort": f"/canada_asylum/{BIG}?_size=max&_sort_desc=notes",
    "html 10 facets, _facet_size=max": f"/canada_asylum/{BIG}?" + "&".join(
        f"_facet={c}" for c in ["year", "month", "quarter", "breakdown", "breakdown_value", "country_code",
                                "country_label", "ranking", "rank", "source_id"]) + "&_facet_size=max",
    "json _size=max, unindexed sort": f"/canada_asylum/{BIG}.json?_size=max&_sort_desc=notes",
    "html 5 facets, _facet_size=max": f"/canada_asylum/{BIG}?_facet=year&_facet=month&_facet=country_code"
                                      "&_facet=breakdown_value&_facet=source_id&_facet_size=max",
}
SIMPLE = "/canada_asylum/provinces.json?_shape=array&code=QC"


def hostile(work: Path) -> dict:
    """Each hostile request alone, then a simple request while four of them run at once."""
    import statistics
    import threading

    proj = work / "site"
    port = free_port()
    proc = start([CLI, "--root", str(proj), "serve", "--port", str(port), "--silent"], port, work / "hostile.log")
    base = f"http://127.0.0.1:{port}"
    out: dict = {"alone": {}, "simple": {}}
    try:
        with httpx.Client(base_url=base, timeout=120) as c:
            for name, path in HOSTILE.items():
                t0 = time.perf_counter()
                status = c.get(path).status_code
                out["alone"][name] = (status, time.perf_counter() - t0)
            for label, paths in (("idle", []), ("4 hostile running", list(HOSTILE.values()))):
                halt = threading.Event()

                def hammer(path):
                    with httpx.Client(base_url=base, timeout=120) as h:
                        while not halt.is_set():
                            h.get(path)

                threads = [threading.Thread(target=hammer, args=(p,)) for p in paths]
                for t in threads:
                    t.start()
                time.sleep(1 if paths else 0)
                lat = []
                for _ in range(40):
                    t0 = time.perf_counter()
                    assert c.get(SIMPLE).status_code == 200
                    lat.append(time.perf_counter() - t0)
                halt.set()
                for t in threads:
                    t.join()
                lat.sort()
                out["simple"][label] = (statistics.median(lat), lat[int(len(lat) * 0.95)], lat[-1])
    finally:
        stop(proc)
    return out


def show_hostile(r: dict) -> None:
    print("\n== hostile requests (largest table) ==")
    for name, (status, seconds) in r["alone"].items():
        print(f"{name:<36} status {status}  {seconds * 1000:8.0f} ms alone")
    for label, (p50, p95, worst) in r["simple"].items():
        print(f"simple request, {label:<20} median {p50 * 1000:6.0f} ms  p95 {p95 * 1000:6.0f} ms  "
              f"max {worst * 1000:6.0f} ms")


def show_pipeline(results: dict) -> None:
    print("\n== pipeline (fresh process per step) ==")
    print(f"{'step':<20} {'wall s':>8} {'peak MB':>8} {'exit':>5}  target")
    targets = {"refresh (cold)": "< 10 s, < 500 MB", "refresh (again)": "< 10 s, < 500 MB",
               "build": "< 2 s", "validate": ""}
    for step, r in results.items():
        if step == "note":
            print(f"  note: {r['text']}")
            continue
        print(f"{step:<20} {r['wall_s']:8.2f} {r['peak_mb']:8.0f} {r['exit']:5d}  {targets.get(step, '')}")
        if r["exit"]:
            print("    " + "\n    ".join(r["tail"]))


def show_site(results: dict) -> None:
    print("\n== site load (locust, same mix, same users, same request cap; the project site "
          "first without any in-process response cache) ==")
    for kind, r in results.items():
        print(f"\n-- {kind} --")
        for line in r["mix"]:
            print("  " + line)
        print(f"{'request':<26} {'n':>7} {'err':>5} {'req/s':>8} {'p50':>6} {'p95':>6} {'p99':>6}  (ms)")
        for name, s in r["rows"].items():
            print(f"{name:<26} {s['requests']:7d} {s['errors']:5d} {s['rps']:8.1f} {s['p50']:6.0f} "
                  f"{s['p95']:6.0f} {s['p99']:6.0f}")
    if {"project", "baseline"} <= results.keys():
        ours, base = results["project"]["rows"], results["baseline"]["rows"]
        print("\n-- ratios (project / baseline; throughput higher is better, latency lower) --")
        for name in ours:
            if name in base and base[name]["rps"]:
                o, b = ours[name], base[name]
                print(f"{name:<26} req/s x{o['rps'] / b['rps']:.2f}   p50 x{o['p50'] / max(b['p50'], 1):.2f}   "
                      f"p99 x{o['p99'] / max(b['p99'], 1):.2f}")
        agg = ours.get("Aggregated")
        json_api = ours.get("json api _shape=array")
        print("\n-- targets --")
        if agg:
            print(f"requests {agg['requests']} (>= 20000), errors {agg['errors']} (0)")
        if json_api:
            print(f"JSON table API p99 {json_api['p99']:.0f} ms (< 100 ms)")
        if agg and base.get("Aggregated"):
            print(f"throughput {agg['rps']:.1f} vs baseline {base['Aggregated']['rps']:.1f} req/s: "
                  f"x{agg['rps'] / base['Aggregated']['rps']:.2f} (>= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="requests per site (default 20000)")
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users (default 16)")
    parser.add_argument("--max-seconds", type=int, default=300, help="time cap per site (default 300)")
    parser.add_argument("--mix", choices=["distinct", "repeat"], default="distinct",
                        help="distinct: nearly every URL new (default); repeat: a small fixed set of URLs")
    parser.add_argument("--with-cache", action="store_true",
                        help="also load the site with CANADA_ASYLUM_DATA_RESPONSE_CACHE=1 (an in-process "
                             "response cache, if a plugin provides one)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cad-bench-"))
    try:
        if not args.skip_pipeline:
            show_pipeline(pipeline(work))
        if not args.skip_load:
            show_site(site(work, args))
        if not args.skip_hostile:
            if not (work / "site").exists():
                proj = scratch_project(work / "site", with_outputs=True)
                subprocess.run([CLI, "--root", str(proj), "build", "--silent"], check=True)
            show_hostile(hostile(work))
    finally:
        if args.keep:
            print(f"\nscratch folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
