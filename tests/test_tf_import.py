"""Importing TensorFlow-era StyleGAN2 pickles (NVlabs' stylegan2 / stylegan2-ada TensorFlow releases) without
TensorFlow and without running their code.

The pickles are synthetic: a test-local class registered as `dnnlib.tflib.network.Network` only while pickling,
whose state is what that class's `__getstate__` writes (version, name, static_kwargs, components,
build_module_src, build_func_name, variables), with variables named as NVlabs' TF networks name them (written
out below from the TF code's scopes, independently of the importer). Where stylegan2-ada-pytorch's checkout is
available, its legacy.py converts the same variables and the networks' outputs must agree.
"""
from __future__ import annotations

import contextlib
import math
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan_anime.stylegan2 import tf_import as ti
from stylegan_anime.stylegan2.import_pickle import import_pickle, sniff_format
from stylegan_anime.stylegan2.official_import import ImportCheckpointError

REFERENCE = Path(os.environ.get("STYLEGAN2_ADA_PYTORCH") or Path(__file__).resolve().parents[1] /
                 ".reference" / "stylegan2-ada-pytorch")
needs_reference = pytest.mark.skipif(not (REFERENCE / "legacy.py").is_file(),
                                     reason="stylegan2-ada-pytorch checkout not available")

RES, Z, BASE, CMAX, MAP = 32, 16, 128, 16, 2  # fmap_base = channel_base / 2 = 128 -> channels min(256 / r, 16)


