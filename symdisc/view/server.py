"""`symdisc ui`: every run's page, served on 127.0.0.1 by the standard library's http.server.

Why the standard library: the server answers one user on one machine (a page, its JSON, a list of
runs), so a threading http.server does the job with no new dependency, nothing to install and
nothing listening beyond loopback. Each request opens the run database read-only for its own thread
(SQLite in WAL mode lets it read while `symdisc evolve` writes); a running run's page fetches
/api/run/ID every few seconds and redraws when candidates arrive.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

from symdisc.errors import SymdiscError
from symdisc.store import Store

HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 30  # a client that stops sending is dropped after this long


class _Handler(BaseHTTPRequestHandler):
    server_version = "symdisc-ui"
    timeout = REQUEST_TIMEOUT_S
    db_path: Path = None  # set on the subclass made by make_server
    quiet = True

    def log_message(self, format, *args):  # noqa: A002 (http.server's name)
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: str, kind: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        from symdisc.view.html import index_page, page
        from symdisc.view.report import data_json, run_data

        path = unquote(urlparse(self.path).path)
        try:
            store = Store(self.db_path, create=False)
        except SymdiscError as exc:
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), "text/plain; charset=utf-8")
        try:
            if path in ("/", "/index.html"):
                return self._send(HTTPStatus.OK, index_page(store.list_runs(500)), "text/html; charset=utf-8")
            if path == "/api/runs":
                return self._send(HTTPStatus.OK, json.dumps(store.list_runs(500), default=str), "application/json")
            for prefix, kind in (("/run/", "page"), ("/api/run/", "json")):
                if path.startswith(prefix) and len(path) > len(prefix):
                    run_id = store.resolve_run_id(path[len(prefix):].strip("/"))
                    data = run_data(store, run_id)
                    if kind == "json":
                        return self._send(HTTPStatus.OK, data_json(data), "application/json")
                    return self._send(HTTPStatus.OK, page(data, live_url=f"/api/run/{run_id}", home_url="/"),
                                      "text/html; charset=utf-8")
            if path == "/favicon.ico":
                return self._send(HTTPStatus.NO_CONTENT, "", "text/plain")
            return self._send(HTTPStatus.NOT_FOUND, f"no page {path}", "text/plain; charset=utf-8")
        except SymdiscError as exc:
            return self._send(HTTPStatus.NOT_FOUND, str(exc), "text/plain; charset=utf-8")
        except (BrokenPipeError, ConnectionResetError):
            return None
        finally:
            store.close()


class UIServer(ThreadingHTTPServer):
    daemon_threads = True  # a slow client never holds up shutdown
    allow_reuse_address = True


def make_server(db_path: Path, port: int = 0, quiet: bool = True) -> UIServer:
    """A server on 127.0.0.1:``port`` (0: a free port; see ``server.server_address``)."""
    handler = type("Handler", (_Handler,), {"db_path": Path(db_path), "quiet": quiet})
    return UIServer((HOST, port), handler)


def serve_in_thread(db_path: Path, port: int = 0) -> tuple[UIServer, threading.Thread]:
    """For tests and embedding: the server running in a background thread; stop with ``stop``."""
    server = make_server(db_path, port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    return server, thread


def stop(server: UIServer, thread: Optional[threading.Thread] = None, timeout_s: float = 5.0) -> None:
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout_s)
