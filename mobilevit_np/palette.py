"""PASCAL VOC's class names and colours: the palette, a coloured mask, and an overlay on the photo.

Pillow only, no matplotlib:

    colorize(mask).save("mask.png")                 # palette PNG: pixel value = class index
    overlay(image, mask, alpha=0.5).save("overlay.png")
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The 21 classes of the apple/deeplabv3-mobilevit-* checkpoints (PASCAL VOC 2012), in label order.
PASCAL_VOC_LABELS = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_palette(num_colors: int = 256) -> np.ndarray:
    """(num_colors, 3) uint8: the PASCAL VOC colour map.

    Class i's colour spreads the bits of i over the three channels, high bit first:
    bit 0 of i -> red, bit 1 -> green, bit 2 -> blue, then the next three bits one
    place lower. So 0 is black, 1 (aeroplane) is (128, 0, 0), 15 (person) (192, 128, 128),
    and 255 (the ignore index) (224, 224, 192).
    """
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    c = np.arange(num_colors)
    for shift in range(7, -1, -1):
        for channel in range(3):
            palette[:, channel] |= (((c >> channel) & 1) << shift).astype(np.uint8)
        c = c >> 3
    return palette


MAX_VALUE = 65535  # masks are saved as 8-bit palette or 16-bit grey PNGs


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"a mask is a 2-D array of integer class indices, got {mask.dtype} shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > MAX_VALUE):
        raise ValueError(f"mask values must lie in [0, {MAX_VALUE}], got [{mask.min()}, {mask.max()}]")
    return mask


def colorize(mask: np.ndarray) -> Image.Image:
    """(H, W) class indices -> an image that stores them: a palette ("P") image showing the VOC colours
    when they fit in 8 bits, else a 16-bit grey ("I;16") image (save either as PNG)."""
    mask = _check_mask(mask)
    if mask.size and mask.max() > 255:
        return Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint16))  # mode I;16
    image = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    image.putpalette(voc_palette().tobytes())
    return image


def overlay(
    image: Image.Image | np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    background: int | None = 0,
    outside: int = 255,
) -> Image.Image:
    """Blend the mask's VOC colours over an RGB image of the same size.

    Pixels of class `background` (0 in VOC; None to colour every class) and `outside` (not
    predicted: postprocess.outside_label, 255 or 65535) keep the photo's own colour.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    mask = _check_mask(mask)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[:2] != mask.shape:
        raise ValueError(f"image {rgb.shape} and mask {mask.shape} must have the same height and width (RGB image)")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    colours = voc_palette(max(256, int(mask.max(initial=0)) + 1))[mask].astype(np.float32)  # (H, W, 3)
    blended = (1 - alpha) * rgb.astype(np.float32) + alpha * colours
    keep = mask == outside if background is None else (mask == outside) | (mask == background)
    blended[keep] = rgb[keep]
    return Image.fromarray(np.round(blended).astype(np.uint8))  # (H, W, 3) uint8 -> RGB
