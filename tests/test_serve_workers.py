"""`serve --workers N`: the same site (same description, same pages) answered by N uvicorn
worker processes on one port; the pinned generation held while any of them runs; nothing
left running once the server is stopped."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time
from pathlib import Path

import httpx
import pytest

from canada_asylum_data import asgi
from canada_asylum_data.errors import CadError
from canada_asylum_data.site import SERVE_ARGS_ENV

from .conftest import run, start_serve, stop_serve

#: Home, a table page with its declared facets, the JSON API, a CSV, a canned query, the
#: charts page, the versions page, a page the site hides, a static file and a miss.
PAGES = [
    "/",
    "/canada_asylum/cbsa_ircc_claimants",
    "/canada_asylum/cbsa_ircc_claimants?_facet=year&year=2023",
    "/canada_asylum/provinces.json?_shape=array",
    "/canada_asylum/cbsa_ircc_claimants.json?_size=5",
    "/canada_asylum/provinces.csv",
    "/canada_asylum/country_claims_by_year?country=HTI",
    "/canada_asylum/country_claims_by_year.json?country=HTI&_shape=array",
    "/-/dashboards/journalist",
    "/-/versions",
    "/-/versions.json",
    "/-/plugins",
    "/robots.txt",
    "/datapackage/datapackage.json",
    "/no/such/page",
]
#: JSON keys that time a request (differ between any two answers).
TIMED = {"query_ms"}


def session_pids(sid: int) -> dict[int, int]:
    """pid -> parent pid of every live process in session ``sid``."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out[int(stat.parent.name)] = int(fields[1])
    return out


def flock_holders(path: Path) -> set[int]:
    """PIDs holding a flock on ``path`` (/proc/locks names the inode)."""
    st = path.stat()
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "FLOCK" in parts and inode in parts:
            holders.add(int(parts[parts.index("FLOCK") + 3]))
    return holders


def body(response: httpx.Response):
    """The answer with the server's own address (absolute links) written as HOST, and no
    timings."""
    host = f"{response.url.host}:{response.url.port}".encode()
    content = response.content.replace(host, b"HOST")
    if "json" in response.headers.get("content-type", ""):
        data = json.loads(content)
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in TIMED}
        return data
    return content


@pytest.fixture(scope="module")
def workers_site(served_site):
    """The same project served a second time, by `serve --workers 2`. Yields (base URL,
    process, log path)."""
    _, root = served_site
    proc, base, log = start_serve(root, "--workers", "2", log_name="serve-workers.log")
    try:
        yield base, proc, log
    finally:
        if proc.poll() is None:
            stop_serve(proc)


def test_workers_serve_the_same_pages(served_site, workers_site):
    single, _ = served_site
    multi, proc, log = workers_site
    with httpx.Client(timeout=60) as client:
        for path in PAGES:
            one, many = client.get(single + path), client.get(multi + path)
            assert one.status_code == many.status_code, path
            assert one.headers.get("content-type") == many.headers.get("content-type"), path
            assert body(one) == body(many), path
        # the pages are real pages (a site that failed the same way twice would also agree)
        assert client.get(multi + "/").status_code == 200
        assert client.get(multi + "/-/dashboards/journalist").status_code == 200
        assert client.get(multi + "/canada_asylum/provinces.json?_shape=array").json()[0]["code"]
        assert client.get(multi + "/-/plugins").status_code == 404  # hidden, as on one process
        # startup hooks ran in the workers: the templates' own filters and links render
        home = client.get(multi + "/").text
        assert 'href="/canada_asylum/' in home
    started = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
    assert len(started) == 2, log.read_text()[-3000:]
    children = {pid for pid, parent in session_pids(proc.pid).items() if parent == proc.pid}
    assert {int(p) for p in started} <= children


def test_every_worker_holds_the_served_generation(served_site, workers_site):
    """The generation stays pinned while any server process runs: the supervisor that
    replaced `serve` and each worker hold the shared lock a later `serve` probes before it
    deletes a generation."""
    _, root = served_site
    _, proc, log = workers_site
    workers = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())}
    folders = [p for p in (root / "build" / "serving").iterdir() if p.is_dir()]
    assert len(folders) == 1  # both servers serve the one generation
    holders = flock_holders(folders[0] / ".in-use")
    assert proc.pid in holders and workers <= holders, (holders, workers)
    # the workers read the pinned copy, not build/canada_asylum.db
    environ = dict(e.split("=", 1) for e in Path(f"/proc/{proc.pid}/environ").read_text().split("\0") if "=" in e)
    args = json.loads(environ[SERVE_ARGS_ENV])
    assert args[args.index("-i") + 1] == str(folders[0] / "canada_asylum.db")


def test_stopping_the_server_stops_every_worker(workers_site):
    """SIGTERM to the one process `serve` became ends the workers too (run last in this
    module: it stops the server)."""
    _, proc, _ = workers_site
    assert len(session_pids(proc.pid)) >= 3  # supervisor and two workers
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    deadline = time.time() + 20
    while session_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert session_pids(proc.pid) == {}


