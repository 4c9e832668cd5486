"""`stylegan-anime explore`: browse a StyleGAN2 checkpoint in a web page served from this machine.

No GPU, no OpenGL, no network and no extra package: the standard library's HTTP server, one static page
(static/index.html, plain JavaScript), the images rendered by the checkpoint on the CPU or GPU.

    view.py      View: seed, psi, style mixing (coarse / middle / fine from another seed), noise, tags,
                 a projected latent, amounts along saved directions; from and to a URL query
    explorer.py  Explorer: View -> ws -> PNG (serialised, cached), save, info
    server.py    the HTTP routes (/, /api/info, /api/image, /api/save), safe with any web site open in the
                 browser: Host and Origin / session-token checks, bounded bodies, quiet client disconnects
"""
from __future__ import annotations

from .explorer import Explorer
from .server import make_server
from .view import MIX_GROUPS, NOISE_MODES, View

__all__ = ["Explorer", "MIX_GROUPS", "NOISE_MODES", "View", "make_server"]
