"""Import NVlabs' TensorFlow-era StyleGAN2 pickles (the stylegan2 and stylegan2-ada TensorFlow releases) without
TensorFlow and without running any code from the file.

Such a file is `pickle.dump((G, D, Gs))` of three `dnnlib.tflib.network.Network` objects; each pickles as
`Network.__new__` + its `__getstate__`:

    {'version': 4 (stylegan2) | 5 (stylegan2-ada), 'name': 'G', 'static_kwargs': {resolution, fmap_base, ...},
     'components': {'mapping': Network, 'synthesis': Network}, 'build_module_src': <source, never executed here>,
     'build_func_name': 'G_main', 'variables': [(name, numpy array), ...], (v5: input/output shapes and names)}

`TFUnpickler` resolves only an allow-list of globals: the Network (to `TFNetworkRecord`, which keeps the state
as data), numpy arrays / dtypes / scalars (rebuilt from their raw bytes by numpy's `frombuffer`), `EasyDict` (a
dict), and refuses everything else by name. The variables are then mapped onto this project's networks, whose
state-dict names equal stylegan2-ada-pytorch's, following the mapping its `legacy.py` documents:

    G (own)       dlatent_avg                          -> mapping.w_avg        (lod: progressive-growing level,
                                                                                 must be 0; not a weight)
    G mapping     LabelEmbed/{weight,bias}             -> mapping.embed.*      (weight [in, out] -> [out, in])
                  Dense{i}/{weight,bias}               -> mapping.fc{i}.*
    G synthesis   4x4/Const/const [1, C, 4, 4]         -> synthesis.b4.const [C, 4, 4]
                  4x4/Conv, {r}x{r}/Conv0_up, Conv1    -> b4.conv1, b{r}.conv0, b{r}.conv1: weight [k, k, in, out]
                                                          -> [out, in, k, k] (Conv0_up and Skip also flipped in
                                                          space: TF's transposed conv), mod_weight -> affine.weight
                                                          (transposed), mod_bias + 1 -> affine.bias, noise_strength
                  noise{i} [1, 1, r, r]                -> the i-th layer's noise_const [r, r] (4x4: 0; b{r}.conv0:
                                                          2 log2 r - 5; b{r}.conv1: 2 log2 r - 4)
                  {r}x{r}/ToRGB, {r}x{r}/Skip          -> b{r}.torgb, b{r}.skip
    D             {r}x{r}/FromRGB, Conv0, Conv1_down, Skip -> b{r}.fromrgb, conv0, conv1, skip
                  4x4/Conv, 4x4/Dense0, Output         -> b4.conv, b4.fc, b4.out
                  LabelEmbed, Mapping{i}               -> mapping.embed, mapping.fc{i}

Every variable must be used and every tensor of ours provided, with the right shape; otherwise an
`ImportCheckpointError` names it. `static_kwargs` map as legacy.py maps them (fmap_base x 2 = channel_base,
mapping_layers, label_size = c_dim, architecture, mbstd_group_size, ...); an unknown kwarg is an error.
One deliberate difference: a D pickled without `mbstd_group_size` gets the default of the TF code that built it
(`D_stylegan2`, the stylegan2 release: 4; stylegan2-ada's `D_main`: the whole batch), where legacy.py always
uses the whole batch.

    read_tf_pickle(path)  -> {'G'|'D'|'G_ema': TFNetwork (kwargs, variables as numpy arrays)}
    convert_tf(tf_nets)   -> the same result as official_import.convert: our kwargs and state dicts
"""
from __future__ import annotations

import collections
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .official_import import (
    ImportCheckpointError,
    _build,
    _codecs_encode,
    _first_line,
    _list,
    _numpy_scalar,
    _NumpyDType,
    _our_kwargs,
    _plain,
    _StandIn,
)

__all__ = ["TFNetworkRecord", "TFUnpickler", "TF_ALLOWED_GLOBALS", "TFNetwork", "read_tf_pickle", "convert_tf",
           "tf_generator_kwargs", "tf_discriminator_kwargs"]


# ==========================================================================================================
# 1. The restricted unpickler.


