"""`stylegan-anime explore`: View parsing, View -> ws -> image (against the W-space tools it is built from),
the HTTP API on a free port, and the command's one-line errors. A tiny StyleGAN2 and DCGAN are trained once."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan_anime.explore import Explorer, View, make_server
from stylegan_anime.explore.server import page
from stylegan_anime.generate import Sampler
from stylegan_anime.editing.directions import edit_ws, find_directions
from stylegan_anime.editing.latents import layer_groups, load_latent, save_latent, seed_ws
from conftest import run_cli


@pytest.fixture(scope="module")
def sampler(tiny_runs):
    return Sampler(tiny_runs["sg2"], device="cpu")


@pytest.fixture(scope="module")
def dirs(sampler):
    return find_directions(sampler.G, k=3)


@pytest.fixture(scope="module")
def latent_file(sampler, tmp_path_factory):
    path = tmp_path_factory.mktemp("latent") / "me.npz"
    ws = seed_ws(sampler, [7]) + 0.3 * torch.randn(1, sampler.G.num_ws, sampler.G.w_dim,
                                                 generator=torch.Generator().manual_seed(0))
    save_latent(path, ws[0])
    return path


@pytest.fixture(scope="module")
def explorer(sampler, dirs, latent_file):
    return Explorer(sampler, dirs, {"me": load_latent(latent_file, sampler.G)}, checkpoint="tiny")


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


# ------------------------------------------------------------------------------------------ View
def test_view_from_query_reads_every_setting_and_round_trips():
    q = {"seed": ["12"], "psi": ["0.5"], "mix_seed": ["3"], "mix": ["Coarse"], "noise": ["random"],
         "noise_seed": ["9"], "tags": [" pink hair "], "latent": ["me"], "dirs": ["1.5,,-2"]}
    v = View.from_query(q)
    assert v == View(seed=12, psi=0.5, mix_seed=3, mix="coarse", noise="random", noise_seed=9, tags="pink hair",
                     latent="me", dirs=(1.5, 0.0, -2.0))
    assert View.from_query(parse_qs(v.to_query(), keep_blank_values=True)) == v
    assert View.from_query({}) == View()
    assert v.amounts() == [(0, 1.5), (2, -2.0)]


@pytest.mark.parametrize("query, match", [
    ({"seed": "-1"}, "seed must be between"), ({"seed": "1.5"}, "seed must be a whole number"),
    ({"psi": "3"}, "psi must be between"), ({"psi": "nan"}, "psi must be between"), ({"psi": "x"}, "psi must be a number"),
    ({"mix": "all"}, "mix must be one of"), ({"noise": "loud"}, "noise must be one of"),
    ({"dirs": "1,a"}, "dirs must be a number"), ({"dirs": "50"}, "dirs must be between"),
    ({"sede": "1"}, "unknown setting 'sede'"),
])
def test_view_errors_are_one_line(query, match):
    with pytest.raises(ValueError, match=match) as e:
        View.from_query(query)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ Explorer
def test_same_view_same_bytes_even_from_a_fresh_explorer(explorer, sampler, dirs):
    view = View(seed=5, psi=0.8, mix="fine", mix_seed=2, dirs=(1.0, -0.5))
    a = explorer.png(view)
    assert explorer.png(view) == a
    assert Explorer(sampler, dirs).png(view) == a
    assert explorer.png(View(seed=6, psi=0.8, mix="fine", mix_seed=2, dirs=(1.0, -0.5))) != a


def test_seed_and_truncation_follow_the_mapping_network(explorer, sampler):
    """psi 1: the seed's own ws; psi 0: every seed collapses onto w_avg (one image)."""
    assert torch.equal(explorer.ws(View(seed=4, psi=1.0)), seed_ws(sampler, [4], 1.0).cpu())
    assert explorer.png(View(seed=1, psi=0.0)) == explorer.png(View(seed=2, psi=0.0))
    assert explorer.png(View(seed=1, psi=1.0)) != explorer.png(View(seed=2, psi=1.0))