def test_no_worker_outlives_a_killed_server(served_site):
    """SIGKILL to the server (no chance to stop its workers): the workers die with it."""
    _, root = served_site
    proc, base, log = start_serve(root, "--workers", "2", log_name="serve-killed.log")
    try:
        assert httpx.get(base + "/canada_asylum/provinces.json?_shape=array", timeout=30).status_code == 200
        workers = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())}
        assert len(workers) == 2 and workers <= set(session_pids(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.time() + 20
        while session_pids(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert session_pids(proc.pid) == {}
    finally:
        stop_serve(proc)


def test_dry_run_prints_the_workers_command(served_site):
    """The workers get exactly the arguments `serve --dry-run` shows for one process."""
    _, root = served_site
    one = run(root, "serve", "--dry-run", "--silent", "--port", "8123", "--setting", "base_url", "/asylum/")
    many = run(root, "serve", "--dry-run", "--silent", "--port", "8123", "--setting", "base_url", "/asylum/",
               "--workers", "3")
    assert one.exit_code == 0 and many.exit_code == 0, (one.output, many.output)
    single = shlex.split(one.output.strip())
    assert single[1:4] == ["-m", "datasette", "serve"]
    words = shlex.split(many.output.strip())
    assert many.output.startswith(f"{SERVE_ARGS_ENV}='[")
    name, value = words[0].split("=", 1)
    assert name == SERVE_ARGS_ENV and json.loads(value) == single[4:]
    assert words[2:] == ["-m", "uvicorn", "canada_asylum_data.asgi:app", "--factory", "--workers", "3",
                         "--lifespan", "on", "--host", "127.0.0.1", "--port", "8123"]
    assert words[1] == single[0]  # the same Python


@pytest.mark.parametrize("workers", ["0", "33", "-2"])
def test_out_of_range_workers_is_an_error(served_site, workers):
    _, root = served_site
    result = run(root, "serve", "--dry-run", "--silent", "--workers", workers)
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: --workers {workers} is out of range, serve --workers, "
                                    "use a number from 1 to 32"), result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("value, what", [(None, "is not set"), ("", "is not set"),
                                         ("[oops", "is not JSON"), ('{"-i": "x"}', "is not a list"),
                                         ("[]", "is not a list"), ("[1, 2]", "is not a list")])
def test_the_factory_needs_its_arguments(value, what):
    environ = {} if value is None else {SERVE_ARGS_ENV: value}
    with pytest.raises(CadError, match=f"{SERVE_ARGS_ENV} {what}"):
        asgi.serve_args(environ)


def test_the_start_up_failure_status_is_uvicorns():
    """uvicorn stops its supervisor, instead of restarting the worker forever, on this status."""
    from uvicorn.config import STARTUP_FAILURE

    assert asgi.STARTUP_FAILURE == STARTUP_FAILURE


def test_the_factory_ends_the_worker_with_an_error_line(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv(SERVE_ARGS_ENV, raising=False)
    with pytest.raises(SystemExit) as exit_:
        asgi.app()
    assert exit_.value.code == asgi.STARTUP_FAILURE
    assert capsys.readouterr().err.startswith(f"Error: {SERVE_ARGS_ENV} is not set, ")
    monkeypatch.setenv(SERVE_ARGS_ENV, json.dumps(["-i", str(tmp_path / "missing.db")]))
    with pytest.raises(SystemExit):
        asgi.app()
    err = capsys.readouterr().err
    assert err.startswith("Error: cannot build the site (") and "missing.db" in err, err


def _nodelay_child(sockets, peer, out):
    import socket

    out.put((asgi.set_nodelay_on_listeners(),
             sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
             peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))


def test_a_worker_sets_tcp_nodelay_on_the_listener_uvicorn_passes_it():
    """uvicorn's multi-process mode binds its socket (protocol 0, so asyncio never sets
    TCP_NODELAY on accepted connections and each keep-alive response waited ~40 ms for a
    delayed ACK) and passes it to spawned workers, which listen after loading the app.
    The factory sets TCP_NODELAY on it; connections accepted from it inherit the option;
    connected sockets the worker holds are left alone."""
    import multiprocessing
    import socket

    import uvicorn

    listener = uvicorn.Config(app="x:y", host="127.0.0.1", port=0).bind_socket()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    peer = socket.create_connection(server.getsockname())  # a connected socket: not touched
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_nodelay_child, args=([listener], peer, out))
    child.start()
    try:
        found, on_listener, on_peer = out.get(timeout=60)
    finally:
        child.join(timeout=60)
    assert (found, on_listener, on_peer) == (1, 1, 0)
    # the worker's copy is the same socket as the supervisor's; on Linux a connection
    # accepted from it inherits the option
    assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    for s in (client, accepted, peer, server, listener):
        s.close()
