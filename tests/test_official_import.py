"""Importing official stylegan2-ada-pytorch pickles without running their code.

The official pickles are imitated here without NVlabs code: throw-away modules named
`torch_utils.persistence` and `dnnlib.util` are registered only while pickling, and objects reduce to
`_reconstruct_persistent_obj(meta)` with a meta dict shaped like the real one (type, version, module_src,
class_name, state = the module's __dict__ with nested persistent submodules). The modules are removed before
reading, so anything that tried to import or call them would fail; the fake hook also raises and records the
call, and `module_src` would create a sentinel file if it were executed.

Length: the cases of one module under test, listed in full so that each failure names its case.
"""
from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from stylegan_anime.stylegan2 import official_import as oi
from stylegan_anime.stylegan2.official_import import ImportCheckpointError

FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")


# ----------------------------------------------------------------------------------------------------------
# Imitation of the official pickle structure.


class FakeNVlabs:
    """Registers stand-ins for torch_utils.persistence and dnnlib.util in sys.modules while active."""

    def __init__(self, sentinel):
        self.calls = []
        self.module_src = (f"open({str(sentinel)!r}, 'w').write('executed')\n"
                           "import torch\nclass Generator(torch.nn.Module): pass\n")

        def _reconstruct_persistent_obj(meta):
            self.calls.append(meta)
            raise AssertionError("executed!")

        _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
        _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"

        class EasyDict(dict):
            def __getattr__(self, name):
                try:
                    return self[name]
                except KeyError:
                    raise AttributeError(name)

            def __setattr__(self, name, value):
                self[name] = value

        EasyDict.__module__ = "dnnlib.util"
        EasyDict.__qualname__ = "EasyDict"
        self.reconstruct, self.EasyDict = _reconstruct_persistent_obj, EasyDict

    @contextlib.contextmanager
    def registered(self):
        assert not any(name in sys.modules for name in FAKE_MODULES)
        persistence = types.ModuleType("torch_utils.persistence")
        persistence._reconstruct_persistent_obj = self.reconstruct
        util = types.ModuleType("dnnlib.util")
        util.EasyDict = self.EasyDict
        torch_utils, dnnlib = types.ModuleType("torch_utils"), types.ModuleType("dnnlib")
        torch_utils.persistence, dnnlib.util = persistence, util
        mods = dict(zip(FAKE_MODULES, (torch_utils, persistence, dnnlib, util)))
        sys.modules.update(mods)
        try:
            yield
        finally:
            for name in FAKE_MODULES:
                sys.modules.pop(name, None)

    def persistent(self, module: nn.Module, class_name=None, init_kwargs=None, extra_state=None):
        """A persistent-object wrapper around `module`, the way torch_utils.persistence pickles it."""
        fake = self

        def plain_attr(v):
            return v is None or isinstance(v, (bool, int, float, str, list, dict, set, np.floating))

        state = {k: v for k, v in module.__dict__.items() if k != "_modules" and plain_attr(v)}
        state["_modules"] = collections.OrderedDict(
            (n, None if m is None else fake.persistent(m)) for n, m in module._modules.items())
        state["_init_args"] = ()
        state["_init_kwargs"] = fake.EasyDict(init_kwargs or {})
        state.update(extra_state or {})
        meta = dict(type="class", version=6, module_src=self.module_src,
                    class_name=class_name or type(module).__name__, state=state)

        class Persistent:
            def __reduce__(self):
                return (fake.reconstruct, (meta,))

        return Persistent()

    def dump(self, path, data: dict, protocol=3):
        with self.registered():
            with open(path, "wb") as f:
                pickle.dump(data, f, protocol=protocol)
        assert not any(name in sys.modules for name in FAKE_MODULES)


@pytest.fixture
def fake(tmp_path):
    f = FakeNVlabs(tmp_path / "SENTINEL-executed")
    yield f
    assert f.calls == [], "the pickled persistence hook was called"
    assert not (tmp_path / "SENTINEL-executed").exists(), "module_src was executed"


class Leaf(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.randn([cout, cin]))
        self.bias = nn.Parameter(torch.randn([cout]))
        self.weight_gain = np.float64(1 / np.sqrt(cin))  # numpy scalars are in the real state too
        self.act_gain = np.float32(np.sqrt(2))


