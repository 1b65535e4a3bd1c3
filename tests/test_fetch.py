"""fetch against a local HTTP server on 127.0.0.1 (tests never touch the internet)."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from canada_asylum_data.errors import ChecksumError, SourceError
from canada_asylum_data.fetch import copy_from_mirror, download, raw_path
from canada_asylum_data.pipeline import fetch_all
from canada_asylum_data.sources import Source

BODY = b"year,count\n2017,20593\n" * 50
SHA = hashlib.sha256(BODY).hexdigest()


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def do_GET(self):  # noqa: N802
        n = Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        if self.path == "/ok.csv":
            self._send(200, BODY)
        elif self.path == "/flaky.csv":
            self._send(500, b"oops") if n == 1 else self._send(200, BODY)
        elif self.path == "/missing.csv":
            self._send(404, b"not found")
        elif self.path == "/truncated.csv":
            self._send(200, BODY[:100], {"Content-Length": str(len(BODY))})
        elif self.path == "/changed.csv":  # same size, other bytes
            self._send(200, BODY[:-2] + b"9\n")
        elif self.path == "/slow.csv":
            time.sleep(1.5)
            self._send(200, BODY)
        elif self.path.startswith("/loop"):
            self._send(302, b"", {"Location": "/loop2" if self.path == "/loop" else "/loop"})
        elif self.path == "/error-page.csv":
            self._send(200, b"<html><body>Service unavailable</body></html>",
                       {"Content-Type": "text/html"})
        else:
            self._send(404)


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def src(url, archive=None, sha=SHA, size=len(BODY)):
    return Source(id="test-source", title="t", publisher="p", url=url, parser="none", series="x",
                  licenses=("OGL",), archive_url=archive, mirror_path="t/test.csv", sha256=sha,
                  bytes=size)


def client(timeout=5.0):
    return httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=True, max_redirects=5)


def leftovers(raw: Path) -> list[str]:
    return sorted(p.name for p in raw.iterdir())


def test_download_ok(server, tmp_path):
    got = download(src(f"{server}/ok.csv"), tmp_path, client=client(), backoff=0)
    assert got.how == "download" and got.sha256 == SHA
    assert raw_path(src("x"), tmp_path).read_bytes() == BODY
    assert leftovers(tmp_path) == ["test-source.csv"]


def test_500_then_success_is_retried(server, tmp_path):
    Handler.hits.pop("/flaky.csv", None)
    got = download(src(f"{server}/flaky.csv"), tmp_path, client=client(), backoff=0)
    assert got.how == "download"
    assert Handler.hits["/flaky.csv"] == 2


def test_404_falls_back_to_archive(server, tmp_path):
    got = download(src(f"{server}/missing.csv", archive=f"{server}/ok.csv"), tmp_path,
                   client=client(), backoff=0)
    assert got.how == "archive"


def test_404_without_archive_is_a_clear_error(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/missing.csv"), tmp_path, client=client(), backoff=0)
    assert "could not download source test-source" in err.value.message
    assert "404" in err.value.message
    assert leftovers(tmp_path) == []


def test_truncated_body_leaves_nothing(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/truncated.csv"), tmp_path, client=client(), retries=2, backoff=0)
    assert "test-source" in err.value.message
    assert leftovers(tmp_path) == []


def test_changed_body_is_a_checksum_error(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/changed.csv"), tmp_path, client=client(), backoff=0)
    assert "mismatch for source test-source" in err.value.message
    assert leftovers(tmp_path) == []


def test_html_error_page_with_status_200_is_refused(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/error-page.csv"), tmp_path, client=client(), backoff=0)
    assert "download is an HTML page, not a data file" in err.value.message
    assert leftovers(tmp_path) == []


def test_slow_response_times_out(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/slow.csv"), tmp_path, client=client(timeout=0.3), retries=2, backoff=0)
    assert "Timeout" in err.value.message
    assert leftovers(tmp_path) == []


def test_redirect_loop_is_stopped(server, tmp_path):
    with pytest.raises(SourceError) as err:
        download(src(f"{server}/loop"), tmp_path, client=client(), backoff=0)
    assert "TooManyRedirects" in err.value.message


def test_mirror_copy_and_checksum(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "t").mkdir(parents=True)
    (mirror / "t" / "test.csv").write_bytes(BODY)
    raw = tmp_path / "raw"
    raw.mkdir()
    assert copy_from_mirror(src("x"), mirror, raw).how == "mirror"
    (mirror / "t" / "test.csv").write_bytes(BODY.replace(b"2017", b"2018"))
    (raw / "test-source.csv").unlink()
    with pytest.raises(ChecksumError) as err:
        copy_from_mirror(src("x"), mirror, raw)
    assert f"expected sha256 {SHA}" in err.value.message
    assert leftovers(raw) == []


def test_missing_mirror_file_names_the_source(tmp_path):
    with pytest.raises(SourceError) as err:
        copy_from_mirror(src("x"), tmp_path, tmp_path)
    assert "mirror file missing for source test-source" in err.value.message


def test_fetch_all_from_a_served_mirror_of_real_files(mirror, sources, tmp_path):
    """The download path over real raw files: serve the mirror on 127.0.0.1 and fetch."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mirror)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        chosen = [s for s in sources.values() if s.mirrored][:3]
        local = [Source(**{**s.__dict__, "url": f"{base}/{s.mirror_path}", "archive_url": None})
                 for s in chosen]
        results = fetch_all(local, tmp_path)
        assert [r.how for r in results] == ["download"] * len(local)
        assert all(r.sha256 == s.sha256 for r, s in zip(results, chosen))
        again = fetch_all(local, tmp_path)
        assert [r.how for r in again] == ["cached"] * len(local)
    finally:
        httpd.shutdown()
