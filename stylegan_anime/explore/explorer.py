"""The model behind the explorer page: a StyleGAN2 checkpoint, optional directions and projected latents,
and View -> ws -> image. Renders are serialised (one at a time) and the last PNGs are cached, so dragging a
slider back and forth is cheap.

    ex = Explorer(sampler, directions=load_directions(...), latents={"me": load_latent(...)})
    ex.png(View(seed=3, psi=0.7))    -> PNG bytes (the same View always gives the same bytes)
    ex.save(view, outdir)            -> explore-0000.png + .npz (its ws, the view as a query string);
                                        never overwrites, never follows a symlink planted there

The order of operations: the seed's w (or the latent's ws) -> truncation towards w_avg by psi -> the mix
group's layers from mix_seed (same psi) -> the direction amounts (on each direction's layers).
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..output_files import OutputExists, new_output
from ..editing import model_name, require_w_space
from ..editing.directions import Directions, edit_ws
from ..editing.latents import layer_groups, mix_layers, render, save_latent, seed_ws
from ..training.recipe import seeded_noise
from .view import View, ViewError

CACHE_SIZE = 64
MAX_SAVE_NUMBER = 100_000  # explore-0000 ... explore-99999: then the folder is full


class Explorer:
    def __init__(self, sampler, directions: Directions | None = None,
                 latents: dict[str, torch.Tensor] | None = None, checkpoint: str = ""):
        require_w_space(sampler, "explore")
        self.sampler = sampler
        self.G = sampler.G
        self.directions = directions
        self.latents = dict(latents or {})          # name -> ws [1, num_ws, w_dim]
        self.checkpoint = str(checkpoint)
        self.groups = layer_groups(self.G)
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._cache: OrderedDict[View, bytes] = OrderedDict()

    # ------------------------------------------------------------------ View -> ws -> image
    def check(self, view: View) -> View:
        """One-line ValueError for a view this model cannot show."""
        if view.latent and view.latent not in self.latents:
            known = ", ".join(self.latents) or "none loaded (explore --latent FILE)"
            raise ViewError(f"unknown latent {view.latent[:40]!r}; loaded: {known}", "latent")
        n = len(self.directions) if self.directions is not None else 0
        if any(a != 0 for a in view.dirs[n:]):
            raise ViewError(f"dirs has {len(view.dirs)} amounts but {n} directions are loaded"
                            + ("" if n else " (explore --directions FILE)"), "dirs")
        if view.tags and not self.sampler.conditional:
            raise ViewError("tags need a conditional checkpoint; this one is unconditional", "tags")
        if view.mix != "none" and not self.groups[view.mix]:  # e.g. fine (>= 64 px) of a 32 px model
            raise ViewError(f"mix {view.mix}: a {self.G.img_resolution} px model has no {view.mix} style layers",
                            "mix")
        classes = int(getattr(self.sampler.recipe.cfg, "num_classes", 0) or 0)
        if view.class_index >= 0 and not classes:
            raise ViewError("class needs a class-conditional checkpoint; this one has no classes", "class_index")
        if view.class_index >= classes > 0:
            raise ViewError(f"class must be from 0 to {classes - 1}, got {view.class_index}", "class_index")
        return view

    def _labels(self, view: View, seed: int) -> torch.Tensor | None:
        if not self.sampler.conditional:
            return None
        if view.tags:
            from ..reports.tags import tags_to_labels
            return tags_to_labels(view.tags, self.sampler.config.label_names)
        if view.class_index >= 0:  # class-conditional: this class for every image
            return torch.tensor([[view.class_index]], dtype=torch.int64)
        return self.sampler.seed_labels([seed])

    @torch.no_grad()
    def ws(self, view: View) -> torch.Tensor:
        """ws [1, num_ws, w_dim] (CPU, float32) of a view."""
        self.check(view)
        if view.latent:
            w_avg = self.G.mapping.w_avg.detach().float().cpu()
            ws = w_avg.lerp(self.latents[view.latent].float().cpu(), view.psi)
        else:
            ws = seed_ws(self.sampler, [view.seed], view.psi, self._labels(view, view.seed)).cpu()
        if view.mix != "none":
            ws2 = seed_ws(self.sampler, [view.mix_seed], view.psi, self._labels(view, view.mix_seed)).cpu()
            ws = mix_layers(ws, ws2, self.groups[view.mix])
        for index, amount in view.amounts():
            ws = edit_ws(ws, self.directions, index, amount)
        return ws

    def image(self, view: View) -> np.ndarray:
        """uint8 [H, W, 3]."""
        ws = self.ws(view)
        with self._lock:
            if view.noise == "random":
                with seeded_noise(view.noise_seed, self.sampler.device):
                    return render(self.sampler, ws, "random")[0]
            return render(self.sampler, ws, view.noise)[0]

    def png(self, view: View) -> bytes:
        with self._lock:
            if view in self._cache:
                self._cache.move_to_end(view)
                return self._cache[view]
        buf = io.BytesIO()
        Image.fromarray(self.image(view)).save(buf, format="PNG")
        data = buf.getvalue()
        with self._lock:
            self._cache[view] = data
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return data

    # ------------------------------------------------------------------ saving and describing
    def save(self, view: View, outdir: str | os.PathLike) -> dict:
        """outdir/explore-NNNN.png and .npz (ws + the view), one free number for both. Every file is written
        to a new temporary file and linked into place (output_files.new_output): nothing that is already
        there (a file, a planted symlink) is overwritten or followed. Returns the paths and the query."""
        from ..training.checkpoint import WriteError, writing

        outdir = Path(outdir)
        with writing(outdir):
            outdir.mkdir(parents=True, exist_ok=True)
        data, ws, query = self.png(view), self.ws(view), view.to_query()
        with self._save_lock:  # one save at a time: two clicks never race for a number
            for n in range(MAX_SAVE_NUMBER):
                png, npz = outdir / f"explore-{n:04d}.png", outdir / f"explore-{n:04d}.npz"
                if os.path.lexists(png) or os.path.lexists(npz):
                    continue
                if not _write_new(png, lambda tmp: tmp.write_bytes(data)):
                    continue  # taken since the check (another program): the next number
                if not _write_new(npz, lambda tmp: save_latent(tmp, ws[0], view=query, checkpoint=self.checkpoint)):
                    with contextlib.suppress(OSError):
                        png.unlink()  # ours, from just above: the pair moves on to the next number
                    continue
                return {"png": str(png), "npz": str(npz), "query": query}
        raise WriteError(f"cannot save in {outdir}: explore-0000 ... explore-{MAX_SAVE_NUMBER - 1} are all taken")

    def info(self) -> dict:
        """What the page needs to build its controls."""
        G, s = self.G, self.sampler
        d = self.directions
        return {
            "model": model_name(s), "checkpoint": self.checkpoint, "kimg": round(float(s.kimg), 3),
            "resolution": int(G.img_resolution), "num_ws": int(G.num_ws), "w_dim": int(G.w_dim),
            "groups": self.groups, "conditional": bool(s.conditional),
            "classes": int(getattr(s.recipe.cfg, "num_classes", 0) or 0),  # class-conditional: a class box
            "label_names": {k: list(v) for k, v in (s.config.label_names or {}).items()} if s.conditional else {},
            "latents": list(self.latents),
            "directions": [] if d is None else [
                {"index": k, "eigenvalue": float(d.eigenvalues[k]), "sigma": float(d.sigma[k])} for k in range(len(d))],
            "direction_layers": [] if d is None else list(d.layers),
            "default_view": View().to_query(),
        }


def _write_new(path: Path, write) -> bool:
    """write(tmp) to a new temporary file, then link it to `path`; False (nothing left behind) when `path`
    is taken. WriteError for a failed write (read-only folder, full disk)."""
    from ..training.checkpoint import WriteError, os_reason

    try:
        with new_output(path) as tmp:
            write(Path(tmp))
    except OutputExists:
        return False
    except OSError as e:
        raise WriteError(f"cannot write {path}: {os_reason(e)}") from None
    return True


__all__ = ["Explorer"]