@pytest.mark.parametrize("group", ["coarse", "middle", "fine"])
def test_style_mixing_takes_exactly_the_group_layers(explorer, sampler, group):
    base, other = seed_ws(sampler, [4], 0.7).cpu(), seed_ws(sampler, [9], 0.7).cpu()
    ws = explorer.ws(View(seed=4, psi=0.7, mix=group, mix_seed=9))
    rows = layer_groups(sampler.G)[group]
    assert rows
    for i in range(sampler.G.num_ws):
        assert torch.equal(ws[0, i], (other if i in rows else base)[0, i]), (group, i)
    assert explorer.png(View(seed=4, mix=group, mix_seed=4)) == explorer.png(View(seed=4))


def test_direction_amounts_are_edits_along_the_loaded_directions(explorer, sampler, dirs):
    view = View(seed=3, psi=0.7, dirs=(2.0, 0.0, -1.0))
    expected = edit_ws(edit_ws(seed_ws(sampler, [3], 0.7).cpu(), dirs, 0, 2.0), dirs, 2, -1.0)
    assert torch.allclose(explorer.ws(view), expected, atol=1e-6)
    assert explorer.png(view) != explorer.png(View(seed=3, psi=0.7))
    assert explorer.png(View(seed=3, psi=0.7, dirs=(0.0, 0.0, 0.0))) == explorer.png(View(seed=3, psi=0.7))
    with pytest.raises(ValueError, match="3 directions are loaded"):
        explorer.ws(View(dirs=(0, 0, 0, 1)))
    with pytest.raises(ValueError, match="explore --directions"):
        Explorer(sampler).ws(View(dirs=(1,)))


def test_latent_view_is_the_loaded_latent_truncated(explorer, sampler, latent_file):
    ws = load_latent(latent_file, sampler.G)
    assert torch.equal(explorer.ws(View(latent="me", psi=1.0, seed=99)), ws)
    w_avg = sampler.G.mapping.w_avg.float()
    assert torch.allclose(explorer.ws(View(latent="me", psi=0.5)), w_avg + 0.5 * (ws - w_avg), atol=1e-6)
    with pytest.raises(ValueError, match="unknown latent 'you'; loaded: me"):
        explorer.ws(View(latent="you"))


def test_noise_modes(explorer):
    const = explorer.png(View(seed=2))
    r1 = explorer.png(View(seed=2, noise="random", noise_seed=1))
    explorer._cache.clear()  # a second render, not the cached bytes
    r1_again = explorer.png(View(seed=2, noise="random", noise_seed=1))
    assert r1 == r1_again
    assert explorer.png(View(seed=2, noise="random", noise_seed=2)) != r1
    assert explorer.png(View(seed=2, noise="none")) != const != r1


def test_tags_need_a_conditional_model(explorer):
    with pytest.raises(ValueError, match="conditional"):
        explorer.check(View(tags="pink hair"))


def test_tags_of_a_conditional_stylegan2(tiny_runs):
    """The tags are the mapping network's condition: they change w (and the image); no tags = the seed's own."""
    from stylegan_anime.reports.tags import tags_to_labels

    s = Sampler(tiny_runs["cond"], device="cpu")
    ex = Explorer(s)
    pink = ex.ws(View(seed=1, tags="pink hair, blue eyes"))
    assert torch.equal(pink, seed_ws(s, [1], 0.7, tags_to_labels("pink hair, blue eyes", s.config.label_names)).cpu())
    assert not torch.equal(pink, ex.ws(View(seed=1, tags="black hair, red eyes")))
    assert torch.equal(ex.ws(View(seed=1)), seed_ws(s, [1], 0.7).cpu())
    assert ex.info()["conditional"] and set(ex.info()["label_names"]) == {"hair", "eye"}
    with pytest.raises(ValueError, match="unknown tag 'purple nose'"):
        ex.ws(View(tags="purple nose"))


def test_save_writes_png_and_latent_without_overwriting(explorer, tmp_path):
    view = View(seed=8, mix="coarse", mix_seed=1, dirs=(1.5,))
    first, second = explorer.save(view, tmp_path / "out"), explorer.save(view, tmp_path / "out")
    assert first["png"] != second["png"] and first["npz"] != second["npz"]
    assert Path(first["png"]).read_bytes() == explorer.png(view)
    assert torch.equal(load_latent(first["npz"], explorer.G), explorer.ws(view))
    with np.load(first["npz"]) as f:
        assert View.from_query(parse_qs(str(f["view"]), keep_blank_values=True)) == view


