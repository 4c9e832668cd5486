"""`stylegan-anime explore`: View parsing, View -> ws -> image (against the W-space tools it is built from),
the HTTP API on a free port, and the command's one-line errors. A tiny StyleGAN2 and DCGAN are trained once."""
from __future__ import annotations

import io
import json
import os
import re
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
from stylegan_anime.tools.directions import edit_ws, find_directions
from stylegan_anime.tools.latents import layer_groups, load_latent, save_latent, seed_ws
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
    from stylegan_anime.tools.tags import tags_to_labels

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
            assert name in View.__dataclass_fields__, name
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


def _get(url: str, data: bytes | None = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
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


def test_http_save(server, explorer):
    code, _, body = _get(server.url + "api/save", json.dumps({"seed": 6, "dirs": [0, -1.5]}).encode())
    saved = json.loads(body)
    assert code == 200 and Path(saved["png"]).parent == server.outdir
    assert Path(saved["png"]).read_bytes() == explorer.png(View(seed=6, dirs=(0.0, -1.5)))
    code, _, body = _get(server.url + "api/save", b"{not json")
    assert code == 400 and "not valid JSON" in json.loads(body)["error"]
    code, _, body = _get(server.url + "api/save", b"seed=abc")
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
                             "--latent", str(latent_file), "--port", "0", "--outdir", str(tmp_path / "saves")],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://\S+/", line)
        assert url, line
        status, _, body = _get(url.group(0) + "api/info")
        assert status == 200 and json.loads(body)["latents"] == ["me"]
        assert _get(url.group(0) + "api/image?latent=me")[0] == 200
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
