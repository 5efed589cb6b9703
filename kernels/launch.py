"""Launching a parallel kernel on the calling thread alone, unless the work is huge.

Each parallel region wakes numba's sleeping worker threads (OMP_WAIT_POLICY=PASSIVE, see
config.py) and waits for the slowest one. In this model every kernel runs right after a
BLAS matmul, whose worker threads still hold the other cores for a moment, so the second
numba thread mostly waited: measured on 2 cores (numba threads 2 -> 1, BLAS on 2 threads),
mobilevit-xx-small 25.3 -> 22.6 ms, mobilevit-small 51.4 -> 51.4 ms, batch 8 482 -> 467 ms,
and a 1M-element threshold kept the xx-small loss (25.1 ms). So kernels writing fewer than
PARALLEL_MIN_ELEMENTS values (every tensor of MobileViT up to batch 8) run on the calling
thread and BLAS owns the cores. They stay compiled with parallel=True: numba's parfor
lowering vectorized the depthwise loops 2x better than parallel=False, even on one thread.
numba.set_num_threads is per calling thread, so models used from several threads are unaffected.
"""

from __future__ import annotations

import numba

PARALLEL_MIN_ELEMENTS = 1 << 24  # 64 MB of float32 written


def launch(kernel, elements: int, *args) -> None:
    """kernel(*args), on the calling thread alone when it writes fewer than PARALLEL_MIN_ELEMENTS values."""
    threads = numba.get_num_threads()
    if elements >= PARALLEL_MIN_ELEMENTS or threads == 1:
        kernel(*args)
        return
    numba.set_num_threads(1)
    try:
        kernel(*args)
    finally:
        numba.set_num_threads(threads)
