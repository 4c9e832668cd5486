"""Built-in procedural demo dataset: anime faces drawn with code, no download needed.

Every image is a pure function of ``(seed, index, size)``: the random generator is
seeded with ``[seed, index]`` and all geometry is sampled in unit coordinates, so the
same face is drawn at every size and images can be rendered in any order (or in
parallel workers).  Drawing happens with :mod:`PIL.ImageDraw` on a canvas two to
four times larger than the requested size, which is then box-averaged down
(area downsampling) for anti-aliased edges.

Each face returns two labels: the hair colour (index into :data:`HAIR_COLORS`) and
the eye colour (index into :data:`EYE_COLORS`), both chosen uniformly.

Bump :data:`DEMO_VERSION` whenever the drawing changes: it is part of the cache key
of rendered demo sets.

Length (~540 lines): the procedural face painter is one long, data-driven drawing routine (hair styles,
eyes, palettes) with nothing worth splitting out.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "DEFAULT_COUNT",
    "DEMO_VERSION",
    "EYE_COLORS",
    "EYE_RGB",
    "HAIR_COLORS",
    "HAIR_RGB",
    "render_face",
]

HAIR_COLORS: tuple[str, ...] = (
    "blonde", "brown", "black", "blue", "pink", "purple",
    "green", "red", "silver", "white", "orange", "aqua",
)
EYE_COLORS: tuple[str, ...] = (
    "black", "blue", "brown", "green", "orange",
    "pink", "purple", "red", "yellow", "aqua",
)
DEMO_VERSION: int = 1
DEFAULT_COUNT = 10_000

#: Base RGB of each hair colour, aligned with :data:`HAIR_COLORS` (before per-image jitter).
HAIR_RGB: tuple[tuple[int, int, int], ...] = (
    (242, 212, 120),  # blonde
    (128, 82, 50),    # brown
    (38, 32, 44),     # black
    (58, 98, 212),    # blue
    (246, 150, 192),  # pink
    (140, 78, 182),   # purple
    (62, 160, 84),    # green
    (204, 40, 48),    # red
    (176, 184, 200),  # silver
    (240, 243, 252),  # white (slightly cool, to stay apart from warm skin)
    (246, 138, 36),   # orange
    (70, 208, 206),   # aqua
)
#: Base RGB of each eye (iris) colour, aligned with :data:`EYE_COLORS`.
EYE_RGB: tuple[tuple[int, int, int], ...] = (
    (52, 44, 56),     # black
    (44, 94, 222),    # blue
    (132, 76, 36),    # brown
    (40, 152, 72),    # green
    (242, 132, 28),   # orange
    (236, 100, 164),  # pink
    (132, 62, 196),   # purple
    (204, 30, 42),    # red
    (232, 200, 36),   # yellow
    (36, 190, 204),   # aqua
)

_HAIR = np.asarray(HAIR_RGB, dtype=np.float64)
_EYE = np.asarray(EYE_RGB, dtype=np.float64)

_MIN_SIZE = 8
_MAX_SIZE = 1024

# Parametric tables reused by every image (angles for arcs and outlines).
_ARC = np.linspace(0.0, math.pi, 13)          # 0..pi, outer corner -> inner corner
_U12 = np.linspace(0.0, 1.0, 12)


def _rgb(c) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, int(round(float(v))))) for v in c)
    return r, g, b


def _mix(a, b, t: float) -> np.ndarray:
    return np.asarray(a, dtype=np.float64) * (1.0 - t) + np.asarray(b, dtype=np.float64) * t


def _supersample(size: int) -> int:
    """Canvas scale factor: about 192 px of canvas for small images, at least 2x."""
    return max(2, min(4, -(-192 // size)))


def _pick_color(rng: np.random.Generator, s_lo, s_hi, v_lo, v_hi, min_dist=56.0) -> np.ndarray:
    """A random HSV colour kept away from every hair colour (so hair stays identifiable)."""
    rgb = None
    for _ in range(16):
        h, s, v = rng.random(), rng.uniform(s_lo, s_hi), rng.uniform(v_lo, v_hi)
        rgb = np.array(colorsys.hsv_to_rgb(h, s, v)) * 255.0
        if np.min(np.linalg.norm(_HAIR - rgb, axis=1)) >= min_dist:
            return rgb
    return rgb


class _Canvas:
    """Thin wrapper over ImageDraw that takes unit-square coordinates."""

    __slots__ = ("W", "img", "d")

    def __init__(self, img: Image.Image):
        self.img = img
        self.W = img.size[0]
        self.d = ImageDraw.Draw(img)

    def px(self, w: float) -> int:
        return max(1, int(round(w * self.W)))

    def poly(self, pts, fill, outline=None, width: float = 0.0):
        flat = (np.asarray(pts, dtype=np.float64) * self.W).ravel().tolist()
        if outline is None:
            self.d.polygon(flat, fill=fill)
        else:
            self.d.polygon(flat, fill=fill, outline=outline, width=self.px(width))

    def line(self, pts, fill, width: float, curve: bool = True):
        flat = (np.asarray(pts, dtype=np.float64) * self.W).ravel().tolist()
        self.d.line(flat, fill=fill, width=self.px(width), joint="curve" if curve else None)

    def _box(self, cx, cy, rx, ry):
        W = self.W
        return [(cx - rx) * W, (cy - ry) * W, (cx + rx) * W, (cy + ry) * W]

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width: float = 0.0):
        if outline is None:
            self.d.ellipse(self._box(cx, cy, rx, ry), fill=fill)
        else:
            self.d.ellipse(self._box(cx, cy, rx, ry), fill=fill, outline=outline, width=self.px(width))

    @staticmethod
    def _arc_pts(cx, cy, rx, ry, start, end, n):
        t = np.radians(np.linspace(start, end, n))
        return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)

    def chord(self, cx, cy, rx, ry, start, end, fill, outline=None, width: float = 0.0):
        """Elliptic chord, angles in degrees clockwise from 3 o'clock (as PIL).

        Drawn as a polygon: ``ImageDraw.chord`` can leak a stray bar across the image for
        some fractional bounding boxes.
        """
        self.poly(self._arc_pts(cx, cy, rx, ry, start, end, 16), fill=fill, outline=outline, width=width)

    def arc(self, cx, cy, rx, ry, start, end, fill, width: float):
        self.line(self._arc_pts(cx, cy, rx, ry, start, end, 12), fill=fill, width=width)


# --------------------------------------------------------------------------- background

def _background(rng: np.random.Generator, W: int) -> Image.Image:
    base = _pick_color(rng, 0.08, 0.55, 0.55, 1.0)
    mode = int(rng.integers(4))  # 0 solid, 1 gradient, 2 shapes, 3 gradient + shapes
    if mode & 1:
        other = np.clip(base * rng.uniform(0.7, 1.15) + rng.normal(0.0, 18.0, 3), 0, 255)
        t = np.linspace(0.0, 1.0, W)[:, None]
        column = np.rint(base[None, :] * (1.0 - t) + other[None, :] * t).astype(np.uint8)
        img = Image.fromarray(column[:, None, :], "RGB").resize((W, W), Image.Resampling.NEAREST)
    else:
        img = Image.new("RGB", (W, W), _rgb(base))
    if mode & 2:
        c = _Canvas(img)
        shade = _rgb(_mix(base, (255, 255, 255) if rng.random() < 0.6 else (0, 0, 0), rng.uniform(0.08, 0.2)))
        for _ in range(int(rng.integers(2, 7))):
            r = rng.uniform(0.04, 0.16)
            c.ellipse(rng.random(), rng.random(), r, r, fill=shade)
    return img


# --------------------------------------------------------------------------- hair

def _jagged_bottom(rng, x0, x1, y_fn, n, depth, lean):
    """Zigzag edge (notch, tip, notch, ..., notch) of ``n`` strands from ``x0`` to ``x1``.

    ``y_fn`` maps the positions ``t`` in [0, 1] (an array of ``2n + 1`` values) to the
    tips' y; notches sit ``depth`` (jittered) above that line and tips lean sideways by
    ``lean`` half-strands.  Returns (edge points, notch points).
    """
    t = np.linspace(0.0, 1.0, 2 * n + 1)
    xs = x0 + (x1 - x0) * t
    ys = np.asarray(y_fn(t), dtype=np.float64) * np.ones_like(t)
    notch = (np.arange(2 * n + 1) % 2) == 0
    ys = np.where(notch, ys - depth * rng.uniform(0.7, 1.2, 2 * n + 1), ys)
    xs = np.where(notch, xs, xs + lean * (x1 - x0) / (2 * n))
    pts = list(zip(xs.tolist(), ys.tolist()))
    return pts, pts[::2]


def _back_hair(c: _Canvas, rng, g, col, dark, width):
    cx, cy, a, hw, y_top, b_low = g["cx"], g["cy"], g["a"], g["hw"], g["y_top"], g["b_low"]
    hh = cy - y_top
    style = g["back"]
    # rounded mass around the skull
    c.ellipse(cx, cy, hw, hh, fill=col, outline=dark, width=width)
    if style == 4:  # short / pixie: just the nape
        y_b = cy + b_low * rng.uniform(0.2, 0.45)
        bot_hw = hw * 0.92
    elif style == 1:  # long
        y_b = rng.uniform(1.02, 1.2)
        bot_hw = hw * rng.uniform(1.1, 1.4)
    elif style == 2:  # twin-tails: shorter base
        y_b = cy + b_low * rng.uniform(0.3, 0.75)
        bot_hw = hw * rng.uniform(0.95, 1.05)
    else:  # bob / buns
        y_b = cy + b_low * rng.uniform(0.55, 1.05)
        bot_hw = hw * rng.uniform(0.95, 1.12)
    n = int(rng.integers(4, 8))
    zig, _ = _jagged_bottom(rng, cx - bot_hw, cx + bot_hw, lambda t: y_b + 0.06 * a * np.sin(np.pi * t),
                            n, a * rng.uniform(0.08, 0.25), rng.uniform(-0.3, 0.3))
    body = [(cx - hw, cy)] + zig + [(cx + hw, cy)]
    c.poly(body, fill=col, outline=dark, width=width)
    c.ellipse(cx, cy, hw * 0.985, hh * 0.985, fill=col)  # hide the seam at the top of the body
    if y_b - cy > 0.5 * a:  # a strand line down each side of longer hair
        for o in (-1.0, 1.0):
            c.line([(cx + o * hw * 0.97, cy + 0.1 * a), (cx + o * bot_hw * rng.uniform(0.8, 0.95), y_b - 0.12 * a)],
                   fill=dark, width=width)
    if style == 2:  # twin-tails
        tie = _rgb(_pick_color(rng, 0.5, 0.9, 0.6, 1.0, min_dist=40.0))
        reach = a * rng.uniform(0.3, 0.65)
        tip_y = rng.uniform(0.9, 1.15)
        ay = y_top + hh * rng.uniform(0.2, 0.45)
        for o in (-1.0, 1.0):
            ax = cx + o * hw * 0.82
            out = np.array([
                (ax, ay - 0.12 * a),
                (cx + o * (hw + reach), ay + 0.25 * a),
                (cx + o * (hw + reach * 1.15), cy + 0.4 * a),
                (cx + o * (hw + reach * 0.8), (cy + tip_y) * 0.5 + 0.3 * a),
                (cx + o * (hw + reach * rng.uniform(0.1, 0.5)), tip_y),
                (cx + o * (hw + reach * 0.05), (cy + tip_y) * 0.5 + 0.2 * a),
                (cx + o * hw * 0.95, cy + 0.3 * a),
                (ax, ay + 0.15 * a),
            ])
            c.poly(out, fill=col, outline=dark, width=width)
            c.line([(cx + o * (hw + reach * 0.6), ay + 0.4 * a), (cx + o * (hw + reach * 0.5), tip_y - 0.15)],
                   fill=dark, width=width)
            c.ellipse(ax, ay, 0.1 * a, 0.12 * a, fill=tie, outline=_rgb(_mix(tie, (0, 0, 0), 0.4)), width=width)
    elif style == 3:  # buns
        r = a * rng.uniform(0.26, 0.36)
        off = a * rng.uniform(0.55, 0.8)
        by = y_top + r * rng.uniform(0.1, 0.5)
        for o in (-1.0, 1.0):
            c.ellipse(cx + o * off, by, r, r, fill=col, outline=dark, width=width)
            c.arc(cx + o * off, by, r * 0.6, r * 0.6, 200, 300, fill=dark, width=width)


def _bangs_shape(rng, g):
    """Sample the skull cap and fringe outline (stored in ``g``; drawn by :func:`_front_hair`)."""
    cx, cy, a, hw, y_top = g["cx"], g["cy"], g["a"], g["hw"], g["y_top"]
    hh = cy - y_top
    alpha = rng.uniform(12.0, 24.0)
    y_c = cy - hh * math.sin(math.radians(alpha))        # flat bottom of the skull cap
    x_c = hw * math.cos(math.radians(alpha))
    style = g["bangs"]
    y_fr = g["y_fringe"]
    x0, x1 = cx - a * 1.0, cx + a * 1.0
    if style == 0:  # straight fringe (hime cut)
        n = int(rng.integers(6, 10))
        depth = a * rng.uniform(0.06, 0.16)
        noise = rng.normal(0.0, 0.02 * a, 2 * n + 1)
        y_fn = lambda t: y_fr + noise  # noqa: E731
        lean = rng.uniform(-0.15, 0.15)
    elif style == 1:  # side-swept
        n = int(rng.integers(4, 7))
        depth = a * rng.uniform(0.2, 0.35)
        sweep = rng.choice((-1.0, 1.0)) * a * rng.uniform(0.25, 0.5)
        y_fn = lambda t: y_fr + sweep * (t - 0.5)  # noqa: E731
        lean = math.copysign(rng.uniform(0.4, 0.8), sweep)
    elif style == 2:  # spiky / jagged strands
        n = int(rng.integers(4, 8))
        depth = a * rng.uniform(0.25, 0.45)
        jit = rng.uniform(-0.28, 0.08, 2 * n + 1) * a
        y_fn = lambda t: y_fr + jit  # noqa: E731
        lean = rng.uniform(-0.4, 0.4)
    else:  # parted in the middle (curtain bangs)
        n = 2 * int(rng.integers(2, 4))
        depth = a * rng.uniform(0.1, 0.2)
        lift = a * rng.uniform(0.25, 0.45)
        y_fn = lambda t: y_fr - lift * (1.0 - np.abs(2.0 * t - 1.0)) ** 1.5  # noqa: E731
        lean = 0.0
    zig, notches = _jagged_bottom(rng, x0, x1, y_fn, n, depth, lean)
    if style == 3:  # open the parting up to the cap
        mid = len(zig) // 2
        zig[mid] = (zig[mid][0], y_c + 0.05 * a)
        notches[len(notches) // 2] = zig[mid]
    y_side = g["ey"] + g["ry"] * rng.uniform(-0.2, 0.8)
    g.update(alpha=alpha, y_c=y_c, x_c=x_c, zig=zig, notches=notches, y_side=y_side)


def _front_hair(c: _Canvas, rng, g, col, dark, light, width):
    cx, cy, a, hw, y_top = g["cx"], g["cy"], g["a"], g["hw"], g["y_top"]
    hh = cy - y_top
    alpha, y_c, x_c, zig, notches, y_side = (g[k] for k in ("alpha", "y_c", "x_c", "zig", "notches", "y_side"))
    c.chord(cx, cy, hw, hh, 180 + alpha, 360 - alpha, fill=col)
    bangs = [(cx - x_c, y_c - 0.02), (cx - x_c, y_side)] + zig + [(cx + x_c, y_side), (cx + x_c, y_c - 0.02)]
    c.poly(bangs, fill=col)
    # outline only the visible bottom edge and the skull
    c.line([(cx - x_c, y_side)] + zig + [(cx + x_c, y_side)], fill=dark, width=width)
    c.arc(cx, cy, hw, hh, 180 + alpha * 0.5, 360 - alpha * 0.5, fill=dark, width=width)
    # strand lines from the notches toward the crown
    part_x = cx + a * g["part"]
    for (nx, ny) in notches[1:-1]:
        f = rng.uniform(0.35, 0.6)
        c.line([(nx, ny), (nx + (part_x - nx) * f, ny + (y_top - ny) * f)], fill=dark, width=width)
    # side locks framing the face: tapered strands over the cheeks
    if g["locks"]:
        y_l = cy + g["b_low"] * rng.uniform(0.35, 0.95)
        inner = a * rng.uniform(0.74, 0.86)
        tip = a * rng.uniform(0.88, 1.0)
        y0 = y_c + 0.04 * a
        for o in (-1.0, 1.0):
            mid = (y0 + y_l) * 0.5
            edge = [(cx + o * inner, y0), (cx + o * (inner + 0.02 * a), mid), (cx + o * tip, y_l)]
            lock = [(cx + o * x_c * 0.98, y_c - 0.02)] + edge + [(cx + o * a * 1.12, mid), (cx + o * a * 1.1, y0)]
            c.poly(lock, fill=col)
            c.line(edge + [(cx + o * a * 1.12, mid)], fill=dark, width=width)
    # shine: an "angel ring" highlight across the crown
    if g["shine"]:
        r = rng.uniform(0.6, 0.8)
        c.arc(cx, cy - hh * 0.05, hw * r, hh * r, 215, 325, fill=light, width=0.018)


# --------------------------------------------------------------------------- face parts

def _eye(c: _Canvas, g, ex, ey, rx, ry, o, iris, look, lash_col, hl_side, thick, flick, lower_lash, width):
    """One eye; ``o`` is -1 for the eye on the image's left (outer corner left), +1 for the right."""
    c.ellipse(ex, ey, rx, ry, fill=g["sclera"])
    icx, icy = ex + look[0] * rx, ey + (0.06 + look[1]) * ry
    irx, iry = rx * g["iris_w"], ry * g["iris_h"]
    ring = _rgb(iris * 0.5)
    c.ellipse(icx, icy, irx, iry, fill=ring)
    c.ellipse(icx, icy, irx * 0.86, iry * 0.9, fill=_rgb(iris))
    c.ellipse(icx, icy + iry * 0.42, irx * 0.64, iry * 0.42, fill=_rgb(_mix(iris, (255, 255, 255), 0.28)))
    c.ellipse(icx, icy + iry * 0.52, irx * 0.46, iry * 0.28, fill=_rgb(_mix(iris, (255, 255, 255), 0.55)))
    c.chord(icx, icy, irx * 0.86, iry * 0.9, 205, 335, fill=_rgb(iris * 0.7))
    c.ellipse(icx, icy - iry * 0.05, irx * 0.36, iry * 0.44, fill=_rgb(iris * 0.22))
    hr = irx * g["hl_r"]
    c.ellipse(icx + hl_side * irx * 0.38, icy - iry * 0.38, hr, hr * 1.1, fill=(255, 255, 255))
    if g["hl2"]:
        c.ellipse(icx - hl_side * irx * 0.3, icy + iry * 0.4, hr * 0.45, hr * 0.45, fill=(255, 255, 255))
    # upper lash: crescent thickest at the outer corner, with a flick
    phi = _ARC * 0.92 - 0.12
    r_out = 1.02 + thick * (1.0 - 0.65 * phi / math.pi)
    u_out, v_out = np.cos(phi) * r_out, -np.sin(phi) * r_out
    u_in, v_in = np.cos(phi[::-1]) * 0.94, -np.sin(phi[::-1]) * 0.94
    u = np.concatenate([u_out, u_in, [1.0 + flick, 0.9]])
    v = np.concatenate([v_out, v_in, [-0.25 - flick * 0.6, -0.5]])
    c.poly(np.stack([ex + o * u * rx, ey + v * ry], axis=1), fill=lash_col)
    if lower_lash:
        phi = np.linspace(0.15, 0.9, 5)
        c.line(np.stack([ex + o * np.cos(phi) * rx * 1.02, ey + np.sin(phi) * ry * 1.02], axis=1),
               fill=lash_col, width=width)
    # eyebrow (often hidden under the bangs)
    brow = [(ex + o * rx * 1.0, ey - ry * 1.45), (ex + o * rx * 0.2, ey - ry * 1.7), (ex - o * rx * 0.6, ey - ry * 1.62)]
    c.line(brow, fill=g["brow"], width=width * 1.3)