class TFNetworkRecord:
    """What a pickled `dnnlib.tflib.network.Network` becomes: its pickled state (a dict), nothing callable."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        if getattr(self, "state", None) is not None:
            raise ImportCheckpointError("a TensorFlow Network is given its state twice; refusing it")
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise ImportCheckpointError(f"a TensorFlow Network's state is a {type(state).__name__}, expected a dict")
        self.state = state


class _NDArrayType:
    """Stand-in for the `numpy.ndarray` class, which pickles only as the first argument of `_reconstruct`."""

    __slots__ = ()


_NDARRAY = _NDArrayType()


class _ArrayRecord:
    """`numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')` + BUILD((version, shape, dtype, fortran, bytes)):
    the array rebuilt from its raw bytes by `np.frombuffer` (numeric dtypes only)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise ImportCheckpointError("a numpy array is given its data twice; refusing it")
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ImportCheckpointError("malformed numpy array state")
        _version, shape, dtype, fortran, raw = state
        if isinstance(raw, str):  # Python 2 pickles spell bytes as latin-1 text
            raw = raw.encode("latin1")
        self.array = _array_from_bytes(raw, dtype, shape, "F" if fortran is True else "C")


def _array_from_bytes(raw: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, _NumpyDType):
        raise ImportCheckpointError("malformed numpy array: its dtype is not a plain numeric type")
    if not (isinstance(shape, (tuple, list)) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                     for n in shape)):
        raise ImportCheckpointError("malformed numpy array: bad shape")
    if not isinstance(raw, (bytes, bytearray)) or order not in ("C", "F"):
        raise ImportCheckpointError("malformed numpy array: its data is not raw bytes")
    dt = dtype.to_numpy()
    if len(raw) != math.prod(shape) * dt.itemsize:
        raise ImportCheckpointError(f"malformed numpy array: {len(raw)} bytes for shape {list(shape)} of {dt}")
    return np.frombuffer(bytes(raw), dtype=dt).reshape(tuple(shape), order=order).copy()


def _reconstruct(subtype: Any, shape: Any = None, dtype: Any = None) -> _ArrayRecord:
    """Stand-in for `numpy.core.multiarray._reconstruct`: only plain ndarrays (no subclasses, no objects)."""
    if subtype is not _NDARRAY:
        raise ImportCheckpointError("numpy _reconstruct is only accepted for numpy.ndarray")
    return _ArrayRecord()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """Stand-in for `numpy.core.numeric._frombuffer` (how protocol 5 pickles arrays)."""
    return _array_from_bytes(buf, dtype, shape, order)


# (module, name) -> stand-in. Anything else is refused by name.
TF_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
    ("dnnlib.util", "EasyDict"): dict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _codecs_encode,
}


class TFUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only `TF_ALLOWED_GLOBALS` (to stand-ins) and no persistent IDs."""

    def __init__(self, file, source: str = "pickle"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        target = TF_ALLOWED_GLOBALS.get((module, name), None)
        if target is None:
            raise ImportCheckpointError(f"refusing to load {self.source}: it references {module}.{name}, "
                                        f"which is not a TensorFlow network, an array or a plain value")
        if target is TFNetworkRecord or target is _NDARRAY or (isinstance(target, type) and target is not _NumpyDType):
            return target  # the record class (NEWOBJ needs a class; it holds data only), a marker, builtin types
        return _StandIn(target)

    def persistent_load(self, pid):
        raise ImportCheckpointError(f"refusing to load {self.source}: it uses a persistent ID "
                                    f"({str(pid)[:60]!r}), which this importer does not understand")


# ==========================================================================================================
# 2. Reading: three networks, their kwargs and variables.


@dataclass
class TFNetwork:
    """One pickled network (with its components): build function, version, static kwargs, and every variable
    by its path as legacy.py names it ('mapping/Dense0/weight', 'synthesis/4x4/Conv/weight', 'dlatent_avg')."""

    func: str
    version: int
    kwargs: dict
    variables: dict[str, np.ndarray]


def read_tf_pickle(path: str | os.PathLike) -> dict[str, TFNetwork]:
    """{'G', 'D', 'G_ema'} of a TensorFlow-era pickle (the file's G, D, Gs), read with `TFUnpickler`."""
    path = Path(path)
    if not path.is_file():
        raise ImportCheckpointError(f"file does not exist: {path}")
    with open(path, "rb") as f:
        try:
            data = TFUnpickler(f, source=path.name).load()
        except ImportCheckpointError:
            raise
        except Exception as e:  # truncated or malformed pickles, calls with wrong arguments, ...
            raise ImportCheckpointError(f"cannot read {path.name}: {type(e).__name__}: {_first_line(e)}") from None
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)):
        raise ImportCheckpointError(f"{path.name} holds a {type(data).__name__}, expected the (G, D, Gs) tuple of "
                                    f"TensorFlow networks that NVlabs' TensorFlow pickles hold")
    return {key: _read_network(net, key) for key, net in zip(("G", "D", "G_ema"), data)}


