#!/usr/bin/env python
"""Calibrate C2ST (and SWD per level) on known degradations of real images: prints a markdown table.

The reals are split into two disjoint halves A and B (entries [0, n) and [n, 2n) of a fixed permutation,
seed 0). Every row scores A against B, untouched (real vs real: C2ST's chance level and SWD's floor) or
degraded at graded strengths:

    blur      Gaussian blur, sigma 0.5 / 1 / 2 px (reflected borders)
    noise     additive Gaussian noise, std 0.02 / 0.05 / 0.1 of the 0..255 range
    colour    channel gain, red x (1 + g), blue x (1 - g), g = 0.05 / 0.1 / 0.2 (a warm cast)
    collapse  the first 32 / 8 / 1 images of B repeated to n images (mode collapse)

A sound metric gives real vs real at chance (C2ST 0.5, SWD at its floor) and, within each family,
ranks the strengths in order; the lines after the table say whether C2ST did (accuracy rising with
the strength, or at 1.0 with the held-out loss falling).

    OMP_NUM_THREADS=1 python tools/calibrate_c2st.py --data ../shared/data/anime-faces-96-10k.zip --size 64
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from stylegan_anime.metrics import METRICS
from stylegan_anime.metrics.c2st import C2STConfig, c2st
from stylegan_anime.metrics.swd import SWDAccumulator, swd_from_accumulators

FAMILIES = {
    "blur": (0.5, 1.0, 2.0),
    "noise": (0.02, 0.05, 0.1),
    "colour": (0.05, 0.1, 0.2),
    "collapse": (32, 8, 1),
}


def gaussian_blur(ims: np.ndarray, sigma: float) -> np.ndarray:
    """uint8 [N,H,W,3] -> the same, blurred with a separable Gaussian of ``sigma`` px (radius 3 sigma, reflected)."""
    r = max(1, int(np.ceil(3 * sigma)))
    k = torch.exp(-torch.arange(-r, r + 1.0) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    out = []
    for i in range(0, len(ims), 500):
        t = torch.from_numpy(np.ascontiguousarray(ims[i:i + 500])).permute(0, 3, 1, 2).float()
        t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
        t = F.conv2d(F.pad(t, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
        out.append(t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def add_noise(ims: np.ndarray, std: float, seed: int = 1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, std * 255.0, ims.shape)
    return np.clip(np.round(ims + noise), 0, 255).astype(np.uint8)


def channel_gain(ims: np.ndarray, g: float) -> np.ndarray:
    return np.clip(np.round(ims * np.array([1 + g, 1.0, 1 - g])), 0, 255).astype(np.uint8)


def collapse(ims: np.ndarray, k: int) -> np.ndarray:
    return np.resize(ims[:int(k)], ims.shape)


def degrade(family: str, ims: np.ndarray, strength) -> np.ndarray:
    return {"blur": gaussian_blur, "noise": add_noise, "colour": channel_gain, "collapse": collapse}[family](
        ims, strength)


def swd_accumulator(ims: np.ndarray, seed: int) -> SWDAccumulator:
    acc = SWDAccumulator(ims.shape[1], seed=seed)
    for i in range(0, len(ims), 256):
        acc.add(ims[i:i + 256])
    return acc


def ordered(rows: list[dict]) -> bool:
    """C2ST ranks the rows (weakest first) in order: accuracy rises, or stays (at 1.0) while the held-out loss
    falls. The loss alone is no ranking: confident mistakes on the weaker, still overlapping cases inflate it."""
    keys = [(r["c2st"], -r["c2st_loss"]) for r in rows]
    return all(b > a for a, b in zip(keys, keys[1:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="../shared/data/anime-faces-96-10k.zip", help="real images (folder, zip, pack)")
    p.add_argument("--size", type=int, default=64, help="resolution the data are opened at")
    p.add_argument("--num", type=int, default=METRICS["c2st"].num_gen,
                   help="images per side [default: the registered c2st metric's count, %(default)s]")
    p.add_argument("--seed", type=int, default=0, help="C2ST and SWD seed")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of " + ", ".join(FAMILIES))
    p.add_argument("--no-swd", action="store_true", help="C2ST only (faster)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)

    from stylegan_anime.data import DataError, open_dataset
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        print(f"error: --families: unknown {', '.join(bad)}; choose from {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    try:
        ds = open_dataset(args.data, args.size, progress=False)
    except (DataError, OSError, ValueError) as e:
        print(f"error: --data: {e}", file=sys.stderr)
        return 2
    total = int(ds.images.shape[0])
    n = min(args.num, total // 2)
    if n < 2:
        print(f"error: --data has {total} images; the calibration needs at least 4", file=sys.stderr)
        return 2
    perm = np.random.default_rng(0).permutation(total)
    a = np.asarray(ds.images[np.sort(perm[:n])])
    b = np.asarray(ds.images[np.sort(perm[n:2 * n])])
    cfg = C2STConfig(seed=args.seed)
    acc_a = None if args.no_swd else swd_accumulator(a, args.seed)

    cases = [("real vs real", None, b)] + [(f, s, None) for f in families for s in FAMILIES[f]]
    rows = []
    sizes = acc_a.sizes if acc_a is not None else []
    head = ["case", "strength", "c2st", "c2st_loss"] + [f"swd/{s}" for s in sizes] + (["swd"] if sizes else [])
    print(f"# {args.data}: {total} images at {args.size} px; A = {n} reals, B = {n} other reals (degraded); "
          f"C2ST {cfg}; torch threads {torch.get_num_threads()}", flush=True)
    print("| " + " | ".join(head + ["c2st CPU s"]) + " |")
    print("|" + "---|" * (len(head) + 1), flush=True)
    for family, strength, fake in cases:
        if fake is None:
            fake = degrade(family, b, strength)
        t0 = time.process_time()
        row = {"case": family, "strength": strength, **c2st(a, fake, cfg)}
        row["c2st_cpu_s"] = time.process_time() - t0
        if acc_a is not None:
            row.update(swd_from_accumulators(acc_a, swd_accumulator(fake, args.seed), seed=args.seed))
        rows.append(row)
        cells = [family, "—" if strength is None else f"{strength:g}", f"{row['c2st']:.3f}",
                 f"{row['c2st_loss']:.3g}"] + [f"{row[k]:.1f}" for k in head[4:]] + [f"{row['c2st_cpu_s']:.1f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    print()
    for f in families:
        fam = [r for r in rows if r["case"] == f]
        print(f"{f}: C2ST ranks the strengths in order: {'yes' if ordered(fam) else 'NO'}; "
              f"above real vs real: {'yes' if fam[0]['c2st'] > rows[0]['c2st'] else 'NO'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
