"""Pictures of what the network computes: feature maps, attention, patch groups, masks, top-5.

Every function returns a matplotlib Figure (not pyplot's global one), so it works the
same in scripts, tests and notebooks; save it with `fig.savefig("out.png")`.
matplotlib is the optional `plot` extra: `pip install "mobilevit-np[plot]"`.

Images are (H, W, 3) RGB arrays (uint8, or floats in [0, 1]) or PIL images. The model's
pixel_values are BGR and channels-first; `image_from_pixel_values` turns them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mobilevit_np.palette import PASCAL_VOC_LABELS, voc_palette
from mobilevit_np.patches import unfold
from mobilevit_np.postprocess import top_k_classes

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL.Image import Image


def _new_figure(width: float, height: float) -> Figure:
    """A Figure of (width, height) inches, or an ImportError naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "mobilevit_np.viz needs matplotlib, the optional 'plot' extra: pip install 'mobilevit-np[plot]'"
        ) from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _as_rgb(image) -> np.ndarray:
    """(H, W, 3) floats in [0, 1] from a PIL image or an RGB array."""
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {rgb.shape}")
    return rgb / 255.0 if rgb.dtype == np.uint8 else np.clip(rgb.astype(np.float64), 0.0, 1.0)


def image_from_pixel_values(pixel_values: np.ndarray, index: int = 0, flip_channel_order: bool = True) -> np.ndarray:
    """The picture the model saw: (B, 3, H, W) in [0, 1] -> (H, W, 3) RGB.

    The Apple checkpoints read BGR, so their pixel_values are flipped back to RGB to display.
    """
    x = np.asarray(pixel_values)[index]  # (3, H, W)
    if flip_channel_order:
        x = x[::-1]
    return np.clip(x.transpose(1, 2, 0), 0.0, 1.0)


# ----------------------------------------------------------------- feature maps


def plot_feature_maps(
    features: np.ndarray, channels: int | Sequence[int] = 16, ncols: int = 8, title: str | None = None
) -> Figure:
    """A grid of single-channel images of one feature map.

    features (C, H, W) or (1, C, H, W), e.g. `trace["encoder.layer.2.fusion"]`. `channels`
    is how many to show (the first ones) or which. Each map has its own colour scale,
    written under it, since channels differ in range.
    """
    features = np.asarray(features)
    if features.ndim == 4 and features.shape[0] == 1:
        features = features[0]
    if features.ndim != 3:
        raise ValueError(f"features must be (C, H, W) or (1, C, H, W), got shape {features.shape}")
    picked = list(range(min(channels, features.shape[0]))) if isinstance(channels, int) else list(channels)
    if not picked or max(picked) >= features.shape[0] or min(picked) < 0:
        raise ValueError(f"channels {picked} are not within the map's {features.shape[0]} channels")
    ncols = min(ncols, len(picked))
    nrows = math.ceil(len(picked) / ncols)
    fig = _new_figure(1.5 * ncols, 1.5 * nrows + (0.4 if title else 0))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, c in zip(axes.flat, picked, strict=False):
        fmap = features[c]
        ax.imshow(fmap, cmap="viridis")
        ax.set_title(f"ch {c}", fontsize=8)
        ax.text(0.5, -0.08, f"{fmap.min():.2g}..{fmap.max():.2g}", transform=ax.transAxes, ha="center", fontsize=6)
    if title:
        fig.suptitle(title)
    return fig


# -------------------------------------------------------------------- attention


