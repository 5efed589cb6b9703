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
sequences for 2x2 patches) still gives every thread work; both are vector code
(simd.weighted_vectors, simd.gate_vectors). No N x N matrix exists here.

Twin: layers.separable_self_attention (before its out_proj).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.attention import softmax_row
from mobilevit_np.kernels.runtime.jit import kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, gate_vectors, weighted_vectors


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
    scores = np.zeros((n_seq, padded), qkv.dtype)  # softmax(q) per sequence
    jobs = n_seq
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        s = next_job(cursors, worker, jobs)
        while s >= 0:
            for n in range(length):
                scores[s, n] = qkv[s, 0, 0, n, 0]
            inverse = softmax_row(scores, s, length)
            for n in range(length):
                scores[s, n] *= inverse
            s = next_job(cursors, worker, jobs)
    jobs = n_seq * blocks
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        context = np.empty(LANES, qkv.dtype)  # one channel block's 16 values of one sequence's context
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            s, cb = job // blocks, job % blocks
            weighted_vectors(flat, s * q_sb + (1 + cb) * scb, scores[s], length, context)
            gate_vectors(flat, s * q_sb + (1 + blocks + cb) * scb, length, context, flat_out, (s * blocks + cb) * scb)
            job = next_job(cursors, worker, jobs)