def _read_network(record: TFNetworkRecord, key: str) -> TFNetwork:
    state = _state(record, key)
    version = state.get("version")
    if not isinstance(version, int) or version < 4:
        raise ImportCheckpointError(f"{key}: TensorFlow network pickle version {version!r} is older than StyleGAN2's "
                                    f"(4); StyleGAN1 and older networks are not supported")
    func = state.get("build_func_name")
    kwargs = state.get("static_kwargs")
    if not isinstance(func, str) or not isinstance(kwargs, dict):
        raise ImportCheckpointError(f"{key}: the TensorFlow network has no build_func_name or static_kwargs")
    variables: dict[str, np.ndarray] = {}
    _collect_variables(record, key, "", variables, set())
    return TFNetwork(func=func, version=version, kwargs=_plain(kwargs, f"{key}.static_kwargs"), variables=variables)


def _state(record: Any, where: str) -> dict:
    if not isinstance(record, TFNetworkRecord) or getattr(record, "state", None) is None:
        raise ImportCheckpointError(f"{where} is a {type(record).__name__}, expected a TensorFlow Network with state")
    return record.state


def _collect_variables(record: TFNetworkRecord, where: str, prefix: str, out: dict, seen: set) -> None:
    """Own variables as prefix + name, then each component's under prefix + component key + '/' (legacy.py)."""
    if id(record) in seen:
        raise ImportCheckpointError(f"{where} contains itself (a component cycle)")
    seen.add(id(record))
    state = _state(record, where)
    variables = state.get("variables")
    if not isinstance(variables, (list, tuple)):
        raise ImportCheckpointError(f"{where} has no list of variables")
    for item in variables:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str)):
            raise ImportCheckpointError(f"{where}: a variable is not a (name, value) pair")
        name, value = item
        if isinstance(value, _ArrayRecord) and value.array is not None:
            value = value.array
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = np.asarray(value, dtype=np.float32)
        if not isinstance(value, np.ndarray):
            raise ImportCheckpointError(f"{where}: variable {name} is a {type(value).__name__}, expected an array")
        out[prefix + name] = value
    components = state.get("components") or {}
    if not isinstance(components, dict):
        raise ImportCheckpointError(f"{where}: components is a {type(components).__name__}, expected a dict")
    for name, comp in components.items():
        if not isinstance(name, str):
            raise ImportCheckpointError(f"{where}: a component name is not a string")
        _collect_variables(comp, f"{where}/{name}", f"{prefix}{name}/", out, seen)
    seen.discard(id(record))


# ==========================================================================================================
# 3. Static kwargs -> stylegan2-ada-pytorch constructor kwargs (as legacy.py maps them; defaults left out).


class _Kwargs:
    """Reads TF static kwargs with defaults and remembers which names were asked for (legacy.py's `kwarg`)."""

    def __init__(self, net: TFNetwork, key: str):
        self.net, self.key, self.known = net, key, set()

    def __call__(self, name: str, default=None, none=None):
        self.known.add(name)
        value = self.net.kwargs.get(name, default)
        return value if value is not None else none

    def check_unknown(self, *ignored: str) -> None:
        self.known.update(ignored)
        unknown = sorted(set(self.net.kwargs) - self.known)
        if unknown:
            raise ImportCheckpointError(f"{self.key}: unknown TensorFlow kwarg(s) {', '.join(unknown)} (not a "
                                        f"StyleGAN2 config E/F network that this importer maps)")