def test_explorer_refuses_a_baseline(tiny_runs):
    with pytest.raises(ValueError, match="StyleGAN2"):
        Explorer(Sampler(tiny_runs["dcgan"], device="cpu"))


# ------------------------------------------------------------------------------------------ the page
def test_page_uses_only_existing_elements_and_routes():
    html = page().decode()
    ids = set(re.findall(r'id="([^"]+)"', html))
    used = set(re.findall(r'\$\("([^"]+)"\)', html))
    assert used and used <= ids, used - ids
    for name in re.findall(r'\$\("([^"]+)"\)\.value', html):  # every value the page sends is a View setting
        if name not in ("source", "tags"):
            field = {"class": "class_index"}.get(name, name)  # the query key `class` is View.class_index
            assert field in View.__dataclass_fields__, name
    assert set(re.findall(r'"(/api/\w+)', html)) == {"/api/info", "/api/image", "/api/save"}


# ------------------------------------------------------------------------------------------ HTTP API
@pytest.fixture(scope="module")
def server(explorer, tmp_path_factory):
    srv = make_server(explorer, "127.0.0.1", 0, tmp_path_factory.mktemp("saves"))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(url: str, data: bytes | None = None, headers: dict | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_http_page_info_and_image(server, explorer, sampler):
    status, ctype, body = _get(server.url)
    assert status == 200 and ctype.startswith("text/html") and b"/api/image" in body
    status, ctype, body = _get(server.url + "api/info")
    info = json.loads(body)
    assert status == 200 and ctype == "application/json"
    assert info["resolution"] == sampler.G.img_resolution and info["num_ws"] == sampler.G.num_ws
    assert [d["index"] for d in info["directions"]] == [0, 1, 2] and info["latents"] == ["me"]
    assert info["groups"] == layer_groups(sampler.G) and info["model"] == "stylegan2"
    status, ctype, body = _get(server.url + "api/image?seed=4&psi=0.6&mix=middle&mix_seed=2&dirs=0,1")
    assert status == 200 and ctype == "image/png"
    assert body == explorer.png(View(seed=4, psi=0.6, mix="middle", mix_seed=2, dirs=(0.0, 1.0)))
    assert _pixels(body).shape == (sampler.G.img_resolution, sampler.G.img_resolution, 3)


@pytest.mark.parametrize("path, status, match", [
    ("api/image?psi=9", 400, "psi must be between"), ("api/image?latent=nobody", 400, "unknown latent"),
    ("api/image?dirs=1,1,1,1", 400, "directions are loaded"), ("api/nothing", 404, "no such page"),
])
def test_http_errors_are_one_line_json(server, path, status, match):
    code, ctype, body = _get(server.url + path)
    assert code == status and ctype == "application/json"
    message = json.loads(body)["error"]
    assert match in message and "\n" not in message


def _page_headers(srv) -> dict:
    """What the page sends with a save: JSON and the token it finds in its own HTML."""
    token = re.search(r'name="explore-token" content="([^"]+)"', _get(srv.url)[2].decode()).group(1)
    return {"Content-Type": "application/json", "X-Explore-Token": token}


def test_http_save(server, explorer):
    headers = _page_headers(server)
    code, _, body = _get(server.url + "api/save", json.dumps({"seed": 6, "dirs": [0, -1.5]}).encode(), headers)
    saved = json.loads(body)
    assert code == 200 and Path(saved["png"]).parent == server.outdir
    assert Path(saved["png"]).read_bytes() == explorer.png(View(seed=6, dirs=(0.0, -1.5)))
    code, _, body = _get(server.url + "api/save", b"{not json", headers)
    assert code == 400 and "not valid JSON" in json.loads(body)["error"]
    code, _, body = _get(server.url + "api/save", b'{"seed": "abc"}', headers)
    assert code == 400 and "whole number" in json.loads(body)["error"]


# ------------------------------------------------------------------------------------------ the command
def test_command_errors_are_one_line(tiny_runs, tmp_path, capsys):
    code, _, err = run_cli(["explore", "--checkpoint", str(tiny_runs["dcgan"])], capsys)
    assert code == 2 and "needs a StyleGAN2 checkpoint" in err and "Traceback" not in err
    code, _, err = run_cli(["explore", "--checkpoint", str(tiny_runs["sg2"]), "--directions", str(tmp_path / "no.npz")],
                           capsys)
    assert code == 2 and "directions file does not exist" in err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = run_cli(["explore", "--checkpoint", str(tiny_runs["sg2"]), "--port", str(port)], capsys)
    assert code == 2 and f"port {port} on 127.0.0.1 is in use" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process")
def test_command_serves_until_ctrl_c(tiny_runs, latent_file, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "stylegan_anime.cli", "explore", "--checkpoint", str(tiny_runs["sg2"]),
                             "--latent", str(latent_file), "--port", "0", "--outdir", str(tmp_path / "saves"),
                             "--max-saves", "1"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://\S+/", line)
        assert url, line
        status, _, body = _get(url.group(0) + "api/info")
        assert status == 200 and json.loads(body)["latents"] == ["me"]
        assert _get(url.group(0) + "api/image?latent=me")[0] == 200
        token = re.search(r'explore-token" content="([^"]+)"', _get(url.group(0))[2].decode()).group(1)
        headers = {"Content-Type": "application/json", "X-Explore-Token": token}
        assert [_get(url.group(0) + "api/save", b'{"latent": "me"}', headers)[0] for _ in range(2)] == [200, 429]
        assert _files(tmp_path / "saves") == ["explore-0000.npz", "explore-0000.png"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in rest and "Traceback" not in rest


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_explorer_on_cuda_matches_the_cpu(tiny_runs, explorer):
    """The same view on the GPU: the same picture up to float rounding (TF32 off for the comparison)."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    gpu = Explorer(Sampler(tiny_runs["sg2"], device="cuda"), explorer.directions,
                   {k: v for k, v in explorer.latents.items()})
    for view in (View(seed=3, psi=0.7, mix="coarse", mix_seed=4, dirs=(1.0,)), View(latent="me", psi=1.0)):
        assert np.abs(_pixels(gpu.png(view)) - _pixels(explorer.png(view))).mean() < 1.0


# ------------------------------------------------------------------------------------------ safe on a desktop
# Any web site open in the user's browser can send requests to 127.0.0.1: it must not read the API (DNS
# rebinding), write files (a cross-site POST), or knock the server over (bursts, early disconnects, odd bodies).
@pytest.fixture()
def fresh_server(explorer, tmp_path):
    """A server of its own (not serving yet: call start()); stopped after the test."""
    servers = []

    def make(start: bool = True, **kw):
        srv = make_server(explorer, "127.0.0.1", 0, tmp_path / "saves", **kw)
        servers.append(srv)
        def serve():
            srv.serving = True
            threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

        srv.serving, srv.start = False, serve
        if start:
            srv.start()
        return srv

    yield make
    for srv in servers:
        if srv.serving:
            srv.shutdown()  # (blocks forever on a server that never served)
        srv.server_close()


def _request(srv, method: str, path: str, body: bytes = b"", headers: dict | None = None, host: str | None = None):
    """(status, parsed JSON or raw bytes) with exactly these headers (http.client adds no Content-Type)."""
    import http.client

    port = srv.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        if host != "":
            conn.putheader("Host", host or f"127.0.0.1:{port}")
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in (headers or {})):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        r = conn.getresponse()
        data = r.read()
        return r.status, (json.loads(data) if r.getheader("Content-Type") == "application/json" else data)
    finally:
        conn.close()


def _wait_for_handlers(timeout: float = 10.0) -> None:
    """Until no request-handling thread is left (their errors, if any, are printed by then)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any("process_request" in t.name for t in threading.enumerate()):
        time.sleep(0.05)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.evil.example:{port}", ""])
def test_a_foreign_host_name_cannot_read_the_api(server, host):
    """DNS rebinding: a page at http://evil.example:PORT whose name now resolves to 127.0.0.1."""
    port = server.server_address[1]
    for path in ("/api/info", "/api/image?seed=1", "/"):
        status, body = _request(server, "GET", path, host=host.format(port=port))
        assert status == 403, (host, path)
        assert "unknown Host" in body["error"] and "tiny" not in json.dumps(body)  # no checkpoint path


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}",
                                  "localhost:9000"])  # 9000: ssh -L 9000:127.0.0.1:PORT