def attention_map(
    probs: np.ndarray,
    grid: tuple[int, int],
    patch_size: int,
    query: tuple[int, int],
    head: int = 0,
    batch_index: int = 0,
) -> np.ndarray:
    """Where one pixel of a MobileViT block's map looks: an (nh, nw) map of attention weights.

    probs (B*p*p, heads, nh*nw, nh*nw) is one entry of `output_attentions`; `query` is a
    (y, x) pixel of the block's feature map (nh*p, nw*p). The pixel belongs to patch
    (y // p, x // p) at offset (y % p, x % p); the sequence of that offset is
    b*p*p + (y % p)*p + (x % p), and its token for that patch attends over the nh*nw patches.
    """
    nh, nw = grid
    p = patch_size
    if probs.ndim != 4 or probs.shape[2] != nh * nw or probs.shape[0] % (p * p):
        raise ValueError(f"probs shape {probs.shape} does not fit a {nh}x{nw} grid of {p}x{p} patches")
    y, x = query
    if not (0 <= y < nh * p and 0 <= x < nw * p):
        raise ValueError(f"query {query} is outside the {nh * p}x{nw * p} feature map")
    sequence = batch_index * p * p + (y % p) * p + (x % p)
    token = (y // p) * nw + (x // p)
    return probs[sequence, head, token].reshape(nh, nw)


def plot_attention(
    image: Image | np.ndarray,
    probs: np.ndarray,
    patch_size: int,
    query: tuple[float, float] | None = None,
    head: int = 0,
    batch_index: int = 0,
    title: str | None = None,
) -> Figure:
    """Attention of one head, from one query point, overlaid on the image.

    `query` is (y, x) in image pixels (default: the centre). The layer's patch grid is
    read from probs' shape and the image's aspect ratio. Left: the image with the query
    marked; right: the attention weights over the patches, stretched over the image.
    """
    rgb = _as_rgb(image)
    height, width = rgb.shape[:2]
    nh, nw = _grid_for(probs.shape[2], height, width)
    map_h, map_w = nh * patch_size, nw * patch_size  # the block's feature map, in its own pixels
    qy, qx = (height / 2, width / 2) if query is None else query
    fy, fx = min(int(qy * map_h / height), map_h - 1), min(int(qx * map_w / width), map_w - 1)
    weights = attention_map(probs, (nh, nw), patch_size, (fy, fx), head, batch_index)

    fig = _new_figure(8, 4.3 if title else 4)
    left, right = fig.subplots(1, 2)
    left.imshow(rgb)
    left.plot([qx], [qy], marker="+", color="white", markersize=14, mew=2)
    left.set_title(f"query pixel ({int(qy)}, {int(qx)})")
    right.imshow(rgb)
    overlay = right.imshow(weights, cmap="inferno", alpha=0.6, extent=(0, width, height, 0), interpolation="nearest")
    right.plot([qx], [qy], marker="+", color="cyan", markersize=14, mew=2)
    right.set_title(f"head {head}: attention over {nh}x{nw} patches")
    fig.colorbar(overlay, ax=right, shrink=0.8, label="attention weight")
    for ax in (left, right):
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def plot_context_scores(
    image: Image | np.ndarray,
    scores: Mapping[str, np.ndarray],
    offset: int = 0,
    batch_index: int = 0,
    title: str | None = None,
) -> Figure:
    """MobileViTV2's context scores over the image, one panel per attention layer.

    `scores` maps a name to one layer's softmax(query) of shape (B, 1, p*p, N), recorded
    as "...context_scores" in `model.trace(x)`. Panel k shows, for pixel offset `offset`
    inside the patches, the weight each of the N patches gets in the layer's single
    context vector: there is no query pixel to choose, unlike v1's attention maps.
    """
    rgb = _as_rgb(image)
    height, width = rgb.shape[:2]
    fig = _new_figure(4 * (len(scores) + 1), 4.3 if title else 4)
    axes = fig.subplots(1, len(scores) + 1)
    axes[0].imshow(rgb)
    axes[0].set_title("input")
    for ax, (name, layer_scores) in zip(axes[1:], scores.items(), strict=True):
        nh, nw = _grid_for(layer_scores.shape[-1], height, width)
        weights = layer_scores[batch_index, 0, offset].reshape(nh, nw)
        ax.imshow(rgb)
        shown = ax.imshow(weights, cmap="inferno", alpha=0.6, extent=(0, width, height, 0), interpolation="nearest")
        ax.set_title(f"{name}\n{nh}x{nw} patches, sum = 1", fontsize=9)
        fig.colorbar(shown, ax=ax, shrink=0.7)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def _grid_for(num_patches: int, height: int, width: int) -> tuple[int, int]:
    """(nh, nw) with nh*nw == num_patches and nh/nw closest to the image's height/width."""
    pairs = [(nh, num_patches // nh) for nh in range(1, num_patches + 1) if num_patches % nh == 0]
    return min(pairs, key=lambda hw: abs(math.log(hw[0] / hw[1]) - math.log(height / width)))


# ------------------------------------------------------------ unfold and fold


def plot_patch_groups(height: int = 8, width: int = 8, patch_size: int = 2) -> Figure:
    """The unfold picture: which pixels form each sequence the transformer sees.

    Left: an H x W map cut into p x p patches (thick lines); each pixel is coloured by its
    offset inside its patch and labelled with its patch number. Right: what
    `patches.unfold` makes of that map, computed by running it on the pixel indices:
    p*p rows (the sequences, the "batch") of nh*nw tokens (one per patch). A row holds all
    pixels of one colour: attention runs along a row, across the whole image.
    """
    if height % patch_size or width % patch_size:
        raise ValueError(f"the diagram needs a map divisible by the patch size, got {height}x{width}, p={patch_size}")
    p, nw = patch_size, width // patch_size
    index = np.arange(height * width, dtype=np.float64).reshape(1, 1, height, width)
    tokens, _ = unfold(index, p)  # (p*p, nh*nw, 1): the pixel index each token holds
    pixel = tokens[:, :, 0].astype(np.int64)  # (p*p, nh*nw)
    rows, cols = np.divmod(np.arange(height * width), width)
    offset = ((rows % p) * p + (cols % p)).reshape(height, width)  # colour = offset inside the patch
    patch_number = ((rows // p) * nw + cols // p).reshape(height, width)
    colours = _offset_colours(p * p)

    fig = _new_figure(4 + 0.35 * pixel.shape[1], 4.2)
    left, right = fig.subplots(1, 2, width_ratios=[width, pixel.shape[1]])
    left.imshow(colours[offset], interpolation="nearest")
    for y in range(height):
        for x in range(width):
            left.text(x, y, str(patch_number[y, x]), ha="center", va="center", fontsize=7)
    for k in range(0, height + 1, p):
        left.axhline(k - 0.5, color="black", lw=2)
    for k in range(0, width + 1, p):
        left.axvline(k - 0.5, color="black", lw=2)
    left.set_title(f"feature map {height}x{width}, patches {p}x{p}\n(number = patch, colour = offset)", fontsize=9)

    flat_offset, flat_patch = offset.reshape(-1), patch_number.reshape(-1)
    right.imshow(colours[flat_offset[pixel]], interpolation="nearest", aspect="equal")
    for s in range(pixel.shape[0]):
        for t in range(pixel.shape[1]):
            right.text(t, s, str(flat_patch[pixel[s, t]]), ha="center", va="center", fontsize=7)
    right.set_yticks(range(p * p), [f"({o // p},{o % p})" for o in range(p * p)], fontsize=7)
    right.set_xticks(range(pixel.shape[1]), [str(t) for t in range(pixel.shape[1])], fontsize=6)
    right.set_ylabel("sequence = offset (py, px)")
    right.set_xlabel("token = patch number")
    right.set_title(f"unfold: ({p * p}, {pixel.shape[1]}, C) = (patch_area, num_patches, C)", fontsize=9)
    left.set_xticks([])
    left.set_yticks([])
    return fig


def _offset_colours(n: int) -> np.ndarray:
    """n distinct pastel RGB colours, (n, 3)."""
    hues = np.linspace(0.0, 1.0, n, endpoint=False)
    rgb = 0.5 + 0.5 * np.cos(2 * np.pi * (hues[:, None] + np.array([0.0, 1 / 3, 2 / 3])))
    return 0.45 + 0.55 * rgb


# ------------------------------------------------------------ segmentation


def plot_segmentation(
    image: Image | np.ndarray,
    mask: np.ndarray,
    id2label: Mapping[int, str] | None = None,
    alpha: float = 0.6,
    title: str | None = None,
) -> Figure:
    """The image with its predicted classes painted over it, and a legend of the classes present.

    mask (h, w) of class indices, at any resolution (it is stretched over the image; pass
    a mask post-processed to the image size for sharp edges). `id2label` defaults to the
    21 PASCAL VOC names of the apple/deeplabv3-mobilevit-* checkpoints.
    """
    rgb = _as_rgb(image)
    mask = np.asarray(mask)
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer) or mask.min() < 0 or mask.max() > 255:
        raise ValueError(
            f"mask must be a 2-D array of class indices in [0, 255], got {mask.dtype} of shape {mask.shape}"
        )
    labels = dict(enumerate(PASCAL_VOC_LABELS)) if id2label is None else dict(id2label)
    palette = voc_palette()  # (256, 3) uint8
    height, width = rgb.shape[:2]

    fig = _new_figure(9, 3.6 * height / width + (0.9 if title else 0.6))  # two panels of the image's aspect
    from matplotlib.patches import Patch  # after _new_figure, which names the extra if matplotlib is missing

    left, right = fig.subplots(1, 2)
    left.imshow(rgb)
    left.set_title("image")
    right.imshow(rgb)
    right.imshow(palette[mask], alpha=alpha, extent=(0, width, height, 0), interpolation="nearest")
    right.set_title(f"prediction ({mask.shape[0]}x{mask.shape[1]} mask)")
    present = np.unique(mask)
    handles = [Patch(color=palette[c] / 255.0, label=labels.get(int(c), str(c))) for c in present]
    right.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, frameon=False)
    for ax in (left, right):
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


# ------------------------------------------------------------- classification


def plot_top_k(logits: np.ndarray, id2label: Mapping[int, str], k: int = 5, title: str | None = None) -> Figure:
    """A bar chart of the k most probable classes: logits (num_labels,) or (1, num_labels)."""
    logits = np.asarray(logits)
    if logits.ndim == 2 and logits.shape[0] == 1:
        logits = logits[0]
    if logits.ndim != 1:
        raise ValueError(f"logits must be (num_labels,) or (1, num_labels), got shape {logits.shape}")
    top, probs = top_k_classes(logits, k)
    names = [id2label.get(int(i), str(i)) for i in top]

    fig = _new_figure(6, 0.45 * len(top) + (1.3 if title else 1.0))
    ax = fig.subplots()
    bars = ax.barh(range(len(top)), probs, color="tab:blue")
    ax.set_yticks(range(len(top)), [n if len(n) <= 30 else n[:29] + "…" for n in names])
    ax.invert_yaxis()  # most probable on top
    ax.bar_label(bars, [f"{p:.1%}" for p in probs], padding=3, fontsize=8)
    ax.set_xlim(0, probs[0] * 1.25)  # room for the labels
    ax.set_xlabel("probability (softmax of the logits)")
    if title:
        ax.set_title(title)
    return fig
