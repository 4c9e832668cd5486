"""`stylegan-anime explore`: a local web page to browse a StyleGAN2 checkpoint (stylegan_anime.explore)."""
from __future__ import annotations

import errno
from pathlib import Path

import click

from .common import cli, user_errors


@cli.command(epilog="""
\b
Examples:
  stylegan-anime explore --checkpoint runs/00000-stylegan2-faces-64          # then open http://127.0.0.1:8000
  stylegan-anime directions --checkpoint RUN --out dirs.npz
  stylegan-anime explore --checkpoint RUN --directions dirs.npz --latent proj/me-projected.npz --port 8001
  ssh -L 8000:127.0.0.1:8000 gpu-box   # on your laptop, for an explorer running on a remote machine
""")
@click.option("--checkpoint", required=True, help="a StyleGAN2 checkpoint file, or a run folder (its newest checkpoint)")
@click.option("--directions", "directions_file", type=click.Path(dir_okay=False), default=None,
              help="a file from `stylegan-anime directions`: one slider per direction")
@click.option("--latent", "latent_files", multiple=True, type=click.Path(dir_okay=False),
              help="a projected latent (.npz from `project`) to start from; repeatable")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 lets other machines on your network in)")
@click.option("--outdir", default="explore", show_default=True, type=click.Path(file_okay=False),
              help="where the page's 'save' button writes explore-NNNN.png and .npz")
@click.option("--max-saves", type=click.IntRange(0), default=1000, show_default=True,
              help="how many times the page may save before the explorer must be restarted")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N")
@click.option("--open/--no-open", "open_browser", default=False, show_default=True,
              help="open the page in the default browser")
def explore(checkpoint, directions_file, latent_files, port, host, outdir, max_saves, device, open_browser):
    """Browse a StyleGAN2 checkpoint in the browser: seed, truncation, style mixing, noise, directions."""
    from ..explore import Explorer, make_server
    from ..generate import Sampler
    from ..editing.directions import load_directions
    from ..editing.latents import load_latent

    with user_errors():
        sampler = Sampler(checkpoint, device=device)
        directions = load_directions(directions_file, sampler.G) if directions_file else None
        latents = {}
        for f in latent_files:
            name = Path(f).stem
            if name in latents:
                raise ValueError(f"two --latent files are named {name!r}; rename one")
            latents[name] = load_latent(f, sampler.G)
        explorer = Explorer(sampler, directions, latents, checkpoint=str(checkpoint))
        try:
            server = make_server(explorer, host, port, outdir, max_saves=max_saves)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is in use: choose another with --port (0: any free one)") from None
            raise ValueError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    click.echo(f"explorer of {checkpoint} at {server.url}  (Ctrl-C to stop; saves go to {outdir})", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"note: listening on {host}: other machines that can reach it can use the page "
                   "(open it by IP address: host names other than localhost are refused)", err=True)
    if open_browser:
        import webbrowser
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
