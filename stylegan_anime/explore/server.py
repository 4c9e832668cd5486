"""The explorer's HTTP server: the standard library's ThreadingHTTPServer, one static page, a JSON API.

    GET  /                 the page (static/index.html, with this server's session token in it)
    GET  /api/info         the model, its layer groups, directions, latents (JSON)
    GET  /api/image?VIEW   image/png of a view (seed=3&psi=0.7&mix=coarse&mix_seed=5&dirs=0,2 ...)
    POST /api/save         body: a view as a JSON object -> writes explore-NNNN.png/.npz (JSON reply)

Bad settings answer 400 with {"error": "one line", "field": "mix_seed"}; unknown paths 404. Binds 127.0.0.1
unless told otherwise.

Safe on a desktop, where every web site open in the browser can send requests to 127.0.0.1:

- Host check (DNS rebinding: a site whose name resolves to 127.0.0.1 could read /api/info and the images):
  only Host names a browser uses for this machine (127.0.0.1, localhost, [::1]) or the address it was told to
  listen on are answered; others get 403. Any port is accepted: a rebinding attack needs the attacker's name
  in Host, and `ssh -L 9000:127.0.0.1:8000` must keep working. When listening on a non-loopback address
  (--host 0.0.0.0), any IP address is accepted as Host too (a literal address cannot be rebound).
- Cross-site requests (a page elsewhere POSTing text/plain to /api/save): every POST needs a same-origin
  `Origin` header or the session token (`X-Explore-Token`, embedded in the page), and Content-Type
  application/json; an Origin of another site is refused even with the token. /api/* requests a browser
  marks `Sec-Fetch-Site: cross-site` or `same-site` are refused. At most `max_saves` saves per server.
- Robustness: a listen backlog of REQUEST_QUEUE, an idle timeout per connection, request bodies of at most
  MAX_BODY bytes (413) with Content-Length (411 for chunked), JSON nested at most MAX_JSON_DEPTH deep;
  a client that goes away is dropped quietly (no traceback on the console); an unexpected error answers 500
  with one line and prints one line.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .explorer import Explorer
from .view import View

MAX_BODY = 64 * 1024          # bytes of a POST body (a view is well under 1 kB)
MAX_JSON_DEPTH = 20           # nesting of [ and { in a POST body (a view needs 2)
MAX_SAVES = 1000              # saves per server (then 429: restart the explorer)
IDLE_TIMEOUT = 30.0           # seconds a connection may wait for its request (or body) before it is closed
REQUEST_QUEUE = 128           # listen backlog: connections waiting to be accepted
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_HEADER = "X-Explore-Token"
TOKEN_PLACEHOLDER = b"__EXPLORE_TOKEN__"
CLIENT_GONE = (ConnectionError, TimeoutError)  # BrokenPipe, ConnectionReset/Aborted, socket timeout


def page() -> bytes:
    return resources.files(__package__).joinpath("static/index.html").read_bytes()


class Refused(Exception):
    """A request answered with `status` and a one-line JSON error."""

    def __init__(self, status: int, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.field = status, field


def split_host(host: str) -> tuple[str, str]:
    """'127.0.0.1:8000' -> ('127.0.0.1', '8000'); '[::1]:80' -> ('[::1]', '80'); 'localhost' -> ('localhost', '')."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else rest
    name, colon, port = host.rpartition(":")
    return (name, port) if colon else (host, "")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name[1:-1] if name.startswith("[") and name.endswith("]") else name)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def json_depth(text: str) -> int:
    """How deeply [ and { nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


class ExplorerServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = REQUEST_QUEUE

    def __init__(self, address: tuple[str, int], explorer: Explorer, outdir: str | Path, *,
                 max_saves: int = MAX_SAVES, idle_timeout: float = IDLE_TIMEOUT):
        self.explorer = explorer
        self.outdir = Path(outdir)
        self.max_saves = int(max_saves)
        self.idle_timeout = float(idle_timeout)
        self.token = secrets.token_urlsafe(24)
        self.page = page().replace(TOKEN_PLACEHOLDER, self.token.encode())
        self.saves = 0
        self.dropped = 0  # connections closed because the client went away or idled
        self._count_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)
        bound = address[0].strip().lower()
        bound = f"[{bound}]" if ":" in bound and not bound.startswith("[") else bound
        self.host_names = set(LOOPBACK_NAMES) | ({bound} if bound and not _is_wildcard(bound) else set())
        self.any_ip_host = not _is_loopback(bound)  # told to listen beyond this machine: IP addresses too

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def allowed_host(self, host: str | None) -> bool:
        if not host:
            return False
        name, _ = split_host(host)
        return name in self.host_names or (self.any_ip_host and _is_ip_literal(name))

    def count_dropped(self) -> None:
        with self._count_lock:
            self.dropped += 1

    def take_save(self) -> None:
        """Count one save against max_saves (Refused 429 when they are used up)."""
        with self._count_lock:
            if self.saves >= self.max_saves:
                raise Refused(429, f"this explorer has saved {self.max_saves} images; restart it to save more")
            self.saves += 1

    def refund_save(self) -> None:
        with self._count_lock:
            self.saves -= 1

    def handle_error(self, request, client_address) -> None:
        """A client that went away is not news; anything else: one line, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, CLIENT_GONE):
            self.count_dropped()
            return
        print(f"explore: error answering {client_address[0]}: {type(error).__name__}: {error}", file=sys.stderr)


