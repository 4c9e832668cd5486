"""Drive the explorer page in a real browser: load it, move the truncation slider and a direction slider, check
that the image follows each move, and save a screenshot (docs/explore/explorer.jpg is made with this).

    pip install playwright          # the Python package only; it uses an installed Chromium
    python tools/explorer_screenshot.py --checkpoint RUN --directions dirs.npz            # -> ./explorer.jpg
    python tools/explorer_screenshot.py --checkpoint RUN --out docs/explore/explorer.jpg --overwrite

The screenshot goes to a new file: an existing --out is an error (exit 2) unless --overwrite is given, and the
default is explorer.jpg in the current folder, not the tracked picture in docs/.

A browser check of the page's JavaScript, which the test suite (tests/test_explore.py: the HTTP API and the
page's element ids) does not run. Exit 0 when every move changed the image, 1 when one did not, 2 for bad input.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np


def _chromium(path: str | None) -> str | None:
    if path:
        return path
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None  # playwright's own download, if the user ran `playwright install chromium`


@click.command()
@click.option("--checkpoint", required=True, help="a StyleGAN2 checkpoint file or run folder")
@click.option("--directions", "directions_file", default=None, help="a file from `stylegan-anime directions`")
@click.option("--seed", type=int, default=3, show_default=True)
@click.option("--direction", type=int, default=0, show_default=True, help="the direction slider to move")
@click.option("--amount", type=float, default=2.0, show_default=True, help="where to move it")
@click.option("--out", default="explorer.jpg", show_default=True, type=click.Path(dir_okay=False),
              help="the screenshot (.jpg or .png); must not exist unless --overwrite")
@click.option("--overwrite", is_flag=True, help="replace --out if it exists")
@click.option("--browser", default=None, help="Chromium executable (default: chromium on PATH)")
@click.option("--moves", type=int, default=20, show_default=True,
              help="then time this many slider moves, each until the new image is shown (0: skip)")
@click.option("--device", default="cpu", show_default=True)
def main(checkpoint, directions_file, seed, direction, amount, out, overwrite, browser, device, moves):
    if os.path.lexists(out) and not overwrite:
        click.echo(f"error: {out} already exists; not overwriting it (--overwrite to replace it)", err=True)
        sys.exit(2)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        click.echo("error: this script needs playwright: pip install playwright", err=True)
        sys.exit(2)
    from stylegan_anime.explore import Explorer, make_server
    from stylegan_anime.generate import Sampler
    from stylegan_anime.output_files import OutputExists, free_name, new_output
    from stylegan_anime.one_line import error_line
    from stylegan_anime.editing.directions import load_directions

    try:
        sampler = Sampler(checkpoint, device=device)
        dirs = load_directions(directions_file, sampler.G) if directions_file else None
        if dirs is not None:
            dirs.check_index(direction)
        saves = tempfile.mkdtemp(prefix="explorer-screenshot-")  # the page is not saved from; never ./explore
        server = make_server(Explorer(sampler, dirs, checkpoint=checkpoint), "127.0.0.1", 0, outdir=saves,
                             max_saves=0)
    except (ValueError, OSError) as e:
        click.echo(f"error: {error_line(e)}", err=True)
        sys.exit(2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    changed: dict[str, bool] = {}
    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=_chromium(browser), args=["--no-sandbox"])
        page = chrome.new_page(viewport={"width": 1100, "height": 800})
        page.goto(server.url + f"#seed={seed}&psi=0.7")

        def new_image(action) -> None:
            """Do `action`, then wait until the page shows a different image (fully loaded)."""
            before = page.get_attribute("#image", "src")
            action()
            page.wait_for_function("(b) => { const i = document.getElementById('image'); "
                                   "return i.src !== b && i.complete && i.naturalWidth > 0; }",
                                   arg=before, polling="raf", timeout=30000)

        def image_after(action) -> bytes:
            new_image(action)
            return page.locator("#image").screenshot()

        def set_range(selector: str, value: float):
            page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                                  str(value))

        page.wait_for_function("document.getElementById('image').src && document.getElementById('image').complete")
        first = page.locator("#image").screenshot()
        psi = image_after(lambda: set_range("#psi", 0.5))
        changed["psi 0.7 -> 0.5"] = psi != first
        if dirs is not None:
            moved = image_after(lambda: set_range(f'#dirs input[data-index="{direction}"]', amount))
            changed[f"direction {direction} 0 -> {amount}"] = moved != psi
        # a new file, linked into place; with --overwrite a new file beside it first, then moved over it
        target = free_name(out) if overwrite else Path(out)
        try:
            with new_output(target, "--overwrite to replace it") as tmp:
                page.screenshot(path=str(tmp), type="png" if Path(out).suffix.lower() == ".png" else "jpeg")
        except OutputExists as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        if target != Path(out):
            os.replace(target, out)
        latencies = []
        for k in range(moves):  # seeds seed+1, seed+2, ...: every move a new image, none from the cache
            t = time.perf_counter()
            new_image(lambda: page.fill("#seed", str(seed + 1 + k)))  # fill() fires the input event
            latencies.append(1000 * (time.perf_counter() - t))
        chrome.close()
    server.shutdown()
    for what, ok in changed.items():
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {what}: the image {'changed' if ok else 'did not change'}", err=True)
    click.echo(f"wrote {out}", err=True)
    if latencies:
        ms = np.array(latencies)
        click.echo(f"| image | device | moves | median ms (move -> new image shown) | p90 ms |\n|---|---|---|---|---|\n"
                   f"| {sampler.G.img_resolution} px | {device} | {len(ms)} | {np.median(ms):.0f} | "
                   f"{np.percentile(ms, 90):.0f} |")
    sys.exit(0 if all(changed.values()) else 1)


if __name__ == "__main__":
    main()
