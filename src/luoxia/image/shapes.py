"""The shapes world: 1–3 coloured shapes on a plain background, each with a caption and its layout.

A scene is a list of `Shape`s (kind, colour, size, cell of a 3×3 grid, exact centre); `render`
draws it antialiased (4× supersampling, box-filtered down), `caption` says it in words, and
`parse_caption` reads a caption back into what it asks for, so adherence can be checked from pixels
(`luoxia.image.detect`) against the prompt.

    >>> caption([Shape("circle", "red", "small", "top left", 0.18, 0.2)])
    'a small red circle at the top left'
    >>> parse_caption("a large blue square in the center")
    [ShapeQuery(kind='square', colour='blue', size='large', cell='center')]

Everything is a function of a `numpy.random.Generator`, so a seed names a data set.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

KINDS = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 90, 235),
    "yellow": (240, 215, 40), "purple": (160, 60, 210), "white": (240, 240, 240),
}
BACKGROUND = (20, 20, 28)
# Shape size as a fraction of the image side: the side of a square's box / a circle's diameter.
SIZES: dict[str, float] = {"small": 0.25, "large": 0.42}
# 3×3 grid of cells, row-major; each cell's words and its centre as fractions of (width, height).
CELLS: dict[str, tuple[float, float]] = {
    "top left": (1 / 6, 1 / 6), "top": (1 / 2, 1 / 6), "top right": (5 / 6, 1 / 6),
    "left": (1 / 6, 1 / 2), "center": (1 / 2, 1 / 2), "right": (5 / 6, 1 / 2),
    "bottom left": (1 / 6, 5 / 6), "bottom": (1 / 2, 5 / 6), "bottom right": (5 / 6, 5 / 6),
}
CELL_PHRASE = {"top left": "at the top left", "top": "at the top", "top right": "at the top right",
               "left": "on the left", "center": "in the center", "right": "on the right",
               "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right"}
JITTER = 0.04  # centres move up to this fraction of the side around their cell's centre
GAP = 0.05  # objects keep at least this fraction of the side apart (so they never touch)
SUPERSAMPLE = 4
SIZE_WORDS = {"big": "large", "little": "small", "tiny": "small"}  # synonyms parse_caption accepts


@dataclasses.dataclass(frozen=True)
class Shape:
    """One object: `cx`, `cy` its centre as fractions of width and height (0 = left/top)."""

    kind: str
    colour: str
    size: str
    cell: str
    cx: float
    cy: float

    def box(self, side: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels of an image `side` pixels wide."""
        half = SIZES[self.size] * side / 2
        return (self.cx * side - half, self.cy * side - half, self.cx * side + half, self.cy * side + half)


@dataclasses.dataclass(frozen=True)
class ShapeQuery:
    """What a caption asks of one object; None where the caption does not say."""

    kind: str | None
    colour: str | None
    size: str | None
    cell: str | None


def cell_of(x: float, y: float) -> str:
    """The grid cell of a point given as fractions of width and height."""
    col = min(2, max(0, int(x * 3)))
    row = min(2, max(0, int(y * 3)))
    return list(CELLS)[row * 3 + col]


def random_scene(rng: np.random.Generator, n_objects: int | None = None, max_objects: int = 3) -> list[Shape]:
    """1..max_objects shapes in distinct cells, never touching (n_objects fixes the count)."""
    n = int(n_objects if n_objects is not None else rng.integers(1, max_objects + 1))
    cells = list(CELLS)
    while True:
        chosen = rng.choice(len(cells), size=n, replace=False)
        shapes = []
        for c in chosen:
            cx, cy = CELLS[cells[c]]
            size = str(rng.choice(list(SIZES)))
            half = SIZES[size] / 2 + 0.01  # keep the whole shape inside the image
            x = min(max(cx + rng.uniform(-JITTER, JITTER), half), 1 - half)
            y = min(max(cy + rng.uniform(-JITTER, JITTER), half), 1 - half)
            shapes.append(Shape(str(rng.choice(KINDS)), str(rng.choice(list(COLOURS))), size, cells[c], x, y))
        if not _overlap(shapes):
            return shapes


def _overlap(shapes: list[Shape]) -> bool:
    for i, a in enumerate(shapes):
        for b in shapes[i + 1:]:
            ax0, ay0, ax1, ay1 = a.box(1)
            bx0, by0, bx1, by1 = b.box(1)
            if ax0 < bx1 + GAP and bx0 < ax1 + GAP and ay0 < by1 + GAP and by0 < ay1 + GAP:
                return True
    return False


def render(shapes: list[Shape], size: int = 32, background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """uint8 (size, size, 3): the shapes drawn in order on the background, antialiased."""
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(image)
    for s in shapes:
        x0, y0, x1, y1 = s.box(big)
        colour = COLOURS[s.colour]
        if s.kind == "circle":
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif s.kind == "square":
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif s.kind == "triangle":  # apex up, isosceles, base on the box's bottom
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=colour)
        else:
            raise ValueError(f"unknown shape kind {s.kind!r}")
    return np.asarray(image.resize((size, size), Image.Resampling.BOX))


def describe(s: Shape | ShapeQuery) -> str:
    """'a small red circle at the top left' (leaving out what a query does not say)."""
    words = ["a"] + [w for w in (s.size, s.colour, s.kind or "shape") if w]
    if s.cell:
        words.append(CELL_PHRASE[s.cell])
    return " ".join(words)


def caption(shapes: list[Shape]) -> str:
    parts = [describe(s) for s in shapes]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def random_caption(shapes: list[Shape], rng: np.random.Generator, p_drop: float = 0.15) -> str:
    """A caption that now and then leaves out a size or a position (so short prompts work too)."""
    queries = [ShapeQuery(s.kind, s.colour, None if rng.random() < p_drop else s.size,
                          None if rng.random() < p_drop else s.cell) for s in shapes]
    parts = [describe(q) for q in queries]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _cell(part: str) -> str | None:
    """'at the top left' / 'top-left corner' → 'top left'; 'in the middle' → 'center'; None if unsaid."""
    vertical = next((w for w in ("top", "bottom") if re.search(rf"\b{w}\b", part)), None)
    horizontal = next((w for w in ("left", "right") if re.search(rf"\b{w}\b", part)), None)
    if vertical or horizontal:
        return " ".join(w for w in (vertical, horizontal) if w)
    return "center" if re.search(r"\b(center|middle)\b", part) else None


def parse_caption(text: str) -> list[ShapeQuery]:
    """The objects a caption asks for, in order; words it does not know are ignored.

    >>> parse_caption("a red circle and a small green triangle at the bottom")
    [ShapeQuery(kind='circle', colour='red', size=None, cell=None), ShapeQuery(kind='triangle', colour='green', \
size='small', cell='bottom')]
    """
    found: list[ShapeQuery] = []
    for part in re.split(r",|\band\b", text.lower()):
        part = " ".join(part.replace("centre", "center").replace("-", " ").split())
        for word, size in SIZE_WORDS.items():
            part = re.sub(rf"\b{word}\b", size, part)
        kind = next((k for k in KINDS if re.search(rf"\b{k}s?\b", part)), None)
        colour = next((c for c in COLOURS if re.search(rf"\b{c}\b", part)), None)
        size = next((z for z in SIZES if re.search(rf"\b{z}\b", part)), None)
        cell = _cell(part)
        if kind or colour:
            found.append(ShapeQuery(kind, colour, size, cell))
        elif found and (size or cell):  # "a blue square, top right": the place belongs to the last object
            last = found[-1]
            found[-1] = ShapeQuery(last.kind, last.colour, last.size or size, last.cell or cell)
    return found
