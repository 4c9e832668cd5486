"""Import any published StyleGAN2 network pickle into a checkpoint of this project.

    sniff_format(path)       -> 'pytorch' (stylegan2-ada-pytorch: persistent modules) | 'tensorflow' (NVlabs'
                                stylegan2 / stylegan2-ada TensorFlow releases: dnnlib.tflib Networks),
                                from the globals the pickle names (read with pickletools: nothing is loaded)
    import_pickle(pkl, out)  -> ImportSummary (format, resolution, classes, ...) after writing the checkpoint

Both formats go through the same steps: read with a restricted unpickler (official_import / tf_import), map
onto our networks, find the `stylegan2` recipe config that rebuilds them (a conditional network becomes a
class-conditional config: `num_classes` = c_dim, label vocabulary {'class': ['0', ...]}), check the result
as every loader does, and write it atomically.
"""
from __future__ import annotations

import dataclasses
import os
import pickletools
import re
from pathlib import Path

from .official_import import ImportCheckpointError, _first_line, convert, read_official_pickle

__all__ = ["ImportSummary", "sniff_format", "import_pickle"]

FORMATS = {"pytorch": "stylegan2-ada-pytorch", "tensorflow": "TensorFlow (stylegan2 / stylegan2-ada)"}
_MAX_OPS = 100_000  # the deciding global comes within the first few opcodes of either format


@dataclasses.dataclass
class ImportSummary:
    """What was imported: `format` ('pytorch' | 'tensorflow'), `resolution`, `num_classes` (0: unconditional)."""

    path: Path
    format: str
    resolution: int
    num_classes: int
    kimg: int | None

    def line(self, source: str) -> str:
        """'imported SRC (TensorFlow (stylegan2 / stylegan2-ada) pickle, 512 px, unconditional) -> OUT'."""
        kind = f"class-conditional, {self.num_classes} classes" if self.num_classes else "unconditional"
        return f"imported {source} ({FORMATS[self.format]} pickle, {self.resolution} px, {kind}) -> {self.path}"


def sniff_format(path: str | os.PathLike) -> str:
    """'pytorch' or 'tensorflow' from the first global that decides it; ImportCheckpointError otherwise.

    Only the opcode stream is parsed (`pickletools.genops`); no object is built and nothing is called.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportCheckpointError(f"file does not exist: {path}")
    from .official_import import ALLOWED_GLOBALS
    from .tf_import import TF_ALLOWED_GLOBALS

    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for i, (op, arg, _pos) in enumerate(pickletools.genops(f)):
                if i >= _MAX_OPS:
                    break
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str) and " " in arg:
                    module, name = arg.split(" ", 1)
                elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                    module, name = strings
                else:
                    if isinstance(arg, str):
                        strings = (strings + [arg])[-2:]
                    continue
                if module.startswith("dnnlib.tflib"):
                    return "tensorflow"
                if module.startswith("torch_utils"):
                    return "pytorch"
                if (module, name) not in ALLOWED_GLOBALS and (module, name) not in TF_ALLOWED_GLOBALS:
                    raise ImportCheckpointError(f"refusing to load {path.name}: it references {module}.{name}, "
                                                f"which is not a network, tensor, array or plain value")
    except ImportCheckpointError:
        raise
    except Exception as e:  # not a pickle, truncated, ...
        raise ImportCheckpointError(f"cannot read {path.name}: it is not a pickle ({_first_line(e)})") from None
    raise ImportCheckpointError(f"{path.name} is neither a stylegan2-ada-pytorch nor a TensorFlow StyleGAN2 network "
                                f"pickle (it names no torch_utils or dnnlib.tflib objects)")


def import_pickle(pkl_path: str | os.PathLike, out_path: str | os.PathLike) -> ImportSummary:
    """Read + convert `pkl_path` (either format) and write a checkpoint of this project at `out_path`.

    The result holds G, D and G_ema and the `stylegan2` recipe config that rebuilds them, so `generate` works from
    it and `train --resume OUT --data ...` fine-tunes it (a new run with fresh optimisers). The snapshot's own kimg
    (from `network-snapshot-000400.pkl`) is kept as `imported['kimg']`; progress starts at 0.
    """
    from ..training.checkpoint import FORMAT, CheckpointError, atomic_torch_save
    from ..training.checkpoint_check import check_checkpoint
    from ..training.config import TrainConfig
    from .recipe import class_names, config_from_official

    pkl_path, out_path = Path(pkl_path), Path(out_path)
    fmt = sniff_format(pkl_path)
    if fmt == "tensorflow":
        from .tf_import import convert_tf, read_tf_pickle
        conv = convert_tf(read_tf_pickle(pkl_path))
    else:
        conv = convert(read_official_pickle(pkl_path))
    try:
        cfg, res = config_from_official(conv["G_kwargs"], conv["D_kwargs"])
    except ValueError as e:
        raise ImportCheckpointError(f"cannot import {pkl_path.name}: {e}") from None
    m = re.search(r"(\d+)\.pkl$", pkl_path.name)
    kimg = int(m.group(1)) if m and "snapshot" in pkl_path.name else None
    config = TrainConfig(data="", size=res, model="stylegan2", model_cfg=dataclasses.asdict(cfg),
                         label_names=class_names(cfg.num_classes) if cfg.num_classes else None).to_dict()
    state = {"format": FORMAT, "config": config, "nets": conv["nets"],
             "progress": {"nimg": 0, "iteration": 0, "skipped": 0},
             "imported": {"from": str(pkl_path), "format": fmt, "kimg": kimg,
                          "training_set_kwargs": conv["training_set_kwargs"] or {}}}
    try:  # what every loader checks (config ranges, tensor shapes, finite weights): refused before writing
        check_checkpoint(state, pkl_path.name)
    except CheckpointError as e:
        raise ImportCheckpointError(f"cannot import {pkl_path.name}: {e.reason}") from None
    path = atomic_torch_save(state, out_path)
    return ImportSummary(path=Path(path), format=fmt, resolution=res, num_classes=cfg.num_classes, kimg=kimg)
