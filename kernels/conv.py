"""Convolutions and linears on blocked feature maps, by register tiles (simd.gemm_tile).

A feature map here is an array (B, CB, Hs, Ws, 16): CB blocks of 16 channels, stored with
a zero border of `pad` pixels (Hs = H + 2 pad) when a kxk convolution reads it, so no tap
ever tests for the edge. Kernels take a map as (array, offset of pixel (0, 0) of image 0,
image stride, block stride, row stride) in elements; a pixel is 16 consecutive floats
(`pixel` floats for the stem's input, stored (B, Hs, Ws, 3) and passed as a (B, 1, Hs, Ws, 3) view:
one array type for every call, so one compiled build).

conv2d_tiles computes, for every image b, output row y and group of BLOCKS output blocks,
tiles of ROWS consecutive output pixels:

    out[b, o, y, x] = bias[o] + sum_{t, c} w[o, c, t] * in[b, c, y*s + dy_t, x*s + dx_t]   (+ residual)

with one tap t = (dy, dx) per kernel offset (a 1x1 convolution has the one tap (0, 0)), and
the activation applied to each finished tile in registers, before it is stored. A linear layer on
tokens is the same kernel: tokens are stored as a map with one row of L pixels per sequence.
Twins: layers.conv2d (with groups=1) and layers.linear.

Taps that fall entirely outside the image for a whole row or tile are skipped, which matters
for ASPP's 3x3 convolutions dilated by 12 and 18 on a 32x32 map (most of their taps read the
zero border at the edges).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.activation import RELU, SILU
from mobilevit_np.kernels.runtime.jit import inlined, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, gemm_tile, tile_shape
from mobilevit_np.kernels.simd import RELU as RELU_FLAG
from mobilevit_np.kernels.simd import SILU as SILU_FLAG

ROWS, BLOCKS = tile_shape()
# A job's weights (the BLOCKS output blocks of one group, all taps and input channels) larger
# than this many floats (256 KB) are not re-read from L2 for every row: jobs go group by group.
# ASPP's dilated 3x3 convolutions over 512 channels have 1.2 MB per group (measured below).
PANEL_FLOATS = 1 << 16


@inlined
def gemm(rows, blocks, args):
    """gemm_tile(rows, blocks, args) for 1 <= rows <= ROWS, 1 <= blocks <= BLOCKS chosen at run time."""
    if blocks == 4:
        if rows == 6:
            gemm_tile(6, 4, args)
        elif rows == 5:
            gemm_tile(5, 4, args)
        elif rows == 4:
            gemm_tile(4, 4, args)
        elif rows == 3:
            gemm_tile(3, 4, args)
        elif rows == 2:
            gemm_tile(2, 4, args)
        else:
            gemm_tile(1, 4, args)
    elif blocks == 3:
        if rows == 6:
            gemm_tile(6, 3, args)
        elif rows == 5:
            gemm_tile(5, 3, args)
        elif rows == 4:
            gemm_tile(4, 3, args)
        elif rows == 3:
            gemm_tile(3, 3, args)
        elif rows == 2:
            gemm_tile(2, 3, args)
        else:
            gemm_tile(1, 3, args)
    elif blocks == 2:
        if rows == 6:
            gemm_tile(6, 2, args)
        elif rows == 5:
            gemm_tile(5, 2, args)
        elif rows == 4:
            gemm_tile(4, 2, args)
        elif rows == 3:
            gemm_tile(3, 2, args)
        elif rows == 2:
            gemm_tile(2, 2, args)
        else:
            gemm_tile(1, 2, args)
    elif rows == 6:
        gemm_tile(6, 1, args)
    elif rows == 5:
        gemm_tile(5, 1, args)
    elif rows == 4:
        gemm_tile(4, 1, args)
    elif rows == 3:
        gemm_tile(3, 1, args)
    elif rows == 2:
        gemm_tile(2, 1, args)
    else:
        gemm_tile(1, 1, args)


@kernel
def conv2d_tiles(
    x,
    x_off,
    x_sb,
    x_scb,
    x_sy,
    pixel,
    in_h,
    in_w,
    stride,
    taps,
    k,
    w,
    w_bs,
    bias,
    bias_sb,
    out,
    o_off,
    o_sb,
    o_scb,
    o_sy,
    batch,
    out_h,
    out_w,
    out_blocks,
    residual,
    r_off,
    r_sb,
    r_scb,
    r_sy,
    flags,
    act,
):
    """out (blocked map) = act(conv(x) + bias [+ residual]); see the module docstring.

    Twin: model.conv_layer (layers.conv2d, groups=1, + activation), and layers.linear on tokens.

    x: input map (strides x_sb, x_scb, x_sy; `pixel` floats per pixel, k input channels,
       in_h x in_w pixels inside the border), taps (T, 2) int64 (dy, dx) per kernel offset.
    w: packed (OB, T, k, 16) (engine.pack_conv): w[ob, t, c, l] = weight[ob*16 + l, c, t];
       w_bs = T * k * 16. bias: (B or 1, OB*16) flat, per image when bias_sb > 0 (ASPP's
       pooled branch folded in), flags: simd.ADD_BIAS | simd.LOAD_INIT (then `residual`, a map
       of out's shape with its own offset and strides, is added).
    """
    num_taps = taps.shape[0]
    groups = (out_blocks + BLOCKS - 1) // BLOCKS
    flags |= activation_flag(act)
    jobs = groups * batch * out_h
    weights_first = w_bs * BLOCKS > PANEL_FLOATS
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        a_taps = np.empty(num_taps, np.int64)  # the taps a tile uses (_tile_taps), one pair per thread
        b_taps = np.empty(num_taps, np.int64)
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            if weights_first:  # a thread's share is a range of output blocks: their weights stay in its L2
                g, by = job // (batch * out_h), job % (batch * out_h)
            else:  # a band of rows: a thread reads the rows it wrote (jobs.py)
                g, by = job % groups, job // groups
            b, y = by // out_h, by % out_h
            blocks = min(BLOCKS, out_blocks - g * BLOCKS)
            for x0 in range(0, out_w, ROWS):
                rows = min(ROWS, out_w - x0)
                used = _tile_taps(
                    taps, y * stride, in_h, x0 * stride, (x0 + rows - 1) * stride, in_w, x_sy, pixel, k, a_taps, b_taps
                )
                c_off = o_off + b * o_sb + g * BLOCKS * o_scb + y * o_sy + x0 * LANES
                rr_off = r_off + b * r_sb + g * BLOCKS * r_scb + y * r_sy + x0 * LANES
                a_off = x_off + b * x_sb + y * stride * x_sy + x0 * stride * pixel
                args = (
                    x,
                    a_off,
                    stride * pixel,
                    x_scb,
                    0,
                    a_taps,
                    w,
                    g * BLOCKS * w_bs,
                    b_taps,
                    LANES,
                    w_bs,
                    used,
                    k,
                    out,
                    c_off,
                    LANES,
                    o_scb,
                    residual,
                    rr_off,
                    r_scb,
                    bias,
                    b * bias_sb + g * BLOCKS * LANES,
                    flags,
                )
                gemm(rows, blocks, args)
            job = next_job(cursors, worker, jobs)


@inlined
def activation_flag(act):
    """The simd flag that applies activation code `act` (activation.SILU / RELU) in the tile's registers."""
    return SILU_FLAG if act == SILU else RELU_FLAG if act == RELU else 0


@inlined
def _tile_taps(taps, y_in, in_h, x_first, x_last, in_w, x_sy, pixel, k, a_taps, b_taps):
    """Fill a_taps / b_taps with the input and weight offsets of the taps this tile needs; return their count.

    taps (T, 2): (dy, dx) of each kernel offset; the tile reads input rows y_in + dy and columns
    x_first + dx .. x_last + dx. A tap reading only the zero border is left out.
    """
    count = 0
    for t in range(taps.shape[0]):
        dy, dx = taps[t, 0], taps[t, 1]
        if y_in + dy < 0 or y_in + dy >= in_h or x_last + dx < 0 or x_first + dx >= in_w:
            continue
        a_taps[count] = dy * x_sy + dx * pixel
        b_taps[count] = t * k * LANES
        count += 1
    return count