def test_the_names_of_this_machine_are_answered(server, host):
    status, body = _request(server, "GET", "/api/info", host=host.format(port=server.server_address[1]))
    assert status == 200 and body["checkpoint"] == "tiny"


def test_api_requests_a_browser_marks_cross_site_are_refused(server):
    for site, expected in (("cross-site", 403), ("same-site", 403), ("same-origin", 200), ("none", 200)):
        assert _request(server, "GET", "/api/info", headers={"Sec-Fetch-Site": site})[0] == expected, site
    assert _request(server, "GET", "/", headers={"Sec-Fetch-Site": "cross-site"})[0] == 200  # a link to the page


def test_a_cross_site_post_writes_nothing(fresh_server):
    """The classic: <form method=post enctype=text/plain action=http://127.0.0.1:8000/api/save> on any site."""
    srv = fresh_server()
    port = srv.server_address[1]
    body = b'{"seed": 1, "x": "=1"}'
    for headers in ({"Content-Type": "text/plain", "Origin": "http://evil.example"},
                    {"Content-Type": "application/json", "Origin": "http://evil.example"},
                    {"Content-Type": "application/json", "Origin": f"http://localhost:{port + 1}"},  # another port
                    {"Content-Type": "application/json", "Origin": "null"},
                    {"Content-Type": "application/json"},  # no Origin, no token
                    {"Content-Type": "application/json", "X-Explore-Token": "guess"},
                    {"Content-Type": "application/json", "Origin": "http://evil.example",
                     "X-Explore-Token": srv.token}):  # a token does not excuse another site
        status, reply = _request(srv, "POST", "/api/save", body, headers)
        assert status == 403 and "error" in reply, headers
    assert _files(srv.outdir) == []
    status, reply = _request(srv, "POST", "/api/save", b'{"seed": 1}',
                             {"Content-Type": "text/plain", "Origin": f"http://127.0.0.1:{port}"})
    assert status == 415 and "application/json" in reply["error"]
    assert _files(srv.outdir) == []


