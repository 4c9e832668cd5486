"""C2ST: the classifier two-sample test (chance on one distribution, near 1 on a blurred / collapsed one,
deterministic) and its registration as the `c2st` metric (evaluate, training config, the metrics command)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylegan_anime.cli import main
from stylegan_anime.metrics import ALL_METRICS, METRICS, evaluate
from stylegan_anime.metrics.c2st import C2STConfig, C2STImages, c2st, to_c2st_input
from stylegan_anime.training.config import ConfigError, TrainConfig, validate

QUICK = C2STConfig(epochs=4, holdout=0.5)  # 128 training + 128 held-out images per set below


def blocks(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A synthetic distribution with sharp edges: random 6x6 colour grids (8 px cells), randomly shifted."""
    rng = np.random.default_rng(seed)
    big = rng.integers(0, 256, size=(n, 6, 6, 3)).astype(np.uint8).repeat(8, 1).repeat(8, 2)
    off = rng.integers(0, 48 - size + 1, size=(n, 2))
    return np.stack([big[i, y:y + size, x:x + size] for i, (y, x) in enumerate(off)])


def blur(ims: np.ndarray, sigma: float) -> np.ndarray:
    t = torch.from_numpy(ims).permute(0, 3, 1, 2).float()
    r = int(3 * sigma + 0.5)
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    t = F.conv2d(F.pad(t, (r, r, r, r), mode="reflect"), (k[:, None] * k[None, :]).expand(3, 1, -1, -1), groups=3)
    return t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_two_draws_of_one_distribution_are_at_chance():
    res = c2st(blocks(256, seed=1), blocks(256, seed=2), QUICK)
    assert set(res) == {"c2st", "c2st_loss"}
    assert abs(res["c2st"] - 0.5) <= 0.08      # 256 held-out images: 1 standard error is 0.031
    assert res["c2st_loss"] > 0.6                  # chance is ln 2 = 0.693


def test_blurred_constant_and_collapsed_sets_are_told_apart():
    real, other = blocks(256, seed=1), blocks(256, seed=2)
    constant = np.broadcast_to(other.mean((1, 2), keepdims=True).astype(np.uint8), other.shape).copy()
    collapsed = np.resize(other[:1], other.shape)  # one image, repeated
    for name, fake in (("blurred", blur(other, 1.0)), ("constant", constant), ("collapsed", collapsed)):
        res = c2st(real, fake, QUICK)
        assert res["c2st"] >= 0.9 and res["c2st_loss"] < 0.3, (name, res)


def test_deterministic_for_a_seed_and_leaves_the_global_rng_alone():
    real, fake = blocks(96, seed=1), blur(blocks(96, seed=2), 0.6)
    state = torch.get_rng_state()
    first = c2st(real, fake, C2STConfig(epochs=2))
    assert torch.equal(state, torch.get_rng_state())
    with torch.no_grad():                     # as evaluations during training call it
        assert c2st(real, fake, C2STConfig(epochs=2)) == first
    with torch.inference_mode():
        assert c2st(real, fake, C2STConfig(epochs=2)) == first
    assert c2st(real, fake, C2STConfig(epochs=2, seed=1))["c2st_loss"] != first["c2st_loss"]


def test_inputs_are_downscaled_and_checked():
    big = blocks(4, size=40)
    assert to_c2st_input(big, size=32).shape == (4, 32, 32, 3)
    assert to_c2st_input(big, size=64) is big or np.array_equal(to_c2st_input(big, size=64), big)
    flat = np.full((3, 40, 40, 3), 77, np.uint8)
    assert (to_c2st_input(flat, size=20) == 77).all()   # a resampling that keeps constants constant
    with pytest.raises(ValueError, match="uint8"):
        c2st(big.astype(np.float32), big)
    with pytest.raises(ValueError, match="at least 2 images"):
        c2st(big[:1], big)
    with pytest.raises(ValueError, match="px"):
        c2st(blocks(4, size=32), blocks(4, size=24))


def test_image_store_does_not_depend_on_batching_or_order():
    ims = blocks(10, size=40)
    one = C2STImages(32)
    one.add(ims)
    parts = C2STImages(32)
    parts.add(ims[6:], start=6)
    other = C2STImages(32)
    other.add(ims[:2])
    other.add(ims[2:6])  # default start: after the previous batch
    parts.extend(other.batches())
    assert parts.count == 10 and np.array_equal(parts.array(), one.array())
    with pytest.raises(ValueError, match="added twice"):
        parts.add(ims[:1], start=6)


def _dataset(images):
    return SimpleNamespace(images=images, meta={"fingerprint": "c2st-test"})


def _gen(images):
    pos = [0]

    def gen(n):
        pos[0] += n
        return images[pos[0] - n:pos[0]]

    return gen