def _mouth(c: _Canvas, rng, mx, my, mw, skin, width):
    style = int(rng.integers(5))
    line = _rgb(_mix(skin, (70, 20, 30), 0.75))
    inside = _rgb(_mix((150, 40, 55), (0, 0, 0), rng.uniform(0.0, 0.3)))
    if style == 0:  # small smile
        c.arc(mx, my - mw * 0.5, mw, mw * 0.6, 25, 155, fill=line, width=width)
    elif style == 1:  # open smile
        h = mw * rng.uniform(0.6, 1.1)
        c.chord(mx, my - h * 0.2, mw, h, 0, 180, fill=inside, outline=line, width=width * 0.8)
        c.chord(mx, my + h * 0.35, mw * 0.55, h * 0.4, 180, 360, fill=(240, 130, 140))
    elif style == 2:  # small 'o'
        c.ellipse(mx, my, mw * 0.35, mw * 0.45, fill=inside, outline=line, width=width * 0.8)
    elif style == 3:  # cat mouth 'w'
        r = mw * 0.5
        c.arc(mx - r, my - r * 0.6, r, r * 0.8, 10, 170, fill=line, width=width)
        c.arc(mx + r, my - r * 0.6, r, r * 0.8, 10, 170, fill=line, width=width)
    else:  # flat / pout line
        c.line([(mx - mw * 0.6, my), (mx + mw * 0.6, my + mw * rng.uniform(-0.15, 0.15))], fill=line, width=width)


