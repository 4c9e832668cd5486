"""Sane ranges for the float options of the W-space and video commands (click's float type takes nan, inf and
1e30 without a word; these refuse them with one-line ValueErrors, which the CLI reports as `error: ...`).

    --psi       truncation, in [-2, 2]: 1 = no truncation, 0 = the average face, negative = the "anti-face"
    --amount    an edit in standard deviations (sigma) of w along a direction, |amount| <= 100
    --steps     the amounts of a figure's columns, each |amount| <= 100
    --lr        the projector's peak learning rate, in (0, 10]
    --fps       frames per second, in (0, 240]; --seconds in (0, 3600]
"""
from __future__ import annotations

import math

PSI_RANGE = (-2.0, 2.0)
AMOUNT_LIMIT = 100.0
LR_RANGE = (0.0, 10.0)
FPS_RANGE = (0.0, 240.0)
SECONDS_RANGE = (0.0, 3600.0)


def check_number(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> float:
    """float(value) if it is finite and in [lo, hi] ((lo, hi] with lo_open); else a one-line ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if v > hi or v < lo or (lo_open and v == lo):
        raise ValueError(f"{name} must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v:g}")
    return v


def check_psi(value: float, name: str = "--psi") -> float:
    return check_number(name, value, *PSI_RANGE)


def check_amount(value: float, name: str = "--amount") -> float:
    """An edit amount in sigma: finite, |value| <= AMOUNT_LIMIT."""
    return check_number(f"{name} (in sigma)", value, -AMOUNT_LIMIT, AMOUNT_LIMIT)


__all__ = ["AMOUNT_LIMIT", "FPS_RANGE", "LR_RANGE", "PSI_RANGE", "SECONDS_RANGE", "check_amount", "check_number",
           "check_psi"]
