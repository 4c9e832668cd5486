"""Measure `prepare-data --crop-faces` on synthetic illustrations: faces from a dataset (real crops, or demo)
pasted at known places onto cluttered canvases, then detected, cropped and deduplicated as the command does.
Prints the share of pasted faces detected (a detected face centred inside the pasted square), how the crop
squares compare with the pasted squares (side ratio, IoU), false crops (no pasted face under the detected
face's centre) and the time per illustration (wall and CPU).

    python tools/bench_crop_faces.py --faces ~/anime-faces-96-10k.zip --count 40
    python tools/bench_crop_faces.py --faces demo --count 20 --workers 2
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np


def _inside(face, box) -> bool:
    """Is the centre of the detected face (x, y, w, h) inside the square box (x0, y0, x1, y1)?"""
    cx, cy = face[0] + face[2] / 2, face[1] + face[3] / 2
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


@click.command()
@click.option("--faces", "face_source", default="demo", show_default=True,
              help="where the pasted faces come from: a folder, zip or packed set of face crops, or demo")
@click.option("--count", type=int, default=40, show_default=True, help="illustrations to make")
@click.option("--size", type=int, default=64, show_default=True, help="the crops' output size")
@click.option("--margin", type=float, default=0.5, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def main(face_source, count, size, margin, workers, seed):
    from PIL import Image

    from stylegan_anime.data import DataError, open_dataset
    from stylegan_anime.data.faces import CropSettings, crop_faces
    from stylegan_anime.data.illustrations import illustration, match_boxes

    try:
        faces = open_dataset(face_source, 96, progress=False)
    except DataError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(faces))

    def face(k: int, side: int) -> np.ndarray:
        img = np.asarray(faces.images[int(picks[face.used % len(picks)])])
        face.used += 1
        return np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.LANCZOS))
    face.used = 0

    truth = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "art"
        root.mkdir()
        for i in range(count):
            img, boxes = illustration(rng, 1 + i % 3, face, 800, 600, sides=(100, 220))
            img.save(root / f"art{i:03d}.png")
            truth[f"art{i:03d}.png"] = boxes
        wall, cpu = time.perf_counter(), time.process_time()
        ds, report = crop_faces(str(root), Path(tmp) / "pack", CropSettings(size, margin=margin), workers=workers,
                                progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        crops = ds.meta["crops"]
    ious, hits, ratios, extra = [], [], [], 0
    for name, boxes in truth.items():
        mine = [c for c in crops if c["file"] == name]
        ious += match_boxes(boxes, [c["box"] for c in mine])
        for b in boxes:  # detected: a crop whose detected face centre lies in the pasted square
            inside = [c for c in mine if _inside(c["face"], b)]
            hits.append(bool(inside))
            ratios += [(c["box"][2] - c["box"][0]) / (b[2] - b[0]) for c in inside[:1]]
        extra += sum(1 for c in mine if not any(_inside(c["face"], b) for b in boxes))
    ious, hits = np.array(ious), np.array(hits)
    hit = ious >= 0.5
    click.echo(f"faces from {face_source}; {count} illustrations of 800x600, {len(ious)} pasted faces of 100-220 px; "
               f"--margin {margin}, --workers {workers}")
    click.echo("| illustrations | pasted faces | detected | crop side / pasted side (median) | crop IoU >= 0.5 | "
               "median IoU | false crops | s / illustration (CPU s) |")
    click.echo("|---|---|---|---|---|---|---|---|")
    click.echo(f"| {count} | {len(ious)} | {hits.mean():.3f} | {np.median(ratios) if ratios else 0:.2f} | "
               f"{hit.mean():.3f} | {np.median(ious[hits]) if hits.any() else 0:.2f} | {extra} | "
               f"{wall / count:.2f} ({cpu / count:.2f}) |")
    for line in report.lines():
        click.echo(f"  {line}")


if __name__ == "__main__":
    main()
