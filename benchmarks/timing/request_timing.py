"""Benchmark-only Datasette plugin: logs each request's time inside the server.

Loaded by benchmarks/bench.py into both servers it measures (our site through the scratch
project's plugins/, the baseline through --plugins-dir); never part of the published site.
For every HTTP request it appends one line to the file named by BENCH_TIMING_LOG:

    <request name>\t<status>\t<milliseconds from the first ASGI call to the last body byte>

The request name is the X-Bench-Name header the locustfile sends (the path when absent).
Comparing these server-side times with what locust observes shows how much of a request's
latency is spent outside the server (load generator, sockets, the machine's other work).
"""

from __future__ import annotations

import os
import time

from datasette import hookimpl

_LOG = os.environ.get("BENCH_TIMING_LOG")
_FH = open(_LOG, "a", buffering=1, encoding="utf-8") if _LOG else None


@hookimpl
def asgi_wrapper(datasette):
    def wrap(app):
        if _FH is None:
            return app

        async def timed(scope, receive, send):
            if scope.get("type") != "http":
                await app(scope, receive, send)
                return
            t0 = time.perf_counter()
            name = dict(scope.get("headers") or []).get(b"x-bench-name", b"").decode() or scope.get("path", "")
            state = {"status": 0}

            async def timed_send(message):
                if message["type"] == "http.response.start":
                    state["status"] = message["status"]
                await send(message)
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    _FH.write(f"{name}\t{state['status']}\t{(time.perf_counter() - t0) * 1000:.2f}\n")

            await app(scope, receive, timed_send)

        return timed

    return wrap
