"""What the explorer shows: one `View` (seed, truncation, style mixing, noise, tags, a projected latent,
amounts along the saved directions), read from a URL query or a JSON body with one-line errors.

    View.from_query({"seed": "3", "psi": "0.7", "dirs": "0,1.5,-2"})   -> View(seed=3, psi=0.7, ...)
    view.to_query()                                                    -> the same, as a query string

`dirs` lists the amount along direction 0, 1, 2, ... (in standard deviations of w; missing ones are 0).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode

MIX_GROUPS = ("none", "coarse", "middle", "fine")
NOISE_MODES = ("const", "random", "none")
MAX_SEED = 2**31 - 1
PSI_RANGE = (-1.0, 2.0)
AMOUNT_LIMIT = 20.0


@dataclass(frozen=True)
class View:
    seed: int = 0
    psi: float = 0.7
    mix_seed: int = 1
    mix: str = "none"            # which style layers come from mix_seed: none, coarse, middle, fine
    noise: str = "const"         # const: the trained maps; random: drawn from noise_seed; none
    noise_seed: int = 0
    tags: str = ""               # conditional models: e.g. "pink hair, blue eyes" ("" = the seed's random tags)
    latent: str = ""             # a loaded latent's name instead of the seed ("" = the seed)
    dirs: tuple[float, ...] = field(default_factory=tuple)

    @classmethod
    def from_query(cls, query: dict) -> "View":
        """From {name: value} (values str or a one-element list, as parse_qs gives). ValueError, one line."""
        q = {k: (v[-1] if isinstance(v, list) else v) for k, v in query.items()}
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(q) - known)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        kw = {}
        for name in ("seed", "mix_seed", "noise_seed"):
            if name in q:
                kw[name] = _int(name, q[name])
        if "psi" in q:
            kw["psi"] = _float("psi", q["psi"], *PSI_RANGE)
        for name, choices in (("mix", MIX_GROUPS), ("noise", NOISE_MODES)):
            if name in q:
                value = str(q[name]).strip().lower()
                if value not in choices:
                    raise ValueError(f"{name} must be one of {', '.join(choices)}, got {q[name]!r}")
                kw[name] = value
        for name in ("tags", "latent"):
            if name in q:
                kw[name] = str(q[name]).strip()
        if "dirs" in q:
            kw["dirs"] = _amounts(q["dirs"])
        return cls(**kw)

    def to_query(self) -> str:
        d = asdict(self)
        d["dirs"] = ",".join(f"{a:g}" for a in self.dirs)
        return urlencode(d)

    def amounts(self) -> list[tuple[int, float]]:
        """(direction index, amount) for the non-zero amounts."""
        return [(i, a) for i, a in enumerate(self.dirs) if a != 0]


def _int(name: str, value) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not 0 <= number <= MAX_SEED:
        raise ValueError(f"{name} must be between 0 and {MAX_SEED}, got {number}")
    return number


def _float(name: str, value, lo: float, hi: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return number


def _amounts(value) -> tuple[float, ...]:
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        text = str(value).strip()
        parts = [p for p in text.split(",")] if text else []
    return tuple(_float("dirs", p if str(p).strip() else 0, -AMOUNT_LIMIT, AMOUNT_LIMIT) for p in parts)


__all__ = ["MIX_GROUPS", "NOISE_MODES", "View"]
