"""An inverted residual block (expand 1x1, depthwise kxk, reduce 1x1) as one kernel, row by row.

MobileNetV2's block widens a map expand_ratio times (the expand), filters each channel (the
depthwise) and narrows it again (the reduce). As three kernels, the two wide maps are written
whole, 2-8 MB each at mobilevit's first stages, more than a core's L2, and read back from
memory. Here a job is one output row of one image:

- the rows of the expanded map that the depthwise taps read (y * stride + dy) are computed
  into a ring of 2 * reach + 1 rows of the thread's (input row r in slot r % ring size, with
  the zero border columns the taps need; rows above and below the image are zeros). A
  thread runs consecutive rows (jobs.py), so each job adds one or two rows (the stride) and
  keeps the others;
- the depthwise output row, all channel blocks, goes into a row buffer of the thread's;
- the reduce's register tiles read that buffer, add the bias and the residual, and write the
  block's output row.
So the wide maps live in a few hundred KB of cache per thread and only the block's input and
output touch memory.

Twin: model.inverted_residual (its three model.conv_layer calls and the residual).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.conv import BLOCKS, ROWS, activation_flag, gemm
from mobilevit_np.kernels.depthwise import depthwise_row
from mobilevit_np.kernels.runtime.jit import inlined, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import ADD_BIAS, LANES


@inlined
def pointwise_row(a, a_off, a_kbs, w, w_bs, k, bias, c, c_off, c_bs, out_blocks, r_arr, r_off, r_bs, flags, width):
    """One row of a 1x1 convolution: c[c_off + px*16 + ob*c_bs + l] for px < width, ob < out_blocks, from
    the row a[a_off + px*16 + kb*a_kbs + l] (k input channels); flags and r_arr as in conv.conv2d_tiles."""
    one_tap = np.zeros(1, np.int64)
    for g in range(0, out_blocks, BLOCKS):
        for x0 in range(0, width, ROWS):
            args = (
                a,
                a_off + x0 * LANES,
                LANES,
                a_kbs,
                0,
                one_tap,
                w,
                g * w_bs,
                one_tap,
                LANES,
                w_bs,
                1,
                k,
                c,
                c_off + g * c_bs + x0 * LANES,
                LANES,
                c_bs,
                r_arr,
                r_off + g * r_bs + x0 * LANES,
                r_bs,
                bias,
                g * LANES,
                flags,
            )
            gemm(min(ROWS, width - x0), min(BLOCKS, out_blocks - g), args)


@kernel
def inverted_residual_rows(
    x,
    x_off,
    x_sb,
    x_scb,
    x_sy,
    in_h,
    in_w,
    expand_w,
    expand_bias,
    stride,
    taps,
    reach,
    dw_w,
    dw_bias,
    mid_blocks,
    act,
    reduce_w,
    reduce_bias,
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
    """out = reduce(act(depthwise(act(expand(x))))) + reduce bias [+ residual], on blocked maps.

    x: the block's input map (strides as in conv.py; in_h x in_w pixels, Kp padded channels).
    expand_w (MB, 1, Kp, 16), expand_bias (MB*16,): the expand 1x1 (batch norm folded);
    taps (T, 2) (dy, dx), dilation included, reach = the largest |dy|, dw_w (MB, T, 16), dw_bias:
    the depthwise, at `stride`; act: the activation code of both; reduce_w (OB, 1, MB*16, 16),
    reduce_bias: the reduce 1x1, written to `out` (out_blocks blocks), `residual` added when
    flags has simd.LOAD_INIT (a map of out's shape, its own strides).

    Twin: model.inverted_residual (see the module docstring).
    """
    act_flags = activation_flag(act)
    k_in, k_mid = expand_w.shape[2], reduce_w.shape[2]  # padded input channels of the expand and the reduce
    ring_rows = 2 * reach + 1
    wide = in_w + 2 * reach  # a ring row's pixels, zero border included
    slot = mid_blocks * wide * LANES  # one ring row: (mid_blocks, wide, 16)
    row = out_w * LANES  # the depthwise row buffer: (mid_blocks, out_w, 16)
    jobs = batch * out_h
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        ring = np.zeros(ring_rows * slot, x.dtype)
        held = np.full(ring_rows, -1, np.int64)  # the (image, input row) each ring slot holds, as one number
        mid = np.empty(mid_blocks * row, x.dtype)
        x_taps = np.empty(taps.shape[0], np.int64)
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, y = job // out_h, job % out_h
            for t in range(taps.shape[0]):
                r = y * stride + taps[t, 0]
                s = r % ring_rows
                key = b * (in_h + 2 * reach) + r + reach
                if held[s] != key:
                    held[s] = key
                    if 0 <= r < in_h:
                        a_off = x_off + b * x_sb + r * x_sy
                        c_off = s * slot + reach * LANES
                        pointwise_row(
                            x, a_off, x_scb, expand_w, k_in * LANES, k_in, expand_bias,
                            ring, c_off, wide * LANES, mid_blocks, ring, 0, 0, ADD_BIAS | act_flags, in_w,
                        )  # fmt: skip
                    else:
                        ring[s * slot : (s + 1) * slot] = 0
                x_taps[t] = s * slot + taps[t, 1] * LANES
            for cb in range(mid_blocks):
                row_in = cb * wide * LANES + reach * LANES
                depthwise_row(ring, row_in, stride, x_taps, dw_w, cb, dw_bias, mid, cb * row, out_w, act_flags)
            pointwise_row(
                mid, 0, row, reduce_w, k_mid * LANES, k_mid, reduce_bias,
                out, o_off + b * o_sb + y * o_sy, o_scb, out_blocks,
                residual, r_off + b * r_sb + y * r_sy, r_scb, flags, out_w,
            )  # fmt: skip
            job = next_job(cursors, worker, jobs)
