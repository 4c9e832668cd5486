"""What the explorer shows: one `View` (seed, truncation, style mixing, noise, tags, a projected latent,
amounts along the saved directions), read from a URL query or a JSON body with one-line errors.

    View.from_query({"seed": "3", "psi": "0.7", "dirs": "0,1.5,-2"})   -> View(seed=3, psi=0.7, ...)
    view.to_query()                                                    -> the same, as a query string

`dirs` lists the amount along direction 0, 1, 2, ... (in standard deviations of w; missing ones are 0).
A bad setting raises `ViewError` (a ValueError) whose `field` names the setting, so the page can point at the
control the user sees (its label, e.g. "seed 2" for mix_seed) instead of the parameter name.
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


class ViewError(ValueError):
    """A one-line error about one setting of a view; `field` is the View field's name ("" if none)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class View:
    seed: int = 0
    psi: float = 0.7
    mix_seed: int = 1
    mix: str = "none"            # which style layers come from mix_seed: none, coarse, middle, fine
    noise: str = "const"         # const: the trained maps; random: drawn from noise_seed; none
    noise_seed: int = 0
    tags: str = ""               # conditional models: e.g. "pink hair, blue eyes" ("" = the seed's random tags)
    class_index: int = -1        # class-conditional models: query `class` (-1 = the seed's random class)
    latent: str = ""             # a loaded latent's name instead of the seed ("" = the seed)
    dirs: tuple[float, ...] = field(default_factory=tuple)

    @classmethod
    def from_query(cls, query: dict) -> "View":
        """From {name: value} (values str or a one-element list, as parse_qs gives). ValueError, one line."""
        if "class" in query:  # a Python keyword, so the field is class_index
            query = {("class_index" if k == "class" else k): v for k, v in query.items()}
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(str(k) for k in set(query) - known)
        if unknown:
            raise ViewError(f"unknown setting {unknown[0][:40]!r}; known: {', '.join(sorted(known))}")
        q = {}
        for k, v in query.items():
            if isinstance(v, list):
                if not v:
                    raise ViewError(f"{k} has no value", k)
                v = v[-1]
            q[k] = v
        kw = {}
        for name in ("seed", "mix_seed", "noise_seed"):
            if name in q:
                kw[name] = _int(name, q[name])
        if "class_index" in q and str(q["class_index"]).strip() not in ("", "-1"):
            kw["class_index"] = _int("class", q["class_index"])
        if "psi" in q:
            kw["psi"] = _float("psi", q["psi"], *PSI_RANGE)
        for name, choices in (("mix", MIX_GROUPS), ("noise", NOISE_MODES)):
            if name in q:
                value = str(q[name]).strip().lower()
                if value not in choices:
                    raise ViewError(f"{name} must be one of {', '.join(choices)}, got {_short(q[name])}", name)
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
        d["class"] = d.pop("class_index")
        return urlencode(d)

    def amounts(self) -> list[tuple[int, float]]:
        """(direction index, amount) for the non-zero amounts."""
        return [(i, a) for i, a in enumerate(self.dirs) if a != 0]


def _int(name: str, value) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ViewError(f"{name} must be a whole number, got {_short(value)}", name) from None
    if not 0 <= number <= MAX_SEED:
        raise ViewError(f"{name} must be between 0 and {MAX_SEED}, got {_short(number)}", name)
    return number


def _float(name: str, value, lo: float, hi: float) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ViewError(f"{name} must be a number, got {_short(value)}", name) from None
    if not (math.isfinite(number) and lo <= number <= hi):
        raise ViewError(f"{name} must be between {lo:g} and {hi:g}, got {_short(value)}", name)
    return number


def _short(value, limit: int = 40) -> str:
    """repr of a user's value, cut to `limit` characters (a 60 kB value must not come back in the error)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _amounts(value) -> tuple[float, ...]:
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        text = str(value).strip()
        parts = [p for p in text.split(",")] if text else []
    return tuple(_float("dirs", p if str(p).strip() else 0, -AMOUNT_LIMIT, AMOUNT_LIMIT) for p in parts)


__all__ = ["MIX_GROUPS", "NOISE_MODES", "View", "ViewError"]
