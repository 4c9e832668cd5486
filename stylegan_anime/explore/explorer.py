"""The model behind the explorer page: a StyleGAN2 checkpoint, optional directions and projected latents,
and View -> ws -> image. Renders are serialised (one at a time) and the last PNGs are cached, so dragging a
slider back and forth is cheap.

    ex = Explorer(sampler, directions=load_directions(...), latents={"me": load_latent(...)})
    ex.png(View(seed=3, psi=0.7))    -> PNG bytes (the same View always gives the same bytes)
    ex.save(view, outdir)            -> explore-0000.png + .npz (its ws, the view as a query string)

The order of operations: the seed's w (or the latent's ws) -> truncation towards w_avg by psi -> the mix
group's layers from mix_seed (same psi) -> the direction amounts (on each direction's layers).
"""
from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..tools import model_name, require_w_space
from ..tools.directions import Directions, edit_ws
from ..tools.latents import layer_groups, mix_layers, render, save_latent, seed_ws
from ..training.recipe import seeded_noise
from .view import View

CACHE_SIZE = 64


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
        self._cache: OrderedDict[View, bytes] = OrderedDict()

    # ------------------------------------------------------------------ View -> ws -> image
    def check(self, view: View) -> View:
        """One-line ValueError for a view this model cannot show."""
        if view.latent and view.latent not in self.latents:
            known = ", ".join(self.latents) or "none loaded (explore --latent FILE)"
            raise ValueError(f"unknown latent {view.latent!r}; loaded: {known}")
        n = len(self.directions) if self.directions is not None else 0
        if any(a != 0 for a in view.dirs[n:]):
            raise ValueError(f"dirs has {len(view.dirs)} amounts but {n} directions are loaded"
                             + ("" if n else " (explore --directions FILE)"))
        if view.tags and not self.sampler.conditional:
            raise ValueError("tags need a conditional checkpoint; this one is unconditional")
        return view

    def _labels(self, view: View, seed: int) -> torch.Tensor | None:
        if not self.sampler.conditional:
            return None
        if view.tags:
            from ..tools.tags import tags_to_labels
            return tags_to_labels(view.tags, self.sampler.config.label_names)
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
        """outdir/explore-NNNN.png and .npz (ws + the view); never overwrites. Returns the paths and query."""
        from ..training.checkpoint import writing

        outdir = Path(outdir)
        with writing(outdir):
            outdir.mkdir(parents=True, exist_ok=True)
        data, ws = self.png(view), self.ws(view)
        with self._lock:
            n = 0
            while (outdir / f"explore-{n:04d}.png").exists() or (outdir / f"explore-{n:04d}.npz").exists():
                n += 1
            png, npz = outdir / f"explore-{n:04d}.png", outdir / f"explore-{n:04d}.npz"
            with writing(png, remove_partial=True):
                png.write_bytes(data)
        with writing(npz, remove_partial=True):
            save_latent(npz, ws[0], view=view.to_query(), checkpoint=self.checkpoint)
        return {"png": str(png), "npz": str(npz), "query": view.to_query()}

    def info(self) -> dict:
        """What the page needs to build its controls."""
        G, s = self.G, self.sampler
        d = self.directions
        return {
            "model": model_name(s), "checkpoint": self.checkpoint, "kimg": round(float(s.kimg), 3),
            "resolution": int(G.img_resolution), "num_ws": int(G.num_ws), "w_dim": int(G.w_dim),
            "groups": self.groups, "conditional": bool(s.conditional),
            "label_names": {k: list(v) for k, v in (s.config.label_names or {}).items()} if s.conditional else {},
            "latents": list(self.latents),
            "directions": [] if d is None else [
                {"index": k, "eigenvalue": float(d.eigenvalues[k]), "sigma": float(d.sigma[k])} for k in range(len(d))],
            "direction_layers": [] if d is None else list(d.layers),
            "default_view": View().to_query(),
        }


__all__ = ["Explorer"]
