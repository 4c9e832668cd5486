"""Hair / eye colour labels for image files, read from a tags file.

A tags file maps image file names to free-text tags in the "<colour> hair <colour> eyes" style:

    CSV   ``name,tags`` rows, with or without a header row; e.g. ``1.jpg,blonde hair blue eyes`` or
          ``1.jpg,"blonde hair, blue eyes"`` (an unquoted ``1.jpg,blonde hair, blue eyes`` works too:
          every field after the first is tags). Tab-separated files work the same way.
    JSON  ``{"1.jpg": "pink hair black eyes", ...}`` or ``{"1.jpg": ["pink hair", "black eyes"], ...}``

The vocabulary is the demo set's: 12 hair colours (:data:`HAIR_COLORS`) and 10 eye colours
(:data:`EYE_COLORS`), so a labelled folder and ``--data demo`` train the same conditional models. Spelling
is forgiving: case, commas or spaces between tags, ``_``/``-`` for spaces, ``eye`` or ``eyes``, either order,
``blond`` for ``blonde``, and ``gray``/``grey`` for the hair colour the demo calls ``silver``. There is
no grey eye colour in the vocabulary, so ``gray eyes`` is an unknown tag.

Labels are integer class indices, ``[hair, eye]`` per image, with ``-1`` meaning unknown. Nothing is
dropped silently: unknown tags, images without a row and rows without an image are counted in a
:class:`LabelReport` (one summary line each). A file that cannot be read as either format raises
:class:`~stylegan_anime.data.errors.DataError` with one line naming the file and the row.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .demo import EYE_COLORS, HAIR_COLORS
from .errors import DataError

__all__ = ["EYE_COLORS", "HAIR_COLORS", "LABEL_NAMES", "LabelReport", "ParsedTags", "label_names", "load_labels",
           "parse_tags", "parse_tags_detailed", "valid_tags_text"]

GROUPS = ("hair", "eye")  # label columns, in order
LABEL_NAMES: dict[str, list[str]] = {"hair": list(HAIR_COLORS), "eye": list(EYE_COLORS)}

# Alternative spellings -> the vocabulary's word. Grey is only an alias where the vocabulary has one grey
# (the demo's hair "silver"); a group without a grey keeps gray/grey/silver as unknown tags.
_ALIASES = {"blond": "blonde", "gray": "silver", "grey": "silver"}
_KEYWORDS = {"hair": "hair", "eye": "eye", "eyes": "eye"}
_SPLIT_CHUNKS = re.compile(r"[,;|\n\t]+")
_HEADER_WORDS = {"name", "names", "file", "filename", "file_name", "image", "images", "img", "path", "id",
                 "tags", "tag", "labels", "label", "text", "caption", "description"}


def label_names() -> dict[str, list[str]]:
    """A fresh copy of the vocabulary, as stored in dataset.json: ``{'hair': [...12], 'eye': [...10]}``."""
    return {k: list(v) for k, v in LABEL_NAMES.items()}


def _vocab_index(group: str, word: str) -> int:
    names = LABEL_NAMES[group]
    if word in names:
        return names.index(word)
    alias = _ALIASES.get(word)
    if alias is not None and alias in names:
        return names.index(alias)
    if word == "silver" or alias == "silver":  # grey family: any grey name the group has
        for grey in ("silver", "gray", "grey"):
            if grey in names:
                return names.index(grey)
    return -1


def valid_tags_text() -> str:
    """One line listing the valid tags (for error messages)."""
    return (f"hair colours: {', '.join(LABEL_NAMES['hair'])} (gray/grey = silver); "
            f"eye colours: {', '.join(LABEL_NAMES['eye'])}")


@dataclass
class ParsedTags:
    hair: int = -1
    eye: int = -1
    unknown: list[str] = field(default_factory=list)  # tags that name no vocabulary colour, as written
    conflicts: list[str] = field(default_factory=list)  # groups given two different colours ('hair', 'eye')

    @property
    def labels(self) -> tuple[int, int]:
        return self.hair, self.eye


def parse_tags_detailed(tags: str | list[str] | tuple[str, ...]) -> ParsedTags:
    """Parse tag text (or a list of tag strings) into hair/eye indices plus what could not be used.

    A tag is the words since the previous tag (or comma) up to a ``hair``/``eye(s)`` keyword; its colour
    is the last word before the keyword. Earlier words of the same tag (``light blue eyes``) and words
    not followed by a keyword are reported as unknown tags. Two different colours for one group make
    that group unknown (-1) and are reported as a conflict.
    """
    if isinstance(tags, (list, tuple)):
        text = ", ".join(str(t) for t in tags)
    else:
        text = str(tags)
    out = ParsedTags()
    found: dict[str, set[int]] = {"hair": set(), "eye": set()}
    text = text.lower().replace("_", " ").replace("-", " ")
    for chunk in _SPLIT_CHUNKS.split(text):
        pending: list[str] = []
        for word in chunk.split():
            group = _KEYWORDS.get(word)
            if group is None:
                pending.append(word)
                continue
            keyword = "eyes" if group == "eye" else "hair"
            if not pending:
                out.unknown.append(word)
                continue
            colour = pending.pop()
            idx = _vocab_index(group, colour)
            if idx < 0:
                out.unknown.append(f"{colour} {keyword}")
            else:
                found[group].add(idx)
            if pending:  # words before the colour in the same tag: not understood
                out.unknown.append(" ".join(pending))
            pending = []
        if pending:
            out.unknown.append(" ".join(pending))
    for group in GROUPS:
        if len(found[group]) == 1:
            setattr(out, group, next(iter(found[group])))
        elif len(found[group]) > 1:
            out.conflicts.append(group)
    return out


def parse_tags(tags: str | list[str]) -> tuple[int, int]:
    """``'blonde hair blue eyes'`` -> ``(0, 1)``: (hair index or -1, eye index or -1)."""
    return parse_tags_detailed(tags).labels


# --------------------------------------------------------------------------------------------------------
# Reading a tags file
# --------------------------------------------------------------------------------------------------------
@dataclass
class LabelReport:
    """What happened when a tags file was matched to a dataset's images."""

    file: str
    images: int = 0  # images in the dataset
    rows: int = 0  # label rows in the file (header excluded)
    matched_rows: int = 0  # rows that found their image
    hair_known: int = 0  # images with a known hair colour
    eye_known: int = 0
    unknown_tags: Counter = field(default_factory=Counter)  # tag text -> occurrences
    unlabelled: list[str] = field(default_factory=list)  # images without a row
    orphans: list[str] = field(default_factory=list)  # row names matching no image
    ambiguous: list[str] = field(default_factory=list)  # row names matching several images by basename
    conflicts: int = 0  # images with two colours for one group

    def summary(self) -> str:
        return (f"labels from {os.path.basename(self.file)}: {self.matched_rows} of {self.images} images have a "
                f"row; hair known for {self.hair_known}, eye for {self.eye_known}")

    def warnings(self) -> list[str]:
        """One line per kind of problem, only for the kinds that occurred."""
        lines = []
        if self.unknown_tags:
            n = sum(self.unknown_tags.values())
            top = ", ".join(f"{t!r} x{c}" for t, c in self.unknown_tags.most_common(5))
            lines.append(f"unknown tags: {n} occurrence(s) of {len(self.unknown_tags)} distinct tag(s) ignored "
                         f"(e.g. {top}); valid {valid_tags_text()}")
        if self.unlabelled:
            lines.append(f"unlabelled images: {len(self.unlabelled)} image(s) have no row in "
                         f"{os.path.basename(self.file)} (e.g. {', '.join(self.unlabelled[:3])}); their labels are -1")
        if self.orphans or self.ambiguous:
            names = self.orphans + self.ambiguous
            extra = f", {len(self.ambiguous)} of them matching several images by file name" if self.ambiguous else ""
            lines.append(f"orphan label rows: {len(names)} row(s) name no image of the dataset{extra} "
                         f"(e.g. {', '.join(names[:3])})")
        if self.conflicts:
            lines.append(f"conflicting tags: {self.conflicts} image(s) have two hair or two eye colours; "
                         f"that colour is left unknown (-1)")
        return lines

    def to_dict(self) -> dict:
        """Plain values for dataset.json."""
        return {
            "file": self.file, "images": self.images, "rows": self.rows, "matched_rows": self.matched_rows,
            "hair_known": self.hair_known, "eye_known": self.eye_known,
            "unknown_tags": sum(self.unknown_tags.values()),
            "unknown_tag_examples": [t for t, _ in self.unknown_tags.most_common(20)],
            "unlabelled": len(self.unlabelled), "unlabelled_examples": self.unlabelled[:20],
            "orphans": len(self.orphans) + len(self.ambiguous),
            "orphan_examples": (self.orphans + self.ambiguous)[:20],
            "conflicts": self.conflicts,
            "summary": self.summary(), "warnings": self.warnings(),
        }


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise DataError(f"cannot read labels file {path}: {e.strerror or e}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"labels file {path}, row {line}: not UTF-8 text") from None


def _read_json(path: str, text: str) -> list[tuple[int, str, str | list[str]]]:
    """[(row number, name, tags)] from a JSON object; the row number is the entry's 1-based position."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"labels file {path}, row {e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise DataError(f"labels file {path}, row 1: expected a JSON object mapping file name to tags, "
                        f"got a {type(obj).__name__}")
    rows = []
    for i, (name, tags) in enumerate(obj.items(), 1):
        ok = isinstance(tags, str) or (isinstance(tags, list) and all(isinstance(t, str) for t in tags))
        if not ok:
            raise DataError(f"labels file {path}, row {i} ({name!r}): tags must be a string or a list of strings, "
                            f"got {json.dumps(tags)[:60]}")
        if not name.strip():
            raise DataError(f"labels file {path}, row {i}: empty file name")
        rows.append((i, name, tags))
    return rows


def _read_csv(path: str, text: str, names: set[str]) -> list[tuple[int, str, str]]:
    """[(line number, name, tags)] from ``name,tags`` rows; a header row is recognised and skipped."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    rows = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) < 2:
                raise DataError(f"labels file {path}, row {line}: expected 'name{delimiter}tags', "
                                f"got {delimiter.join(fields)[:60]!r}")
            name, tags = fields[0].strip(), ", ".join(f.strip() for f in fields[1:] if f.strip())
            if not rows and _is_header(name, fields[1], names):
                continue
            if not name:
                raise DataError(f"labels file {path}, row {line}: empty file name")
            rows.append((line, name, tags))
    except csv.Error as e:
        raise DataError(f"labels file {path}, row {reader.line_num}: {e}") from None
    return rows


def _is_header(name: str, second: str, names: set[str]) -> bool:
    return name not in names and (name.lower() in _HEADER_WORDS or second.strip().lower() in _HEADER_WORDS)


def _norm(name: str) -> str:
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def load_labels(path: str | os.PathLike, names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, LabelReport]:
    """Labels ``[N, 2]`` int64 (hair, eye; -1 unknown) for the dataset images ``names`` (relative,
    '/'-separated paths, in dataset order), and the report.

    A row finds its image by relative path, else by base name (``sub/1.jpg`` -> ``1.jpg``), else by
    base name without extension (``1`` -> ``1.jpg``, as in tag files keyed by image id); a name shared
    by several images is not guessed (counted as an orphan row). The format is JSON when the file ends
    in ``.json`` or starts with ``{``, else CSV/TSV.
    """
    path = os.fspath(path)
    names = [str(n) for n in names]
    text = _read_text(path)
    is_json = path.lower().endswith(".json") or text.lstrip().startswith("{")
    name_set = set(names)
    rows = _read_json(path, text) if is_json else _read_csv(path, text, name_set)

    exact = {n: i for i, n in enumerate(names)}
    by_base: dict[str, list[int]] = {}
    by_stem: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        base = n.rsplit("/", 1)[-1]
        by_base.setdefault(base, []).append(i)
        by_stem.setdefault(os.path.splitext(base)[0], []).append(i)

    report = LabelReport(file=path, images=len(names), rows=len(rows))
    labels = np.full((len(names), 2), -1, dtype=np.int64)
    owner: dict[int, tuple[int, tuple[int, int]]] = {}  # image index -> (row number, labels) of its row
    conflicted: set[int] = set()
    for row, raw_name, tags in rows:
        name = _norm(raw_name)
        base = name.rsplit("/", 1)[-1]
        idx = exact.get(name)
        candidates = [idx] if idx is not None else by_base.get(base) or by_stem.get(os.path.splitext(base)[0]) or []
        if len(candidates) != 1:
            (report.ambiguous if candidates else report.orphans).append(raw_name)
            continue
        i = candidates[0]
        parsed = parse_tags_detailed(tags)
        if i in owner:
            first_row, first_labels = owner[i]
            if first_labels != parsed.labels:
                raise DataError(f"labels file {path}, row {row}: {raw_name!r} labels image {names[i]} again, "
                                f"differently from row {first_row}")
            continue
        owner[i] = (row, parsed.labels)
        report.matched_rows += 1
        report.unknown_tags.update(parsed.unknown)
        if parsed.conflicts:
            conflicted.add(i)
        labels[i] = parsed.labels
    report.unlabelled = [names[i] for i in range(len(names)) if i not in owner]
    report.conflicts = len(conflicted)
    report.hair_known = int((labels[:, 0] >= 0).sum())
    report.eye_known = int((labels[:, 1] >= 0).sum())
    return labels, report