class Block(nn.Module):
    """Odd tensors: a None parameter, a non-persistent buffer, fp16, int64, 0-dim, a strided view."""

    def __init__(self):
        super().__init__()
        base = torch.randn([6, 5])
        self.const = nn.Parameter(base.t())  # non-contiguous
        self.register_parameter("unused", None)
        self.noise_strength = nn.Parameter(torch.tensor(0.25))
        self.register_buffer("resample_filter", torch.randn([4, 4]).half())
        self.register_buffer("counts", torch.arange(7))
        self.register_buffer("scratch", torch.ones(3), persistent=False)
        self.register_buffer("view", base[::2, 1:])  # shares base's storage, offset and strides
        self.conv1 = Leaf(3, 2)
        self.skip = None
        self.block_resolutions = [4, 8]


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.mapping = nn.Module()
        self.mapping.fc0 = Leaf(4, 3)
        self.mapping.register_buffer("w_avg", torch.randn([3]))
        self.synthesis = nn.Module()
        self.synthesis.b4 = Block()


def official_data(fake, G, D, G_ema, G_kwargs, D_kwargs, **extra):
    E = fake.EasyDict
    return {
        "training_set_kwargs": dict(E(class_name="training.dataset.ImageFolderDataset", path="/data/x.zip",
                                      resolution=16, use_labels=False, max_size=100, xflip=False)),
        "G": fake.persistent(G, "Generator", G_kwargs),
        "D": fake.persistent(D, "Discriminator", D_kwargs),
        "G_ema": fake.persistent(G_ema, "Generator", G_kwargs),
        "augment_pipe": None,
        **extra,
    }


def _assert_plain(x):
    assert type(x) in (dict, list, str, int, float, bool, type(None)), type(x)
    if isinstance(x, dict):
        for v in x.values():
            _assert_plain(v)
    elif isinstance(x, list):
        for v in x:
            _assert_plain(v)


# ----------------------------------------------------------------------------------------------------------
# Reading.


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_tensors_and_plain_values_without_running_code(tmp_path, fake, protocol):
    torch.manual_seed(0)
    G, D, G_ema = TinyNet(), TinyNet(), TinyNet()
    E = fake.EasyDict
    G_kwargs = E(z_dim=4, w_dim=3, mapping_kwargs=E(num_layers=2), synthesis_kwargs=E(channel_base=64),
                 c_dim=0, img_resolution=16, img_channels=3)
    path = tmp_path / "network-snapshot-000040.pkl"
    fake.dump(path, official_data(fake, G, D, G_ema, G_kwargs, E(c_dim=0, block_kwargs=E())), protocol=protocol)

    out = oi.read_official_pickle(path)

    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert set(out) == {"G", "D", "G_ema", "training_set_kwargs"}
    for key, net in (("G", G), ("D", D), ("G_ema", G_ema)):
        expected = net.state_dict()
        got = out[key]["state_dict"]
        assert list(got) == list(expected)  # same names, same order as torch's state_dict()
        assert "synthesis.b4.scratch" not in got and "synthesis.b4.unused" not in got
        for name, t in expected.items():
            assert type(got[name]) is torch.Tensor, name
            assert got[name].dtype == t.dtype and got[name].shape == t.shape, name
            assert torch.equal(got[name], t), name
    assert out["G"]["class_name"] == "Generator" and out["D"]["class_name"] == "Discriminator"
    assert out["G"]["init_kwargs"] == {"z_dim": 4, "w_dim": 3, "mapping_kwargs": {"num_layers": 2},
                                       "synthesis_kwargs": {"channel_base": 64}, "c_dim": 0,
                                       "img_resolution": 16, "img_channels": 3}
    assert out["D"]["init_kwargs"] == {"c_dim": 0, "block_kwargs": {}}
    assert out["training_set_kwargs"]["path"] == "/data/x.zip"
    for value in (out["G"]["init_kwargs"], out["D"]["init_kwargs"], out["training_set_kwargs"]):
        _assert_plain(value)


def test_records_keep_plain_attributes_numpy_scalars_become_floats(tmp_path, fake):
    leaf = Leaf(4, 2)
    path = tmp_path / "x.pkl"
    fake.dump(path, {"net": fake.persistent(leaf, "FullyConnectedLayer")}, protocol=2)
    with open(path, "rb") as f:
        data = oi.RestrictedUnpickler(f, "x.pkl").load()
    rec = data["net"]
    assert isinstance(rec, oi.PersistentRecord) and rec.class_name == "FullyConnectedLayer"
    assert rec.version == 6 and "SENTINEL" in rec.module_src  # kept as text, never executed
    assert type(rec.state["weight_gain"]) is float and rec.state["weight_gain"] == 0.5
    assert type(rec.state["act_gain"]) is float and rec.state["act_gain"] == float(np.float32(np.sqrt(2)))
    assert type(rec.state["_init_kwargs"]) is dict
    assert torch.equal(rec.state["_parameters"]["weight"], leaf.weight)


