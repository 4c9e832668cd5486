"""The house: stylegan_anime's modules and the imports between them (read with ast: nothing is imported).

    python tools/draw_house.py                 # rooms (packages) and the arrows between them, then any circle
    python tools/draw_house.py --modules       # every module-to-module arrow
    python tools/draw_house.py --dot house.dot # Graphviz, one cluster per room

An arrow A -> B means a module of A imports one of B (at the top or inside a function: both count). A circle
is a set of modules that import each other, directly or around a loop; there should be none.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Folders installed under another name (setup.py package_dir).
ROOTS = {"stylegan_anime": REPO / "stylegan_anime", "stylegan_anime.baselines": REPO / "baselines",
         "stylegan_anime.cuda_ops": REPO / "cuda_ops"}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py of the package (packages as their __init__)."""
    out = {}
    for prefix, folder in ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if name.startswith("stylegan_anime.baselines") and prefix == "stylegan_anime":
                continue
            out[name] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        parts = parts if is_package else parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return [base] + [f"{base}.{a.name}" for a in node.names]


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(name, path.name == "__init__.py", node)
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is not an arrow
                    graph[name].add(t)
        graph.setdefault(name, set())
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected sets of two or more modules (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def room(module: str) -> str:
    """The package a module lives in ('stylegan_anime' for the top-level modules)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or module in ROOTS or _is_package(module) else parts[0]


def _is_package(module: str) -> bool:
    return modules().get(module, Path()).name == "__init__.py"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", action="store_true", help="every module-to-module arrow")
    p.add_argument("--dot", metavar="FILE", help="write a Graphviz file")
    args = p.parse_args(argv)
    graph = import_graph()
    mods = modules()
    rooms: dict[str, set[str]] = defaultdict(set)
    for a, bs in graph.items():
        for b in bs:
            if room(a) != room(b):
                rooms[room(a)].add(room(b))
    lines = {r: sum(len(mods[m].read_text().splitlines()) for m in mods if room(m) == r) for r in
             {room(m) for m in mods}}
    if args.modules:
        for a in sorted(graph):
            print(f"{a} -> {', '.join(sorted(graph[a])) or '-'}")
    else:
        for r in sorted(lines):
            print(f"{r} ({lines[r]:,} lines) -> {', '.join(sorted(x.removeprefix('stylegan_anime.') for x in rooms[r])) or '-'}")
    found = circles(graph)
    print(f"\ncircles: {len(found)}")
    for c in found:
        print("  " + " <-> ".join(c))
    if args.dot:
        with open(args.dot, "w") as f:
            f.write("digraph house {\n  rankdir=LR; node [shape=box, fontsize=10];\n")
            for r in sorted(lines):
                f.write(f'  "{r}" [label="{r}\\n{lines[r]:,} lines"];\n')
            for a in sorted(rooms):
                for b in sorted(rooms[a]):
                    f.write(f'  "{a}" -> "{b}";\n')
            f.write("}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
