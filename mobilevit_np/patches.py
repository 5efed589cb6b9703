"""Unfold a feature map into patch groups for the transformer, and fold it back.

MobileViT cuts the (H, W) map into non-overlapping ph x pw patches: a grid of
nh x nw patches. Instead of attending between all H*W pixels, it runs
ph*pw separate sequences: sequence (py, px) holds the pixel at offset (py, px)
of every patch, so it has nh*nw tokens (one per patch) of C features. Attention
thus mixes information across the whole image at 1/(ph*pw) of the cost.

    unfold:  (B, C, H, W) -> (B * ph * pw, nh * nw, C)
    patches[b * ph*pw + py * pw + px, ny * nw + nx, c] = x[b, c, ny * ph + py, nx * pw + px]

fold is the exact inverse. When H or W is not a multiple of the patch size, the map
is first resized (bilinear) up to the next multiple and resized back after folding,
as transformers does.

MobileViTV2 keeps channels first and lays the same values out as (B, C, ph*pw, nh*nw)
(unfold_v2, fold_v2). It follows torch's nn.functional.unfold/fold, which transformers
calls: rows and columns past the last whole patch are dropped, and fold_v2 puts zeros
back in their place (no resize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mobilevit_np.layers import interpolate_bilinear


@dataclass(frozen=True)
class PatchGrid:
    """How a map was unfolded: what fold needs to undo it."""

    batch: int
    channels: int
    orig_size: tuple[int, int]  # (H, W) before any resize
    num_patches_h: int  # nh
    num_patches_w: int  # nw
    patch_size: int  # ph = pw

    @property
    def resized(self) -> bool:
        return self.orig_size != (self.num_patches_h * self.patch_size, self.num_patches_w * self.patch_size)


def unfold(x: np.ndarray, patch_size: int) -> tuple[np.ndarray, PatchGrid]:
    """(B, C, H, W) -> patches (B*p*p, nh*nw, C) and the grid that fold needs."""
    batch, channels, height, width = x.shape
    p = patch_size
    grid = PatchGrid(batch, channels, (height, width), math.ceil(height / p), math.ceil(width / p), p)
    nh, nw = grid.num_patches_h, grid.num_patches_w
    if grid.resized:
        x = interpolate_bilinear(x, (nh * p, nw * p))
    patches = x.reshape(batch, channels, nh, p, nw, p)  # (B, C, ny, py, nx, px)
    patches = patches.transpose(0, 3, 5, 2, 4, 1)  # (B, py, px, ny, nx, C)
    return patches.reshape(batch * p * p, nh * nw, channels), grid


def fold(patches: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """patches (B*p*p, nh*nw, C) -> (B, C, H, W): the inverse of unfold."""
    p, nh, nw = grid.patch_size, grid.num_patches_h, grid.num_patches_w
    x = patches.reshape(grid.batch, p, p, nh, nw, grid.channels)  # (B, py, px, ny, nx, C)
    x = x.transpose(0, 5, 3, 1, 4, 2)  # (B, C, ny, py, nx, px)
    x = x.reshape(grid.batch, grid.channels, nh * p, nw * p)
    if grid.resized:
        x = interpolate_bilinear(x, grid.orig_size)
    return x


def whole_patches(height: int, width: int, patch_size: int) -> tuple[int, int]:
    """MobileViTV2's patch grid (nh, nw) = (H // p, W // p), or a ValueError when not one patch fits."""
    nh, nw = height // patch_size, width // patch_size
    if nh == 0 or nw == 0:
        # torch's unfold refuses this too ("calculated shape of the array of sliding blocks as (0, 0)").
        raise ValueError(
            f"a {height}x{width} feature map is smaller than one {patch_size}x{patch_size} patch: "
            "the input image is too small"
        )
    return nh, nw


def unfold_v2(x: np.ndarray, patch_size: int) -> np.ndarray:
    """(B, C, H, W) -> (B, C, p*p, nh*nw) with nh = H // p, nw = W // p (the remainder dropped).

    patches[b, c, py * p + px, ny * nw + nx] = x[b, c, ny * p + py, nx * p + px]
    """
    batch, channels, height, width = x.shape
    p = patch_size
    nh, nw = whole_patches(height, width, p)
    patches = x[:, :, : nh * p, : nw * p].reshape(batch, channels, nh, p, nw, p)  # (B, C, ny, py, nx, px)
    return patches.transpose(0, 1, 3, 5, 2, 4).reshape(batch, channels, p * p, nh * nw)


def fold_v2(patches: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, C, p*p, nh*nw) -> (B, C, H, W): the inverse of unfold_v2, zeros where it dropped pixels."""
    batch, channels, area, _ = patches.shape
    p = math.isqrt(area)
    nh, nw = size[0] // p, size[1] // p
    x = patches.reshape(batch, channels, p, p, nh, nw).transpose(0, 1, 4, 2, 5, 3)  # (B, C, ny, py, nx, px)
    out = np.zeros((batch, channels, *size), dtype=patches.dtype)
    out[:, :, : nh * p, : nw * p] = x.reshape(batch, channels, nh * p, nw * p)
    return out
