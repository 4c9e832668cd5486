"""Import official stylegan2-ada-pytorch network pickles without importing or running their code.

An official `network-snapshot-NNNNNN.pkl` is a plain `pickle.dump` of

    {'training_set_kwargs': dict, 'G': Generator, 'D': Discriminator, 'G_ema': Generator,
     'augment_pipe': AugmentPipe | None}

whose networks are "persistent" objects (`torch_utils.persistence`): each one, and each of its submodules,
pickles as a call `torch_utils.persistence._reconstruct_persistent_obj(meta)` with

    meta = {'type': 'class', 'version': 6, 'module_src': <source code of training/networks.py>,
            'class_name': 'Generator', 'state': <the module's __dict__: _parameters, _buffers, _modules,
            _non_persistent_buffers_set, hooks, training, _init_args, _init_kwargs, plain attributes>}

Loading such a file with `pickle.load` would `exec` `module_src`, i.e. run whatever code the file carries.
This module never does: `RestrictedUnpickler` maps an explicit allow-list of globals to stand-ins written
here (the persistent-object hook becomes a `PersistentRecord`, `dnnlib.util.EasyDict` a `dict`, tensors and
storages are rebuilt through torch's weights-only machinery) and refuses everything else by name.

Pipeline:

    read_official_pickle(path)   -> {'G'|'D'|'G_ema': {'class_name', 'init_kwargs', 'state_dict'},
                                     'training_set_kwargs': dict}          (tensors and plain values only)
    convert(official)            -> {'G_kwargs', 'D_kwargs', 'nets': {'G', 'D', 'G_ema'}, ...}
                                    (this project's constructor kwargs and state dicts, checked key by key)
    import_pickle.import_pickle(pkl, out) -> writes a checkpoint that `training.checkpoint.load_checkpoint` reads
                                    (import_pickle.py; TensorFlow-era pickles: tf_import.py)

Our `Generator` / `Discriminator` take the same constructor arguments and use the same state-dict names
and shapes as stylegan2-ada-pytorch's `training/networks.py`, so the mapping is 1:1, but it is still
verified: every official tensor must exist in ours with the same shape, and every tensor of ours must be
provided.

Conditional networks (c_dim > 0, e.g. the class-conditional CIFAR-10 models: a label embedding in G's mapping,
D's label mapping and projection head) map the same way; `recipe.config_from_official` makes them class-conditional.
TensorFlow-era pickles are read by tf_import.py; import_pickle.py tells the formats apart and writes the checkpoint.

Length (~520 lines): the restricted unpickler lists and rebuilds every class NVlabs' pickles name; the
allow-list and its stand-ins belong in one reviewable place.
"""
from __future__ import annotations

import collections
import inspect
import io
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = [
    "ImportCheckpointError",
    "PersistentRecord",
    "RestrictedUnpickler",
    "ALLOWED_GLOBALS",
    "read_official_pickle",
    "convert",
]

NETWORKS = ("G", "D", "G_ema")
EXPECTED_CLASS = {"G": "Generator", "D": "Discriminator", "G_ema": "Generator"}

# Official constructor signatures (training/networks.py), used to name positional `init_args` and to
# reject arguments that the official classes themselves would not have accepted.
OFFICIAL_PARAMS = {
    "Generator": ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs",
                  "synthesis_kwargs"),
    "Discriminator": ("c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
                      "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs",
                      "epilogue_kwargs"),
}


class ImportCheckpointError(ValueError):
    """An official pickle that cannot be imported (unsafe, malformed, or not matching our networks).

    The message is one line and names what was refused or did not match.
    """


# ==========================================================================================================
# 1. The restricted unpickler.


