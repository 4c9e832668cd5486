"""Label encodings for the tag-conditional baselines (`cgan`, `acgan`).

Labels are integer class indices, one column per attribute (`label_names` order: hair, eye), -1 meaning
unknown. A `LabelEncoder` turns them into the float condition vector G and D consume:

    onehot  one-hot per group, concatenated: 12 hair + 10 eye = 22 dims; an unknown group is all zeros.
    rgb     the "rgb embed": each group's colour as RGB in [0, 1] from the demo palette (HAIR_RGB,
            EYE_RGB): 3 hair + 3 eye = 6 dims. An unknown group gets the palette's mean colour (the
            expected colour under a uniform label). Because the input is a colour, not a class, any RGB
            colour can be asked for at sampling time.

An encoder also accepts an already-encoded float condition [N, dim] (e.g. from `tools.tags.rgb_labels`),
which it passes through unchanged: that is how an arbitrary colour reaches an rgb-conditioned G.
"""
from __future__ import annotations

import torch
from torch import nn

from stylegan_anime.data.demo import EYE_COLORS, EYE_RGB, HAIR_COLORS, HAIR_RGB

from .common import hparam

COND_EMBEDS = ("onehot", "rgb")
DEFAULT_LABEL_NAMES: dict[str, list[str]] = {"hair": list(HAIR_COLORS), "eye": list(EYE_COLORS)}
PALETTES: dict[str, dict[str, tuple[int, int, int]]] = {
    "hair": dict(zip(HAIR_COLORS, HAIR_RGB)),
    "eye": dict(zip(EYE_COLORS, EYE_RGB)),
}
_GREYS = ("silver", "gray", "grey")


def cond_embed_field(default: str = "onehot"):
    return hparam(default, "label encoding of the condition: one-hot classes (12 hair + 10 eye) or the colours' RGB "
                           "(3 + 3; any colour can be sampled)", choices=COND_EMBEDS)


def embed_dim_field(default: int = 256):
    return hparam(default, "width of the dense layer that projects the label condition (in G and D)", min=1)


def palette_rgb(group: str, names: list[str]) -> torch.Tensor:
    """[len(names), 3] float RGB in [0, 1] of the class names of one group, from the demo palette."""
    palette = PALETTES.get(group)
    if palette is None:
        raise ValueError(f"the rgb label encoding has no palette for label group {group!r} (only hair, eye)")
    rows = []
    for name in names:
        key = name.lower()
        if key not in palette and key in _GREYS:
            key = next((g for g in _GREYS if g in palette), key)
        if key not in palette:
            raise ValueError(f"the rgb label encoding has no colour for {group} {name!r}; "
                             f"known: {', '.join(palette)}")
        rows.append(palette[key])
    return torch.tensor(rows, dtype=torch.float32) / 255.0


def check_label_names(label_names: dict | None) -> dict[str, list[str]]:
    """The label vocabulary to build with: the given one (a dict of non-empty lists), else the demo's."""
    if label_names is None:
        return {k: list(v) for k, v in DEFAULT_LABEL_NAMES.items()}
    if not isinstance(label_names, dict) or not label_names or not all(
            isinstance(v, (list, tuple)) and len(v) > 0 for v in label_names.values()):
        raise ValueError(f"label_names must map each label group to its class names, got {label_names!r}")
    return {str(k): [str(x) for x in v] for k, v in label_names.items()}


class LabelEncoder(nn.Module):
    """Labels [N, K] int64 (-1 unknown) -> condition [N, dim] float. No trainable parameters."""

    def __init__(self, kind: str, label_names: dict[str, list[str]] | None = None):
        super().__init__()
        if kind not in COND_EMBEDS:
            raise ValueError(f"cond_embed must be one of {', '.join(COND_EMBEDS)}, got {kind!r}")
        label_names = check_label_names(label_names)
        self.kind = kind
        self.groups = list(label_names)
        self.sizes = [len(v) for v in label_names.values()]
        if kind == "rgb":
            for i, (group, names) in enumerate(label_names.items()):
                table = palette_rgb(group, names)  # [n_classes, 3]
                # row n_classes (index -1 after the shift below) is the unknown colour: the palette mean
                table = torch.cat([table, table.mean(0, keepdim=True)])
                self.register_buffer(f"palette{i}", table, persistent=False)
            self.dim = 3 * len(self.groups)
        else:
            self.dim = sum(self.sizes)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.is_floating_point():  # already a condition vector (e.g. any RGB colour)
            if labels.dim() != 2 or labels.shape[1] != self.dim:
                raise ValueError(f"a float condition must be [N, {self.dim}] for the {self.kind} encoding, "
                                 f"got {list(labels.shape)}")
            return labels.float()
        if labels.dim() != 2 or labels.shape[1] != len(self.groups):
            raise ValueError(f"labels must be [N, {len(self.groups)}] ({', '.join(self.groups)}), "
                             f"got {list(labels.shape)}")
        out = []
        for i, size in enumerate(self.sizes):
            col = labels[:, i].long()
            # Range check only on the host: on a GPU it would sync every training step (one_hot still
            # fails on an out-of-range class there).
            if col.device.type == "cpu" and bool(((col < -1) | (col >= size)).any()):
                raise ValueError(f"{self.groups[i]} labels must be in -1..{size - 1}, got {col.tolist()}")
            if self.kind == "onehot":
                known = (col >= 0).unsqueeze(1)  # [N, 1]
                out.append(torch.nn.functional.one_hot(col.clamp(min=0), size).float() * known)  # [N, size]
            else:
                table = getattr(self, f"palette{i}")  # [size + 1, 3]; row `size` = unknown
                out.append(table[torch.where(col >= 0, col, torch.full_like(col, size))])  # [N, 3]
        return torch.cat(out, dim=1)  # [N, dim]


def mismatched_labels(labels: torch.Tensor, sizes: list[int], generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrong labels for the matching-aware D loss, and which rows have one.

    Each row gets a random non-empty subset of its KNOWN groups changed to a different class (the others
    are kept), so D learns to check every attribute on its own. Rows with no known group cannot be made
    wrong: `valid` [N] bool is False for them. Returns (wrong [N, K] int64, valid [N] bool).
    """
    labels = labels.long()
    n, k = labels.shape
    dev = labels.device
    changeable = torch.tensor([s >= 2 for s in sizes], device=dev)  # a 1-class group cannot be wrong
    known = (labels >= 0) & changeable  # [N, K]

    def rand(*shape):
        if generator is None:
            return torch.rand(*shape, device=dev)
        return torch.rand(*shape, generator=generator, device=generator.device).to(dev)

    change = (rand(n, k) < 0.5) & known
    # rows where the coin changed nothing: change one known group, chosen uniformly
    none = ~change.any(1) & known.any(1)
    score = torch.where(known, rand(n, k), torch.full((n, k), -1.0, device=dev))
    pick = nn.functional.one_hot(score.argmax(1), k).bool()
    change = change | (pick & none.unsqueeze(1))
    wrong = labels.clone()
    for i, size in enumerate(sizes):
        if size < 2:
            continue
        shift = 1 + (rand(n) * (size - 1)).long().clamp(max=size - 2)  # 1..size-1: always a different class
        wrong[:, i] = torch.where(change[:, i], (labels[:, i] + shift) % size, labels[:, i])
    valid = change.any(1)
    return wrong, valid
