"""The explorer's HTTP server: the standard library's ThreadingHTTPServer, one static page, a JSON API.

    GET  /                 the page (static/index.html)
    GET  /api/info         the model, its layer groups, directions, latents (JSON)
    GET  /api/image?VIEW   image/png of a view (seed=3&psi=0.7&mix=coarse&mix_seed=5&dirs=0,2 ...)
    POST /api/save         body: a view as JSON or a query string -> writes explore-NNNN.png/.npz (JSON reply)

Bad settings answer 400 with {"error": "one line"}; unknown paths 404. Binds 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .explorer import Explorer
from .view import View

MAX_BODY = 64 * 1024


def page() -> bytes:
    return resources.files(__package__).joinpath("static/index.html").read_bytes()


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], explorer: Explorer, outdir: str | Path):
        self.explorer = explorer
        self.outdir = Path(outdir)
        self.page = page()
        super().__init__(address, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "stylegan-anime-explore"

    def log_message(self, format, *args):  # noqa: A002 - quiet: the terminal shows the URL, not every request
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message.splitlines()[0] if message else "error"})

    def do_GET(self):  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        if url.path in ("/", "/index.html"):
            return self._send(200, self.server.page, "text/html; charset=utf-8")
        if url.path == "/api/info":
            return self._json(200, self.server.explorer.info())
        if url.path == "/api/image":
            try:
                view = self.server.explorer.check(View.from_query(parse_qs(url.query, keep_blank_values=True)))
                data = self.server.explorer.png(view)
            except ValueError as e:
                return self._error(400, str(e))
            return self._send(200, data, "image/png")
        self._error(404, f"no such page: {url.path}")

    def do_POST(self):  # noqa: N802
        url = urlsplit(self.path)
        if url.path != "/api/save":
            return self._error(404, f"no such page: {url.path}")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= MAX_BODY:
                raise ValueError(f"request body must be at most {MAX_BODY} bytes")
            body = self.rfile.read(length).decode("utf-8", "replace").strip()
            if body.startswith("{"):
                try:
                    query = json.loads(body)
                except json.JSONDecodeError as e:
                    raise ValueError(f"body is not valid JSON: {e}") from None
                if not isinstance(query, dict):
                    raise ValueError("body must be a JSON object of view settings")
                query = {k: ",".join(map(str, v)) if k == "dirs" and isinstance(v, list) else v
                         for k, v in query.items()}
            else:
                query = parse_qs(body or url.query, keep_blank_values=True)
            view = self.server.explorer.check(View.from_query(query))
            saved = self.server.explorer.save(view, self.server.outdir)
        except ValueError as e:  # WriteError (read-only folder, full disk) is a ValueError too
            return self._error(400, str(e))
        self._json(200, saved)


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000,
                outdir: str | Path = "explore") -> ExplorerServer:
    """Bound and listening (port 0: a free port; see .url). OSError when the port is taken."""
    return ExplorerServer((host, port), explorer, outdir)


__all__ = ["ExplorerServer", "make_server", "page"]
