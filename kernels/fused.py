"""An inverted residual block's depthwise and pointwise (reduce) convolutions as one kernel.

MobileNetV2's block widens a map expand_ratio times (the expand 1x1), filters each channel
(the depthwise kxk) and narrows it again (the reduce 1x1). Run as two kernels, the depthwise
writes the wide map whole, 2-8 MB at mobilevit's first stages, more than a core's L2, and the
reduce reads it back from memory. Here a job is one output row of one image: its depthwise
row, all channel blocks (out_w x 16 floats each, a few tens of KB), goes into a buffer of the
thread's, and the reduce's register tiles read it from there while it is still in cache.

Twin: the two model.conv_layer calls of model.inverted_residual after the expand
(conv_3x3, depthwise + activation; reduce_1x1, no activation), + its residual.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.conv import BLOCKS, ROWS, activation_flag, gemm
from mobilevit_np.kernels.depthwise import depthwise_row, tap_offsets
from mobilevit_np.kernels.runtime.jit import kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES


@kernel
def depthwise_pointwise(
    x,
    x_off,
    x_sb,
    x_scb,
    x_sy,
    stride,
    taps,
    dw_w,
    dw_bias,
    mid_blocks,
    act,
    w,
    w_bs,
    k,
    bias,
    out,
    o_off,
    o_sb,
    o_scb,
    o_sy,
    out_blocks,
    residual,
    r_off,
    r_sb,
    r_scb,
    r_sy,
    flags,
    batch,
    out_h,
    out_w,
):
    """out = pointwise(act(depthwise(x) + dw_bias)) + bias [+ residual], on blocked maps.

    The depthwise part takes depthwise.depthwise_tiles' arguments (x, its strides, stride, taps,
    dw_w packed (MB, T, 16), dw_bias, mid_blocks = MB blocks, act); the pointwise part
    conv.conv2d_tiles' for a 1x1 convolution (w packed (OB, 1, k, 16), w_bs = k * 16, bias, out
    and its strides, residual and flags as there).

    Twin: model.inverted_residual's conv_3x3 then reduce_1x1 (see the module docstring).
    """
    dw_flags = activation_flag(act)
    groups = (out_blocks + BLOCKS - 1) // BLOCKS
    row = out_w * LANES  # the depthwise row buffer: (mid_blocks, out_w, 16)
    jobs = batch * out_h
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        mid = np.empty(mid_blocks * row, x.dtype)
        x_taps = tap_offsets(taps, x_sy)
        one_tap = np.zeros(1, np.int64)
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, y = job // out_h, job % out_h
            for cb in range(mid_blocks):
                row_in = x_off + b * x_sb + cb * x_scb + y * stride * x_sy
                depthwise_row(x, row_in, stride, x_taps, dw_w, cb, dw_bias, mid, cb * row, out_w, dw_flags)
            for g in range(groups):
                for x0 in range(0, out_w, ROWS):
                    args = (
                        mid,
                        x0 * LANES,
                        LANES,
                        row,
                        0,
                        one_tap,
                        w,
                        g * BLOCKS * w_bs,
                        one_tap,
                        LANES,
                        w_bs,
                        1,
                        k,
                        out,
                        o_off + b * o_sb + g * BLOCKS * o_scb + y * o_sy + x0 * LANES,
                        LANES,
                        o_scb,
                        residual,
                        r_off + b * r_sb + g * BLOCKS * r_scb + y * r_sy + x0 * LANES,
                        r_scb,
                        bias,
                        g * BLOCKS * LANES,
                        flags,
                    )
                    gemm(min(ROWS, out_w - x0), min(BLOCKS, out_blocks - g * BLOCKS), args)
            job = next_job(cursors, worker, jobs)
