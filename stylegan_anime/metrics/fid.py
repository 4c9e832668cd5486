"""Fréchet Inception Distance and Kernel Inception Distance from feature vectors.

FID (Heusel et al. 2017) fits a Gaussian to each feature set and returns
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),
computed in float64; the trace of the matrix square root comes from symmetric eigendecompositions
(:func:`trace_sqrt_product`), which agrees with the usual ``scipy.linalg.sqrtm`` to 1e-8 relative or better.

KID (Binkowski et al. 2018) is the unbiased estimate of the squared MMD with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets; unlike FID it has no bias in the
number of samples, so its mean over repeats is ~0 for two samples of one distribution (and single
estimates can be negative).
"""
from __future__ import annotations

import numpy as np

__all__ = ["feature_moments", "fid_from_features", "fid_from_stats", "kid_from_features", "mmd2_unbiased",
           "polynomial_kernel", "trace_sqrt_product"]


def _as_features(f, name: str, min_rows: int) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, D] feature array, got shape {list(f.shape)}")
    if f.shape[0] < min_rows:
        raise ValueError(f"{name} has {f.shape[0]} samples; at least {min_rows} are needed")
    return f


def feature_moments(f) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and unbiased covariance [D,D] of features [N,D], in float64 (N >= 2)."""
    f = _as_features(f, "features", 2)
    return f.mean(0), np.cov(f, rowvar=False)


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """FID between two Gaussians given by their means [D] and covariances [D,D]."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"inconsistent shapes: mu {list(mu1.shape)}/{list(mu2.shape)}, "
                         f"sigma {list(s1.shape)}/{list(s2.shape)}")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2)
    return float(max(value, 0.0))  # rounding can push an exact 0 below zero


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr (S1 S2)^(1/2) for covariances S1, S2 (symmetric PSD).

    S1 S2 is similar to the symmetric PSD matrix S1^(1/2) S2 S1^(1/2), so the trace is the sum of the square
    roots of that matrix's eigenvalues: two symmetric eigendecompositions, about 4x faster than a general
    matrix square root of S1 S2 at D = 2048 and stable when N < D makes the covariances singular
    (round-off eigenvalues below 0 are clipped).
    """
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ s2 @ root1
    ev = np.linalg.eigvalsh((m + m.T) * 0.5)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def fid_from_features(f1, f2) -> float:
    """FID between feature sets [N,D] and [M,D] (N, M >= 2; the same D)."""
    f1 = _as_features(f1, "first feature set", 2)
    f2 = _as_features(f2, "second feature set", 2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    mu1, s1 = feature_moments(f1)
    mu2, s2 = feature_moments(f2)
    return fid_from_stats(mu1, s1, mu2, s2)


def polynomial_kernel(x, y) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3 for rows of x [N,D] and y [M,D] -> [N,M] (float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x, y, dtype=np.float64) -> float:
    """Unbiased MMD^2 with :func:`polynomial_kernel`: diagonal terms of k(x,x), k(y,y) are left out.

        mean_{i!=j} k(x_i, x_j) + mean_{i!=j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)

    ``dtype`` is that of the Gram matrix products (float32 halves KID's time); cubes and sums are float64.
    """
    x, y = np.asarray(x, dtype), np.asarray(y, dtype)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"MMD needs at least 2 samples per set, got {m} and {n}")
    d = x.shape[1]

    def k(a, b):  # [len(a), len(b)] float64
        return ((a @ b.T).astype(np.float64) / d + 1.0) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def kid_from_features(f1, f2, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> float:
    """KID: unbiased MMD^2 averaged over ``num_subsets`` random subsets of min(N, M, max) rows each.

    Subsets are drawn without replacement within a subset; deterministic for ``seed``.
    """
    f1 = _as_features(f1, "first feature set", 2)
    f2 = _as_features(f2, "second feature set", 2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    m = min(len(f1), len(f2), int(max_subset_size))
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples, got max_subset_size={max_subset_size}")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(int(num_subsets)):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        total += mmd2_unbiased(x, y, dtype=np.float32)
    return total / int(num_subsets)