@dataclass
class PersistentRecord:
    """What `_reconstruct_persistent_obj(meta)` unpickles to here: the object's data, never its class.

    `class_name` is the class name inside the pickled module ('Generator', 'SynthesisLayer', ...); the
    pickle does not record the module's name, only its source, which is kept as text and never executed.
    `state` is the object's `__dict__` as pickled (`_parameters`, `_buffers`, `_modules`, ...).
    """

    class_name: str
    state: dict
    version: int | None = None
    module_src: str = field(default="", repr=False)

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())

    @property
    def init_kwargs(self) -> dict:
        return dict(self.state.get("_init_kwargs") or {})


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for `torch_utils.persistence._reconstruct_persistent_obj`: record the data, run nothing."""
    if not isinstance(meta, dict):
        raise ImportCheckpointError(f"persistent object metadata is a {type(meta).__name__}, expected a dict")
    if meta.get("type") != "class":
        raise ImportCheckpointError(f"persistent object of type {meta.get('type')!r} is not supported "
                                    f"(only 'class')")
    class_name, state = meta.get("class_name"), meta.get("state")
    if not isinstance(class_name, str) or not isinstance(state, dict):
        raise ImportCheckpointError("persistent object metadata lacks a class_name string or a state dict")
    version = meta.get("version")
    src = meta.get("module_src")
    return PersistentRecord(class_name=class_name, state=dict(state),
                            version=version if isinstance(version, int) else None,
                            module_src=src if isinstance(src, str) else "")


def _empty_hooks(hooks: Any, what: str) -> None:
    if not isinstance(hooks, dict) or hooks:
        raise ImportCheckpointError(f"{what} carries backward hooks ({type(hooks).__name__}); refusing it")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`: argument checks, then torch's own (data-only) helper."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise ImportCheckpointError(f"tensor storage is a {type(storage).__name__}, expected a torch storage")
    if not (_is_int(storage_offset) and _is_int_tuple(size) and _is_int_tuple(stride) and len(size) == len(stride)
            and isinstance(requires_grad, bool)):
        raise ImportCheckpointError("malformed tensor: offset, size, stride or requires_grad of the wrong type")
    _empty_hooks(backward_hooks, "a tensor")
    if metadata is not None and not (isinstance(metadata, dict)
                                     and all(isinstance(k, str) and isinstance(v, bool) for k, v in metadata.items())):
        raise ImportCheckpointError("malformed tensor metadata")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, tuple(size), tuple(stride), requires_grad,
                                           collections.OrderedDict(), metadata)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    """Stand-in for `torch._utils._rebuild_parameter(_with_state)`; extra Python attributes are dropped."""
    if not isinstance(data, torch.Tensor) or not isinstance(requires_grad, bool):
        raise ImportCheckpointError("malformed parameter: data is not a tensor or requires_grad not a bool")
    _empty_hooks(backward_hooks, "a parameter")
    if state is not None and not isinstance(state, (dict, tuple)):
        raise ImportCheckpointError("malformed parameter state")
    return torch.nn.Parameter(data, requires_grad=requires_grad)


def _load_from_bytes(b: Any) -> torch.storage.TypedStorage:
    """Stand-in for `torch.storage._load_from_bytes`: the bytes go through torch's weights-only loader."""
    if not isinstance(b, bytes):
        raise ImportCheckpointError(f"storage payload is a {type(b).__name__}, expected bytes")
    try:
        storage = torch.load(io.BytesIO(b), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ImportCheckpointError(f"a tensor storage was refused by torch's weights-only loader: "
                                    f"{_first_line(e)}") from None
    if not isinstance(storage, torch.storage.TypedStorage):
        raise ImportCheckpointError(f"storage payload holds a {type(storage).__name__}, expected a storage")
    return storage


_NUMPY_DTYPES = frozenset(["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"])


class _NumpyDType:
    """Stand-in for `numpy.dtype(name, align, copy)` + its pickled state: a numeric dtype name and byte order.

    Numpy scalars appear in the official state as plain attributes (e.g. `weight_gain = 1 / np.sqrt(n)` is a
    numpy.float64) and pickle as `scalar(dtype('f8', False, True) + BUILD((3, '<', ...)), raw_bytes)`.
    """

    __slots__ = ("name", "byteorder")

    def __init__(self, name: Any, align: Any = False, copy: Any = False):
        if not isinstance(name, str) or name not in _NUMPY_DTYPES:
            raise ImportCheckpointError(f"numpy dtype {name!r} is not a plain numeric type")
        self.name, self.byteorder = name, "="

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("<", ">", "|", "=")):
            raise ImportCheckpointError("malformed numpy dtype state")
        self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        dt = np.dtype(self.name)
        return dt if self.byteorder in ("|", "=") else dt.newbyteorder(self.byteorder)


