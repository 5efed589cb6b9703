"""The shapes data set: one drawn shape per image, on a cluttered background, with its mask.

    from tools.shapes import make_batch
    images, labels, masks = make_batch("test", range(200))  # (200, 128, 128, 3) uint8, (200,), (200, 128, 128)

    python tools/shapes.py examples/images/shapes  # the first test image of each class, as PNG files

Every image is drawn from its own seed, (split, index) -> numpy.random.default_rng([SPLITS[split], index]),
so image 17 of the test split is the same picture on every machine and in every order; the splits can
never overlap. Drawn with NumPy + Pillow only:

- background: a two-colour linear gradient, sinusoidal stripes or value noise, then 2-5 clutter strokes
  (lines and small dots in random colours) that belong to the background class;
- the shape: one of CLASSES[1:] at a random size (diameter 26-64% of the image), position, rotation and
  colour (kept away from the background's colour), drawn at 4x and box-filtered down, so edges are
  anti-aliased; the mask marks a pixel as the shape's class where at least half of it is covered;
- Gaussian pixel noise (sigma 0-12 grey levels) on top.

The mask is a class per pixel: 0 background, i for CLASSES[i]. The image's label is the shape's class
minus 1 (the classifier has no background class): LABELS = CLASSES[1:].
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 128
CLASSES = (
    "background",
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "hexagon",
    "crescent",
    "arrow",
    "heart",
)
LABELS = CLASSES[1:]  # the classifier's id2label
SPLITS = {"train": 0, "validation": 1, "test": 2}
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down (anti-aliased edges, a fractional coverage)


# ------------------------------------------------------------------ outlines on the unit disc


def _regular(n: int, start: float = np.pi / 2) -> np.ndarray:
    """(n, 2) vertices of a regular n-gon inscribed in the unit circle."""
    t = start + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star() -> np.ndarray:
    outer, inner = _regular(5), 0.45 * _regular(5, np.pi / 2 + np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


def _cross(arm: float = 0.32) -> np.ndarray:
    a = arm  # half an arm's width; the arms reach the unit square's sides
    return np.array(
        [(-a, 1), (a, 1), (a, a), (1, a), (1, -a), (a, -a), (a, -1), (-a, -1), (-a, -a), (-1, -a), (-1, a), (-a, a)]
    )


def _arrow() -> np.ndarray:
    return np.array([(1, 0), (0.1, 0.75), (0.1, 0.3), (-1, 0.3), (-1, -0.3), (0.1, -0.3), (0.1, -0.75)])


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y + 2.5], axis=1) / 17.5  # centred, fits the unit disc


def _circle(n: int = 96) -> np.ndarray:
    return _regular(n)


# Each class is a list of (polygon, fill) drawn in order on the mask: fill 1 adds, fill 0 cuts a hole.
OUTLINES = {
    "circle": [(_circle(), 1)],
    "square": [(_regular(4, np.pi / 4) * 1.0, 1)],
    "triangle": [(_regular(3), 1)],
    "star": [(_star(), 1)],
    "cross": [(_cross(), 1)],
    "ring": [(_circle(), 1), (0.55 * _circle(), 0)],
    "hexagon": [(_regular(6), 1)],
    "crescent": [(_circle(), 1), (0.85 * _circle() + (0.45, 0.0), 0)],
    "arrow": [(_arrow(), 1)],
    "heart": [(_heart(), 1)],
}


# ------------------------------------------------------------------ drawing


def _background(rng: np.random.Generator) -> np.ndarray:
    """(SIZE, SIZE, 3) float texture in [0, 255]: a gradient, stripes or value noise between two colours."""
    c0 = rng.uniform(0, 110, 3)  # dark: the shapes are the bright things in the picture
    c1 = np.clip(c0 + rng.uniform(-50, 50, 3), 0, 130)  # a texture, not a second object: moderate contrast
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    kind = rng.integers(3)
    if kind == 0:  # linear gradient in a random direction
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2
    elif kind == 1:  # stripes
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 8)
        t = (np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy)) + 1) / 2
    else:  # smooth value noise: an 8x8 grid of random values, bilinearly enlarged
        grid = Image.fromarray((rng.uniform(0, 1, (8, 8)) * 255).astype(np.uint8))
        t = np.asarray(grid.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float64) / 255
    return c0 + (c1 - c0) * t[..., None]


def _clutter(image: Image.Image, rng: np.random.Generator) -> None:
    """2-5 thin lines and small dots in random colours (background, not shapes)."""
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 6)):
        colour = tuple(int(c) for c in rng.integers(0, 150, 3))
        if rng.random() < 0.6:
            x0, y0, x1, y1 = rng.uniform(0, SIZE, 4)
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 3)))
        else:
            x, y, r = *rng.uniform(0, SIZE, 2), rng.uniform(1.5, 4)
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _coverage(name: str, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """(SIZE, SIZE) fraction in [0, 1] of each pixel the shape covers (drawn at SUPERSAMPLE x, box-filtered)."""
    big = SIZE * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for polygon, fill in OUTLINES[name]:
        points = (polygon @ rotation.T) * (1, -1) * radius + centre  # y down in images
        draw.polygon([tuple(p) for p in points * SUPERSAMPLE], fill=255 * fill)
    small = np.asarray(canvas, dtype=np.float64).reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(1, 3))
    return small / 255


def _shape_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour at least 110 (RGB distance) from the background's mean, so the shape stays visible."""
    mean = background.reshape(-1, 3).mean(axis=0)
    for _ in range(100):
        colour = rng.uniform(90, 255, 3)
        if np.linalg.norm(colour - mean) > 110:
            return colour
    return np.full(3, 255.0)  # white is always far enough from a background below 130


