"""Benchmarks: prints figures, asserts nothing.

    python benchmarks/bench.py [--requests 20000] [--users 16] [--workers 1] [--skip-pipeline] [--skip-load]

1. Pipeline, each step a fresh process on a scratch copy of the project (wall time and peak
   RSS of that process, from os.wait4; the short `datasette inspect` child of `build` is
   included in wall time but not in peak memory):
   `refresh --mirror` on a fresh checkout (cold) and once more with unchanged sources
   (again: build/cache/parsed/ and build/validated.json in use), `build`, `validate`.
2. Site, side by side in the same run: our `canada-asylum-data serve` (immutable, indexes,
   views, canned queries, plugins) against a naive baseline (the same CSVs loaded with
   `sqlite-utils insert --csv`, no schemas or indexes, served by `datasette` with default
   settings; always one process), each loaded with locust (headless, benchmarks/locustfile.py) with the same mix,
   users and request count, alternated A B A B over --runs pairs (fresh servers each run;
   --server-cpus / --client-cpus pin them with taskset). Prints requests, errors, req/s and
   p50/p95/p99 per request type, the time spent inside each server (benchmarks/timing/),
   each server's and the load generator's CPU per request, and the median and min-max over
   the runs with the ratio of each pair. --workers N serves our site with
   `serve --workers N` (N uvicorn processes on one port; default 1, one Datasette process).

Targets (from the issue): refresh < 10 s and < 500 MB; build < 2 s; 0 errors over >= 20,000
requests at 16 users; on distinct URLs without an in-process cache: >= 1.5x the baseline's
throughput, p99 < 300 ms for the table page with facets and < 100 ms for the JSON table API.
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


def cpu_seconds(session: int) -> float:
    """User + system CPU seconds of every live process in a session (the server and its
    threads; `serve` execs Datasette, or uvicorn's supervisor and its workers with
    --workers N, so the session is the server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # field 6 of /proc/pid/stat: session id
            total += int(fields[11]) + int(fields[12])
    return total / tick


def pinned(cmd: list[str], cpus: str | None) -> list[str]:
    return (["taskset", "-c", cpus] + cmd) if cpus else cmd


def load(kind: str, port: int, proj: Path, args, out: Path, label: str | None = None) -> dict:
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_ROOT": str(proj),
           "BENCH_MAX_REQUESTS": str(args.requests), "BENCH_MIX": args.mix}
    prefix = out / f"load-{(label or kind).replace(' ', '-')}"
    cmd = [str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(args.users),
           "-r", str(args.users), "-t", f"{args.max_seconds}s", "--host", f"http://127.0.0.1:{port}",
           "--csv", str(prefix), "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0"]
    log = out / f"{prefix.name}.out"
    with log.open("wb") as fh:
        proc = subprocess.Popen(pinned(cmd, args.client_cpus), env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, _, usage = os.wait4(proc.pid, 0)
    text = log.read_text(errors="replace")
    mix_line = [line for line in text.splitlines() if "locustfile:" in line]
    warnings = sorted({line.split("] ", 1)[-1] for line in text.splitlines() if "CPU usage" in line})
    rows = {}
    with open(f"{prefix}_stats.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            rows[row["Name"]] = {
                "requests": int(row["Request Count"]), "errors": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50": float(row["50%"] or 0),
                "p95": float(row["95%"] or 0), "p99": float(row["99%"] or 0)}
    return {"rows": rows, "mix": mix_line, "client_cpu_s": usage.ru_utime + usage.ru_stime,
            "warnings": warnings}


def server_times(log: Path) -> dict[str, dict]:
    """Per request name: p50/p99 of the time spent inside the server (request_timing plugin)."""
    by_name: dict[str, list[float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[0] and not parts[0].startswith("/"):
                by_name.setdefault(parts[0], []).append(float(parts[2]))
    out = {}
    for name, values in by_name.items():
        values.sort()
        out[name] = {"n": len(values), "p50": values[len(values) // 2],
                     "p99": values[min(len(values) - 1, int(len(values) * 0.99))]}
    return out


def run_one(kind: str, proj: Path, db: Path, args, work: Path, label: str, extra_env: dict | None = None) -> dict:
    """Start one server (pinned with --server-cpus), load it, stop it; locust's figures plus
    the server's CPU seconds and its own per-request times."""
    port = free_port()
    timing = work / f"timing-{label}.log"
    env = {"BENCH_TIMING_LOG": str(timing), **(extra_env or {})}
    if kind == "project":
        cmd = [CLI, "--root", str(proj), "serve", "--port", str(port), "--silent", "--workers", str(args.workers)]
        for name, value in args.setting or []:
            cmd += ["--setting", name, value]
    else:
        cmd = [str(BIN / "datasette"), "serve", str(db), "--port", str(port), "--plugins-dir", str(HERE / "timing")]
    server = start(pinned(cmd, args.server_cpus), port, work / f"serve-{label}.log", env=env)
    try:
        cpu0 = cpu_seconds(server.pid)
        result = load(kind, port, proj, args, work, label)
        result["server_cpu_s"] = cpu_seconds(server.pid) - cpu0
    finally:
        stop(server)
    result["server"] = server_times(timing)
    return result


def site(work: Path, args) -> dict:
    proj = scratch_project(work / "site", with_outputs=True)
    # the benchmark's timing plugin rides along in the scratch copy only
    if (proj / "plugins").is_dir():
        shutil.copy2(HERE / "timing" / "request_timing.py", proj / "plugins" / "request_timing.py")
    subprocess.run([CLI, "--root", str(proj), "build", "--silent"], check=True)
    if not (proj / "metadata.yml").exists():
        subprocess.run([CLI, "--root", str(proj), "metadata", "--silent"], check=True)
    base_dir = work / "baseline"
    base_dir.mkdir()
    db = baseline_db(proj, base_dir)
    runs: list[dict] = []
    # A B A B: the site and the baseline alternate, so that the machine's slow and fast
    # spells fall on both; each run is a fresh server process
    for i in range(args.runs):
        pair = {}
        for kind in ("project", "baseline"):
            pair[kind] = run_one(kind, proj, db, args, work, f"{kind}-{i + 1}", None)
        runs.append(pair)
    return {"runs": runs, "workers": args.workers}


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


def hostile(work: Path, workers: int = 1) -> dict:
    """Each hostile request alone, then a simple request while four of them run at once."""
    import statistics
    import threading

    proj = work / "site"
    port = free_port()
    proc = start([CLI, "--root", str(proj), "serve", "--port", str(port), "--silent", "--workers", str(workers)],
                 port, work / "hostile.log")
    base = f"http://127.0.0.1:{port}"
    out: dict = {"alone": {}, "simple": {}, "workers": workers}
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
    print(f"\n== hostile requests (largest table; {r['workers']} server process(es)) ==")
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


FACET_PAGE = "table html + facets"
JSON_API = "json api _shape=array"


def _spread(values: list[float], fmt: str = "{:.1f}") -> str:
    import statistics

    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def show_site(results: dict) -> None:
    runs = results["runs"]
    print(f"\n== site load (locust, same mix, users and request cap; project without any in-process "
          f"response cache, served by {results['workers']} process(es) (--workers); baseline one "
          f"datasette process; runs alternate A B A B) ==")
    for i, pair in enumerate(runs, 1):
        for kind, r in pair.items():
            n = r["rows"].get("Aggregated", {}).get("requests", 0) or 1
            print(f"\n-- run {i}: {kind} (server CPU {r['server_cpu_s']:.1f} s = {r['server_cpu_s'] * 1000 / n:.1f} "
                  f"ms/request; load generator CPU {r['client_cpu_s']:.1f} s = "
                  f"{r['client_cpu_s'] * 1000 / n:.1f} ms/request) --")
            for line in r["mix"] + r["warnings"]:
                print("  " + line)
            print(f"{'request':<26} {'n':>7} {'err':>5} {'req/s':>8} {'p50':>6} {'p95':>6} {'p99':>6}"
                  f"   in server: {'p50':>6} {'p99':>6}  (ms)")
            for name, s in r["rows"].items():
                srv = r["server"].get(name)
                inside = f"{srv['p50']:6.0f} {srv['p99']:6.0f}" if srv else ""
                print(f"{name:<26} {s['requests']:7d} {s['errors']:5d} {s['rps']:8.1f} {s['p50']:6.0f} "
                      f"{s['p95']:6.0f} {s['p99']:6.0f}               {inside}")

    def series(kind: str, name: str, key: str) -> list[float]:
        return [p[kind]["rows"][name][key] for p in runs if kind in p and name in p[kind]["rows"]]

    print(f"\n-- summary over {len(runs)} run(s): median (min-max) --")
    print(f"{'':<30} {'project':>26} {'baseline':>26}")
    lines = [("throughput, req/s", "Aggregated", "rps", "{:.1f}"),
             ("errors", "Aggregated", "errors", "{:.0f}"),
             ("requests", "Aggregated", "requests", "{:.0f}"),
             (f"{FACET_PAGE} p99 ms", FACET_PAGE, "p99", "{:.0f}"),
             (f"{FACET_PAGE} p50 ms", FACET_PAGE, "p50", "{:.0f}"),
             ("json api p99 ms", JSON_API, "p99", "{:.0f}"),
             ("json api p50 ms", JSON_API, "p50", "{:.0f}"),
             ("all requests p99 ms", "Aggregated", "p99", "{:.0f}")]
    for label, name, key, fmt in lines:
        print(f"{label:<30} {_spread(series('project', name, key), fmt):>26} "
              f"{_spread(series('baseline', name, key), fmt):>26}")
    for label, name in ((f"{FACET_PAGE}, in server", FACET_PAGE), ("json api, in server", JSON_API)):
        for key in ("p50", "p99"):
            vals = {k: [p[k]["server"][name][key] for p in runs if k in p and name in p[k]["server"]]
                    for k in ("project", "baseline")}
            print(f"{label + ' ' + key + ' ms':<30} {_spread(vals['project'], '{:.0f}'):>26} "
                  f"{_spread(vals['baseline'], '{:.0f}'):>26}")
    for label, key in (("server CPU ms/request", "server_cpu_s"), ("load generator CPU ms/request", "client_cpu_s")):
        vals = {k: [p[k][key] * 1000 / max(1, p[k]["rows"]["Aggregated"]["requests"]) for p in runs if k in p]
                for k in ("project", "baseline")}
        print(f"{label:<30} {_spread(vals['project']):>26} {_spread(vals['baseline']):>26}")
    ratios = [p["project"]["rows"]["Aggregated"]["rps"] / p["baseline"]["rows"]["Aggregated"]["rps"]
              for p in runs if p.get("baseline", {}).get("rows", {}).get("Aggregated", {}).get("rps")]
    print("\n-- targets (issue): >= 1.5x the baseline's throughput; p99 < 300 ms for the table page with "
          "facets, < 100 ms for the JSON API; 0 errors --")
    print(f"throughput ratio per run (project / baseline of the same pair): "
          f"{', '.join(f'x{r:.2f}' for r in ratios)}; median {_spread(ratios, 'x{:.2f}')}")
    print(f"{FACET_PAGE} p99: {_spread(series('project', FACET_PAGE, 'p99'), '{:.0f}')} ms; "
          f"JSON API p99: {_spread(series('project', JSON_API, 'p99'), '{:.0f}')} ms; "
          f"errors: {sum(series('project', 'Aggregated', 'errors')):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000, help="requests per site (default 20000)")
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users (default 16)")
    parser.add_argument("--max-seconds", type=int, default=300, help="time cap per site (default 300)")
    parser.add_argument("--mix", choices=["distinct", "repeat"], default="distinct",
                        help="distinct: nearly every URL new (default); repeat: a small fixed set of URLs")
    parser.add_argument("--runs", type=int, default=3,
                        help="site load: pairs of runs, project and baseline alternated (default 3)")
    parser.add_argument("--server-cpus", default=None, metavar="LIST",
                        help="pin the servers to these CPUs (taskset -c LIST), e.g. 0")
    parser.add_argument("--client-cpus", default=None, metavar="LIST",
                        help="pin the load generator to these CPUs (taskset -c LIST), e.g. 1")
    parser.add_argument("--setting", nargs=2, action="append", metavar=("NAME", "VALUE"),
                        help="a Datasette setting for the project's site (serve --setting), e.g. num_sql_threads 1")
    parser.add_argument("--workers", type=int, default=1,
                        help="serve our site with `serve --workers N` (default 1: one Datasette process)")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-hostile", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cad-bench-"))
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"bench: our site with --workers {args.workers}; {args.users} users, {args.requests} requests, "
          f"{args.runs} run(s), mix {args.mix}; {os.cpu_count()} CPUs, load average {load_avg}")
    try:
        if not args.skip_pipeline:
            show_pipeline(pipeline(work))
        if not args.skip_load:
            show_site(site(work, args))
        if not args.skip_hostile:
            if not (work / "site").exists():
                proj = scratch_project(work / "site", with_outputs=True)
                subprocess.run([CLI, "--root", str(proj), "build", "--silent"], check=True)
            show_hostile(hostile(work, args.workers))
    finally:
        print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.keep:
            print(f"\nscratch folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
