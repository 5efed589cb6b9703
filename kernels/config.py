"""One place for how every kernel is compiled.

FASTMATH lets LLVM reorder and contract float arithmetic (vectorized sums, fused
multiply-adds, approximate reciprocals) but leaves out "nnan" and "ninf", so LLVM may not
assume that values are finite: a NaN in the input still shows up in the output as it does
in the NumPy reference. Infinities are not always kept: fast_exp (elementwise.py) clamps
its input, so e.g. SiLU(-inf) is -inf here and NaN in the reference. Results differ from
the reference by float32 rounding (~1e-6 relative), which the kernel tests bound.

Compiled code is cached on disk (cache=True, in __pycache__ next to each module, or in
NUMBA_CACHE_DIR): a second process loads the machine code instead of compiling it.
Numba keys that cache on each kernel's own source file; the inline helpers in
elementwise.py are compiled into their callers, so after editing them, delete the
cached *.nbi / *.nbc files (a reinstall does this by giving every file a new mtime).
When no cache directory is writable (read-only site-packages and no writable user cache
or NUMBA_CACHE_DIR), kernels are compiled in memory instead, with one warning.
Thread count: parallel kernels use NUMBA_NUM_THREADS (default: all cores).
Threads: a model may be called from several Python threads at once. Numba's "workqueue"
threading layer (its fallback when neither TBB nor OpenMP loads) aborts the process on
concurrent parallel launches, so under it launches take a lock; under "omp" or "tbb"
they run concurrently.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable

# GNU OpenMP (numba's usual threading layer here) keeps its worker threads spinning after
# each parallel loop. Between our kernels come OpenBLAS matmuls that want the same cores,
# and on a 2-core machine the spinning threads starved them: 10-40x slower calls when
# another process was busy too. PASSIVE makes idle workers sleep. It must be set before
# the OpenMP runtime loads (at the first parallel kernel); a value you set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402  (after the environment above)

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})


_caching = True  # False once numba has found no writable cache directory (warned once)
_launch_lock = threading.Lock()
_threadsafe_layer: bool | None = None  # known after the first parallel launch


def kernel(parallel: bool = False) -> Callable[[Callable], Callable]:
    """The decorator for every kernel: nopython, cached, FASTMATH, optionally parallel."""

    def decorate(func):
        compiled = _compile(func, parallel)
        return _serialized_if_needed(func, compiled) if parallel else compiled

    return decorate


def _compile(func, parallel: bool):
    """numba.njit(cache=True, ...)(func), or without the cache when numba has nowhere to write it."""
    global _caching
    options = dict(fastmath=set(FASTMATH), parallel=parallel)
    if _caching:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as e:  # numba: "cannot cache function ...: no locator available for file ..."
            if "cannot cache" not in str(e):
                raise
            _caching = False
            warnings.warn(
                "mobilevit_np.kernels: no writable numba cache directory (read-only install, no writable user "
                "cache); compiling in memory, once per process (set NUMBA_CACHE_DIR to a writable folder to keep it)",
                RuntimeWarning,
                stacklevel=2,
            )
    return numba.njit(**options)(func)


def _layer_is_threadsafe() -> bool:
    global _threadsafe_layer
    if _threadsafe_layer is None:
        try:
            _threadsafe_layer = numba.threading_layer() != "workqueue"
        except ValueError:  # no parallel kernel has run yet: the first launch picks the layer
            return False
    return _threadsafe_layer


def _serialized_if_needed(func, compiled):
    """A parallel kernel that takes a lock unless numba's threading layer is thread-safe."""

    @functools.wraps(func)
    def launch(*args):
        if _layer_is_threadsafe():
            return compiled(*args)
        with _launch_lock:
            return compiled(*args)

    return launch


def inline_helper(func: Callable) -> Callable:
    """Decorator for small scalar helpers that kernels inline (never called from Python)."""
    return numba.njit(inline="always", fastmath=set(FASTMATH))(func)