def draw(split: str, index: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Image `index` of `split`: ((SIZE, SIZE, 3) uint8 RGB, label in range(len(LABELS)), (SIZE, SIZE) uint8 mask)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([SPLITS[split], index])
    background = _background(rng)
    canvas = Image.fromarray(background.round().astype(np.uint8))
    _clutter(canvas, rng)
    background = np.asarray(canvas, dtype=np.float64)

    label = int(rng.integers(len(LABELS)))
    radius = rng.uniform(0.13, 0.32) * SIZE  # the outline's circumradius: 26-64% of the side across
    centre = rng.uniform(radius * 0.8, SIZE - radius * 0.8, 2)
    coverage = _coverage(LABELS[label], centre, radius, rng.uniform(0, 2 * np.pi))

    colour = _shape_colour(rng, background)
    shade = 1 + rng.uniform(-0.15, 0.15) * (np.mgrid[0:SIZE, 0:SIZE][1] / SIZE - 0.5)[..., None]  # a faint gradient
    image = background + coverage[..., None] * (np.clip(colour * shade, 0, 255) - background)
    image = image + rng.normal(0, rng.uniform(0, 12), image.shape)
    mask = np.where(coverage >= 0.5, label + 1, 0).astype(np.uint8)
    return np.clip(image, 0, 255).round().astype(np.uint8), label, mask


def make_batch(split: str, indices: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, SIZE, SIZE, 3) uint8, labels (N,) int64 and masks (N, SIZE, SIZE) uint8 for `indices` of `split`."""
    images, labels, masks = zip(*(draw(split, int(i)) for i in indices), strict=True)
    return np.stack(images), np.array(labels, dtype=np.int64), np.stack(masks)


def to_pixel_values(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 BGR in [0, 1]: what MobileViTImageProcessor makes of
    an image already at the crop size (rescale by 1/255, flip the channels, channels first)."""
    return np.ascontiguousarray((images[..., ::-1].astype(np.float32) / np.float32(255)).transpose(0, 3, 1, 2))


def main(argv: list[str]) -> int:
    """Write the first test image of each class as a PNG named INDEX_CLASS.png into the folder given."""
    if len(argv) != 1:
        print("usage: python tools/shapes.py OUTPUT_FOLDER", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    missing, index = set(LABELS), 0
    while missing:
        image, label, _ = draw("test", index)
        if LABELS[label] in missing:
            Image.fromarray(image).save(folder / f"{index:02d}_{LABELS[label]}.png")
            missing.remove(LABELS[label])
        index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