def test_the_page_saves_with_its_token_or_its_origin(fresh_server):
    srv = fresh_server()
    port = srv.server_address[1]
    assert srv.token and srv.token.encode() in _request(srv, "GET", "/")[1]
    assert b"__EXPLORE_TOKEN__" not in _request(srv, "GET", "/")[1]
    assert _request(srv, "POST", "/api/save", b'{"seed": 2}', _page_headers(srv))[0] == 200
    assert _request(srv, "POST", "/api/save", b'{"seed": 2}', {"Content-Type": "application/json; charset=utf-8",
                                                              "Origin": f"http://localhost:{port}"},
                    host=f"localhost:{port}")[0] == 200
    assert _files(srv.outdir) == ["explore-0000.npz", "explore-0000.png", "explore-0001.npz", "explore-0001.png"]
    other = fresh_server()
    assert other.token != srv.token  # one per session
    assert _request(other, "POST", "/api/save", b'{"seed": 2}', _page_headers(srv))[0] == 403


def test_saves_per_server_are_bounded(fresh_server):
    srv = fresh_server(max_saves=2)
    headers = _page_headers(srv)
    assert [_request(srv, "POST", "/api/save", b'{"seed": 3}', headers)[0] for _ in range(3)] == [200, 200, 429]
    assert len(_files(srv.outdir)) == 4


def test_save_never_follows_a_planted_symlink(explorer, tmp_path):
    """explore-0000.png planted as a symlink to a file outside --outdir: skipped, not written through."""
    out, outside = tmp_path / "saves", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "explore-0000.png").symlink_to(outside / "victim.png")  # dangling: exists() says False
    (out / "explore-0001.npz").symlink_to(outside / "victim.npz")
    (out / "explore-0002.png").write_bytes(b"the user's own picture")
    saved = explorer.save(View(seed=4), out)
    assert (saved["png"], saved["npz"]) == (str(out / "explore-0003.png"), str(out / "explore-0003.npz"))
    assert _files(outside) == []
    assert (out / "explore-0002.png").read_bytes() == b"the user's own picture"
    assert not (out / "explore-0002.npz").exists() and not any(n.startswith(".") for n in _files(out))