# ----------------------------------------------------------------------------------------------------------
# Refusing everything that is not a tensor or a plain value.


class Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("make,name", [
    (lambda s: f"cos\nsystem\n(S'touch {s}'\ntR.".encode(), "os.system"),
    (lambda s: pickle.dumps(Reduce(eval, f"open({str(s)!r}, 'w')")), "builtins.eval"),
    (lambda s: pickle.dumps(Reduce(subprocess.Popen, ["touch", str(s)])), "subprocess.Popen"),
    (lambda s: pickle.dumps({"G": Reduce(print, "printed!")}), "builtins.print"),
    (lambda s: pickle.dumps(Reduce(getattr, {"a": 1}, "keys")), "builtins.getattr"),
    (lambda s: pickle.dumps(Reduce(os.system, f"touch {s}"), protocol=0), f"{os.system.__module__}.system"),
])
def test_refuses_any_other_callable_by_name(tmp_path, capsys, make, name):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(make(sentinel))
    with pytest.raises(ImportCheckpointError) as e:
        oi.read_official_pickle(path)
    assert str(e.value) == (f"refusing to load network-snapshot.pkl: it references {name}, "
                            f"which is not a tensor or plain value")
    assert not sentinel.exists()
    assert capsys.readouterr().out == ""


def test_refuses_a_callable_hidden_inside_a_network(tmp_path, fake, capsys):
    net = TinyNet()
    data = {"G": fake.persistent(net, "Generator", {"z_dim": Reduce(print, "printed!")})}
    path = tmp_path / "network-snapshot.pkl"
    fake.dump(path, data)
    with pytest.raises(ImportCheckpointError, match=r"references builtins\.print"):
        oi.read_official_pickle(path)
    assert capsys.readouterr().out == ""


def test_storage_bytes_go_through_torchs_weights_only_loader(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    evil = pickle.dumps(Reduce(os.system, f"touch {sentinel}"), protocol=2)
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"G": Reduce(torch.storage._load_from_bytes, evil)}))
    with pytest.raises(ImportCheckpointError, match="refused by torch's weights-only loader"):
        oi.read_official_pickle(path)
    assert not sentinel.exists()