def _without(d: dict, defaults: dict) -> dict:
    """`d` without the entries equal to the PyTorch constructors' defaults (so that our checks see only choices)."""
    return {k: v for k, v in d.items() if not (k in defaults and v == defaults[k])}


_MAPPING_DEFAULTS = dict(embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
                         w_avg_beta=0.995)
_SYNTHESIS_DEFAULTS = dict(num_fp16_res=0, conv_clamp=None, architecture="skip", resample_filter=[1, 3, 3, 1],
                           use_noise=True, activation="lrelu")
_D_BLOCK_DEFAULTS = dict(activation="lrelu", resample_filter=[1, 3, 3, 1], freeze_layers=0)
_D_MAPPING_DEFAULTS = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
                           lr_multiplier=0.01)
_D_EPILOGUE_DEFAULTS = dict(mbstd_num_channels=1, activation="lrelu")


def tf_generator_kwargs(net: TFNetwork, key: str = "G") -> dict:
    """A TF generator's static kwargs -> stylegan2-ada-pytorch `Generator` init_kwargs."""
    kw = _Kwargs(net, key)
    z_dim, w_dim = kw("latent_size", 512), kw("dlatent_size", 512)
    label_fmaps = kw("label_fmaps", None)
    mapping = dict(num_layers=kw("mapping_layers", 8),
                   # TF embeds labels to latent_size features by default, PyTorch to w_dim: say which
                   embed_features=label_fmaps if label_fmaps is not None else (None if z_dim == w_dim else z_dim),
                   layer_features=kw("mapping_fmaps", None), activation=kw("mapping_nonlinearity", "lrelu"),
                   lr_multiplier=kw("mapping_lrmul", 0.01), w_avg_beta=kw("w_avg_beta", 0.995, none=1))
    if mapping["layer_features"] == w_dim:
        mapping["layer_features"] = None
    synthesis = dict(channel_base=kw("fmap_base", 16384) * 2, channel_max=kw("fmap_max", 512),
                     num_fp16_res=kw("num_fp16_res", 0), conv_clamp=kw("conv_clamp", None),
                     architecture=kw("architecture", "skip"), resample_filter=list(kw("resample_kernel", [1, 3, 3, 1])),
                     use_noise=kw("use_noise", True), activation=kw("nonlinearity", "lrelu"))
    out = dict(z_dim=z_dim, c_dim=kw("label_size", 0), w_dim=w_dim, img_resolution=kw("resolution", 1024),
               img_channels=kw("num_channels", 3), mapping_kwargs=_without(mapping, _MAPPING_DEFAULTS),
               synthesis_kwargs=_without(synthesis, _SYNTHESIS_DEFAULTS))
    kw.check_unknown("truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure")
    return out


def tf_discriminator_kwargs(net: TFNetwork, key: str = "D") -> dict:
    """A TF discriminator's static kwargs -> stylegan2-ada-pytorch `Discriminator` init_kwargs."""
    kw = _Kwargs(net, key)
    c_dim = kw("label_size", 0)
    act = kw("nonlinearity", "lrelu")
    mbstd_default = 4 if net.func == "D_stylegan2" else None  # the TF code's own default (see the module doc)
    mbstd = kw("mbstd_group_size", mbstd_default)
    if mbstd is not None and mbstd <= 1:
        raise ImportCheckpointError(f"{key}: mbstd_group_size={mbstd} (no minibatch-stddev layer) is not supported")
    mapping_fmaps = kw("mapping_fmaps", None)
    out = dict(c_dim=c_dim, img_resolution=kw("resolution", 1024), img_channels=kw("num_channels", 3),
               architecture=kw("architecture", "resnet"), channel_base=kw("fmap_base", 16384) * 2,
               channel_max=kw("fmap_max", 512))
    extra = dict(num_fp16_res=kw("num_fp16_res", 0), conv_clamp=kw("conv_clamp", None), cmap_dim=mapping_fmaps)
    out.update(_without(extra, dict(num_fp16_res=0, conv_clamp=None, cmap_dim=None)))
    block = _without(dict(activation=act, resample_filter=list(kw("resample_kernel", [1, 3, 3, 1])),
                          freeze_layers=kw("freeze_layers", 0)), _D_BLOCK_DEFAULTS)
    if block:
        out["block_kwargs"] = block
    mapping = dict(num_layers=kw("mapping_layers", 0), embed_features=mapping_fmaps, layer_features=mapping_fmaps,
                   activation=act, lr_multiplier=kw("mapping_lrmul", 0.1))
    if not mapping["num_layers"]:  # only the embedding (learning rate 1): the mapping's own rate does not apply
        del mapping["lr_multiplier"], mapping["layer_features"]
    if c_dim:  # an unconditional D has no label mapping
        out["mapping_kwargs"] = _without(mapping, _D_MAPPING_DEFAULTS)
    out["epilogue_kwargs"] = dict(mbstd_group_size=mbstd, **_without(
        dict(mbstd_num_channels=kw("mbstd_num_features", 1), activation=act), _D_EPILOGUE_DEFAULTS))
    kw.check_unknown("structure")
    return out


