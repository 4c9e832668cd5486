"""The house stays livable: no import circle between the package's modules, no package named `tools` inside
stylegan_anime (tools/ at the top is the scripts' home), and the trainer loop stays readable."""
from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _draw_house():
    spec = importlib.util.spec_from_file_location("draw_house", REPO / "tools" / "draw_house.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_circles():
    house = _draw_house()
    graph = house.import_graph()
    assert "stylegan_anime.training.trainer" in graph and graph["stylegan_anime.training.trainer"]
    assert house.circles(graph) == []


def test_circle_finder_finds_a_circle():
    house = _draw_house()
    assert house.circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_rooms():
    assert not (REPO / "stylegan_anime" / "tools").exists()
    for room in ("editing", "reports", "training", "explore", "metrics", "data", "stylegan2"):
        assert (REPO / "stylegan_anime" / room / "__init__.py").is_file(), room
    assert len((REPO / "stylegan_anime" / "training" / "trainer.py").read_text().splitlines()) <= 500
