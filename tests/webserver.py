"""A scripted HTTP server on 127.0.0.1 for fetch and refresh tests (tests never touch the
internet). ``routes`` maps a path to a response; every request is counted in ``hits``."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    headers: dict = field(default_factory=dict)
    trickle: float | None = None  # seconds between single bytes, forever (a stalled server)
    no_length: bool = False  # no Content-Length: the body ends when the connection closes


class Server:
    def __init__(self):
        self.routes: dict[str, Reply] = {}
        self.hits: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                reply = outer.routes.get(self.path, Reply(b"not found", 404))
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if reply.trickle is not None:
                        self.send_header("Content-Type", "text/html")
                        self.end_headers()
                        while True:  # until the client gives up
                            self.wfile.write(b"<")
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    if not reply.no_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
