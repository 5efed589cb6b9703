"""MobileViTV2's separable self-attention between its two 1x1 convolutions, on blocked token maps.

Input: the qkv projection of every token as a blocked token map qkv (S, 1 + 2*DB, 1, N, 16),
S = B*P sequences (one per image and pixel offset inside a patch) of N tokens (one per
patch): lane 0 of block 0 is the one-channel query (lanes 1-15 are zero weights' output),
blocks [1, 1 + DB) are the keys K and [1 + DB, 1 + 2 DB) the values V (engine_v2.pack_qkv
lays the projection's weights out so). Per sequence s:

    scores = softmax(q) over the N tokens               (N,)
    context = sum_n scores[n] * K[:, n]                 (d,)   one vector per sequence
    out[:, n] = relu(V[:, n]) * context                 (d, N)

out (S, DB, 1, N, 16) then goes through the output projection (conv.conv2d_tiles, with the
residual). The softmax runs once per sequence (attention.softmax_row, vector code); the
context and the gate run per (sequence, channel block) job, so a batch of one image (four
sequences for 2x2 patches) still gives every thread work. No N x N matrix exists here.

Twin: layers.separable_self_attention (before its out_proj).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.attention import softmax_row
from mobilevit_np.kernels.runtime.jit import helper, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES


@helper
def _context(keys, base, scores, length, inverse, ctx):
    """ctx (16,) = inverse * sum_n scores[n] * keys[base + n*16 : base + n*16 + 16] (one block of K)."""
    ctx[:] = 0
    for n in range(length):
        for i in range(LANES):
            ctx[i] += scores[n] * keys[base + n * LANES + i]
    for i in range(LANES):
        ctx[i] *= inverse


@helper
def _gate(values, base, length, ctx, out, o_base):
    """out[o_base + n*16 + i] = max(values[base + n*16 + i], 0) * ctx[i] (NaN kept, as np.maximum)."""
    for n in range(length):
        for i in range(LANES):
            v = values[base + n * LANES + i]
            out[o_base + n * LANES + i] = (v if v > 0 or v != v else np.float32(0)) * ctx[i]


@kernel
def separable_attention(qkv, out):
    """out = relu(V) * context from qkv; see the module docstring.

    Twin: layers.separable_self_attention (before its out_proj).
    """
    n_seq, _, _, length, _ = qkv.shape
    blocks = out.shape[1]
    flat, flat_out = qkv.reshape(-1), out.reshape(-1)
    scb = length * LANES  # one channel block of one sequence
    q_sb = qkv.shape[1] * scb
    padded = (length + LANES - 1) // LANES * LANES
    scores = np.zeros((n_seq, padded), qkv.dtype)  # e^(q - max) per sequence
    inverse = np.zeros(n_seq, qkv.dtype)  # 1 / sum of a sequence's e^(q - max)
    jobs = n_seq
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        s = next_job(cursors, worker, jobs)
        while s >= 0:
            for n in range(length):
                scores[s, n] = qkv[s, 0, 0, n, 0]
            inverse[s] = softmax_row(scores, s, length)
            s = next_job(cursors, worker, jobs)
    jobs = n_seq * blocks
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            s, cb = job // blocks, job % blocks
            ctx = np.empty(LANES, qkv.dtype)
            _context(flat, s * q_sb + (1 + cb) * scb, scores[s], length, inverse[s], ctx)
            _gate(flat, s * q_sb + (1 + blocks + cb) * scb, length, ctx, flat_out, (s * blocks + cb) * scb)
            job = next_job(cursors, worker, jobs)
