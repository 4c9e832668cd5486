"""The test suite never writes into the user's ~/.cache: conftest's autouse `_private_caches` moves every cache a
test can fill into the session's temporary folder."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import HOME_CACHES


def test_every_cache_variable_points_into_the_session_tmp_dir(_private_caches, tmp_path_factory):
    base = tmp_path_factory.getbasetemp().resolve()
    for var in HOME_CACHES:
        assert Path(os.environ[var]).resolve().is_relative_to(base), var
        assert not Path(os.environ[var]).resolve().is_relative_to(Path.home() / ".cache"), var


def test_a_packed_dataset_lands_in_the_private_cache(_private_caches):
    from stylegan_anime.data import open_dataset
    from stylegan_anime.metrics.stats import metrics_cache_dir

    open_dataset("demo:8", 32, progress=False)
    root = _private_caches / "stylegan-anime"
    assert any(p.is_dir() for p in root.iterdir()), list(root.iterdir())  # the pack was written here
    assert Path(metrics_cache_dir()).resolve().is_relative_to(root.resolve())  # metric statistics too
