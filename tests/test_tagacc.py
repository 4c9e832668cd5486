"""Tag accuracy: the judge learns the real tags, a generator drawing the asked-for colours scores high and
one ignoring them scores near chance; the classifier is cached; training and the CLI report it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stylegan_anime.metrics.tagacc import evaluate_tags, train_classifier

HAIR = np.random.default_rng(0).integers(0, 256, (12, 3))
EYE = np.random.default_rng(1).integers(0, 256, (10, 3))
NAMES = {"hair": [f"h{i}" for i in range(12)], "eye": [f"e{i}" for i in range(10)]}


def draw(labels: np.ndarray, rng) -> np.ndarray:
    """Top half the hair colour, a bottom band the eye colour, plus noise: [N,64,64,3] uint8."""
    img = np.zeros((len(labels), 64, 64, 3), dtype=np.float32)
    img[:, :32] = HAIR[labels[:, 0]][:, None, None]
    img[:, 40:56] = EYE[labels[:, 1]][:, None, None]
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


class Labelled:
    def __init__(self, n=720):
        rng = np.random.default_rng(2)
        self.labels = np.stack([rng.integers(0, 12, n), rng.integers(0, 10, n)], 1)
        self.images = draw(self.labels, rng)
        self.label_names = NAMES
        self.meta = {"fingerprint": f"synthetic-{n}"}

    def __len__(self):
        return len(self.images)


def test_judge_scores_faithful_and_ignoring_generators(tmp_path):
    torch.manual_seed(0)
    data = Labelled()
    rng = np.random.default_rng(5)
    faithful = evaluate_tags(lambda c: draw(c.numpy(), rng), data, n=256, cache_dir=tmp_path)
    assert faithful["tagacc/real"] > 0.9 and faithful["tagacc"] > 0.9
    assert set(faithful) == {"tagacc", "tagacc/hair", "tagacc/eye", "tagacc/real"}
    ignoring = evaluate_tags(lambda c: draw(np.stack([rng.integers(0, 12, len(c)), rng.integers(0, 10, len(c))], 1),
                                            rng), data, n=256, cache_dir=tmp_path)
    assert ignoring["tagacc"] < 0.3
    cached = list((tmp_path / "metrics").glob("tagclf-*.pt"))
    assert len(cached) == 1
    with pytest.MonkeyPatch.context() as mp:  # the second judge comes from the cache: no optimiser step
        mp.setattr(torch.optim.Adam, "step", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
        train_classifier(data, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="labelled"):
        train_classifier(type("U", (), {"labels": None, "label_names": None, "images": data.images})())


def test_tagacc_during_training_and_from_the_cli(tmp_path, capsys, monkeypatch):
    from stylegan_anime.cli import main
    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    common = ["--data", "demo:48", "--batch", "8", "--kimg", "0.016", "--no-progress", "--device", "cpu",
              "--metrics", "tagacc", "--metrics-num", "32", "--outdir", str(tmp_path / "runs")]
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "cgan", "--dim", "4"] + common)
    err = capsys.readouterr().err
    assert e.value.code == 0, err
    row = json.loads((tmp_path / "runs" / "00000-cgan-demo-64" / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= row["tagacc"] <= 1 and "tagacc/hair" in row and "tagacc/real" in row
    with pytest.raises(SystemExit) as e:
        main(["train", "--model", "dcgan", "--dim", "4"] + common)
    assert e.value.code == 0 and "skipping tagacc" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["metrics", "--checkpoint", str(tmp_path / "runs" / "00000-cgan-demo-64"), "--data", "demo:48",
              "--metrics", "tagacc", "--num", "16", "--json", "--device", "cpu"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    assert 0 <= json.loads(out.out)["tagacc"] <= 1