def _is_wildcard(host: str) -> bool:
    return host in ("", "0.0.0.0", "[::]", "::")


class Handler(BaseHTTPRequestHandler):
    server: ExplorerServer
    server_version = "stylegan-anime-explore"

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout  # StreamRequestHandler.setup: socket timeout per connection
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except CLIENT_GONE:
            self.close_connection = True
            self.server.count_dropped()

    def log_message(self, format, *args):  # noqa: A002 - quiet: the terminal shows the URL, not every request
        pass

    # ------------------------------------------------------------------ answering
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")  # no clickjacking of the save button from a frame
        if content_type.startswith("text/html"):
            self.send_header("Content-Security-Policy", "frame-ancestors 'none'")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str, field: str = "") -> None:
        line = next((s.strip() for s in (message or "").splitlines() if s.strip()), "error")
        self._json(status, {"error": line, **({"field": field} if field else {})})

    def _serve(self, route) -> None:
        try:
            self._check_host_and_site()
            route(urlsplit(self.path))
        except CLIENT_GONE:
            raise
        except Refused as e:
            self._error(e.status, str(e), e.field)
        except ValueError as e:  # a bad view (ViewError names its field), a failed write (WriteError)
            self._error(400, str(e), getattr(e, "field", ""))
        except Exception as e:  # noqa: BLE001 - a bug must still answer (one line), and say so once
            self.close_connection = True
            self.server.handle_error(self.request, self.client_address)
            self._error(500, f"internal error: {type(e).__name__}: {e}")

    def _check_host_and_site(self) -> None:
        if not self.server.allowed_host(self.headers.get("Host")):
            self.close_connection = True
            raise Refused(403, "unknown Host: open the explorer as " + self.server.url)
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        if urlsplit(self.path).path.startswith("/api/") and site in ("cross-site", "same-site"):
            raise Refused(403, "requests from other web sites are refused")

    def _check_post_origin(self) -> None:
        """A same-origin Origin, or the session token when the client sends no Origin."""
        origin = self.headers.get("Origin")
        if origin is not None:
            if origin.strip().lower() != "http://" + (self.headers.get("Host") or "").strip().lower():
                raise Refused(403, "requests from other web sites are refused")
            return
        token = self.headers.get(TOKEN_HEADER) or ""
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            raise Refused(403, f"a POST needs the page's {TOKEN_HEADER} header (or a same-origin Origin)")

    def _read_json_body(self) -> dict:
        self.close_connection = True  # whatever happens, one request per connection (the body may be unread)
        if self.headers.get("Transfer-Encoding"):
            raise Refused(411, "chunked request bodies are not supported: send a Content-Length")
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise Refused(411, "a POST needs a Content-Length")
        try:
            length = int(length_header)
        except ValueError:
            raise Refused(400, f"bad Content-Length {length_header[:20]!r}") from None
        if length < 0:
            raise Refused(400, f"bad Content-Length {length_header[:20]!r}")
        if length > MAX_BODY:
            raise Refused(413, f"request body must be at most {MAX_BODY} bytes, got {length}")
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise Refused(415, "a POST body must be JSON (Content-Type: application/json)")
        raw = self.rfile.read(length)
        if len(raw) < length:
            raise ConnectionAbortedError("the client sent less than its Content-Length")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "body is not UTF-8") from None
        if json_depth(body) > MAX_JSON_DEPTH:
            raise Refused(400, f"body is nested more than {MAX_JSON_DEPTH} levels deep")
        try:
            obj = json.loads(body)
        except (json.JSONDecodeError, RecursionError) as e:
            raise Refused(400, f"body is not valid JSON: {e}") from None
        if not isinstance(obj, dict):
            raise Refused(400, "body must be a JSON object of view settings")
        return obj

    # ------------------------------------------------------------------ routes
    def do_GET(self):  # noqa: N802 - http.server's naming
        self._serve(self._get)

    def do_POST(self):  # noqa: N802
        self._serve(self._post)

    def _get(self, url) -> None:
        if url.path in ("/", "/index.html"):
            return self._send(200, self.server.page, "text/html; charset=utf-8")
        if url.path == "/api/info":
            return self._json(200, self.server.explorer.info())
        if url.path == "/api/image":
            view = self.server.explorer.check(View.from_query(parse_qs(url.query, keep_blank_values=True)))
            return self._send(200, self.server.explorer.png(view), "image/png")
        raise Refused(404, f"no such page: {url.path[:100]}")

    def _post(self, url) -> None:
        if url.path != "/api/save":
            self.close_connection = True
            raise Refused(404, f"no such page: {url.path[:100]}")
        self._check_post_origin()
        query = self._read_json_body()
        query = {k: ",".join(map(str, v)) if k == "dirs" and isinstance(v, list) else v for k, v in query.items()}
        view = self.server.explorer.check(View.from_query(query))
        self.server.take_save()
        try:
            saved = self.server.explorer.save(view, self.server.outdir)
        except BaseException:
            self.server.refund_save()
            raise
        self._json(200, saved)


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000,
                outdir: str | Path = "explore", *, max_saves: int = MAX_SAVES,
                idle_timeout: float = IDLE_TIMEOUT) -> ExplorerServer:
    """Bound and listening (port 0: a free port; see .url). OSError when the port is taken."""
    return ExplorerServer((host, port), explorer, outdir, max_saves=max_saves, idle_timeout=idle_timeout)


__all__ = ["ExplorerServer", "make_server", "page"]