# ==========================================================================================================
# 4. Variables -> our state dicts.



def _conv(v: np.ndarray) -> np.ndarray:  # [k, k, in, out] -> [out, in, k, k]
    return v.transpose(3, 2, 0, 1)


def _conv_flipped(v: np.ndarray) -> np.ndarray:  # TF's transposed (upsampling) conv: also flip the kernel
    return v[::-1, ::-1].transpose(3, 2, 0, 1)


def _fc(v: np.ndarray) -> np.ndarray:  # [in, out] -> [out, in]
    return v.transpose()


def _same(v: np.ndarray) -> np.ndarray:
    return v


def _layer(scope: str, param: str, flipped: bool = False, noise: int | None = None) -> tuple[str, Callable]:
    """(TF variable name, transform) of one parameter of a conv / modulated conv layer at `scope`."""
    if param == "weight":
        return f"{scope}/weight", _conv_flipped if flipped else _conv
    if param == "affine.weight":
        return f"{scope}/mod_weight", _fc
    if param == "affine.bias":
        return f"{scope}/mod_bias", lambda v: v + 1
    if param == "noise_const" and noise is not None:
        return f"synthesis/noise{noise}", lambda v: v[0, 0]
    if param in ("bias", "noise_strength"):
        return f"{scope}/{param}", _same
    raise KeyError(param)


def _generator_source(name: str) -> tuple[str, Callable]:
    """Our Generator tensor name -> (TF variable, transform); KeyError if none maps to it."""
    if name == "mapping.w_avg":
        return "dlatent_avg", _same
    m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name)
    if m:
        scope = "mapping/LabelEmbed" if m.group(1) == "embed" else f"mapping/Dense{m.group(2)}"
        return f"{scope}/{m.group(3)}", _fc if m.group(3) == "weight" else _same
    if name == "synthesis.b4.const":
        return "synthesis/4x4/Const/const", lambda v: v[0]
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb|skip)\.(.+)", name)
    if m:
        r, layer, param = int(m.group(1)), m.group(2), m.group(3)
        log2 = int(math.log2(r))
        if r == 4 and layer == "conv1":
            return _layer("synthesis/4x4/Conv", param, noise=0)
        scope = f"synthesis/{r}x{r}/" + {"conv0": "Conv0_up", "conv1": "Conv1", "torgb": "ToRGB", "skip": "Skip"}[layer]
        noise = {"conv0": 2 * log2 - 5, "conv1": 2 * log2 - 4}.get(layer)
        return _layer(scope, param, flipped=layer in ("conv0", "skip"), noise=noise)
    raise KeyError(name)


