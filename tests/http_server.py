"""A real HTTP server on 127.0.0.1 for tests: routes map a path to a function that answers the request.

    with serve({"/cats.png": send_bytes(png, "image/png")}) as server:
        load_image(server.url("/cats.png"))

Each route gets the BaseHTTPRequestHandler and answers it (status, headers, body). A route
may block on `server.release` (a threading.Event) to play a server that stalls; closing the
server sets it, so no request thread outlives the test.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


class Server:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                server.requests.append((self.command, self.path))
                path = self.path.split("?", 1)[0]
                route = server.routes.get(path) or server.routes.get("*")
                if route is None:
                    self.send_error(404, "no such route")
                    return
                route(self)

            do_GET = do_HEAD = _answer

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.release = self.release  # routes reach it as handler.server.release
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.http.shutdown()
        self.http.server_close()


@contextlib.contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Server]:
    server = Server(routes)
    server.thread.start()
    try:
        yield server
    finally:
        server.close()


def send_bytes(body: bytes, content_type: str = "application/octet-stream", status: int = 200) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    return route


def redirect(location: str, status: int = 302) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return route


def stall(handler: BaseHTTPRequestHandler) -> None:
    """A route that accepts the request, then says nothing until the test ends."""
    handler.server.release.wait(30)
