"""Depthwise kxk convolutions on blocked feature maps, by register tiles (simd.depthwise_tile).

    out[b, c, y, x] = act(bias[c] + sum_t w[c, t] * in[b, c, y*s + dy_t, x*s + dx_t])

Each channel is filtered alone, so a block of 16 channels is 16 independent convolutions
that share every address: one vector multiply-add per tap and pixel, DW_ROWS output pixels
in registers at a time. The input is stored with a zero border at least as wide as the
kernel reaches ((k-1)/2 * dilation), so no tap tests for the edge; stride and dilation are
only the offsets of the taps. Twin: layers.conv2d with groups = channels.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.conv import activation_flag
from mobilevit_np.kernels.runtime.jit import inlined, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, depthwise_rows, depthwise_tile

DW_ROWS = depthwise_rows()


@inlined
def _tile(rows, args):
    """depthwise_tile(rows, args) for 1 <= rows <= DW_ROWS chosen at run time."""
    if rows == 8:
        depthwise_tile(8, args)
    elif rows == 7:
        depthwise_tile(7, args)
    elif rows == 6:
        depthwise_tile(6, args)
    elif rows == 5:
        depthwise_tile(5, args)
    elif rows == 4:
        depthwise_tile(4, args)
    elif rows == 3:
        depthwise_tile(3, args)
    elif rows == 2:
        depthwise_tile(2, args)
    else:
        depthwise_tile(1, args)


@kernel
def depthwise_tiles(
    x,
    x_off,
    x_sb,
    x_scb,
    x_sy,
    stride,
    taps,
    w,
    bias,
    out,
    o_off,
    o_sb,
    o_scb,
    o_sy,
    batch,
    blocks,
    out_h,
    out_w,
    act,
):
    """out = act(depthwise(x) + bias) on blocked maps (strides in elements, see conv.py).

    Twin: model.conv_layer on a depthwise weight (layers.conv2d with groups = channels).

    taps (T, 2) int64: (dy, dx) of each kernel offset, dilation included; w packed (CB, T, 16)
    with w[cb, t, l] = weight[cb*16 + l, 0, t]; bias (CB*16,).
    """
    flags = activation_flag(act)
    jobs = batch * blocks * out_h
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        x_taps = tap_offsets(taps, x_sy)
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, rest = job // (blocks * out_h), job % (blocks * out_h)
            y, cb = rest // blocks, rest % blocks  # channel blocks innermost: a thread's share is a band of rows
            row_in = x_off + b * x_sb + cb * x_scb + y * stride * x_sy
            depthwise_row(
                x, row_in, stride, x_taps, w, cb, bias, out, o_off + b * o_sb + cb * o_scb + y * o_sy, out_w, flags
            )
            job = next_job(cursors, worker, jobs)


@inlined
def tap_offsets(taps, x_sy):
    """taps (T, 2) (dy, dx) -> (T,) offsets in elements of a blocked map whose rows are x_sy apart."""
    x_taps = np.empty(taps.shape[0], np.int64)
    for t in range(taps.shape[0]):
        x_taps[t] = taps[t, 0] * x_sy + taps[t, 1] * LANES
    return x_taps


@inlined
def depthwise_row(x, row_in, stride, x_taps, w, cb, bias, out, row_out, out_w, flags):
    """One output row of channel block cb: out.flat[row_out + px*16 + l] for px < out_w, from the input
    row starting at x.flat[row_in] (its first output pixel's centre tap), DW_ROWS pixels per tile."""
    num_taps = x_taps.shape[0]
    for x0 in range(0, out_w, DW_ROWS):
        args = (
            x,
            row_in + x0 * stride * LANES,
            stride * LANES,
            x_taps,
            w,
            cb * num_taps * LANES,
            num_taps,
            bias,
            cb * LANES,
            out,
            row_out + x0 * LANES,
            LANES,
            flags,
        )
        _tile(min(DW_ROWS, out_w - x0), args)
