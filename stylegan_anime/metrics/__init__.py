"""Evaluation metrics: FID / KID (FID Inception-v3), SWD (Laplacian-pyramid patches), AFD (anime faces) and
C2ST (a small CNN's held-out accuracy at telling generated from real images).

Entry points::

    from stylegan_anime.metrics import evaluate, evaluate_folder, METRICS
    scores = evaluate(["fid10k", "kid", "swd", "afd"], gen, dataset, device="cuda")
    # gen(n) -> uint8 numpy [n,H,W,3]: the next n generated images on each call

Registered metrics (see :data:`METRICS`): ``fid5k``, ``fid10k``, ``fid50k``, ``kid`` (10k), ``swd``
(4096 images, with its real-vs-real floor per level), ``afd`` (1k) and ``c2st`` (2k; no download).
Metrics whose requirements are missing are skipped with one warning line: FID/KID need pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` (argument, ``$STYLEGAN_ANIME_INCEPTION`` or the torch-hub cache),
AFD needs the optional ``animeface`` package.
Lower-level pieces: :mod:`.fid`, :mod:`.swd`, :mod:`.afd`, :mod:`.c2st`, :mod:`.inception`, :mod:`.stats`.
"""
from .afd import AnimeFaceDetector, afd_rate
from .c2st import C2STConfig, c2st
from .registry import METRICS, MetricSpec, evaluate, evaluate_folder, list_metrics
from .fid import fid_from_features, fid_from_stats, kid_from_features
from .inception import FIDInceptionV3, MetricUnavailable, download_inception, load_inception
from .stats import feature_stats
from .swd import swd
from .tagacc import evaluate_tags

# Metrics that need a tag-conditional generator (scored with requested labels), beside the registry's.
TAG_METRICS = ("tagacc",)
ALL_METRICS = (*METRICS, *TAG_METRICS)

__all__ = [
    "ALL_METRICS",
    "METRICS",
    "TAG_METRICS",
    "evaluate_tags",
    "AnimeFaceDetector",
    "C2STConfig",
    "FIDInceptionV3",
    "MetricSpec",
    "MetricUnavailable",
    "afd_rate",
    "c2st",
    "download_inception",
    "evaluate",
    "evaluate_folder",
    "feature_stats",
    "fid_from_features",
    "fid_from_stats",
    "kid_from_features",
    "list_metrics",
    "load_inception",
    "swd",
]
