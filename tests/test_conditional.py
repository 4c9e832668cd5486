"""Tag-conditional baselines (cgan, acgan) and the tag plumbing: parsing, label files, packs, encodings, grids.

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from conftest import ListDataset, random_dataset
from stylegan_anime.baselines.acgan import ACGAN, class_loss, masked_ce
from stylegan_anime.baselines.cgan import CGAN, generator_parameter_count
from stylegan_anime.baselines.conditioning import LabelEncoder, mismatched_labels
from stylegan_anime.data import DataError, open_dataset, prepare_dataset
from stylegan_anime.data.demo import EYE_COLORS, EYE_RGB, HAIR_COLORS, HAIR_RGB
from stylegan_anime.data.labels import load_labels, parse_tags, parse_tags_detailed
from stylegan_anime.models import get_recipe
from stylegan_anime.training.recipe import Batch
from stylegan_anime.training.trainer import Trainer
from test_trainer import make_cfg

CPU = torch.device("cpu")
NAMES = {"hair": list(HAIR_COLORS), "eye": list(EYE_COLORS)}
H, E = HAIR_COLORS.index, EYE_COLORS.index


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make(cls, resolution=64, **overrides):
    torch.manual_seed(0)
    return cls(cls.make_config(**overrides), resolution, CPU, label_names=NAMES)


# --- tag parsing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("blonde hair blue eyes", (H("blonde"), E("blue"))),
    ("blonde hair, blue eyes", (H("blonde"), E("blue"))),
    ("Blue Eyes, BLONDE HAIR", (H("blonde"), E("blue"))),  # order and case
    ("pink_hair black_eyes", (H("pink"), E("black"))),  # danbooru underscores
    ("aqua hair;red eye", (H("aqua"), E("red"))),  # singular 'eye', semicolon
    ("  green hair  ", (H("green"), -1)),
    ("yellow eyes", (-1, E("yellow"))),
    ("gray hair", (H("silver"), -1)),  # the demo's grey hair colour is 'silver'
    ("grey hair, silver hair", (H("silver"), -1)),  # same class twice: no conflict
    ("blond hair", (H("blonde"), -1)),
    (["pink hair", "black eyes"], (H("pink"), E("black"))),
    ("", (-1, -1)),
])
def test_parse_tags(text, expected):
    assert parse_tags(text) == expected


def test_parse_tags_unknown_and_conflicts():
    p = parse_tags_detailed("gray eyes long hair blonde hair")  # no grey among the demo's eye colours
    assert (p.hair, p.eye) == (H("blonde"), -1) and p.unknown == ["gray eyes", "long hair"]
    p = parse_tags_detailed("pink hair, black hair, smile")
    assert (p.hair, p.eye) == (-1, -1) and p.conflicts == ["hair"] and p.unknown == ["smile"]
    assert parse_tags_detailed("hair").unknown == ["hair"]


def test_vocabulary_is_the_demo_one():
    assert len(HAIR_COLORS) == 12 and len(EYE_COLORS) == 10
    assert "silver" in HAIR_COLORS and not {"gray", "grey"} & set(HAIR_COLORS)
    assert not {"silver", "gray", "grey"} & set(EYE_COLORS)


# --- label files ------------------------------------------------------------------------------------------
IMAGES = ["1.jpg", "2.jpg", "sub/3.png", "4.jpg"]


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if mode == "wb":
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("header", ["", "name,tags\n", "id,tag\n"])
def test_csv_labels(tmp_path, header):
    text = header + ('1.jpg,blonde hair blue eyes\n2.jpg,"pink hair, black eyes"\n'
                     '\n3.png,red eyes green hair\n4.jpg,aqua hair, yellow eyes\n')  # unquoted comma: more fields
    labels, report = load_labels(write(tmp_path, "t.csv", text), IMAGES)
    assert labels.dtype == np.int64 and labels.shape == (4, 2)
    assert labels.tolist() == [[H("blonde"), E("blue")], [H("pink"), E("black")], [H("green"), E("red")],
                               [H("aqua"), E("yellow")]]
    assert report.rows == 4 and report.matched_rows == 4 and report.warnings() == []


def test_tsv_and_id_keys(tmp_path):
    """Tag files keyed by image id ('1' for 1.jpg), tab-separated."""
    labels, report = load_labels(write(tmp_path, "t.txt", "1\tblue hair red eyes\n4\twhite hair\n"), IMAGES)
    assert labels.tolist() == [[H("blue"), E("red")], [-1, -1], [-1, -1], [H("white"), -1]]
    assert report.unlabelled == ["2.jpg", "sub/3.png"]


@pytest.mark.parametrize("obj", [
    {"1.jpg": "pink hair black eyes", "sub/3.png": "blue eyes"},
    {"1.jpg": ["pink hair", "black eyes"], "sub/3.png": ["blue eyes"]},
])
def test_json_labels(tmp_path, obj):
    labels, report = load_labels(write(tmp_path, "t.json", json.dumps(obj)), IMAGES)
    assert labels.tolist() == [[H("pink"), E("black")], [-1, -1], [-1, E("blue")], [-1, -1]]
    assert report.matched_rows == 2 and len(report.unlabelled) == 2


def test_counts_of_unknown_unlabelled_and_orphans(tmp_path):
    names = ["a/1.jpg", "b/1.jpg", "c/2.jpg", "3.jpg", "4.jpg", "5.jpg"]
    text = ("a/1.jpg,pink hair gray eyes\n"  # exact path; 'gray eyes' unknown
            "2.jpg,blue hair\n"  # basename -> c/2.jpg
            "1.jpg,red hair\n"  # basename shared by a/1.jpg and b/1.jpg: not guessed -> orphan (ambiguous)
            "3.jpg,long hair gray eyes\n"  # two unknown tags, nothing known
            "9.jpg,red hair\nx/y.png,blue eyes\n"  # no such images: orphans
            "4.jpg,pink hair black hair\n")  # conflict
    labels, report = load_labels(write(tmp_path, "t.csv", text), names)
    assert labels.tolist() == [[H("pink"), -1], [-1, -1], [H("blue"), -1], [-1, -1], [-1, -1], [-1, -1]]
    assert report.rows == 7 and report.matched_rows == 4
    assert report.unknown_tags == {"gray eyes": 2, "long hair": 1}
    assert report.unlabelled == ["b/1.jpg", "5.jpg"]
    assert report.orphans == ["9.jpg", "x/y.png"] and report.ambiguous == ["1.jpg"]
    assert report.conflicts == 1 and report.hair_known == 2 and report.eye_known == 0
    lines = report.warnings()
    assert len(lines) == 4 and all("\n" not in ln for ln in lines)
    assert lines[0].startswith("unknown tags: 3 occurrence(s) of 2") and "'gray eyes' x2" in lines[0]
    assert lines[1].startswith("unlabelled images: 2 image(s)") and "b/1.jpg" in lines[1]
    assert lines[2].startswith("orphan label rows: 3 row(s)") and "1 of them matching several" in lines[2]
    assert lines[3].startswith("conflicting tags: 1 image(s)")
    d = report.to_dict()
    assert (d["unknown_tags"], d["unlabelled"], d["orphans"], d["conflicts"]) == (3, 2, 3, 1)
    json.dumps(d)  # storable in dataset.json


@pytest.mark.parametrize("name, content, row", [
    ("t.csv", "1.jpg,blue hair\n2.jpg\n", 2),  # no tags column
    ("t.csv", "1.jpg,blue hair\n\n,red hair\n", 3),  # empty name
    ("t.csv", "1.jpg,blue hair\n1.jpg,red hair\n", 2),  # the same image labelled twice, differently
    ("t.json", '{"1.jpg": "blue hair",\n "2.jpg": 5}', 2),  # entry 2 is not tags
    ("t.json", '{"1.jpg": "blue hair",\n "2.jpg": }', 2),  # invalid JSON on line 2
    ("t.json", '["1.jpg", "blue hair"]', 1),  # not an object
    ("t.csv", b"1.jpg,blue hair\n2.jpg,red \xff hair\n", 2),  # not UTF-8
])
def test_malformed_label_files(tmp_path, name, content, row):
    path = write(tmp_path, name, content, "wb" if isinstance(content, bytes) else "w")
    with pytest.raises(DataError) as e:
        load_labels(path, IMAGES)
    msg = str(e.value)
    assert str(path) in msg and f"row {row}" in msg and "\n" not in msg


def test_missing_label_file(tmp_path):
    with pytest.raises(DataError, match="cannot read labels file"):
        load_labels(tmp_path / "nope.csv", IMAGES)


# --- encodings ----------------------------------------------------------------------------------------------
def test_onehot_encoding():
    enc = LabelEncoder("onehot", NAMES)
    assert enc.dim == 22
    c = enc(torch.tensor([[0, 9], [11, -1], [-1, 0]]))
    assert c.shape == (3, 22)
    expected = torch.zeros(3, 22)
    expected[0, 0] = expected[0, 12 + 9] = 1
    expected[1, 11] = 1  # unknown eye: zeros in the eye group
    expected[2, 12] = 1
    assert torch.equal(c, expected)
    with pytest.raises(ValueError, match="-1..11"):
        enc(torch.tensor([[12, 0]]))


def test_rgb_encoding_is_the_demo_palette():
    enc = LabelEncoder("rgb", NAMES)
    assert enc.dim == 6
    hair = torch.arange(12).repeat_interleave(10)
    eye = torch.arange(10).repeat(12)
    c = enc(torch.stack([hair, eye], 1))
    hair_rgb, eye_rgb = torch.tensor(HAIR_RGB, dtype=torch.float32), torch.tensor(EYE_RGB, dtype=torch.float32)
    torch.testing.assert_close(c[:, :3], hair_rgb[hair] / 255)
    torch.testing.assert_close(c[:, 3:], eye_rgb[eye] / 255)
    assert c.min() >= 0 and c.max() <= 1
    unknown = enc(torch.tensor([[-1, -1]]))
    torch.testing.assert_close(unknown[0], torch.cat([hair_rgb.mean(0), eye_rgb.mean(0)]) / 255)
    anything = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])  # a float condition passes through
    assert torch.equal(enc(anything), anything)
    with pytest.raises(ValueError, match=r"\[N, 6\]"):
        enc(torch.rand(1, 22))
    with pytest.raises(ValueError, match="no colour"):
        LabelEncoder("rgb", {"hair": ["hair0"], "eye": ["eye0"]})
    with pytest.raises(ValueError, match="onehot, rgb"):
        LabelEncoder("text", NAMES)


def test_mismatched_labels_are_wrong():
    torch.manual_seed(0)
    c = torch.stack([torch.randint(-1, 12, (500,)), torch.randint(-1, 10, (500,))], 1)
    wrong, valid = mismatched_labels(c, [12, 10])
    known = c >= 0
    assert torch.equal(valid, known.any(1))
    changed = wrong != c
    assert bool(changed[valid].any(1).all())  # every valid row is wrong in at least one group
    assert not bool(changed[~known].any())  # unknown groups are kept
    assert bool((wrong >= -1).all()) and bool((wrong[:, 0] < 12).all()) and bool((wrong[:, 1] < 10).all())
    both = (changed.all(1) & known.all(1)).float().mean()
    one = (changed.sum(1) == 1).float().mean()
    assert both > 0.1 and one > 0.3  # subsets: one attribute or both


# --- architecture -------------------------------------------------------------------------------------------
def test_cgan_generator_has_the_seed_parameter_count():
    G = make(CGAN).nets["G"]  # z 100, one-hot 22, embed 256, dim 64, 64 px
    z, c, e, d = 100, 22, 256, 64
    expected = (
        c * e + e  # text_dense Linear(22 -> 256) with bias: 5,888
        + (z + e) * (8 * d * 4 * 4) + 8 * d * 4 * 4  # Linear(356 -> 8192) with bias: 2,924,544
        + 2 * (8 * d + 4 * d + 2 * d + d)  # BatchNorm2d 512, 256, 128, 64 (weight + bias): 1,920
        + 8 * d * 4 * d * 4 * 4 + 4 * d  # ConvT 512 -> 256, k4, bias: 2,097,408
        + 4 * d * 2 * d * 4 * 4 + 2 * d  # ConvT 256 -> 128: 524,416
        + 2 * d * d * 4 * 4 + d  # ConvT 128 -> 64: 131,136
        + d * 3 * 4 * 4 + 3  # ConvT 64 -> 3: 3,075
    )
    assert expected == 5_688_387 == generator_parameter_count()
    assert sum(p.numel() for p in G.parameters() if p.requires_grad) == 5_688_387
    assert [m.weight.shape[0] for m in G.modules() if isinstance(m, nn.BatchNorm2d)] == [512, 256, 128, 64]
    assert [tuple(m.weight.shape[:2]) for m in G.modules() if isinstance(m, nn.ConvTranspose2d)] == [
        (512, 256), (256, 128), (128, 64), (64, 3)]
    D = make(CGAN, dim=8).nets["D"]
    joint = D.joint[0]
    assert (joint.in_channels, joint.out_channels, joint.kernel_size) == (8 * 8 + 256, 8 * 8, (1, 1))  # 768->512 at d=64


@pytest.mark.parametrize("cls", [CGAN, ACGAN])
@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("embed", ["onehot", "rgb"])
def test_shapes(cls, resolution, embed):
    r = make(cls, resolution, dim=4, embed_dim=8, cond_embed=embed)
    assert r.conditional and r.z_dim == 100
    z = torch.randn(3, 100) * 3
    c = torch.tensor([[0, 1], [11, -1], [-1, 9]])
    with torch.no_grad():
        img = r.generate(r.nets["G"], z, c)
        assert img.shape == (3, 3, resolution, resolution) and img.abs().max() <= 1
        assert r.generate(r.nets["G"], z).shape == img.shape  # no labels: drawn from z
        if cls is CGAN:
            assert r.nets["D"](img, c).shape == (3,)
        else:
            adv, heads = r.nets["D"](img)
            assert adv.shape == (3,) and [h.shape for h in heads] == [(3, 12), (3, 10)]


@pytest.mark.parametrize("cls", [CGAN, ACGAN])
def test_unsupported_resolution(cls):
    with pytest.raises(ValueError, match="32, 64, 128 or 256"):
        make(cls, 512, dim=4)


@pytest.mark.parametrize("cls", [CGAN, ACGAN])
@pytest.mark.parametrize("embed", ["onehot", "rgb"])
def test_condition_changes_the_image(cls, embed):
    r = make(cls, dim=4, embed_dim=8, cond_embed=embed)
    G = r.nets["G"].eval()  # eval: BatchNorm cannot amplify differences between the samples of a batch
    widen(G)
    z = torch.randn(1, 100).expand(3, -1)
    with torch.no_grad():
        img = r.generate(G, z, torch.tensor([[H("pink"), E("blue")], [H("black"), E("blue")], [H("pink"), E("red")]]))
        same = r.generate(G, z[:1], torch.tensor([[H("pink"), E("blue")]]))
    assert (img[0] - img[1]).abs().max() > 1e-2 and (img[0] - img[2]).abs().max() > 1e-2
    torch.testing.assert_close(img[:1], same, atol=1e-4, rtol=0)  # eval mode: per-sample, batch-independent
    if embed == "rgb":  # any colour can be asked for, and the palette colour equals its class
        from stylegan_anime.reports.tags import rgb_labels
        with torch.no_grad():
            via_rgb = r.generate(G, z[:1], rgb_labels("pink", "blue"))
            other = r.generate(G, z[:1], rgb_labels((10, 200, 30), "#000000"))
        torch.testing.assert_close(via_rgb, same)
        assert (other - same).abs().max() > 1e-2


def widen(G):
    """Larger weights than the DCGAN init (N(0, 0.02)), under which an untrained G's output hardly depends on
    its input (differences ~1e-7): a wiring mistake must not hide behind the init scale."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in G.modules():
            if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
                fan_in = m.weight.shape[1] if isinstance(m, nn.Linear) else m.weight.shape[0]
                m.weight.normal_(0, 1.5 / fan_in**0.5)


