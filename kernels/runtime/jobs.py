"""How a parallel kernel shares its jobs among threads: each thread its own share first, then the rest.

A kernel's jobs are numbered so that neighbouring jobs touch neighbouring data (a convolution's
job is an output row of one image, the channel groups innermost). Worker t of `workers` owns the
contiguous share [t * jobs // workers, (t + 1) * jobs // workers) and takes its jobs in order;
when its share is done it takes what is left of the others', one job at a time.

Why not numba's schedules:
- The default (static) gives each thread one fixed share: consecutive kernels then split a map
  the same way, and a thread reads rows it wrote itself, still in its own L2 cache. But when
  another process holds a core, every launch waits for the descheduled thread's share:
  mobilevit-small on 2 loaded cores took 527 ms per image against 35 ms with the jobs handed out
  one at a time.
- Handing jobs out one at a time (set_parallel_chunksize(1)) balances any load, but the two
  threads then take alternate rows: a row a kernel reads was written by the other core half the
  time and must travel between the caches. mobilevit-small b1 on 2 quiet threads: 24.7 ms median
  with one-at-a-time jobs against 23.5 ms with static shares (interleaved, same process).
Owned shares with stealing keep both: on a quiet machine each thread runs its own share (the
static case), and a thread that finishes early takes over the rest of a slow one's.

Use in a kernel (jobs: the job count; in the serial build prange is range, and worker 0 runs all):

    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            ...             # the job's work
            job = next_job(cursors, worker, jobs)
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import config
from numba.extending import intrinsic
from numba.np.ufunc.parallel import _iget_num_threads

from mobilevit_np.kernels.runtime.jit import inlined

CURSOR_STRIDE = 16  # int64s between two workers' cursors: 128 bytes, so no two share a cache line (or its pair)


@intrinsic
def _fetch_add(typingctx, cursors, index):
    """cursors[index] += 1 as one atomic operation; returns the value before (each caller gets its own)."""
    if not isinstance(cursors, types.Array) or cursors.dtype != types.int64:
        return None

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        pointer = builder.gep(array.data, [args[1]])
        return builder.atomic_rmw("add", pointer, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(cursors, index), codegen


def _python_fetch_add(cursors: np.ndarray, index: int) -> int:
    """_fetch_add without the JIT (NUMBA_DISABLE_JIT=1 runs everything on one thread)."""
    before = int(cursors[index])
    cursors[index] = before + 1
    return before


fetch_add = _python_fetch_add if config.DISABLE_JIT else _fetch_add
# numba.get_num_threads() compiled into a kernel calls a ctypes pointer, which numba cannot cache
# ("uses dynamic globals"); its parfor lowering calls this intrinsic instead, a named symbol.
num_threads = numba.get_num_threads if config.DISABLE_JIT else _iget_num_threads


@inlined
def job_cursors(jobs):
    """One cursor per thread of the parallel build, set to the start of that thread's share."""
    workers = num_threads()
    cursors = np.empty(workers * CURSOR_STRIDE, np.int64)
    for t in range(workers):
        cursors[t * CURSOR_STRIDE] = t * jobs // workers
    return cursors


@inlined
def next_job(cursors, worker, jobs):
    """The next job of `worker`: from its own share while that lasts, then from the others'; -1 when none is left."""
    workers = cursors.shape[0] // CURSOR_STRIDE
    for k in range(workers):
        t = (worker + k) % workers
        job = fetch_add(cursors, t * CURSOR_STRIDE)
        if job < (t + 1) * jobs // workers:
            return job
    return -1