def test_save_moves_on_when_a_name_is_taken_while_it_writes(explorer, tmp_path, monkeypatch):
    """Another program creates explore-0000.npz between the check and the link: the pair moves to 0001, the
    png written for 0000 is taken back, the other program's file is untouched."""
    import stylegan_anime.explore.explorer as explorer_module

    out = tmp_path / "saves"
    real = explorer_module.new_output

    def racing(path, *a, **kw):
        if Path(path).name == "explore-0000.npz":
            Path(path).write_bytes(b"someone else's")
        return real(path, *a, **kw)

    monkeypatch.setattr(explorer_module, "new_output", racing)
    saved = explorer.save(View(seed=4), out)
    assert Path(saved["png"]).name == "explore-0001.png" and Path(saved["npz"]).name == "explore-0001.npz"
    assert _files(out) == ["explore-0000.npz", "explore-0001.npz", "explore-0001.png"]
    assert (out / "explore-0000.npz").read_bytes() == b"someone else's"


def test_a_burst_of_connections_is_answered(fresh_server, capfd):
    """100 connections arrive while the server is busy (not accepting): all wait in the listen queue and get
    an answer (a backlog of 5 left the 7th hanging), then 100 requests in parallel; no traceback."""
    from concurrent.futures import ThreadPoolExecutor

    srv = fresh_server(start=False)
    port = srv.server_address[1]
    socks = []
    try:
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            socks.append(s)
            s.sendall(f"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        srv.start()
        for s in socks:
            s.settimeout(30)
            assert s.recv(64).startswith(b"HTTP/1.0 200")
    finally:
        for s in socks:
            s.close()
    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(lambda k: _request(srv, "GET", f"/api/image?seed={k % 5}")[0], range(100)))
    assert statuses == [200] * 100
    _wait_for_handlers()
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_that_goes_away_early_is_dropped_quietly(fresh_server, capfd):
    srv = fresh_server()
    port = srv.server_address[1]
    for k in range(10):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(f"GET /api/image?seed={100 + k} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = reset
        s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)  # half a body, then gone
    s.sendall(f"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
              f"X-Explore-Token: {srv.token}\r\nContent-Length: 100\r\n\r\n{{\"seed\"".encode())
    s.close()
    _wait_for_handlers()
    assert _request(srv, "GET", "/api/info")[0] == 200  # still serving
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err
    assert _files(srv.outdir) == []


