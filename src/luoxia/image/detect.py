"""A deterministic shape detector for the shapes world: colour, kind, size and cell of each object, from pixels.

    detect(image uint8 (H, W, 3)) → [Detection(kind='circle', colour='red', size='small', cell='top left', ...)]

1. foreground: pixels farther than `threshold` from the background colour (RGB distance)
2. sure pixels: foreground within `confident` of a palette colour; per colour, their 8-connected
   components are the objects' seeds. The other foreground pixels (antialiased edges, blends)
   join the object of the nearest seed pixel within 2 pixels; objects under `min_area` of the
   image are noise and dropped
3. per component, from its coverage inside its bounding box:
     top share   the part of its area in the upper half of the box: ≈ 0.25 for a triangle with its
                 apex up, ≈ 0.5 for circles and squares
     corners     coverage of the four corner patches (a fifth of the side each): ≈ 1 for a square,
                 ≈ 0.1 for a circle
   triangle if top share < 0.38, else square if corners > 0.6, else circle;
   size: small if the box's longer side is under 1/3 of the image side (between the two sizes);
   cell: the 3×3 grid cell of the centroid.
Tested on ground-truth renders (`luoxia.image.shapes.render`), where it is exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from luoxia.image import shapes as world


@dataclasses.dataclass(frozen=True)
class Detection:
    kind: str
    colour: str
    size: str
    cell: str
    cx: float  # centroid as fractions of width and height
    cy: float
    area: float  # fraction of the image
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in pixels


PALETTE_NAMES = list(world.COLOURS)
PALETTE = np.array([world.COLOURS[c] for c in PALETTE_NAMES], np.float32)  # (K, 3)


def classify(component: np.ndarray) -> str:
    """The kind of one object from its boolean mask cropped to its bounding box."""
    h, w = component.shape
    area = component.sum()
    top = component[: h // 2].sum() + (component[h // 2].sum() / 2 if h % 2 else 0)
    if top / max(area, 1) < 0.38:
        return "triangle"
    ch, cw = max(1, round(h / 5)), max(1, round(w / 5))
    corners = np.concatenate([component[:ch, :cw].ravel(), component[:ch, -cw:].ravel(),
                              component[-ch:, :cw].ravel(), component[-ch:, -cw:].ravel()])
    return "square" if corners.mean() > 0.6 else "circle"


def detect(image: np.ndarray, background: tuple[int, int, int] = world.BACKGROUND, threshold: float = 90.0,
           confident: float = 75.0, min_area: float = 0.008) -> list[Detection]:
    """The objects in an RGB image, largest first."""
    from scipy import ndimage

    rgb = np.asarray(image, np.float32)[..., :3]
    H, W = rgb.shape[:2]
    foreground = np.linalg.norm(rgb - np.array(background, np.float32), axis=-1) > threshold
    dist = np.sqrt(((rgb[..., None, :] - PALETTE) ** 2).sum(-1))  # (H, W, K) distance to each palette colour
    nearest = dist.argmin(-1)
    sure = foreground & (dist.min(-1) < confident)  # clearly one palette colour (not an edge blend)
    seeds = np.zeros((H, W), np.int32)
    colours = []
    for k in range(len(PALETTE_NAMES)):
        labels, count = ndimage.label(sure & (nearest == k), structure=np.ones((3, 3)))
        for i in range(1, count + 1):
            part = labels == i
            if part.sum() >= max(2, min_area * H * W / 2):
                colours.append(PALETTE_NAMES[k])
                seeds[part] = len(colours)
    if not colours:
        return []
    # Edge pixels (blends with the background or a neighbour) join the object of their nearest sure pixel.
    gap, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    owner = np.where(foreground & (gap <= 2), seeds[iy, ix], 0)
    found = []
    for j, colour in enumerate(colours, start=1):
        mask = owner == j
        area = mask.sum()
        if area < min_area * H * W:
            continue
        ys, xs = np.nonzero(mask)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        cx, cy = (xs.mean() + 0.5) / W, (ys.mean() + 0.5) / H
        side = max(x1 - x0, y1 - y0) / max(H, W)
        size = "small" if side < (world.SIZES["small"] + world.SIZES["large"]) / 2 else "large"
        found.append(Detection(classify(mask[y0:y1, x0:x1]), colour, size, world.cell_of(cx, cy), float(cx),
                               float(cy), float(area / (H * W)), (int(x0), int(y0), int(x1), int(y1))))
    return sorted(found, key=lambda d: -d.area)


def matches(query: world.ShapeQuery, d: Detection, with_size: bool = False) -> bool:
    """Colour, kind and cell agree (where the query says them); size too when asked."""
    return ((query.colour is None or query.colour == d.colour) and (query.kind is None or query.kind == d.kind)
            and (query.cell is None or query.cell == d.cell)
            and (not with_size or query.size is None or query.size == d.size))


@dataclasses.dataclass
class Adherence:
    """Per-sample checks of a caption against the detected objects."""

    all: bool  # every object asked for is there (colour, kind, cell), and nothing else
    colour: bool
    kind: bool
    cell: bool
    size: bool
    count: bool  # as many objects as asked for


def check(prompt: str, image: np.ndarray) -> Adherence:
    queries = world.parse_caption(prompt)
    found = detect(image)
    count = len(found) == len(queries)
    if len(queries) == 1:
        q = queries[0]
        d = found[0] if found else None
        ok = lambda attr: d is not None and (getattr(q, attr) is None or getattr(q, attr) == getattr(d, attr))
        colour, kind, cell, size = ok("colour"), ok("kind"), ok("cell"), ok("size")
        return Adherence(colour and kind and cell and count, colour, kind, cell, size, count)
    left = list(found)
    hits = 0
    for q in queries:
        hit = next((d for d in left if matches(q, d)), None)
        if hit is not None:
            left.remove(hit)
            hits += 1
    every = hits == len(queries)
    return Adherence(every and count, every, every, every, every, count)


def adherence(prompts: list[str], images: np.ndarray) -> dict[str, float]:
    """Shares of samples (prompt i ↔ image i) that pass each check."""
    checks = [check(p, img) for p, img in zip(prompts, images)]
    n = max(len(checks), 1)
    return {k: sum(getattr(c, k) for c in checks) / n for k in ("all", "colour", "kind", "cell", "size", "count")}