def nf(r: int) -> int:
    return min(2 * BASE // r, CMAX)


# ----------------------------------------------------------------------------------------------------------
# Synthetic TF networks.


def _rng(seed):
    return np.random.default_rng(seed)


def tf_generator_vars(rng, res=RES, label_size=0, g_arch="skip", lod=True):
    """{component: {variable: array}} of G_main / G_mapping / G_synthesis (stylegan2-ada and stylegan2 TF)."""
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    own = {"dlatent_avg": f(Z)}
    if lod:
        own["lod"] = np.zeros([], np.float32)  # stylegan2's G_main has it (a scalar, 0 once grown)
    mapping = {}
    if label_size:
        mapping.update({"LabelEmbed/weight": f(label_size, Z), "LabelEmbed/bias": f(Z) * 0.1})
    for i in range(MAP):
        mapping[f"Dense{i}/weight"] = f((2 if label_size and i == 0 else 1) * Z, Z) * 100  # lrmul 0.01
        mapping[f"Dense{i}/bias"] = f(Z) * 0.1
    synthesis = {}
    log2 = int(math.log2(res))
    for i in range(2 * log2 - 3):  # num_layers - 1 noise inputs, layer i at resolution 2 ** ((i + 5) // 2)
        r = 2 ** ((i + 5) // 2)
        synthesis[f"noise{i}"] = f(1, 1, r, r)

    def layer(scope, cin, cout, k=3):
        synthesis.update({f"{scope}/weight": f(k, k, cin, cout), f"{scope}/bias": f(cout) * 0.1,
                          f"{scope}/noise_strength": np.asarray(rng.standard_normal() * 0.1, np.float32),
                          f"{scope}/mod_weight": f(Z, cin), f"{scope}/mod_bias": f(cin) * 0.1})

    def torgb(scope, cin):
        synthesis.update({f"{scope}/weight": f(1, 1, cin, 3), f"{scope}/bias": f(3) * 0.1,
                          f"{scope}/mod_weight": f(Z, cin), f"{scope}/mod_bias": f(cin) * 0.1})

    synthesis["4x4/Const/const"] = f(1, nf(4), 4, 4)
    layer("4x4/Conv", nf(4), nf(4))
    if g_arch == "skip":
        torgb("4x4/ToRGB", nf(4))
    for log in range(3, log2 + 1):
        r = 2 ** log
        layer(f"{r}x{r}/Conv0_up", nf(r // 2), nf(r))
        layer(f"{r}x{r}/Conv1", nf(r), nf(r))
        if g_arch == "resnet":
            synthesis[f"{r}x{r}/Skip/weight"] = f(1, 1, nf(r // 2), nf(r))
        if g_arch == "skip" or r == res:
            torgb(f"{r}x{r}/ToRGB", nf(r))
    return {"": own, "mapping": mapping, "synthesis": synthesis}


def tf_discriminator_vars(rng, res=RES, label_size=0, arch="resnet", cmap=None):
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    v = {}
    log2 = int(math.log2(res))
    for log in range(log2, 2, -1):
        r = 2 ** log
        if arch == "skip" or r == res:
            v.update({f"{r}x{r}/FromRGB/weight": f(1, 1, 3, nf(r)), f"{r}x{r}/FromRGB/bias": f(nf(r)) * 0.1})
        v.update({f"{r}x{r}/Conv0/weight": f(3, 3, nf(r), nf(r)), f"{r}x{r}/Conv0/bias": f(nf(r)) * 0.1,
                  f"{r}x{r}/Conv1_down/weight": f(3, 3, nf(r), nf(r // 2)),
                  f"{r}x{r}/Conv1_down/bias": f(nf(r // 2)) * 0.1})
        if arch == "resnet":
            v[f"{r}x{r}/Skip/weight"] = f(1, 1, nf(r), nf(r // 2))
    c4 = nf(4)
    v.update({"4x4/Conv/weight": f(3, 3, c4 + 1, c4), "4x4/Conv/bias": f(c4) * 0.1,
              "4x4/Dense0/weight": f(c4 * 16, c4), "4x4/Dense0/bias": f(c4) * 0.1})
    out_dim = (cmap or c4) if label_size else 1
    v.update({"Output/weight": f(c4, out_dim), "Output/bias": f(out_dim) * 0.1})
    if label_size:
        v.update({"LabelEmbed/weight": f(label_size, cmap or c4), "LabelEmbed/bias": f(cmap or c4) * 0.1})
    return {"": v}


def G_kwargs(**extra):
    return {**dict(num_channels=3, resolution=RES, label_size=0, latent_size=Z, dlatent_size=Z, fmap_base=BASE,
                   fmap_max=CMAX, mapping_layers=MAP), **extra}


def D_kwargs(**extra):
    return {**dict(num_channels=3, resolution=RES, label_size=0, fmap_base=BASE, fmap_max=CMAX), **extra}


class FakeTF:
    """Registers `dnnlib.tflib.network.Network` (a test-local class) in sys.modules while pickling."""

    MODULES = ("dnnlib", "dnnlib.tflib", "dnnlib.tflib.network")

    def __init__(self, sentinel):
        self.module_src = f"open({str(sentinel)!r}, 'w').write('executed')\ndef G_main(*a, **k): pass\n"

        class Network:
            def __init__(self, state):
                self._state = state

            def __getstate__(self):
                return self._state

            def __setstate__(self, state):  # never used by the importer
                raise AssertionError("executed!")

        Network.__module__ = "dnnlib.tflib.network"
        Network.__qualname__ = Network.__name__ = "Network"
        self.Network = Network

    def network(self, name, func, kwargs, variables, components=None, version=4):
        state = dict(version=version, name=name, static_kwargs=dict(kwargs), components=dict(components or {}),
                     build_module_src=self.module_src, build_func_name=func,
                     variables=list(variables.items()))
        if version >= 5:
            state.update(input_shapes=[[None, Z]], output_shapes=[[None, 3, RES, RES]], input_names=["latents_in"],
                         output_names=["images_out"])
        return self.Network(state)

    def generator(self, name, kwargs, vars_by_component, func="G_main"):
        comps = {c: self.network(f"G_{c}", f"G_{c}", kwargs, vars_by_component[c])
                 for c in ("mapping", "synthesis")}
        return self.network(name, func, kwargs, vars_by_component[""], comps)

    def discriminator(self, kwargs, vars_by_component, func="D_main"):
        return self.network("D", func, kwargs, vars_by_component[""])

    @contextlib.contextmanager
    def registered(self):
        assert not any(m in sys.modules for m in self.MODULES)
        mods = [types.ModuleType(m) for m in self.MODULES]
        mods[0].tflib, mods[1].network, mods[2].Network = mods[1], mods[2], self.Network
        sys.modules.update(zip(self.MODULES, mods))
        try:
            yield
        finally:
            for m in self.MODULES:
                sys.modules.pop(m, None)

    def dump(self, path, obj, protocol=3):
        with self.registered():
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
        return path


@pytest.fixture
def fake(tmp_path):
    f = FakeTF(tmp_path / "SENTINEL-executed")
    yield f
    assert not (tmp_path / "SENTINEL-executed").exists(), "build_module_src was executed"


def tf_pickle(fake, path, gk=None, dk=None, g_vars=None, d_vars=None, protocol=3, d_func="D_main"):
    rng = _rng(0)
    g_vars = g_vars or tf_generator_vars(rng)
    d_vars = d_vars or tf_discriminator_vars(rng)
    gs_vars = {c: {k: v if k == "lod" else v + 0.5 for k, v in vs.items()} for c, vs in g_vars.items()}  # Gs
    gk, dk = gk or G_kwargs(), dk or D_kwargs(architecture="resnet", mbstd_group_size=4)
    obj = (fake.generator("G", gk, g_vars), fake.discriminator(dk, d_vars, d_func), fake.generator("Gs", gk, gs_vars))
    fake.dump(path, obj, protocol)
    return path, g_vars, d_vars, gs_vars


# ----------------------------------------------------------------------------------------------------------
# Reading and mapping.


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_maps_every_variable_with_legacy_transforms(tmp_path, fake, protocol):
    from stylegan_anime.training.checkpoint import load_checkpoint

    path, g, d, gs = tf_pickle(fake, tmp_path / "anime-512.pkl", protocol=protocol)
    assert sniff_format(path) == "tensorflow"
    summary = import_pickle(path, tmp_path / "out.pt")
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert (summary.format, summary.resolution, summary.num_classes) == ("tensorflow", RES, 0)
    assert "TensorFlow (stylegan2 / stylegan2-ada) pickle, 32 px, unconditional" in summary.line("x")
    state = load_checkpoint(tmp_path / "out.pt")
    cfg = state["config"]["model_cfg"]
    assert (cfg["z_dim"], cfg["map_layers"], cfg["channel_base"], cfg["channel_max"], cfg["mbstd_group"],
            cfg["d_architecture"]) == (Z, MAP, 2 * BASE, CMAX, 4, "resnet")
    G, Gs, D = state["nets"]["G"], state["nets"]["G_ema"], state["nets"]["D"]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    s, m = g["synthesis"], g["mapping"]
    assert torch.equal(G["mapping.w_avg"], t(g[""]["dlatent_avg"]))
    assert torch.equal(G["mapping.fc1.weight"], t(m["Dense1/weight"].T))
    assert torch.equal(G["synthesis.b4.const"], t(s["4x4/Const/const"][0]))
    assert torch.equal(G["synthesis.b4.conv1.noise_const"], t(s["noise0"][0, 0]))
    assert torch.equal(G["synthesis.b16.conv0.weight"], t(s["16x16/Conv0_up/weight"][::-1, ::-1].transpose(3, 2, 0, 1)))
    assert torch.equal(G["synthesis.b16.conv0.noise_const"], t(s["noise3"][0, 0]))  # 2 log2(16) - 5
    assert torch.equal(G["synthesis.b32.conv1.noise_const"], t(s["noise6"][0, 0]))  # 2 log2(32) - 4
    assert torch.equal(G["synthesis.b16.conv1.weight"], t(s["16x16/Conv1/weight"].transpose(3, 2, 0, 1)))
    assert torch.equal(G["synthesis.b8.conv1.affine.bias"], t(s["8x8/Conv1/mod_bias"] + 1))
    assert torch.equal(G["synthesis.b8.torgb.affine.weight"], t(s["8x8/ToRGB/mod_weight"].T))
    assert float(G["synthesis.b8.conv0.noise_strength"]) == float(s["8x8/Conv0_up/noise_strength"])
    assert torch.equal(Gs["synthesis.b32.torgb.weight"], t(gs["synthesis"]["32x32/ToRGB/weight"].transpose(3, 2, 0, 1)))
    assert torch.equal(D["b32.fromrgb.weight"], t(d[""]["32x32/FromRGB/weight"].transpose(3, 2, 0, 1)))
    assert torch.equal(D["b16.conv1.weight"], t(d[""]["16x16/Conv1_down/weight"].transpose(3, 2, 0, 1)))
    assert torch.equal(D["b8.skip.weight"], t(d[""]["8x8/Skip/weight"].transpose(3, 2, 0, 1)))
    assert torch.equal(D["b4.fc.weight"], t(d[""]["4x4/Dense0/weight"].T))
    assert torch.equal(D["b4.out.bias"], t(d[""]["Output/bias"]))


def _expect(fake, tmp_path, match, **kw):
    path, *_ = tf_pickle(fake, tmp_path / "x.pkl", **kw)
    with pytest.raises(ImportCheckpointError, match=match) as e:
        import_pickle(path, tmp_path / "x.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "x.pt").exists()


def test_unknown_missing_or_misshapen_variables_are_named(tmp_path, fake):
    g = tf_generator_vars(_rng(1))
    g["synthesis"]["8x8/Conv1/magic"] = np.zeros(3, np.float32)
    _expect(fake, tmp_path,
            r"^G \(G_main\) does not match our Generator: unknown variable\(s\) synthesis/8x8/Conv1/magic$", g_vars=g)
    g = tf_generator_vars(_rng(1))
    del g["synthesis"]["noise2"]
    _expect(fake, tmp_path, r"missing synthesis/noise2 \(for synthesis\.b8\.conv1\.noise_const\)", g_vars=g)
    d = tf_discriminator_vars(_rng(1))
    d[""]["4x4/Dense0/bias"] = np.zeros(5, np.float32)
    _expect(fake, tmp_path, r"^D \(D_main\) .*shape mismatch 4x4/Dense0/bias gives \[5\], our b4\.fc\.bias is \[16\]",
            d_vars=d)
    g = tf_generator_vars(_rng(1))
    g[""]["lod"] = np.ones([], np.float32)  # still growing: not a finished StyleGAN2
    _expect(fake, tmp_path, r"unknown variable\(s\) lod", g_vars=g)


def test_unknown_kwargs_and_old_versions_are_named(tmp_path, fake):
    _expect(fake, tmp_path, r"^G: unknown TensorFlow kwarg\(s\) fmap_decay ", gk=G_kwargs(fmap_decay=0.5))
    _expect(fake, tmp_path, r"^D: unknown TensorFlow kwarg\(s\) use_magic", dk=D_kwargs(use_magic=True))
    _expect(fake, tmp_path, r"^cannot import x\.pkl: settings this StyleGAN2 cannot reproduce: "
                            r"G\.mapping_kwargs\.lr_multiplier=0\.1$",
            gk=G_kwargs(mapping_lrmul=0.1))  # mapped, but our recipe cannot rebuild it: named
    path = tmp_path / "old.pkl"
    fake.dump(path, (fake.network("G", "G_main", {}, {}, version=3),) * 3)
    with pytest.raises(ImportCheckpointError, match=r"^G: TensorFlow network pickle version 3 is older"):
        import_pickle(path, tmp_path / "x.pt")


def test_mbstd_default_follows_the_tf_code_that_built_d(tmp_path, fake):
    for func, expected in (("D_stylegan2", 4), ("D_main", None)):
        path, *_ = tf_pickle(fake, tmp_path / f"{func}.pkl", dk=D_kwargs(architecture="resnet"), d_func=func)
        conv = ti.convert_tf(ti.read_tf_pickle(path))
        assert conv["D_kwargs"]["epilogue_kwargs"]["mbstd_group_size"] == expected


class Reduce:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def test_any_other_global_is_refused_in_one_line(tmp_path, fake, capsys):
    from stylegan_anime.cli import main

    sentinel = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    gk = G_kwargs(truncation_psi=Reduce(os.system, f"touch {sentinel}"))
    tf_pickle(fake, evil, gk=gk)
    with pytest.raises(ImportCheckpointError, match=rf"^refusing to load evil\.pkl: it references "
                                                    rf"{os.system.__module__}\.system"):
        import_pickle(evil, tmp_path / "x.pt")
    with pytest.raises(ImportCheckpointError, match=r"references builtins\.print"):
        ti.read_tf_pickle(fake.dump(tmp_path / "p.pkl", (Reduce(print, "printed!"),)))
    with pytest.raises(ImportCheckpointError, match=r"^numpy _reconstruct is only accepted for numpy\.ndarray"):
        ti.read_tf_pickle(fake.dump(tmp_path / "r.pkl", Reduce(np.zeros(1).__reduce__()[0], "x")))
    with pytest.raises(SystemExit) as e:
        main(["import-checkpoint", str(evil), str(tmp_path / "y.pt")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: refusing to load evil.pkl") and err.count("\n") == 1
    assert not sentinel.exists() and not (tmp_path / "y.pt").exists()
    assert "printed!" not in capsys.readouterr().out


def test_files_of_neither_format_are_one_line(tmp_path):
    junk, plain = tmp_path / "junk.pkl", tmp_path / "plain.pkl"
    junk.write_bytes(b"PK\x03\x04 not a pickle")
    plain.write_bytes(pickle.dumps({"G": [1.0, 2.0]}))
    with pytest.raises(ImportCheckpointError, match=r"^cannot read junk\.pkl: it is not a pickle"):
        sniff_format(junk)
    with pytest.raises(ImportCheckpointError, match=r"^plain\.pkl is neither a stylegan2-ada-pytorch nor a TensorFlow"):
        import_pickle(plain, tmp_path / "x.pt")
    path = tmp_path / "tuple.pkl"  # TF-looking, but not the (G, D, Gs) tuple
    path.write_bytes(b"cdnnlib.tflib.network\nNetwork\n)\x81.")
    assert sniff_format(path) == "tensorflow"
    with pytest.raises(ImportCheckpointError, match=r"^tuple\.pkl holds a TFNetworkRecord, expected the \(G, D, Gs\)"):
        import_pickle(path, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_cli_says_what_it_found(tmp_path, fake, capsys):
    from stylegan_anime.cli import main

    path, *_ = tf_pickle(fake, tmp_path / "portraits.pkl")
    with pytest.raises(SystemExit) as e:
        main(["import-checkpoint", str(path), str(tmp_path / "p.pt")])
    err = capsys.readouterr().err
    assert e.value.code == 0, err
    assert err.strip() == (f"imported {path} (TensorFlow (stylegan2 / stylegan2-ada) pickle, 32 px, unconditional) "
                           f"-> {tmp_path / 'p.pt'}")

    from PIL import Image

    from stylegan_anime.generate import seed_latents
    from stylegan_anime.imageio_utils import to_uint8
    from stylegan_anime.stylegan2.generator import Generator

    with pytest.raises(SystemExit) as e:  # the imported model draws what the converted Gs draws
        main(["generate", "--checkpoint", str(tmp_path / "p.pt"), "--seeds", "5", "--grid", str(tmp_path / "g.png"),
              "--device", "cpu"])
    assert e.value.code == 0, capsys.readouterr().err
    conv = ti.convert_tf(ti.read_tf_pickle(path))
    G = Generator(**conv["G_kwargs"]).eval()
    G.load_state_dict(conv["nets"]["G_ema"])
    with torch.no_grad():
        ref = to_uint8(G(seed_latents([5], Z), torch.zeros([1, 0]), noise_mode="const"))[0]
    got = np.asarray(Image.open(tmp_path / "g.png")).astype(int)
    assert np.abs(got - ref).max() <= 1 and ref.std() > 5
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["generate", "--checkpoint", str(tmp_path / "p.pt"), "--seeds", "5", "--grid", str(tmp_path / "h.png"),
              "--device", "cpu", "--class", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--class needs a class-conditional model" in err and err.count("\n") == 1


def test_conditional_stylegan2_ada_tf_pickle_becomes_class_conditional(tmp_path, fake):
    from stylegan_anime.training.checkpoint import load_checkpoint

    rng = _rng(7)
    g, d = tf_generator_vars(rng, label_size=10, lod=False), tf_discriminator_vars(rng, label_size=10, arch="orig")
    path, *_ = tf_pickle(fake, tmp_path / "cifar10.pkl", gk=G_kwargs(label_size=10), g_vars=g, d_vars=d,
                         dk=D_kwargs(label_size=10, architecture="orig", mbstd_group_size=32))
    summary = import_pickle(path, tmp_path / "cifar.pt")
    assert (summary.format, summary.num_classes) == ("tensorflow", 10)
    state = load_checkpoint(tmp_path / "cifar.pt")
    cfg = state["config"]["model_cfg"]
    assert (cfg["num_classes"], cfg["d_map_layers"], cfg["d_architecture"], cfg["mbstd_group"]) == (10, 0, "orig", 32)
    D, G = state["nets"]["D"], state["nets"]["G_ema"]
    assert not any(k.startswith("mapping.fc") for k in D)  # TF's D embeds the label with no further layers
    assert torch.equal(D["mapping.embed.weight"], torch.from_numpy(d[""]["LabelEmbed/weight"].T.copy()))
    assert torch.equal(D["b4.out.weight"], torch.from_numpy(d[""]["Output/weight"].T.copy()))
    assert torch.equal(G["mapping.embed.weight"], torch.from_numpy(g["mapping"]["LabelEmbed/weight"].T + 0.5))


# ----------------------------------------------------------------------------------------------------------
# Against stylegan2-ada-pytorch's legacy.py (only where that checkout is available).


@contextlib.contextmanager
def imported_legacy():
    """stylegan2-ada-pytorch's legacy module, imported in this process; its modules are removed afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(REFERENCE))
    try:
        import legacy as module
        yield module
    finally:
        sys.path.remove(str(REFERENCE))
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("legacy", "dnnlib", "torch_utils", "training", "metrics"):
                del sys.modules[name]


def _stub(legacy, net: ti.TFNetwork, components: dict) -> object:
    """Their `_TFNetworkStub` (what their unpickler makes of a Network) with the same kwargs and variables."""
    stub = legacy._TFNetworkStub(version=net.version, static_kwargs=legacy.dnnlib.EasyDict(net.kwargs),
                                 components=legacy.dnnlib.EasyDict(), variables=[])
    for name, value in net.variables.items():
        comp, _, rest = name.partition("/")
        if comp in components and rest:
            components[comp].variables.append((rest, value))
        else:
            stub.variables.append((name, value))
    stub.components.update(components)
    return stub


@needs_reference
@pytest.mark.parametrize("g_arch,d_arch,labels", [("skip", "resnet", 0), ("resnet", "orig", 0), ("skip", "orig", 10)])
def test_outputs_equal_legacy_conversion(tmp_path, fake, g_arch, d_arch, labels):
    from stylegan_anime.stylegan2.discriminator import Discriminator
    from stylegan_anime.stylegan2.generator import Generator

    rng = _rng(5)
    g_vars = tf_generator_vars(rng, g_arch=g_arch, lod=False, label_size=labels)
    d_vars = tf_discriminator_vars(rng, arch=d_arch, label_size=labels)
    gk = G_kwargs(architecture=g_arch, label_size=labels)
    dk = D_kwargs(architecture=d_arch, mbstd_group_size=2, label_size=labels)
    path, *_ = tf_pickle(fake, tmp_path / "n.pkl", gk=gk, dk=dk, g_vars=g_vars, d_vars=d_vars)
    nets = ti.read_tf_pickle(path)
    conv = ti.convert_tf(nets)
    with imported_legacy() as legacy:
        theirs_G, theirs_D = _legacy_networks(legacy, nets)
    G, D = Generator(**conv["G_kwargs"]).eval(), Discriminator(**conv["D_kwargs"]).eval()
    G.load_state_dict(conv["nets"]["G_ema"])
    D.load_state_dict(conv["nets"]["D"])
    z = torch.from_numpy(rng.standard_normal([4, Z]).astype(np.float32))
    c = torch.eye(labels)[[1, 4, 4, 9]] if labels else torch.zeros([4, 0])  # one-hot class labels
    with torch.no_grad():
        ref_img = theirs_G(z, c, truncation_psi=0.8, noise_mode="const", force_fp32=True)
        img = G(z, c, truncation_psi=0.8, noise_mode="const", force_fp32=True)
        assert (img - ref_img).abs().max() < 1e-4
        assert (D(ref_img, c) - theirs_D(ref_img, c)).abs().max() < 1e-4
    assert ref_img.std() > 0.05  # a picture, not a constant


def _legacy_networks(legacy, nets):
    """Their convert_tf_generator(Gs) / convert_tf_discriminator(D) on the same kwargs and variables."""

    def component(name, func):
        return legacy._TFNetworkStub(version=4, static_kwargs=legacy.dnnlib.EasyDict(), components={},
                                     variables=[], name=name, build_func_name=func)

    theirs_G = legacy.convert_tf_generator(_stub(legacy, nets["G_ema"], {"mapping": component("G_mapping", "x"),
                                                                         "synthesis": component("G_synthesis", "x")}))
    theirs_D = legacy.convert_tf_discriminator(_stub(legacy, nets["D"], {}))
    return theirs_G, theirs_D