def test_default_labels_are_uniform_and_per_latent():
    r = make(CGAN, dim=4, embed_dim=8)
    z = torch.randn(6000, 100)
    c = r.default_labels(z)
    assert c.shape == (6000, 2) and c.dtype == torch.int64
    assert torch.equal(r.default_labels(z[:7]), c[:7])  # independent of the batch
    for k, n in enumerate((12, 10)):
        counts = torch.bincount(c[:, k], minlength=n).float()
        assert counts.numel() == n and counts.min() > 6000 / n * 0.8


# --- losses -------------------------------------------------------------------------------------------------
class StubG(nn.Module):
    """G(z, c) = constant image 0.5 (ignores z and c)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, z, c):
        return torch.full((z.shape[0], 3, 4, 4), 0.5) + 0 * self.dummy


class StubD(nn.Module):
    """D(x, c) = 2 * mean(x) + 1 if c is the true label row of that sample, else - 1."""

    def __init__(self, true_labels):
        super().__init__()
        self.true = true_labels

    def forward(self, x, c):
        match = (c == self.true).all(1).float()
        return 2 * x.mean(dim=(1, 2, 3)) + 2 * match - 1


def test_cgan_d_loss_has_the_mismatched_term():
    r = make(CGAN, dim=4, embed_dim=8)
    c = torch.tensor([[0, 1], [3, -1], [-1, -1]])  # the last row has no known tag: cannot be made wrong
    reals = torch.tensor([0.25, 0.75, 1.0]).view(3, 1, 1, 1).expand(3, 3, 4, 4).clone()
    r.nets = {"G": StubG(), "D": StubD(c)}
    out = r.loss_D(Batch(z=torch.randn(3, 100), reals=reals, labels=c, fake_labels=c))
    bce = lambda logit, t: F.binary_cross_entropy_with_logits(torch.tensor(logit), torch.tensor(t)).item()  # noqa: E731
    real = [2 * 0.25 + 1, 2 * 0.75 + 1, 2 * 1.0 + 1]  # right tags
    fake = [2 * 0.5 + 1] * 3  # fakes generated and judged with c_f = c
    wrong = [2 * 0.25 - 1, 2 * 0.75 - 1]  # rows 0, 1 with wrong tags (row 2 is left out)
    expected = (sum(bce(v, 1.0) for v in real) / 3
                + 0.5 * (sum(bce(v, 0.0) for v in fake) / 3 + sum(bce(v, 0.0) for v in wrong) / 2))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    without_wrong = sum(bce(v, 1.0) for v in real) / 3 + sum(bce(v, 0.0) for v in fake) / 3 / 2
    assert abs(out["loss"].item() - without_wrong) > 0.1
    assert out["D_wrong"].item() == pytest.approx(np.mean([1 / (1 + math.exp(-v)) for v in wrong]), rel=1e-5)
    g = r.loss_G(Batch(z=torch.randn(3, 100), fake_labels=c))
    assert g["loss"].item() == pytest.approx(bce(2.0, 1.0), rel=1e-5)


def test_acgan_ce_ignores_unknown_labels():
    torch.manual_seed(0)
    logits = torch.randn(5, 12)
    target = torch.tensor([3, -1, 11, -1, 0])
    known = target >= 0
    assert masked_ce(logits, target).item() == pytest.approx(F.cross_entropy(logits[known], target[known]).item())
    all_unknown = masked_ce(logits, torch.full((5,), -1))
    assert all_unknown.item() == 0.0  # not NaN
    eye = torch.randn(5, 10)
    labels = torch.stack([target, torch.tensor([-1, 2, -1, -1, 9])], 1)
    expected = masked_ce(logits, target) + F.cross_entropy(eye[[1, 4]], torch.tensor([2, 9]))
    torch.testing.assert_close(class_loss([logits, eye], labels), expected)
    # changing the logits of a row whose labels are unknown changes nothing
    logits2, eye2 = logits.clone(), eye.clone()
    logits2[1] += 5
    logits2[3] -= 3
    eye2[0] += 4
    torch.testing.assert_close(class_loss([logits2, eye2], labels), expected)


def test_acgan_losses_use_the_class_heads():
    r = make(ACGAN, dim=4, embed_dim=8)
    reals = torch.rand(4, 3, 64, 64) * 2 - 1
    c = torch.tensor([[0, 1], [3, -1], [-1, 5], [11, 9]])
    batch = Batch(z=torch.randn(4, 100), reals=reals, labels=c, fake_labels=c.flip(0))
    torch.manual_seed(1)
    out = r.loss_D(batch)
    with torch.no_grad():
        adv_r, cls_r = r.nets["D"](reals)
    assert out["D_cls_real"].item() == pytest.approx(class_loss(cls_r, c).item(), rel=1e-5)
    torch.manual_seed(1)
    heavier = ACGAN(ACGAN.make_config(dim=4, embed_dim=8, cls_weight=3.0), 64, CPU, label_names=NAMES)
    heavier.nets = r.nets
    out3 = heavier.loss_D(batch)
    extra = 2.0 * (out["D_cls_real"] + out["D_cls_fake"])
    assert out3["loss"].item() == pytest.approx((out["loss"] + extra).item(), rel=1e-4)
    g = r.loss_G(Batch(z=torch.randn(4, 100), fake_labels=c))
    assert torch.isfinite(g["loss"]) and g["G_cls"] > 0


# --- registry, config, trainer ------------------------------------------------------------------------------
def test_registry_and_configs():
    from stylegan_anime.models import model_names
    assert get_recipe("cgan") is CGAN and get_recipe("acgan") is ACGAN
    for cls in (CGAN, ACGAN):
        cfg = dataclasses.asdict(cls.make_config())
        assert {k: cfg[k] for k in ("batch", "z_dim", "dim", "embed_dim", "cond_embed", "lr_g", "lr_d", "beta1",
                                    "beta2", "n_critic")} == dict(batch=64, z_dim=100, dim=64, embed_dim=256,
                                                                  cond_embed="onehot", lr_g=2e-4, lr_d=2e-4,
                                                                  beta1=0.5, beta2=0.999, n_critic=1)
        r = make(cls, dim=4)
        assert all(type(o) is torch.optim.Adam and o.param_groups[0]["betas"] == (0.5, 0.999) for o in r.opts.values())
    from stylegan_anime.cli.train import _field_type
    baselines = ["dcgan", "dcgan-tutorial", "wgan", "wgan-gp", "cgan", "acgan"]
    seen = {}  # a flag has one type, help and choices across the baselines ...
    for name in baselines:
        for f in dataclasses.fields(get_recipe(name).Config):
            key = (str(f.type), f.metadata["help"], f.metadata.get("choices"))
            assert seen.setdefault(f.name, key) == key, (name, f.name)
    ours = {f.name: f for cls in (CGAN, ACGAN) for f in dataclasses.fields(cls.Config)}
    for name in model_names():  # ... and the same type and choices in every model
        try:
            other = get_recipe(name)
        except ImportError:  # a model being written elsewhere: its own tests report it
            continue
        for f in dataclasses.fields(other.Config):
            if f.name in ours:
                assert _field_type(f) is _field_type(ours[f.name]), (name, f.name)
                assert f.metadata.get("choices") == ours[f.name].metadata.get("choices"), (name, f.name)
    assert CGAN.Config.__dataclass_fields__["cond_embed"].metadata["choices"] == ("onehot", "rgb")


def labelled_data(n=16):
    d = random_dataset(n=n, labels=True)
    labels = d.labels.copy()
    labels[::5, 1] = -1  # some unknown eye colours
    return ListDataset(images=d.images, labels=labels, label_names=NAMES)


@pytest.mark.parametrize("model, embed", [("cgan", "onehot"), ("acgan", "rgb")])
def test_one_trainer_step(model, embed, tmp_path):
    cfg = make_cfg(model, tmp_path, batch_gpu=4, model_cfg={"dim": 4, "embed_dim": 8, "batch": 8, "cond_embed": embed})
    t = Trainer(cfg, tmp_path / "run", dataset=labelled_data())
    assert cfg.label_names == NAMES and t.recipe.label_names == NAMES and t.fixed_labels.shape == (4, 2)
    seen = []
    for phase in t.recipe.phases:
        def record(batch, _loss=phase.loss, _name=phase.name):
            assert batch.fake_labels is not None and batch.fake_labels.shape == (4, 2)
            if _name == "D":
                assert batch.labels is not None and batch.labels.shape == (4, 2)
            out = _loss(batch)
            seen.append((_name, {k: v.item() for k, v in out.items()}))
            return out
        phase.loss = record
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in t.recipe.nets.items()}
    t.step()
    assert [name for name, _ in seen] == ["D", "D", "G", "G"]  # 2 accumulation rounds each
    assert all(math.isfinite(v) for _, out in seen for v in out.values())
    for k, m in t.recipe.nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters())), k
    grid = t.sample_grid(t.G_ema)  # the trainer's fixed-label grids
    assert grid.shape == (128, 128, 3)


def test_conditional_model_needs_labels(tmp_path):
    from stylegan_anime.training.config import ConfigError
    d = random_dataset(n=8)
    with pytest.raises(ConfigError, match="conditional"):
        Trainer(make_cfg("cgan", tmp_path, model_cfg={"dim": 4, "batch": 8}), tmp_path / "r",
                dataset=ListDataset(images=d.images, labels=None, label_names=None))


# --- packs with labels --------------------------------------------------------------------------------------
def image_folder(tmp_path):
    root = tmp_path / "faces"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("1.png", "2.png", "sub/3.png", "5.png"):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / name)
    (root / "4.png").write_bytes(b"not a png")  # unreadable: skipped, its label row must go with it
    return root


def test_prepare_and_open_dataset_store_labels(tmp_path):
    root = image_folder(tmp_path)
    tags = write(tmp_path, "tags.csv", "name,tags\n1.png,blonde hair blue eyes\n3.png,pink hair\n"
                                        "4.png,red hair red eyes\n5.png,gray hair, gray eyes\n9.png,red hair\n")
    warnings = []
    ds = prepare_dataset(str(root), tmp_path / "pack", 8, labels=tags, workers=1, progress=False,
                         warn=warnings.append)
    assert len(ds) == 4 and ds.label_names == NAMES
    # images in source order: 1.png, 2.png, 5.png, sub/3.png (4.png unreadable)
    assert ds.labels.tolist() == [[H("blonde"), E("blue")], [-1, -1], [H("silver"), -1], [H("pink"), -1]]
    report = ds.meta["labels_report"]
    assert (report["unknown_tags"], report["unlabelled"], report["orphans"]) == (1, 1, 1)
    assert any(w.startswith("unknown tags") for w in warnings) and any(w.startswith("orphan") for w in warnings)
    assert any(w.startswith("unlabelled images") for w in warnings)
    reopened = open_dataset(str(tmp_path / "pack"), 8)
    assert reopened.labels.tolist() == ds.labels.tolist() and reopened.label_names == NAMES

    cache = tmp_path / "cache"
    a = open_dataset(str(root), 8, labels=tags, cache_dir=cache, workers=1, progress=False, warn=lambda m: None)
    assert a.labels.tolist() == ds.labels.tolist()
    again = open_dataset(str(root), 8, labels=tags, cache_dir=cache, workers=1, progress=False)
    assert again.path == a.path  # reused
    tags.write_text("1.png,black hair red eyes\n", encoding="utf-8")  # same folder, new labels: rebuilt
    b = open_dataset(str(root), 8, labels=tags, cache_dir=cache, workers=1, progress=False, warn=lambda m: None)
    assert b.path != a.path and b.labels.tolist()[0] == [H("black"), E("red")]
    plain = open_dataset(str(root), 8, cache_dir=cache, workers=1, progress=False, warn=lambda m: None)
    assert plain.labels is None and plain.label_names is None

    with pytest.raises(DataError, match="already packed"):
        open_dataset(str(tmp_path / "pack"), 8, labels=tags)
    with pytest.raises(DataError, match="own hair/eye labels"):
        open_dataset("demo:3", 8, labels=tags, cache_dir=cache)
    bad = write(tmp_path, "bad.csv", "1.png,blue hair\n2.png\n")
    with pytest.raises(DataError, match="row 2"):
        prepare_dataset(str(root), tmp_path / "pack2", 8, labels=bad, workers=1, progress=False)


# --- tools: tags -> labels, the hair x eye figure -----------------------------------------------------------
def test_tags_to_labels_and_rgb_labels():
    from stylegan_anime.reports.tags import rgb_labels, tags_to_labels
    c = tags_to_labels("pink hair, black eyes")
    assert c.dtype == torch.int64 and c.tolist() == [[H("pink"), E("black")]]
    assert tags_to_labels("Black Eyes").tolist() == [[-1, E("black")]]
    with pytest.raises(ValueError, match=r"unknown tag 'gray eyes'.*eye colours: black, blue"):
        tags_to_labels("pink hair gray eyes")
    with pytest.raises(ValueError, match="two different hair"):
        tags_to_labels("pink hair blue hair")
    with pytest.raises(ValueError, match="no hair or eye colour"):
        tags_to_labels("")
    x = rgb_labels((255, 0, 0), "#0080ff")
    assert x.dtype == torch.float32 and x.shape == (1, 6)
    torch.testing.assert_close(x, torch.tensor([[1.0, 0.0, 0.0, 0.0, 128 / 255, 1.0]]))
    torch.testing.assert_close(rgb_labels("255, 0, 0", "pink")[0, :3], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(rgb_labels("pink")[0, :3], torch.tensor(HAIR_RGB[H("pink")]) / 255.0)
    with pytest.raises(ValueError, match="0-255"):
        rgb_labels((300, 0, 0))
    with pytest.raises(ValueError, match="unknown eye colour"):
        rgb_labels(None, "mauve")


@pytest.fixture(scope="module")
def trained_cgan(tmp_path_factory):
    """A cgan checkpoint after one step, loaded back with `Sampler`."""
    from stylegan_anime.generate import Sampler
    tmp = tmp_path_factory.mktemp("cgan")
    torch.set_num_threads(1)
    cfg = make_cfg("cgan", tmp, model_cfg={"dim": 4, "embed_dim": 8, "batch": 4})
    t = Trainer(cfg, tmp / "run", dataset=labelled_data(8))
    t.step()
    sampler = Sampler(t.save(), device="cpu")
    widen(sampler.G)
    return sampler


def test_hair_eye_grid(trained_cgan, tmp_path):
    from stylegan_anime.reports.tags import hair_eye_grid, hair_eye_image, header_sizes
    grid = hair_eye_image(trained_cgan, z_seed=3, headers=False)
    assert grid.shape == (12 * 64, 10 * 64, 3) and grid.dtype == np.uint8
    rows = grid.reshape(12, 64, 10 * 64, 3).astype(np.int16)
    for i in range(11):
        assert np.abs(rows[i] - rows[i + 1]).max() > 0  # hair colours differ by row
    cols = grid.reshape(12 * 64, 10, 64, 3).astype(np.int16)
    assert np.abs(cols[:, 0] - cols[:, 1]).max() > 0  # eye colours differ by column
    # cell (r, c) is the image of hair r, eye c with the latent of seed 3
    from stylegan_anime.generate import seed_latents
    from stylegan_anime.imageio_utils import to_uint8
    with torch.no_grad():
        cell = to_uint8(trained_cgan.recipe.generate(trained_cgan.G, seed_latents([3], 100), torch.tensor([[4, 7]])))
    # one image alone vs in a batch of 120: oneDNN may round a conv differently by batch size (±1 grey level)
    assert np.abs(grid[4 * 64:5 * 64, 7 * 64:8 * 64].astype(int) - cell[0].astype(int)).max() <= 1

    path = hair_eye_grid(trained_cgan, tmp_path / "grid.png", z_seed=3, hair=["pink", "gray"], eye="red,blue")
    hh, hw = header_sizes(64, 64)
    assert Image.open(path).size == (2 * 64 + hw, 2 * 64 + hh)
    labelled = np.asarray(Image.open(path))
    pink_red = labelled[hh:, hw:][:64, :64].astype(int) - grid[4 * 64:5 * 64, 7 * 64:8 * 64].astype(int)
    assert np.abs(pink_red).max() <= 1  # pink, red (a batch of 4 vs 120: the same ±1 rounding as above)
    assert labelled[:hh].min() < 128  # header text drawn
    with pytest.raises(ValueError, match="unknown hair colour"):
        hair_eye_image(trained_cgan, hair=["mauve"])


def test_hair_eye_grid_needs_a_conditional_checkpoint(trained_cgan):
    from types import SimpleNamespace
    from stylegan_anime.baselines.dcgan import DCGAN
    from stylegan_anime.reports.tags import hair_eye_image, rgb_labels
    fake = SimpleNamespace(recipe=DCGAN(DCGAN.make_config(dim=4), 64, CPU), config=SimpleNamespace(model="dcgan"))
    fake.G = fake.recipe.nets["G"]
    with pytest.raises(ValueError, match="tag-conditional.*dcgan"):
        hair_eye_image(fake)
    with pytest.raises(ValueError, match="cond-embed rgb"):
        rgb_labels("pink", "red", sampler=trained_cgan)
