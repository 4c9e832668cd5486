"""The tables (per op, per training step; n/a cells with numbered reasons) and the check of issue #4's targets."""
from __future__ import annotations

from .common import IMPLS


class Footnotes:
    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, reason: str) -> str:
        if reason not in self.items:
            self.items.append(reason)
        return f"n/a[{self.items.index(reason) + 1}]"

    def lines(self) -> list[str]:
        return [f"  [{i + 1}] {r}" for i, r in enumerate(self.items)]


def format_columns(head: list[str], body: list[list[str]], right: set[int] | None = None) -> str:
    """Plain-text columns like stylegan_anime.benchmarks.training.format_table (numbers right-aligned)."""
    right = right or set()
    widths = [max(len(x) for x in col) for col in zip(head, *body)]

    def line(cells):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(cells).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def _ms(v: float | None, notes: Footnotes, reason: str = "") -> str:
    if v is None:
        return notes.ref(reason or "not measured")
    return f"{v:.4f}" if v < 1 else f"{v:.3f}" if v < 100 else f"{v:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


OP_HEAD = ["op", "shape", "params", "n", "where", "cuda ms", "ref ms", "compiled ms", "cuda/ref", "cuda/compiled",
           "compiled/ref"]


def op_rows(size_rows: list[dict]) -> tuple[list[list[str]], list[str]]:
    """Table body (ops of one size, then its weighted total) and footnotes."""
    notes = Footnotes()
    body = []
    for r in size_rows:
        ms, why = r["ms"], r["reasons"]
        cells = [_ms(ms.get(i), notes, why.get(i, "")) if i in ms else "-" for i in IMPLS]
        body.append([r["op"], r["shape"], r["params"], str(r["count"]), r["where"], *cells,
                     _ratio(ms.get("ref"), ms.get("cuda")), _ratio(ms.get("compiled"), ms.get("cuda")),
                     _ratio(ms.get("ref"), ms.get("compiled"))])
    return body, notes.lines()


def weighted_totals(size_rows: list[dict]) -> dict[str, float | None]:
    """sum(ms x occurrences) per impl; None when any signature is n/a for it."""
    out: dict[str, float | None] = {}
    for impl in IMPLS:
        vals = [(r["ms"].get(impl), r["count"]) for r in size_rows if impl in r["ms"]]
        if vals:
            out[impl] = None if any(v is None for v, _ in vals) else sum(v * n for v, n in vals)
    return out


STEP_HEAD = ["size", "batch", "ops", "ms/iter", "s/kimg", "img/s", "vs ref", "warm-up s", "note"]


def step_body(rows: list[dict]) -> tuple[list[list[str]], list[str]]:
    notes = Footnotes()
    ref_ms = {r["size"]: r["ms"] for r in rows if r["impl"] == "ref"}
    body = []
    for r in rows:
        ms = r["ms"]
        per_img = ms / r["batch"] if ms else None
        body.append([str(r["size"]), str(r["batch"]), r["impl"], _ms(ms, notes, r["reason"]),
                     f"{per_img:.3f}" if per_img else "-", f"{1000 / per_img:.1f}" if per_img else "-",
                     _ratio(ref_ms.get(r["size"]), ms), f"{r['warmup_s']:.1f}" if r["warmup_s"] is not None else "-",
                     r["note"]])
    return body, notes.lines()


def op_table(size_rows: list[dict]) -> tuple[str, list[str], dict[str, float | None]]:
    """The per-op table of one size (its ops, then the weighted total), its footnotes, and the totals."""
    body, notes = op_rows(size_rows)
    totals = weighted_totals(size_rows)
    tot_notes = Footnotes()
    tot_cells = [("-" if i not in totals else _ms(totals[i], tot_notes, "a signature is n/a")) for i in IMPLS]
    body.append(["weighted total", "", "", str(sum(r["count"] for r in size_rows)), "", *tot_cells,
                 _ratio(totals.get("ref"), totals.get("cuda")), _ratio(totals.get("compiled"), totals.get("cuda")),
                 _ratio(totals.get("ref"), totals.get("compiled"))])
    return format_columns(OP_HEAD, body, right={3, 5, 6, 7, 8, 9, 10}), notes, totals


def step_table(rows: list[dict]) -> tuple[str, list[str]]:
    """The training-step table (every size and impl) and its footnotes."""
    body, notes = step_body(rows)
    return format_columns(STEP_HEAD, body, right={3, 4, 5, 6, 7}), notes


TARGET_OP_SPEEDUP = 3.0  # issue #4: each fused op >= 3x the eager reference (on an H100)


def target_summary(op_rows_all: list[dict], step_rows: list[dict]) -> list[str]:
    """Lines checking issue #4's targets against what was measured (nothing is claimed for n/a cells)."""
    lines = []
    for size in sorted({r["size"] for r in op_rows_all}):
        rows = [r for r in op_rows_all if r["size"] == size]
        pairs = [(r["ms"]["ref"] / r["ms"]["cuda"], r) for r in rows
                 if r["ms"].get("cuda") and r["ms"].get("ref")]
        if not pairs:
            why = next((r["reasons"].get("cuda") for r in rows if r["reasons"].get("cuda")), "cuda not timed")
            lines.append(f"{size} px ops: not checked (cuda n/a: {why})")
            continue
        ok = sum(1 for ratio, _ in pairs if ratio >= TARGET_OP_SPEEDUP)
        worst, wr = min(pairs, key=lambda p: p[0])
        totals = weighted_totals(rows)
        tot = (f"; weighted total {totals['ref'] / totals['cuda']:.2f}x" if totals.get("ref") and totals.get("cuda")
               else "")
        lines.append(f"{size} px ops: {ok}/{len(pairs)} signatures have cuda >= {TARGET_OP_SPEEDUP:g}x ref; slowest "
                     f"{worst:.2f}x ({wr['op']} {wr['shape']} {wr['params']}){tot}")
    for size in sorted({r["size"] for r in step_rows}):
        by = {r["impl"]: r for r in step_rows if r["size"] == size}
        cuda = by.get("cuda", {}).get("ms")
        comp = by.get("compiled", {}).get("ms")
        label = "compiled"
        if comp is None and by.get("compiled-partial", {}).get("ms"):
            comp, label = by["compiled-partial"]["ms"], "compiled-partial (the all-compiled step is n/a)"
        if cuda is None or comp is None:
            def state(impl, ms):
                return "not timed" if impl not in by else "n/a" if ms is None else "timed"

            lines.append(f"{size} px step: not checked (cuda {state('cuda', cuda)}, compiled "
                         f"{state('compiled', comp)})")
        else:
            verdict = "faster" if cuda < comp else "NOT faster"
            lines.append(f"{size} px step: cuda {cuda:.1f} ms vs {label} {comp:.1f} ms: {verdict} ({comp / cuda:.2f}x)")
    return lines