def _discriminator_source(name: str) -> tuple[str, Callable]:
    """Our Discriminator tensor name -> (TF variable, transform); KeyError if none maps to it."""
    m = re.fullmatch(r"mapping\.(embed|fc(\d+))\.(weight|bias)", name)
    if m:
        scope = "LabelEmbed" if m.group(1) == "embed" else f"Mapping{m.group(2)}"
        return f"{scope}/{m.group(3)}", _fc if m.group(3) == "weight" else _same
    m = re.fullmatch(r"b4\.(conv|fc|out)\.(weight|bias)", name)
    if m:
        scope = {"conv": "4x4/Conv", "fc": "4x4/Dense0", "out": "Output"}[m.group(1)]
        transform = {"conv": _conv, "fc": _fc, "out": _fc}[m.group(1)] if m.group(2) == "weight" else _same
        return f"{scope}/{m.group(2)}", transform
    m = re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)", name)
    if m:
        r = m.group(1)
        scope = {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip"}[m.group(2)]
        return f"{r}x{r}/{scope}/{m.group(3)}", _conv if m.group(3) == "weight" else _same
    raise KeyError(name)


# TF variables that are not weights of the network: the progressive-growing level (stylegan2's G_main), 0 when done.
_NOT_WEIGHTS = {"lod"}


def _fill(net: torch.nn.Module, tf_net: TFNetwork, source: Callable[[str], tuple[str, Callable]], key: str) -> dict:
    """Our state dict for `net` from the TF variables; every variable used, every tensor given, shapes equal."""
    ours = net.state_dict()
    out, used, missing, shapes = collections.OrderedDict(), set(), [], []
    for name, tensor in ours.items():
        if name.endswith("resample_filter"):  # a fixed filter made from resample_kernel, not a variable
            out[name] = tensor.detach().clone()
            continue
        try:
            tf_name, transform = source(name)
        except KeyError:
            raise ImportCheckpointError(f"{key}: no TensorFlow variable maps to our {name}") from None
        if tf_name not in tf_net.variables:
            missing.append(f"{tf_name} (for {name})")
            continue
        used.add(tf_name)
        value = np.array(transform(tf_net.variables[tf_name]), dtype=np.float32, order="C")  # keeps 0-d shapes
        if tuple(value.shape) != tuple(tensor.shape):
            shapes.append(f"{tf_name} gives {list(value.shape)}, our {name} is {list(tensor.shape)}")
            continue
        out[name] = torch.from_numpy(value).to(tensor.dtype)
    unknown = []
    for tf_name, value in tf_net.variables.items():
        if tf_name in used:
            continue
        if tf_name in _NOT_WEIGHTS and value.size == 1 and float(value.reshape(-1)[0]) == 0:
            continue
        unknown.append(tf_name)
    problems = []
    if missing:
        problems.append(f"missing {_list(missing)}")
    if unknown:
        problems.append(f"unknown variable(s) {_list(sorted(unknown))}")
    if shapes:
        problems.append(f"shape mismatch {_list(shapes)}")
    if problems:
        raise ImportCheckpointError(f"{key} ({tf_net.func}) does not match our {type(net).__name__}: "
                                    f"{'; '.join(problems)}")
    for name, value in out.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ImportCheckpointError(f"{key}: {name} holds NaN or infinite values")
    net.load_state_dict(out, strict=True)
    return out


def convert_tf(tf_nets: dict[str, TFNetwork]) -> dict:
    """`read_tf_pickle`'s result -> {'G_kwargs', 'D_kwargs', 'nets': {'G', 'D', 'G_ema'}, 'training_set_kwargs':
    None, 'official_kwargs': {'G', 'D'}} exactly like `official_import.convert`: our constructor kwargs and state
    dicts (plus the stylegan2-ada-pytorch init_kwargs they correspond to)."""
    from .discriminator import Discriminator
    from .generator import Generator

    official_G = tf_generator_kwargs(tf_nets["G"], "G")
    if tf_generator_kwargs(tf_nets["G_ema"], "Gs") != official_G:
        raise ImportCheckpointError("G and Gs were built with different static kwargs")
    official_D = tf_discriminator_kwargs(tf_nets["D"], "D")
    G_kwargs = _our_kwargs(Generator, official_G, "G", flatten="synthesis_kwargs")
    D_kwargs = _our_kwargs(Discriminator, official_D, "D")
    nets = {}
    for key, cls, kwargs, source in (("G", Generator, G_kwargs, _generator_source),
                                     ("D", Discriminator, D_kwargs, _discriminator_source),
                                     ("G_ema", Generator, G_kwargs, _generator_source)):
        nets[key] = _fill(_build(cls, kwargs, key), tf_nets[key], source, "Gs" if key == "G_ema" else key)
    return {"G_kwargs": G_kwargs, "D_kwargs": D_kwargs, "nets": nets, "training_set_kwargs": None,
            "official_kwargs": {"G": official_G, "D": official_D}}