# --------------------------------------------------------------------------- main entry

def render_face(seed: int, index: int, size: int) -> tuple[np.ndarray, int, int]:
    """Draw one procedural anime face.

    Returns ``(image, hair, eye)``: a ``uint8`` array of shape ``[size, size, 3]``, the
    hair-colour index into :data:`HAIR_COLORS` and the eye-colour index into
    :data:`EYE_COLORS`.  Deterministic in ``(seed, index, size)`` and independent of call
    order; the labels and the face's geometry do not depend on ``size``.
    """
    seed, index, size = int(seed), int(index), int(size)
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    if not _MIN_SIZE <= size <= _MAX_SIZE:
        raise ValueError(f"size must be in [{_MIN_SIZE}, {_MAX_SIZE}], got {size}")
    rng = np.random.default_rng([seed, index])
    hair = int(rng.integers(len(HAIR_COLORS)))
    eye = int(rng.integers(len(EYE_COLORS)))

    ss = _supersample(size)
    W = size * ss
    lw = 0.011  # outline width in unit coordinates (~0.7 px at 64 px)

    # ---- colours
    hcol = np.clip(_HAIR[hair] + rng.normal(0.0, 7.0, 3), 0, 255)
    hair_col = _rgb(hcol)
    hair_dark = _rgb(hcol * 0.55 if hair != 2 else _mix(hcol, (0, 0, 0), 0.6))
    hair_light = _rgb(_mix(hcol, (255, 255, 255), 0.45) if hair != 9 else (255, 255, 255))
    iris = np.clip(_EYE[eye] + rng.normal(0.0, 7.0, 3), 0, 255)
    tone = rng.random()
    skin = np.array([255.0 - 8 * tone, 236.0 - 22 * tone, 220.0 - 30 * tone]) + rng.normal(0.0, 2.5, 3)
    skin_col = _rgb(skin)
    skin_shadow = _rgb(skin * np.array([0.95, 0.86, 0.86]))
    skin_line = _rgb(skin * np.array([0.62, 0.45, 0.42]))

    # ---- geometry (unit square)
    a = rng.uniform(0.22, 0.29)                      # face half-width
    b_up = a * rng.uniform(0.95, 1.1)                # widest line -> top of skull
    b_low = a * rng.uniform(1.15, 1.45)              # widest line -> chin
    hair_thick = a * rng.uniform(0.12, 0.3)
    y_top = rng.uniform(0.0, 0.12)
    cx = 0.5 + rng.uniform(-0.07, 0.07)
    cy = y_top + hair_thick + b_up
    g = {
        "a": a, "cx": cx, "cy": cy, "b_low": b_low, "y_top": y_top,
        "hw": a * rng.uniform(1.12, 1.3),
        "back": int(rng.integers(5)),
        "bangs": int(rng.integers(4)),
        "locks": rng.random() < 0.65,
        "shine": rng.random() < 0.7,
        "part": rng.uniform(-0.5, 0.5),
    }
    ey = cy + b_low * rng.uniform(0.02, 0.16)
    rx = a * rng.uniform(0.2, 0.27)
    ry = rx * rng.uniform(1.0, 1.35)
    dx = a * rng.uniform(0.42, 0.52)
    g.update(ey=ey, ry=ry, y_fringe=ey - ry * rng.uniform(0.95, 1.5))

    img = _background(rng, W)
    c = _Canvas(img)

    # ---- back hair, body
    _back_hair(c, rng, g, hair_col, hair_dark, lw)
    nw = a * rng.uniform(0.3, 0.4)
    chin_y = cy + b_low
    c.poly([(cx - nw, cy + b_low * 0.5), (cx + nw, cy + b_low * 0.5), (cx + nw, 1.1), (cx - nw, 1.1)],
           fill=skin_shadow, outline=skin_line, width=lw)
    y_sh = chin_y + a * rng.uniform(0.12, 0.4)
    if y_sh < 1.0:
        cloth = _pick_color(rng, 0.2, 0.8, 0.25, 0.95)
        cloth_col, cloth_dark = _rgb(cloth), _rgb(cloth * 0.6)
        sw = a * rng.uniform(1.7, 2.3)
        half = [(nw * 1.2, y_sh), (sw * 0.8, y_sh + a * 0.2), (sw, y_sh + a * 0.6), (sw * 1.1, 1.1)]
        body = [(cx - x, y) for x, y in half] + [(cx + x, y) for x, y in reversed(half)]
        c.poly(body, fill=cloth_col, outline=cloth_dark, width=lw)
        neck_v = a * rng.uniform(0.1, 0.45)
        c.poly([(cx - nw, y_sh - 0.005), (cx + nw, y_sh - 0.005), (cx, y_sh + neck_v)], fill=skin_shadow)
        if rng.random() < 0.35:  # ribbon / bow
            bow = _rgb(_pick_color(rng, 0.6, 0.9, 0.6, 1.0, min_dist=40.0))
            bx, by, bs = cx, y_sh + neck_v, a * rng.uniform(0.12, 0.2)
            c.poly([(bx, by), (bx - bs, by - bs * 0.6), (bx - bs, by + bs * 0.6)], fill=bow)
            c.poly([(bx, by), (bx + bs, by - bs * 0.6), (bx + bs, by + bs * 0.6)], fill=bow)

    # ---- face outline: elliptic skull, cheeks tapering to a chin
    th = np.linspace(math.pi, 2 * math.pi, 10)
    upper = np.stack([cx + a * np.cos(th), cy + b_up * np.sin(th)], axis=1)
    roundness = rng.uniform(0.0, 0.6)
    k = rng.uniform(1.6, 3.0)
    chin_w = rng.uniform(0.0, 0.1)
    u = _U12
    w = a * (chin_w + (1.0 - chin_w) * (roundness * np.sqrt(1.0 - u * u) + (1.0 - roundness) * (1.0 - u ** k)))
    right = np.stack([cx + w, cy + b_low * u], axis=1)
    left = np.stack([cx - w[::-1], cy + b_low * u[::-1]], axis=1)
    c.poly(np.concatenate([upper, right, left]), fill=skin_col, outline=skin_line, width=lw * 0.9)

    # ---- fringe outline, and the shadow it casts on the forehead
    _bangs_shape(rng, g)
    if rng.random() < 0.75:
        drop = a * rng.uniform(0.04, 0.09)
        zig = g["zig"]
        shadow = [(zig[0][0], g["y_c"])] + [(x, y + drop) for x, y in zig] + [(zig[-1][0], g["y_c"])]
        c.poly(shadow, fill=skin_shadow)

    # ---- blush, nose, mouth
    mx = cx + a * rng.uniform(-0.04, 0.04)
    my = cy + b_low * rng.uniform(0.56, 0.7)
    if rng.random() < 0.55:
        blush = _rgb(_mix(skin, (255, 110, 130), rng.uniform(0.22, 0.42)))
        by = ey + ry * rng.uniform(1.15, 1.45)
        hatch = rng.random() < 0.4
        for o in (-1.0, 1.0):
            bx = cx + o * (dx + rx * 0.1)
            c.ellipse(bx, by, rx * 0.85, ry * 0.25, fill=blush)
            if hatch:
                hc = _rgb(_mix(skin, (230, 80, 100), 0.55))
                for j in (-0.4, 0.0, 0.4):
                    c.line([(bx + j * rx, by + ry * 0.12), (bx + (j + 0.2) * rx, by - ry * 0.12)],
                           fill=hc, width=lw * 0.7)
    nose = int(rng.integers(3))
    ny = ey + (my - ey) * rng.uniform(0.5, 0.65)
    if nose == 1:
        c.ellipse(cx + a * 0.02, ny, a * 0.018, a * 0.018, fill=skin_line)
    elif nose == 2:
        c.line([(cx + a * 0.03, ny - a * 0.05), (cx - a * 0.01, ny + a * 0.02)], fill=skin_line, width=lw * 0.8)
    _mouth(c, rng, mx, my, a * rng.uniform(0.08, 0.17), skin, lw)

    # ---- eyes
    g["sclera"] = _rgb(np.array([255.0, 255.0, 255.0]) - rng.uniform(0.0, 10.0) * np.array([1.0, 0.8, 0.5]))
    g["iris_w"] = rng.uniform(0.56, 0.7)
    g["iris_h"] = rng.uniform(0.78, 0.9)
    g["hl_r"] = rng.uniform(0.22, 0.34)
    g["hl2"] = rng.random() < 0.7
    g["brow"] = hair_dark
    look = (rng.uniform(-0.14, 0.14), rng.uniform(-0.04, 0.04))
    lash = _rgb(np.array([40.0, 26.0, 32.0]) + rng.normal(0.0, 6.0, 3))
    thick = rng.uniform(0.16, 0.32)
    flick = rng.uniform(0.1, 0.3)
    lower = rng.random() < 0.5
    hl_side = -1.0 if rng.random() < 0.5 else 1.0
    for o in (-1.0, 1.0):
        jx, jy, js = rng.uniform(-0.015, 0.015) * a, rng.uniform(-0.015, 0.015) * a, rng.uniform(0.97, 1.03)
        _eye(c, g, cx + o * dx + jx, ey + jy, rx * js, ry * js, o, iris, look, lash, hl_side, thick, flick, lower, lw)

    # ---- front hair
    _front_hair(c, rng, g, hair_col, hair_dark, hair_light, lw)

    # np.array (not asarray): a writable array that owns its memory (torch.from_numpy-friendly)
    return np.array(img.reduce(ss), dtype=np.uint8), hair, eye
