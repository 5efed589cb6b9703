"""Moving blocked maps around: NCHW in and out, unfold/fold into patch sequences, bilinear resize.

A blocked map is (B, CB, Hs, Ws, 16) (see conv.py); tokens are a blocked map with one row
per sequence: (N, DB, 1, L, 16). The reorders at the model's edges (the input image, and
any hidden state a caller asked for) are NumPy, done once per call; the ones inside the
MobileViT block are kernels.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.runtime.jit import kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, copy_vectors


def stem_input(pixel_values: np.ndarray, out: np.ndarray) -> None:
    """(B, 3, H, W) -> the interior of out (B, H+2, W+2, 3): channels last, a zero border of 1 for the 3x3 stem.

    Twin: pixel_values as the reference's stem reads them.
    """
    height, width = pixel_values.shape[2:]
    out[:, 1 : height + 1, 1 : width + 1, :] = pixel_values.transpose(0, 2, 3, 1)


def to_nchw(interior: np.ndarray, channels: int) -> np.ndarray:
    """A blocked map's interior (B, CB, H, W, 16) -> a new (B, channels, H, W) array.

    Twin: the reference's NCHW maps (every hidden state the engine returns goes through here).
    """
    batch, blocks, height, width, _ = interior.shape
    nchw = interior.transpose(0, 1, 4, 2, 3).reshape(batch, blocks * LANES, height, width)
    return np.ascontiguousarray(nchw[:, :channels])


@kernel
def unfold_tokens(x, x_off, x_sb, x_scb, x_sy, patch, nh, nw, tokens):
    """tokens[b*p*p + py*p + px, cb, 0, ny*nw + nx] = x[b, cb, ny*p + py, nx*p + px].

    Twin: patches.unfold.
    """
    batch, blocks = tokens.shape[0] // (patch * patch), tokens.shape[1]
    flat, flat_tokens = x.reshape(-1), tokens.reshape(-1)
    t_scb = tokens.shape[3] * LANES  # one channel block of one sequence
    jobs = batch * blocks * nh
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, rest = job // (blocks * nh), job % (blocks * nh)
            cb, ny = rest // nh, rest % nh
            for py in range(patch):
                row = x_off + b * x_sb + cb * x_scb + (ny * patch + py) * x_sy
                for px in range(patch):
                    sequence = b * patch * patch + py * patch + px
                    start = (sequence * blocks + cb) * t_scb + ny * nw * LANES
                    copy_vectors(flat, row + px * LANES, patch * LANES, flat_tokens, start, LANES, nw)
            job = next_job(cursors, worker, jobs)


@kernel
def fold_tokens(tokens, patch, nh, nw, out, o_off, o_sb, o_scb, o_sy, height, width):
    """out[b, cb, ny*p + py, nx*p + px] = tokens[b*p*p + py*p + px, cb, 0, ny*nw + nx] (unfold_tokens undone).

    out's interior is height x width pixels: rows and columns past the last whole patch
    (height > nh*p or width > nw*p, where MobileViTV2 dropped them when unfolding) are set to 0.

    Twin: patches.fold (height, width = nh*p, nw*p) and patches.fold_v2.
    """
    batch, blocks = tokens.shape[0] // (patch * patch), tokens.shape[1]
    flat, flat_tokens = out.reshape(-1), tokens.reshape(-1)
    t_scb = tokens.shape[3] * LANES  # one channel block of one sequence
    jobs = batch * blocks * nh
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, rest = job // (blocks * nh), job % (blocks * nh)
            cb, ny = rest // nh, rest % nh
            for py in range(patch):
                row = o_off + b * o_sb + cb * o_scb + (ny * patch + py) * o_sy
                for px in range(patch):
                    sequence = b * patch * patch + py * patch + px
                    start = (sequence * blocks + cb) * t_scb + ny * nw * LANES
                    copy_vectors(flat_tokens, start, LANES, flat, row + px * LANES, patch * LANES, nw)
                flat[row + nw * patch * LANES : row + width * LANES] = 0
            job = next_job(cursors, worker, jobs)
    jobs = batch * blocks  # the rows below the last whole patch
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, cb = job // blocks, job % blocks
            for y in range(nh * patch, height):
                row = o_off + b * o_sb + cb * o_scb + y * o_sy
                flat[row : row + width * LANES] = 0
            job = next_job(cursors, worker, jobs)


@kernel
def resize_bilinear(x, x_off, x_sb, x_scb, x_sy, out, o_off, o_sb, o_scb, o_sy, y0, y1, wy, x0, x1, wx):
    """out = bilinear resize of x (align_corners=False) with the source rows/columns and weights given.

    y0, y1, wy (Ho,) and x0, x1, wx (Wo,) come from layers._linear_source_index, so the
    weights are the reference's own.

    Twin: layers.interpolate_bilinear.
    """
    batch, blocks = out.shape[0], out.shape[1]
    out_h, out_w = y0.shape[0], x0.shape[0]
    src, dst = x.reshape(-1), out.reshape(-1)
    one = wy[0] * 0 + 1
    jobs = batch * blocks * out_h
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, rest = job // (blocks * out_h), job % (blocks * out_h)
            cb, y = rest // out_h, rest % out_h
            base = x_off + b * x_sb + cb * x_scb
            above, below = base + y0[y] * x_sy, base + y1[y] * x_sy
            row = o_off + b * o_sb + cb * o_scb + y * o_sy
            for px in range(out_w):
                left, right = x0[px] * LANES, x1[px] * LANES
                for i in range(LANES):
                    top = src[above + left + i] * (one - wx[px]) + src[above + right + i] * wx[px]
                    bottom = src[below + left + i] * (one - wx[px]) + src[below + right + i] * wx[px]
                    dst[row + px * LANES + i] = top * (one - wy[y]) + bottom * wy[y]
            job = next_job(cursors, worker, jobs)