def test_an_idle_connection_is_closed(fresh_server, capfd):
    """A connection that sends nothing (or half a request) must not hold a thread forever."""
    srv = fresh_server(idle_timeout=0.3)
    port = srv.server_address[1]
    for first in (b"", b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(first)
            assert s.recv(1024) == b""  # closed by the server (a socket.timeout here: it waited 10 s)
    _wait_for_handlers()
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("body, status, match", [
    (b'{"seed": ' + b"[" * 30000 + b"]" * 30000 + b"}", 400, "nested more than"),  # a RecursionError in json
    (b'{"a": ' * 25 + b"1" + b"}" * 25, 400, "nested more than"),
    (b'{"seed": []}', 400, "seed has no value"),
    (b'{"seed": {"x": 1}}', 400, "seed must be a whole number"),
    (b'{"psi": "[[[[["}', 400, "psi must be a number"),  # brackets in a string are not nesting
    (b"[1, 2]", 400, "JSON object"),
    (b"\xff\xfe", 400, "UTF-8"),
])
def test_odd_json_bodies_get_one_line_answers(fresh_server, body, status, match):
    srv = fresh_server()
    code, reply = _request(srv, "POST", "/api/save", body, _page_headers(srv))
    assert code == status and match in reply["error"] and len(reply["error"]) < 300
    assert _files(srv.outdir) == []


def test_chunked_and_oversized_bodies_are_refused(fresh_server):
    srv = fresh_server()
    headers = _page_headers(srv)
    chunked = b'b\r\n{"seed": 5}\r\n0\r\n\r\n'
    status, reply = _request(srv, "POST", "/api/save", chunked, {**headers, "Transfer-Encoding": "chunked"})
    assert status == 411 and "Content-Length" in reply["error"]
    status, reply = _request(srv, "POST", "/api/save", b"", headers)  # no Content-Length at all
    assert status == 411
    status, reply = _request(srv, "POST", "/api/save", b"", {**headers, "Content-Length": "100000"})
    assert status == 413 and "at most 65536 bytes" in reply["error"]
    status, reply = _request(srv, "POST", "/api/save", b"", {**headers, "Content-Length": "-5"})
    assert status == 400
    assert _files(srv.outdir) == []


def test_an_unexpected_error_answers_500_in_one_line(server, explorer, monkeypatch, capfd):
    def broken():
        raise RuntimeError("a bug\nsecond line")

    monkeypatch.setattr(explorer, "info", broken)
    status, reply = _request(server, "GET", "/api/info")
    assert status == 500 and reply == {"error": "internal error: RuntimeError: a bug"}
    _wait_for_handlers()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "RuntimeError: a bug" in err


def test_errors_name_the_setting(server):
    status, reply = _request(server, "GET", "/api/image?mix=coarse&mix_seed=-1")
    assert status == 400 and reply["field"] == "mix_seed" and reply["error"].startswith("mix_seed must be")
    assert _request(server, "GET", "/api/image?latent=nobody")[1]["field"] == "latent"


# ------------------------------------------------------------------------------------------ the page's script
_FAKE_DOM = r"""
const els = {};
const el = (id) => els[id] || (els[id] = { id, value: "", textContent: "", className: "", hidden: false,
  disabled: false, src: "", add() {}, appendChild() {}, addEventListener() {}, nextElementSibling: {},
  classList: { set: new Set(), add(c) { this.set.add(c); }, remove(c) { this.set.delete(c); } } });
globalThis.document = { getElementById: el, querySelector: () => ({ content: "TOKEN" }), querySelectorAll: () => [],
  createElement: () => el("new") };
globalThis.history = { replaceState() {} };
globalThis.location = { hash: "" };
let reply = null;  // null: no server (fetch rejects, as a browser's "TypeError: Failed to fetch")
globalThis.fetch = async () => { if (!reply) throw new TypeError("Failed to fetch"); return reply; };
const sleep = () => new Promise((r) => setTimeout(r, 20));
(async () => {
  const page = new Function(SCRIPT + "\nreturn { refresh, SERVER_GONE };")();
  await sleep();
  const out = { startup: els.status.textContent, gone: page.SERVER_GONE };
  reply = { ok: false, status: 400, statusText: "Bad Request",
            json: async () => ({ error: "mix_seed must be between 0 and 2147483647, got -1", field: "mix_seed" }) };
  await page.refresh();
  out.error = els.status.textContent;
  out.dimmed = els.image.classList.set.has("stale");
  reply = { ok: true, status: 200, blob: async () => new Blob(["png"]) };
  await page.refresh();
  out.after = els.status.textContent;
  out.dimmed_after = els.image.classList.set.has("stale");
  reply = null;
  await page.refresh();
  out.stopped = els.status.textContent;
  console.log(JSON.stringify(out));
})();
"""


@pytest.mark.skipif(not shutil.which("node"), reason="needs node to run the page's script")
def test_page_script_errors_speak_the_users_language(tmp_path):
    """The page's own JavaScript on a fake DOM (node): a stopped server is named as such, not "TypeError: Failed
    to fetch"; an error about mix_seed names the box the user sees ("seed 2") and dims the old image."""
    html = page().decode()
    script = html[html.index("<script>") + len("<script>"):html.index("</script>")]
    (tmp_path / "run.js").write_text(f"const SCRIPT = {json.dumps(script)};\n{_FAKE_DOM}")
    proc = subprocess.run(["node", str(tmp_path / "run.js")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["startup"] == out["gone"] == "the explorer server is not running (stopped?)"
    assert out["error"] == "seed 2 must be between 0 and 2147483647, got -1" and out["dimmed"]
    assert out["after"].startswith("rendered in") and not out["dimmed_after"]
    assert out["stopped"] == out["gone"]


def test_page_labels_match_the_controls_and_disabled_controls_look_disabled():
    """Every View setting has the label the user sees (the page's LABELS), equal to the control's <label>."""
    import html as html_lib

    text = page().decode()
    labels = json.loads(re.sub(r"(\w+):", r'"\1":', re.search(r"const LABELS = (\{.*?\});", text, re.S).group(1)
                               .replace(",\n}", "\n}")))
    assert set(labels) >= set(View.__dataclass_fields__)
    assert labels["mix_seed"] == "seed 2"
    for name, label in labels.items():
        control = {"latent": "source"}.get(name, name)
        shown = re.search(rf'<label for="{control}">(.*?)</label>', text)
        if shown:
            assert html_lib.unescape(shown.group(1)) == label, name
    assert re.search(r"button:disabled[^{]*\{[^}]*opacity", text)


# ------------------------------------------------------------------------------------------ the screenshot tool
def test_screenshot_tool_never_overwrites_by_default(tmp_path):
    """tools/explorer_screenshot.py used to write docs/explore/explorer.jpg (tracked) unless told otherwise."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "explorer_screenshot.py"
    mine = tmp_path / "mine.jpg"
    mine.write_bytes(b"the user's picture")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(tool), "--checkpoint", "unused", "--out", str(mine)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {mine} already exists; not overwriting it (--overwrite to replace it)"]
    assert mine.read_bytes() == b"the user's picture"
    proc = subprocess.run([sys.executable, str(tool), "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "--overwrite" in proc.stdout
    default = re.search(r"--out\b.*?\[default: (\S+?)\]", proc.stdout, re.S).group(1)
    assert not default.startswith("docs") and Path(default).parent == Path(".")


# ------------------------------------------------------------------------------------------ any model size
def _untrained_sampler(size: int) -> Sampler:
    """A Sampler of an untrained, very narrow StyleGAN2 at `size` px (no checkpoint: explore only needs G)."""
    from stylegan_anime.training.config import TrainConfig
    from stylegan_anime.training.trainer import build_recipe

    cfg = TrainConfig(data="demo", size=size, model="stylegan2",
                      model_cfg=dict(channel_base=2 * size, channel_max=4, z_dim=8, w_dim=8, num_fp16_res=0))
    s = Sampler.__new__(Sampler)
    s.device, s.config, s.kimg = torch.device("cpu"), cfg, 0.0
    s.recipe = build_recipe(cfg, s.device)
    s.G = s.recipe.nets["G"].eval().requires_grad_(False)
    return s


@pytest.mark.parametrize("size", [32, 512])
def test_explore_works_at_any_size(size, tmp_path):
    """Nothing assumes 64 or 128 px: info, images, mixing and saves at 32 and 512 px (1024 is the same code, slower).
    A 32 px model has no fine (>= 64 px) style layers: mixing them is an error naming the setting, not a no-op."""
    srv = make_server(Explorer(_untrained_sampler(size)), "127.0.0.1", 0, tmp_path / "saves")
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        status, info = _request(srv, "GET", "/api/info")
        assert status == 200 and info["resolution"] == size
        status, png = _request(srv, "GET", "/api/image?seed=1&mix=coarse&mix_seed=2")
        assert status == 200 and _pixels(png).shape == (size, size, 3)
        status, reply = _request(srv, "GET", "/api/image?seed=1&mix=fine&mix_seed=2")
        if size == 32:
            assert status == 400 and reply["field"] == "mix" and "32 px model has no fine style layers" in reply["error"]
        else:
            assert status == 200 and _pixels(reply).shape == (size, size, 3)
        status, saved = _request(srv, "POST", "/api/save", b'{"seed": 1, "mix": "middle"}', _page_headers(srv))
        assert status == 200 and Image.open(saved["png"]).size == (size, size)
    finally:
        srv.shutdown()
        srv.server_close()


def test_listening_on_ipv6_loopback(explorer, tmp_path):
    """--host ::1 (an IPv6-only desktop): served at http://[::1]:PORT/, Host [::1]:PORT answered."""
    import http.client

    try:
        srv = make_server(explorer, "::1", 0, tmp_path)
    except OSError as e:
        if "Address family" in str(e) or "assign requested address" in str(e):
            pytest.skip(f"no IPv6 loopback here: {e}")
        raise
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        port = srv.server_address[1]
        assert srv.url == f"http://[::1]:{port}/"
        conn = http.client.HTTPConnection("::1", port, timeout=30)
        conn.request("GET", "/api/info")  # Host: [::1]:PORT
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["checkpoint"] == "tiny"
        conn.close()
    finally:
        srv.shutdown()
        srv.server_close()
