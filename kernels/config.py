"""One place for how every kernel is compiled.

FASTMATH lets LLVM reorder and contract float arithmetic (vectorized sums, fused
multiply-adds, approximate reciprocals) but keeps NaN and Inf semantics ("nnan" and
"ninf" are left out), so a NaN in the input still shows up in the output as it does in
the NumPy reference. Results differ from the reference by float32 rounding (~1e-6
relative), which the kernel tests bound.

Compiled code is cached on disk (cache=True, in __pycache__ next to each module, or in
NUMBA_CACHE_DIR): a second process loads the machine code instead of compiling it.
Numba keys that cache on each kernel's own source file; the inline helpers in
elementwise.py are compiled into their callers, so after editing them, delete the
cached *.nbi / *.nbc files (a reinstall does this by giving every file a new mtime).
Thread count: parallel kernels use NUMBA_NUM_THREADS (default: all cores).
"""

from __future__ import annotations

import os

# GNU OpenMP (numba's usual threading layer here) keeps its worker threads spinning after
# each parallel loop. Between our kernels come OpenBLAS matmuls that want the same cores,
# and on a 2-core machine the spinning threads starved them: 10-40x slower calls when
# another process was busy too. PASSIVE makes idle workers sleep. It must be set before
# the OpenMP runtime loads (at the first parallel kernel); a value you set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the environment above)

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


def kernel(parallel: bool = False):
    """The decorator for every kernel: nopython, cached, FASTMATH, optionally parallel."""
    return numba.njit(cache=True, fastmath=set(FASTMATH), parallel=parallel)


def inline_helper(func):
    """Decorator for small scalar helpers that kernels inline (never called from Python)."""
    return numba.njit(inline="always", fastmath=set(FASTMATH))(func)