def test_evaluate_scores_c2st_against_the_datasets_reals(tmp_path):
    assert "c2st" in METRICS and "c2st" in ALL_METRICS and METRICS["c2st"].requires == ""
    reals = blocks(160, seed=1)
    kw = dict(num_gen=80, progress=False, cache_dir=tmp_path, batch_size=32)
    same = evaluate(["c2st"], _gen(blocks(80, seed=2)), _dataset(reals), **kw)
    blurred = evaluate(["c2st"], _gen(blur(blocks(80, seed=2), 1.0)), _dataset(reals), **kw)
    assert set(same) == {"c2st", "c2st_loss"}
    assert blurred["c2st"] >= 0.9 and blurred["c2st"] > same["c2st"] + 0.2
    assert blurred["c2st_loss"] < same["c2st_loss"]
    # evaluate() pairs the generated images with the first reals of the fixed real permutation, seed 0
    idx = np.random.default_rng(0).permutation(160)[:80]
    direct = c2st(reals[idx], blur(blocks(80, seed=2), 1.0), C2STConfig(seed=0))
    assert blurred == pytest.approx(direct)


def test_trainer_config_accepts_c2st():
    validate(TrainConfig(data="demo:8", model="dcgan", metrics="swd,c2st"))
    with pytest.raises(ConfigError, match="unknown c2s"):
        validate(TrainConfig(data="demo:8", model="dcgan", metrics="c2s"))


def test_metrics_command_reports_c2st_for_a_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "gen"
    folder.mkdir()
    for i in range(24):
        Image.fromarray(np.full((32, 32, 3), 40 + 5 * i, np.uint8)).save(folder / f"{i + 1}.png")  # flat squares
    with pytest.raises(SystemExit) as e:
        main(["metrics", "--images", str(folder), "--data", "demo:48", "--metrics", "c2st", "--json",
              "--device", "cpu"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    values = json.loads(out.out)
    assert set(values) == {"c2st", "c2st_loss"} and values["c2st"] >= 0.9


class _ThreadGroup:
    """Two ranks as two threads of one process: gather / broadcast through shared slots and a barrier."""

    def __init__(self, shared, rank):
        self.shared, self.rank, self.world = shared, rank, 2

    def _exchange(self, obj, keep):
        s = self.shared
        if keep:
            s["slots"][self.rank] = obj
        s["barrier"].wait()
        out = list(s["slots"])
        s["barrier"].wait()
        return out

    def gather(self, obj):
        out = self._exchange(obj, True)
        return out if self.rank == 0 else None

    def broadcast(self, obj):
        return self._exchange(obj, self.rank == 0)[0]


def test_generated_images_shared_out_between_ranks_give_one_process_values(tmp_path):
    import threading

    reals, fake = blocks(96, seed=1), blur(blocks(40, seed=2), 0.7)
    kw = dict(num_gen=40, progress=False, cache_dir=tmp_path, batch_size=8)
    one = evaluate(["c2st"], _gen(fake), _dataset(reals), **kw)
    shared = {"slots": [None, None], "barrier": threading.Barrier(2, timeout=60)}
    calls, results = [[], []], [None, None]

    def rank(r):
        def generate(n, start):
            calls[r].append(start)
            return fake[start:start + n]
        results[r] = evaluate(["c2st"], generate, _dataset(reals), group=_ThreadGroup(shared, r), **kw)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [[0, 16, 32], [8, 24]]        # batches of 8 dealt out in turn
    assert results[0] == results[1] == one


def _calibration_tool():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "calibrate_c2st.py"
    spec = importlib.util.spec_from_file_location("calibrate_c2st", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_calibration_degradations_and_table(tmp_path, capsys, monkeypatch):
    tool = _calibration_tool()
    ims = blocks(6, size=32, seed=3)
    assert np.array_equal(tool.collapse(ims, 2), np.concatenate([ims[:2]] * 3))
    gained = tool.channel_gain(np.full((1, 4, 4, 3), 100, np.uint8), 0.1)
    assert gained[0, 0, 0].tolist() == [110, 100, 90]
    assert np.abs(tool.gaussian_blur(ims, 1.0).astype(int) - ims).mean() > 1    # sharp edges get blurred
    flat = np.full((2, 16, 16, 3), 90, np.uint8)
    assert (tool.gaussian_blur(flat, 2.0) == 90).all()
    assert tool.ordered([{"c2st": 0.6, "c2st_loss": 0.6}, {"c2st": 0.7, "c2st_loss": 0.9},   # loss may rise
                         {"c2st": 1.0, "c2st_loss": 0.01}, {"c2st": 1.0, "c2st_loss": 0.001}])  # ties: loss
    assert not tool.ordered([{"c2st": 0.9, "c2st_loss": 0.2}, {"c2st": 0.6, "c2st_loss": 0.6}])
    assert not tool.ordered([{"c2st": 1.0, "c2st_loss": 0.01}, {"c2st": 1.0, "c2st_loss": 0.02}])

    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    assert tool.main(["--data", "demo:12", "--size", "32", "--num", "6", "--families", "collapse", "--no-swd",
                      "--json", str(tmp_path / "rows.json")]) == 0
    out = capsys.readouterr().out
    assert "| real vs real |" in out and out.count("| collapse |") == 3 and "collapse: C2ST ranks" in out
    assert len(json.loads((tmp_path / "rows.json").read_text())) == 4
    assert tool.main(["--data", "demo:12", "--families", "blurr"]) == 2
    assert capsys.readouterr().err.startswith("error: --families: unknown blurr")
