"""Fréchet Inception Distance and Kernel Inception Distance from feature vectors.

FID (Heusel et al. 2017) fits a Gaussian to each feature set and returns
    ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),
computed in float64 with :func:`scipy.linalg.sqrtm`.

KID (Binkowski et al. 2018) is the unbiased estimate of the squared MMD with the cubic polynomial
kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets; unlike FID it has no bias in the
number of samples, so its mean over repeats is ~0 for two samples of one distribution (and single
estimates can be negative).
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["feature_moments", "fid_from_features", "fid_from_stats", "kid_from_features", "mmd2_unbiased",
           "polynomial_kernel"]


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
    covmean = _sqrtm_product(s1, s2)
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))  # rounding can push an exact 0 below zero


def _sqrtm_product(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """(S1 S2)^(1/2), real part; retried with a small diagonal offset when S1 S2 is singular."""
    import scipy.linalg  # noqa: PLC0415 - imported when FID is computed, not when the registry is

    with warnings.catch_warnings():  # "matrix is singular" when N < D: handled below
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            eps = 1e-6 * max(1.0, float(np.abs(np.diag(s1)).max()), float(np.abs(np.diag(s2)).max()))
            offset = np.eye(s1.shape[0]) * eps
            covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # The product of two PSD matrices has a real, non-negative spectrum: imaginary parts are
        # round-off (they grow when N < D makes the covariances singular).
        covmean = covmean.real
    return covmean


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
