"""The moving-shapes world: one coloured shape per clip that moves, grows, shrinks, changes colour or bounces.

Each clip comes with its caption and its ground-truth trajectory (centre, side and colour per
frame), so whether a generated clip does what its caption says can be measured from pixels
(`luoxia.eval.video`). Shapes, colours and the background are those of the image shapes world
(`luoxia.image.shapes`), so the image model's spatial knowledge carries over.

    >>> clip = random_clip(np.random.default_rng(0), frames=8, size=32)
    >>> clip.caption                        # e.g. 'a green square moves from left to right'
    >>> clip.frames.shape                   # (8, 32, 32, 3) uint8
    >>> parse_motion("a red circle moves from left to right")
    MotionQuery(kind='circle', colour='red', motion='right', to_colour=None)

Motions: "right", "left", "down", "up" (straight moves), "grows", "shrinks", "turns" (changes to
another colour half way), "bounces" (falls to the floor and back up).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from luoxia.image import shapes as image_world

KINDS = image_world.KINDS
COLOURS = image_world.COLOURS
BACKGROUND = image_world.BACKGROUND
MOVES = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}  # unit direction (x right, y down)
MOTIONS = ("right", "left", "down", "up", "grows", "shrinks", "turns", "bounces")
PHRASES = {"right": "moves from left to right", "left": "moves from right to left",
           "down": "moves from top to bottom", "up": "moves from bottom to top",
           "grows": "grows", "shrinks": "shrinks", "turns": "turns {to}", "bounces": "bounces"}
# Other ways to say each motion, used now and then in training captions: "from left to right" and "from right
# to left" hold the same words, so only their order tells them apart; "moves to the right" / "moves right" give
# the destination its own words (and "to the right" has the same "to Y" as "from X to Y").
VARIANTS = {"right": ("moves to the right", "moves right"), "left": ("moves to the left", "moves left"),
            "down": ("moves down", "moves downwards"), "up": ("moves up", "moves upwards"),
            "grows": ("gets bigger",), "shrinks": ("gets smaller",), "turns": ("becomes {to}",),
            "bounces": ("is bouncing",)}
SIDE = 0.25  # a moving shape's side as a fraction of the image (the image world's "small")
SUPERSAMPLE = 4


@dataclasses.dataclass
class Clip:
    """A clip of the world: frames uint8 (T, H, W, 3) and what is in them.

    track: float (T, 3) of the shape's centre x, centre y and side, as fractions of the image side;
    colours: the colour name in each frame."""

    frames: np.ndarray
    caption: str
    kind: str
    colour: str
    motion: str
    track: np.ndarray
    colours: list[str]
    to_colour: str | None = None


@dataclasses.dataclass(frozen=True)
class MotionQuery:
    """What a caption asks for; None where it does not say."""

    kind: str | None
    colour: str | None
    motion: str | None
    to_colour: str | None = None


def draw(kind: str, rgb: tuple[int, int, int], cx: float, cy: float, side: float, size: int,
         background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """uint8 (size, size, 3): one shape centred at (cx, cy) with box side `side` (fractions), antialiased
    as `luoxia.image.shapes.render` draws it."""
    from PIL import Image, ImageDraw

    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big), background)
    d = ImageDraw.Draw(image)
    half = side * big / 2
    x0, y0, x1, y1 = cx * big - half, cy * big - half, cx * big + half, cy * big + half
    if kind == "circle":
        d.ellipse([x0, y0, x1, y1], fill=rgb)
    elif kind == "square":
        d.rectangle([x0, y0, x1, y1], fill=rgb)
    elif kind == "triangle":  # apex up, as in the image world
        d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=rgb)
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    return np.asarray(image.resize((size, size), Image.Resampling.BOX))


def trajectory(motion: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """float (T, 3): centre x, centre y, side per frame for one motion (random start, speed and lane)."""
    tau = np.linspace(0.0, 1.0, frames)
    track = np.zeros((frames, 3))
    track[:, 2] = SIDE
    if motion in MOVES:
        start, end = rng.uniform(0.16, 0.26), rng.uniform(0.74, 0.84)  # along the direction of motion
        lane = rng.uniform(0.3, 0.7)  # across it
        along = start + (end - start) * tau
        dx, dy = MOVES[motion]
        if dx:
            track[:, 0] = along if dx > 0 else 1 - along
            track[:, 1] = lane
        else:
            track[:, 1] = along if dy > 0 else 1 - along
            track[:, 0] = lane
    elif motion in ("grows", "shrinks"):
        small, large = rng.uniform(0.16, 0.22), rng.uniform(0.44, 0.52)
        track[:, 0], track[:, 1] = rng.uniform(0.4, 0.6, 2)
        sides = small + (large - small) * tau
        track[:, 2] = sides if motion == "grows" else sides[::-1]
    elif motion == "turns":
        track[:, 0], track[:, 1] = rng.uniform(0.3, 0.7, 2)
        track[:, 2] = rng.uniform(0.25, 0.4)
    elif motion == "bounces":  # from near the top down to the floor and back: |cos| of one period
        top, floor = rng.uniform(0.16, 0.3), 1 - SIDE / 2 - 0.02
        track[:, 0] = rng.uniform(0.3, 0.7)
        track[:, 1] = floor - (floor - top) * np.abs(np.cos(np.pi * tau))
    else:
        raise ValueError(f"unknown motion {motion!r}; one of {', '.join(MOTIONS)}")
    return track


def caption_of(kind: str, colour: str, motion: str, to_colour: str | None = None, variant: int = 0) -> str:
    """'a red circle moves from left to right', 'a blue square turns yellow', ...; variant k > 0 is the k-th
    other phrasing ('a red circle moves to the right')."""
    phrase = PHRASES[motion] if variant == 0 else VARIANTS[motion][(variant - 1) % len(VARIANTS[motion])]
    return f"a {colour} {kind} " + phrase.format(to=to_colour)


def make_clip(kind: str, colour: str, motion: str, frames: int = 8, size: int = 32,
              rng: np.random.Generator | None = None, to_colour: str | None = None) -> Clip:
    rng = rng if rng is not None else np.random.default_rng(0)
    if motion == "turns" and to_colour is None:
        to_colour = str(rng.choice([c for c in COLOURS if c != colour]))
    track = trajectory(motion, frames, rng)
    colours = [to_colour if motion == "turns" and i >= frames / 2 else colour for i in range(frames)]
    video = np.stack([draw(kind, COLOURS[c], x, y, s, size) for (x, y, s), c in zip(track, colours)])
    return Clip(video, caption_of(kind, colour, motion, to_colour), kind, colour, motion, track, colours,
                to_colour if motion == "turns" else None)


def random_clip(rng: np.random.Generator, frames: int = 8, size: int = 32,
                motions: tuple[str, ...] = MOTIONS) -> Clip:
    kind, colour, motion = str(rng.choice(KINDS)), str(rng.choice(list(COLOURS))), str(rng.choice(motions))
    return make_clip(kind, colour, motion, frames, size, rng)


MOTION_WORDS = [  # (pattern, motion), first match wins; "from left to right" before a bare "left"
    (r"\bfrom (the )?left\b|\bleft to right\b|\bto the right\b|\bmoves? right\b|\brightwards?\b", "right"),
    (r"\bfrom (the )?right\b|\bright to left\b|\bto the left\b|\bmoves? left\b|\bleftwards?\b", "left"),
    (r"\bfrom (the )?top\b|\btop to bottom\b|\bdownwards?\b|\bmoves? down\b|\bfalls?\b|\bdrops?\b", "down"),
    (r"\bfrom (the )?bottom\b|\bbottom to top\b|\bupwards?\b|\bmoves? up\b|\brises?\b", "up"),
    (r"\bbounc(es|ing|e)\b", "bounces"),
    (r"\bgrows?\b|\bgets? bigger\b|\bexpands?\b", "grows"),
    (r"\bshrinks?\b|\bgets? smaller\b", "shrinks"),
    (r"\b(turns?|changes?|becomes?)\b", "turns"),
]


def parse_motion(text: str) -> MotionQuery:
    """The shape, colour and motion a caption asks for (None where unsaid).

    >>> parse_motion("a blue square turns yellow")
    MotionQuery(kind='square', colour='blue', motion='turns', to_colour='yellow')
    """
    t = " ".join(text.lower().replace("-", " ").split())
    kind = next((k for k in KINDS if re.search(rf"\b{k}s?\b", t)), None)
    said = sorted((m.start(), c) for c in COLOURS for m in re.finditer(rf"\b{c}\b", t))
    colour = said[0][1] if said else None
    to_colour = said[1][1] if len(said) > 1 else None
    motion = next((m for pattern, m in MOTION_WORDS if re.search(pattern, t)), None)
    return MotionQuery(kind, colour, motion, to_colour if motion == "turns" else None)
