"""The ASGI factory of ``canada-asylum-data serve --workers N``: each uvicorn worker
process builds the site's Datasette from the ``datasette serve`` arguments that site.py's
:func:`~canada_asylum_data.site.serve_command` rendered and the serve command passed in
:data:`~canada_asylum_data.site.SERVE_ARGS_ENV` (a JSON list). The arguments are parsed
by Datasette's own ``serve`` command, so a worker's site is built exactly as
``datasette serve`` builds it; startup hooks run when the worker starts (Datasette's
first-request wrapper sees uvicorn's lifespan event first).

    CANADA_ASYLUM_DATA_SERVE_ARGS='["-i", "build/canada_asylum.db", ...]' \\
        python -m uvicorn canada_asylum_data.asgi:app --factory --workers 2
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .errors import CadError
from .site import SERVE_ARGS_ENV

#: uvicorn stops its supervisor, rather than restart the worker, when a worker exits with
#: this status (uvicorn.config.STARTUP_FAILURE): a site that cannot be built would fail
#: the same way on every restart.
STARTUP_FAILURE = 3
_HELD: list[int] = []  # the generation lock of this worker, open for as long as it runs


def _connected(sock) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def set_nodelay_on_listeners() -> int:
    """TCP_NODELAY on the listening TCP socket(s) this process inherited; returns how many.

    uvicorn's multi-process mode creates its listening socket with protocol number 0, and
    asyncio sets TCP_NODELAY only on connections accepted from a socket whose protocol
    is IPPROTO_TCP. Without it a keep-alive response waits for the client's delayed
    acknowledgement (Nagle's algorithm): ~40 ms added to every request, measured with
    two workers (one process, where uvicorn lets asyncio create the socket, answered in
    2 ms). Linux copies TCP_NODELAY from a listening socket to the connections it
    accepts, so setting it on the inherited listener once is enough."""
    import socket

    done = 0
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # not Linux: nothing to do
        return 0
    for fd in fds:
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:  # not a socket (or already closed)
            continue
        try:
            # the listener uvicorn bound and passed on (it calls listen() after the app
            # is loaded): a TCP socket that is bound and has no peer
            if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM \
                    and sock.getsockname()[1] and not _connected(sock):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                done += 1
        except OSError:
            pass
        finally:
            sock.close()
    return done


def serve_args(environ=None) -> list[str]:
    """The ``datasette serve`` arguments in :data:`SERVE_ARGS_ENV`."""
    raw = (os.environ if environ is None else environ).get(SERVE_ARGS_ENV)
    hint = "start the site with `canada-asylum-data serve --workers N`, which sets it"
    if not raw:
        raise CadError(f"{SERVE_ARGS_ENV} is not set", "canada_asylum_data.asgi:app", hint)
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise CadError(f"{SERVE_ARGS_ENV} is not JSON ({exc})", "canada_asylum_data.asgi:app", hint) from exc
    if not (isinstance(args, list) and args and all(isinstance(a, str) for a in args)):
        raise CadError(f"{SERVE_ARGS_ENV} is not a list of datasette serve arguments",
                       "canada_asylum_data.asgi:app", hint)
    return args


def build(args: list[str]):
    """The Datasette instance ``datasette serve <args>`` would serve (not started)."""
    from datasette.cli import serve

    try:
        with serve.make_context("serve", list(args)) as ctx:
            ctx.params["return_instance"] = True
            return ctx.invoke(serve.callback, **ctx.params)
    except CadError:
        raise
    except Exception as exc:  # Click's usage errors and Datasette's start-up errors
        message = exc.format_message() if hasattr(exc, "format_message") else f"{type(exc).__name__}: {exc}"
        raise CadError(f"cannot build the site ({message})", SERVE_ARGS_ENV,
                       "check the arguments (`canada-asylum-data serve --dry-run --workers N` prints them)") from exc


def app():
    """uvicorn's factory (``canada_asylum_data.asgi:app --factory``): the site's ASGI app.
    A missing or invalid :data:`SERVE_ARGS_ENV` ends the worker with an ``Error:`` line
    and uvicorn's start-up failure status, which stops the server. A worker of uvicorn's
    supervisor is killed when the supervisor dies (even by SIGKILL), so no worker goes on
    serving, and holding the port, without it."""
    import multiprocessing

    from .runs import kill_when_parent_dies
    from .serve import hold_generation

    supervisor = multiprocessing.parent_process()
    if supervisor is not None:  # a worker of uvicorn's supervisor: never outlive it
        kill_when_parent_dies(supervisor.pid)
    try:
        args = serve_args()
        ds = build(args)
    except CadError as exc:
        print(f"Error: {exc.message}", file=sys.stderr, flush=True)
        raise SystemExit(STARTUP_FAILURE) from None
    set_nodelay_on_listeners()
    for db in ds.immutables or ():
        fd = hold_generation(Path(db))
        if fd is not None:
            _HELD.append(fd)
    return ds.app()