def _numpy_scalar(dtype: Any, data: Any = None) -> bool | int | float:
    """Stand-in for `numpy.core.multiarray.scalar`: decode the raw bytes into a Python bool, int or float."""
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise ImportCheckpointError("malformed numpy scalar (expected a numeric dtype and raw bytes)")
    dt = dtype.to_numpy()
    if len(data) != dt.itemsize:
        raise ImportCheckpointError("malformed numpy scalar (wrong number of bytes)")
    return np.frombuffer(data, dtype=dt)[0].item()


def _codecs_encode(obj: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol-2 pickles use to spell bytes: latin-1 text -> bytes."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise ImportCheckpointError("_codecs.encode is only accepted for latin-1 text (protocol-2 bytes)")
    return obj.encode("latin1")


class _StandIn:
    """Wraps a stand-in function so that a pickle cannot modify it (pickle's BUILD goes to __setstate__)."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable):
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)

    def __setstate__(self, state: Any) -> None:
        raise ImportCheckpointError("the pickle tries to modify a function; refusing it")


# (module, name) as written in the pickle -> what it means here. Types are immutable builtins; functions
# are wrapped in _StandIn. Anything not listed is refused.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): dict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,  # protocol <= 2 spelling
    ("__builtin__", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1.x
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2.x
    ("_codecs", "encode"): _codecs_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only `ALLOWED_GLOBALS`, to stand-ins, and no persistent IDs.

    `source` names the file in error messages.
    """

    def __init__(self, file, source: str = "pickle"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        target = ALLOWED_GLOBALS.get((module, name))
        if target is None:
            if module.startswith("dnnlib.tflib"):
                raise ImportCheckpointError(
                    f"refusing to load {self.source}: it is a TensorFlow-era StyleGAN pickle ({module}.{name}); "
                    f"read it with tf_import.read_tf_pickle (import-checkpoint does)")
            raise ImportCheckpointError(f"refusing to load {self.source}: it references {module}.{name}, "
                                        f"which is not a tensor or plain value")
        if isinstance(target, type) and target is not _NumpyDType:
            return target  # dict, OrderedDict, set, frozenset: immutable builtin types
        if target is _NumpyDType:
            return _StandIn(_NumpyDType)  # a factory, so that the class itself is out of reach
        return _StandIn(target)

    def persistent_load(self, pid):
        raise ImportCheckpointError(f"refusing to load {self.source}: it uses a persistent ID "
                                    f"({str(pid)[:60]!r}), which this importer does not understand")


# ==========================================================================================================
# 2. Reading an official pickle into tensors and plain values.


def read_official_pickle(path: str | os.PathLike) -> dict:
    """Read `path` with `RestrictedUnpickler` and return its networks as plain data.

    Returns {'G'|'D'|'G_ema' (those present): {'class_name', 'init_kwargs', 'state_dict'}} plus
    'training_set_kwargs' (a plain dict) if the file has it. `state_dict` is a flat OrderedDict named like
    `torch.nn.Module.state_dict()`. 'augment_pipe' and other entries are read (safely) and ignored.
    """
    path = Path(path)
    data = _unpickle(path)
    if not isinstance(data, dict):
        raise ImportCheckpointError(f"{path.name} holds a {type(data).__name__}, expected the dict that "
                                    f"stylegan2-ada-pytorch snapshots hold")
    out: dict = {}
    for key in NETWORKS:
        if key in data:
            out[key] = _read_network(data[key], key)
    if not out:
        raise ImportCheckpointError(f"{path.name} has none of G, D, G_ema (keys: {_names(data)})")
    tsk = data.get("training_set_kwargs")
    if tsk is not None:
        if not isinstance(tsk, dict):
            raise ImportCheckpointError(f"training_set_kwargs is a {type(tsk).__name__}, expected a dict")
        out["training_set_kwargs"] = _plain(tsk, "training_set_kwargs")
    return out


def _unpickle(path: Path) -> Any:
    if not path.is_file():
        raise ImportCheckpointError(f"file does not exist: {path}")
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, source=path.name).load()
        except ImportCheckpointError:
            raise
        except Exception as e:  # truncated or malformed pickles, BUILD on unsupported objects, ...
            raise ImportCheckpointError(f"cannot read {path.name}: {type(e).__name__}: {_first_line(e)}") from None


def _read_network(obj: Any, key: str) -> dict:
    expected = EXPECTED_CLASS[key]
    if not isinstance(obj, PersistentRecord):
        raise ImportCheckpointError(f"{key} is a {type(obj).__name__}, expected a persistent "
                                    f"training.networks.{expected}")
    if obj.class_name.rsplit(".", 1)[-1] != expected:
        raise ImportCheckpointError(f"{key} is a training.networks.{obj.class_name}, "
                                    f"expected training.networks.{expected}")
    kwargs = _plain(obj.init_kwargs, f"{key}.init_kwargs")
    args = _plain(list(obj.init_args), f"{key}.init_args")
    params = OFFICIAL_PARAMS[expected]
    if len(args) > len(params):
        raise ImportCheckpointError(f"{key} was built with {len(args)} positional arguments; "
                                    f"{expected} takes at most {len(params)}")
    for name, value in zip(params, args):  # positional arguments -> keywords, as the constructor saw them
        if name in kwargs:
            raise ImportCheckpointError(f"{key}.init_args gives {name} twice")
        kwargs[name] = value
    state_dict: collections.OrderedDict = collections.OrderedDict()
    _collect_tensors(obj, key, "", state_dict, set())
    return {"class_name": obj.class_name, "init_kwargs": kwargs, "state_dict": state_dict}


def _collect_tensors(record: PersistentRecord, where: str, prefix: str, out: dict, seen: set) -> None:
    """Walk `_parameters`, `_buffers`, `_modules` like `Module.state_dict()`: same order, same dotted names."""
    if id(record) in seen:
        raise ImportCheckpointError(f"{where} contains itself (a module cycle)")
    seen.add(id(record))
    state = record.state
    parts = {}
    for part in ("_parameters", "_buffers", "_modules"):
        value = state.get(part)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ImportCheckpointError(f"{where} ({record.class_name}) has no {part} dict; "
                                        f"not a torch.nn.Module state")
        parts[part] = value
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    if not isinstance(non_persistent, (set, frozenset)):
        raise ImportCheckpointError(f"{where}._non_persistent_buffers_set is not a set")
    tensors = list(parts["_parameters"].items())
    tensors += [(n, t) for n, t in parts["_buffers"].items() if n not in non_persistent]
    for name, t in tensors:
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise ImportCheckpointError(f"{where}.{name} is a {type(t).__name__}, expected a tensor")
        out[prefix + name] = t.detach()
    for name, sub in parts["_modules"].items():
        if sub is None:
            continue
        if not isinstance(sub, PersistentRecord):
            raise ImportCheckpointError(f"{where}.{name} is a {type(sub).__name__}, expected a persistent module")
        _collect_tensors(sub, f"{where}.{name}", f"{prefix}{name}.", out, seen)
    seen.discard(id(record))


def _plain(value: Any, where: str) -> Any:
    """A deep copy made of dict / list / str / int / float / bool / None only (tuples and sets -> lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ImportCheckpointError(f"{where} has a non-string key {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ImportCheckpointError(f"{where} is a {type(value).__name__}, expected a plain value")


# ==========================================================================================================
# 3. Mapping onto this project's networks.


def convert(official: dict, generator_cls: type | None = None, discriminator_cls: type | None = None) -> dict:
    """Turn `read_official_pickle`'s result into this project's constructor kwargs and state dicts.

    Returns {'G_kwargs': dict, 'D_kwargs': dict, 'nets': {'G', 'D', 'G_ema': state dict},
    'training_set_kwargs': dict | None}, where `Generator(**G_kwargs)` / `Discriminator(**D_kwargs)` accept
    `nets` with `load_state_dict(strict=True)`. The classes default to `stylegan_anime.stylegan2`'s
    (parameters exist for tests). Each network is built and filled here, so a mismatch fails now, by name.
    """
    missing = [k for k in NETWORKS if k not in official]
    if missing:
        raise ImportCheckpointError(f"the pickle has no {', '.join(missing)} (an official network snapshot has "
                                    f"G, D and G_ema)")
    if generator_cls is None:
        from .generator import Generator as generator_cls
    if discriminator_cls is None:
        from .discriminator import Discriminator as discriminator_cls
    if official["G"]["init_kwargs"] != official["G_ema"]["init_kwargs"]:
        raise ImportCheckpointError("G and G_ema were built with different init_kwargs")
    G_kwargs = _our_kwargs(generator_cls, official["G"]["init_kwargs"], "G", flatten="synthesis_kwargs")
    D_kwargs = _our_kwargs(discriminator_cls, official["D"]["init_kwargs"], "D")
    nets = {}
    for key, cls, kwargs in (("G", generator_cls, G_kwargs), ("D", discriminator_cls, D_kwargs),
                             ("G_ema", generator_cls, G_kwargs)):
        net = _build(cls, kwargs, key)
        _load_checked(net, official[key]["state_dict"], key)
        nets[key] = collections.OrderedDict((k, v.detach().clone()) for k, v in net.state_dict().items())
    return {"G_kwargs": G_kwargs, "D_kwargs": D_kwargs, "nets": nets,
            "training_set_kwargs": official.get("training_set_kwargs")}


def _our_kwargs(cls: type, official_kwargs: dict, key: str, flatten: str | None = None) -> dict:
    """Official init_kwargs -> kwargs for our class; unknown official arguments are an error.

    Our Generator takes the synthesis settings as **kwargs where the official one takes a
    `synthesis_kwargs` dict; `flatten` names such a dict, which is spread if our class has no such parameter.
    """
    official_name = EXPECTED_CLASS[key]
    unknown = sorted(set(official_kwargs) - set(OFFICIAL_PARAMS[official_name]))
    if unknown:
        raise ImportCheckpointError(f"{key}: unsupported constructor argument(s) {', '.join(unknown)} "
                                    f"(not a stylegan2-ada-pytorch {official_name})")
    kwargs = _plain(official_kwargs, f"{key}.init_kwargs")
    params = inspect.signature(cls).parameters
    takes_dict = flatten in params and params[flatten].kind != inspect.Parameter.VAR_KEYWORD
    if flatten and flatten in kwargs and not takes_dict:
        nested = kwargs.pop(flatten) or {}
        if not isinstance(nested, dict):
            raise ImportCheckpointError(f"{key}.init_kwargs.{flatten} is not a dict")
        clash = sorted(set(nested) & set(kwargs))
        if clash:
            raise ImportCheckpointError(f"{key}.init_kwargs.{flatten} repeats {', '.join(clash)}")
        kwargs.update(nested)
    return kwargs


def _build(cls: type, kwargs: dict, key: str) -> torch.nn.Module:
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError, AssertionError) as e:
        raise ImportCheckpointError(f"{key}: our {cls.__name__} does not accept the official settings "
                                    f"{_short(kwargs)}: {_first_line(e)}") from None


def _load_checked(net: torch.nn.Module, official_sd: dict, key: str) -> None:
    """Load `official_sd` into `net`, failing with the names of missing, unexpected or mis-shaped tensors."""
    ours = net.state_dict()
    missing = [k for k in ours if k not in official_sd]
    unexpected = [k for k in official_sd if k not in ours]
    shapes = [f"{k} {list(official_sd[k].shape)} vs ours {list(ours[k].shape)}"
              for k in ours if k in official_sd and official_sd[k].shape != ours[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected {_list(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_list(shapes)}")
    if problems:
        raise ImportCheckpointError(f"{key} does not match our {type(net).__name__}: {'; '.join(problems)}")
    for k, t in official_sd.items():
        if t.dtype != ours[k].dtype and not (t.is_floating_point() and ours[k].is_floating_point()):
            raise ImportCheckpointError(f"{key}.{k} is {t.dtype}, ours is {ours[k].dtype}")
    net.load_state_dict(official_sd, strict=True)


# ==========================================================================================================
# 4. Writing a checkpoint of this project's format.


# ==========================================================================================================
# Small helpers.


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_int_tuple(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and all(_is_int(v) for v in x)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _names(d: dict) -> str:
    return ", ".join(sorted(map(str, d))) or "none"


def _list(items: list[str], limit: int = 6) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _short(kwargs: dict, limit: int = 160) -> str:
    s = repr(kwargs)
    return s if len(s) <= limit else s[: limit - 3] + "..."