def test_refuses_persistent_ids_and_attempts_to_modify_stand_ins(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(b"(dp0\nS'G'\nP1\ns.")
    with pytest.raises(ImportCheckpointError, match="persistent ID"):
        oi.read_official_pickle(path)
    before = oi.ALLOWED_GLOBALS[("torch._utils", "_rebuild_parameter")].__defaults__
    path.write_bytes(b"ctorch._utils\n_rebuild_parameter\n(dS'__defaults__'\n(I1\ntsb.")
    with pytest.raises(ImportCheckpointError, match="modify a function"):
        oi.read_official_pickle(path)
    assert oi.ALLOWED_GLOBALS[("torch._utils", "_rebuild_parameter")].__defaults__ == before


def test_tensorflow_pickles_and_garbage_get_one_line_errors(tmp_path):
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(b"cdnnlib.tflib.network\nNetwork\n(tR.")
    with pytest.raises(ImportCheckpointError, match="TensorFlow-era StyleGAN pickle"):
        oi.read_official_pickle(path)
    path.write_bytes(pickle.dumps({"G": 1})[:-3])
    with pytest.raises(ImportCheckpointError, match="cannot read") as e:
        oi.read_official_pickle(path)
    assert "\n" not in str(e.value)
    with pytest.raises(ImportCheckpointError, match="does not exist"):
        oi.read_official_pickle(tmp_path / "missing.pkl")


# ----------------------------------------------------------------------------------------------------------
# Structure mismatches.


def test_wrong_class_or_structure_is_named(tmp_path, fake):
    path = tmp_path / "x.pkl"
    fake.dump(path, {"G": fake.persistent(TinyNet(), "Foo")})
    with pytest.raises(ImportCheckpointError,
                       match=r"^G is a training\.networks\.Foo, expected training\.networks\.Generator$"):
        oi.read_official_pickle(path)
    fake.dump(path, {"D": {"weight": torch.zeros(1)}})
    with pytest.raises(ImportCheckpointError, match=r"^D is a dict, expected a persistent"):
        oi.read_official_pickle(path)
    fake.dump(path, [1, 2])
    with pytest.raises(ImportCheckpointError, match="holds a list"):
        oi.read_official_pickle(path)
    fake.dump(path, {"augment_pipe": None})
    with pytest.raises(ImportCheckpointError, match="none of G, D, G_ema"):
        oi.read_official_pickle(path)
    fake.dump(path, {"G": fake.persistent(TinyNet(), "Generator", extra_state={"_buffers": None})})
    with pytest.raises(ImportCheckpointError, match=r"^G \(Generator\) has no _buffers dict"):
        oi.read_official_pickle(path)


# Stand-ins with the official constructor signatures (ours flatten synthesis_kwargs, like our Generator).


class TinyG(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, **synthesis_kwargs):
        super().__init__()
        layers = (mapping_kwargs or {}).get("num_layers", 8)
        base, cmax = synthesis_kwargs.get("channel_base", 32768), synthesis_kwargs.get("channel_max", 512)
        ch = min(base // img_resolution, cmax)
        self.mapping = nn.Module()
        for i in range(layers):
            setattr(self.mapping, f"fc{i}", Leaf(z_dim if i == 0 else w_dim, w_dim))
        self.mapping.register_buffer("w_avg", torch.zeros([w_dim]))
        self.synthesis = nn.Module()
        self.synthesis.torgb = Leaf(ch, img_channels)


class TinyD(nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, architecture="resnet", channel_base=32768,
                 channel_max=512, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs=None,
                 mapping_kwargs=None, epilogue_kwargs=None):
        super().__init__()
        if architecture != "resnet":
            raise ValueError(f"architecture {architecture!r} is not supported")
        self.b4 = Leaf(img_channels, min(channel_base // img_resolution, channel_max))


def tiny_official(tmp_path, fake, G_kwargs=None, D_kwargs=None, mutate=None):
    E = fake.EasyDict
    G_kwargs = G_kwargs or E(z_dim=4, w_dim=3, mapping_kwargs=E(num_layers=2),
                             synthesis_kwargs=E(channel_base=64, channel_max=8), c_dim=0, img_resolution=16,
                             img_channels=3)
    D_kwargs = D_kwargs or E(c_dim=0, img_resolution=16, img_channels=3, architecture="resnet", channel_base=64)
    synth = dict(G_kwargs["synthesis_kwargs"])
    top = {k: v for k, v in G_kwargs.items() if k != "synthesis_kwargs"}
    torch.manual_seed(1)
    G, G_ema, D = TinyG(**top, **synth), TinyG(**top, **synth), TinyD(**D_kwargs)
    if mutate:
        mutate(G, D)
    path = tmp_path / "network-snapshot-000012.pkl"
    fake.dump(path, official_data(fake, G, D, G_ema, G_kwargs, D_kwargs))
    return path, (G, D, G_ema)


def test_convert_maps_kwargs_and_state_dicts(tmp_path, fake):
    path, (G, D, G_ema) = tiny_official(tmp_path, fake)
    conv = oi.convert(oi.read_official_pickle(path), TinyG, TinyD)
    assert conv["G_kwargs"] == {"z_dim": 4, "w_dim": 3, "mapping_kwargs": {"num_layers": 2}, "channel_base": 64,
                                "channel_max": 8, "c_dim": 0, "img_resolution": 16, "img_channels": 3}
    assert conv["D_kwargs"]["architecture"] == "resnet"
    for key, net in (("G", G), ("D", D), ("G_ema", G_ema)):
        sd = net.state_dict()
        assert list(conv["nets"][key]) == list(sd)
        assert all(torch.equal(conv["nets"][key][k], v) for k, v in sd.items())
    assert conv["training_set_kwargs"]["resolution"] == 16


def test_convert_names_missing_networks(tmp_path, fake):
    path, _ = tiny_official(tmp_path, fake)
    official = oi.read_official_pickle(path)
    del official["G"]
    with pytest.raises(ImportCheckpointError, match=r"^the pickle has no G \("):
        oi.convert(official, TinyG, TinyD)


def test_convert_names_mismatched_missing_and_unexpected_tensors(tmp_path, fake):
    def wrong_shape(G, D):
        G.mapping.fc1.bias = nn.Parameter(torch.zeros([5]))

    path, _ = tiny_official(tmp_path, fake, mutate=wrong_shape)
    with pytest.raises(ImportCheckpointError,
                       match=r"^G does not match our TinyG: shape mismatch mapping\.fc1\.bias \[5\] vs ours \[3\]$"):
        oi.convert(oi.read_official_pickle(path), TinyG, TinyD)

    def extra_and_missing(G, D):
        D.b4.register_buffer("magic", torch.zeros(1))
        del D.b4.bias

    path, _ = tiny_official(tmp_path, fake, mutate=extra_and_missing)
    with pytest.raises(ImportCheckpointError,
                       match=r"^D does not match our TinyD: missing b4\.bias; unexpected b4\.magic$"):
        oi.convert(oi.read_official_pickle(path), TinyG, TinyD)


def test_convert_refuses_unsupported_settings(tmp_path, fake):
    path, _ = tiny_official(tmp_path, fake)
    official = oi.read_official_pickle(path)
    official["D"]["init_kwargs"]["architecture"] = "orig"
    with pytest.raises(ImportCheckpointError, match=r"^D: our TinyD does not accept the official settings .*'orig'"):
        oi.convert(official, TinyG, TinyD)
    official["D"]["init_kwargs"]["architecture"] = "resnet"
    for key in ("G", "G_ema"):
        official[key]["init_kwargs"]["use_magic"] = True
    with pytest.raises(ImportCheckpointError, match=r"^G: unsupported constructor argument\(s\) use_magic"):
        oi.convert(official, TinyG, TinyD)
    for key in ("G", "G_ema"):
        official[key]["init_kwargs"].pop("use_magic")
    oi.convert(official, TinyG, TinyD)  # back to valid
    official["G_ema"]["init_kwargs"]["z_dim"] = 7
    with pytest.raises(ImportCheckpointError, match="G and G_ema were built with different init_kwargs"):
        oi.convert(official, TinyG, TinyD)


def _our_official_pickle(tmp_path, fake, c_dim=0, name="network-snapshot-000120.pkl", d_mapping=None):
    """A 64 px official-shaped pickle wrapping our own tiny networks (the layout stylegan2-ada writes)."""
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator

    E = fake.EasyDict
    synth = {"channel_base": 256, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": None}
    D_kwargs = {"c_dim": c_dim, "img_resolution": 64, "img_channels": 3, "architecture": "resnet",
                "block_kwargs": {}, "mapping_kwargs": d_mapping or {}, "epilogue_kwargs": {"mbstd_group_size": 4},
                **synth}
    torch.manual_seed(3)
    G = Generator(z_dim=8, c_dim=c_dim, w_dim=8, img_resolution=64, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, **synth).eval()
    D = Discriminator(**D_kwargs).eval()
    with torch.no_grad():
        for t in G.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1)
    G_kwargs = E(z_dim=8, w_dim=8, mapping_kwargs=E(num_layers=2), synthesis_kwargs=E(synth), c_dim=c_dim,
                 img_resolution=64, img_channels=3)
    path = tmp_path / name
    fake.dump(path, official_data(fake, G, D, G, G_kwargs, E(D_kwargs)), protocol=4)
    return path, G


def _cli(argv, capsys):
    from stylegan_anime.cli import main
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.err


def test_import_generate_and_fine_tune_through_the_cli(tmp_path, fake, capsys, monkeypatch):
    from PIL import Image

    from stylegan_anime.generate import seed_latents
    from stylegan_anime.imageio_utils import to_uint8
    from stylegan_anime.training.checkpoint import load_checkpoint

    monkeypatch.setenv("STYLEGAN_ANIME_CACHE", str(tmp_path / "cache"))
    pkl, G = _our_official_pickle(tmp_path, fake)
    out = tmp_path / "imported.pt"
    code, err = _cli(["import-checkpoint", str(pkl), str(out)], capsys)
    assert code == 0, err
    state = load_checkpoint(out)
    assert state["imported"]["kimg"] == 120 and state["progress"]["nimg"] == 0
    cfg = state["config"]["model_cfg"]
    assert (cfg["z_dim"], cfg["map_layers"], cfg["channel_base"], cfg["channel_max"], cfg["num_fp16_res"]) == \
        (8, 2, 256, 16, 0)

    grid = tmp_path / "grid.png"
    code, err = _cli(["generate", "--checkpoint", str(out), "--seeds", "0-1", "--cols", "2", "--grid", str(grid),
                      "--device", "cpu"], capsys)
    assert code == 0, err
    with torch.no_grad():  # the same picture as the original network with constant noise, psi = 1
        ref = to_uint8(G(seed_latents([0, 1], 8), torch.zeros([2, 0]), noise_mode="const"))
    got = np.asarray(Image.open(grid))
    assert np.abs(got[:, :64].astype(int) - ref[0]).max() <= 1 and np.abs(got[:, 64:].astype(int) - ref[1]).max() <= 1

    runs = tmp_path / "runs"
    code, err = _cli(["train", "--resume", str(out), "--outdir", str(runs)], capsys)
    assert code == 2 and "needs --data" in err
    code, err = _cli(["train", "--resume", str(out), "--outdir", str(runs), "--data", "demo:16", "--channel-max", "32"],
                     capsys)
    assert code == 2 and "--channel-max 32 differs" in err  # the architecture is the imported one
    code, err = _cli(["train", "--resume", str(out), "--outdir", str(runs), "--data", "demo:16", "--kimg", "0.008",
                      "--batch", "8", "--gamma", "0.5", "--no-progress", "--device", "cpu", "--metrics", "none"], capsys)
    assert code == 0, err
    tuned = load_checkpoint(runs / "00000-stylegan2-demo-64")
    assert tuned["config"]["model_cfg"]["gamma"] == 0.5 and tuned["progress"]["nimg"] == 8
    moved = [not torch.equal(tuned["nets"]["G"][k], v) for k, v in state["nets"]["G"].items() if v.is_floating_point()]
    assert any(moved)


def test_import_refuses_what_it_cannot_rebuild_in_one_line(tmp_path, fake, capsys):
    pkl, _ = _our_official_pickle(tmp_path, fake, c_dim=2, d_mapping={"lr_multiplier": 0.5})
    code, err = _cli(["import-checkpoint", str(pkl), str(tmp_path / "x.pt")], capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "cannot reproduce: D.mapping_kwargs.lr_multiplier=0.5" in err  # our recipe's D mapping uses 0.01
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(f"cos\nsystem\n(S'touch {tmp_path / 'pwned'}'\ntR.".encode())
    code, err = _cli(["import-checkpoint", str(evil), str(tmp_path / "y.pt")], capsys)
    assert code == 2 and "os.system" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists() and not (tmp_path / "pwned").exists()


# ----------------------------------------------------------------------------------------------------------
# Round trip through our real networks.


def test_round_trip_of_our_networks_is_bit_exact(tmp_path, fake):
    """Our Generator / Discriminator, wrapped as an official pickle, come back identical (default classes)."""
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator

    E = fake.EasyDict
    synth = {"channel_base": 256, "channel_max": 16, "num_fp16_res": 2, "conv_clamp": 256}
    D_kwargs = {"c_dim": 2, "img_resolution": 16, "img_channels": 3, "channel_base": 256, "channel_max": 16,
                "block_kwargs": {}, "mapping_kwargs": {}, "epilogue_kwargs": {"mbstd_group_size": 2}}
    torch.manual_seed(2)
    G = Generator(z_dim=8, c_dim=2, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs={"num_layers": 2},
                  **synth).eval()
    D = Discriminator(**D_kwargs).eval()
    with torch.no_grad():  # make every tensor distinctive (noise strengths, w_avg and biases start constant)
        for t in list(G.state_dict().values()) + list(D.state_dict().values()):
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1)
    G_kwargs = E(z_dim=8, w_dim=8, mapping_kwargs=E(num_layers=2), synthesis_kwargs=E(synth), c_dim=2,
                 img_resolution=16, img_channels=3)
    path = tmp_path / "network-snapshot-000000.pkl"
    fake.dump(path, official_data(fake, G, D, G, G_kwargs, E(D_kwargs)), protocol=3)

    conv = oi.convert(oi.read_official_pickle(path))
    for key, net in (("G", G), ("D", D), ("G_ema", G)):
        sd = net.state_dict()
        assert list(conv["nets"][key]) == list(sd), key
        assert all(torch.equal(conv["nets"][key][k], v) for k, v in sd.items()), key
    G2, D2 = Generator(**conv["G_kwargs"]).eval(), Discriminator(**conv["D_kwargs"]).eval()
    G2.load_state_dict(conv["nets"]["G_ema"])
    D2.load_state_dict(conv["nets"]["D"])
    z, c = torch.randn([2, 8]), torch.eye(2)
    with torch.no_grad():
        img = G(z, c, noise_mode="const", force_fp32=True)
        assert torch.equal(G2(z, c, noise_mode="const", force_fp32=True), img)
        assert torch.equal(D2(img, c, force_fp32=True), D(img, c, force_fp32=True))
