"""One place for how every kernel is compiled.

FASTMATH lets LLVM reorder and contract float arithmetic (vectorized sums, fused
multiply-adds, approximate reciprocals) but leaves out "nnan" and "ninf", so LLVM may not
assume that values are finite: a NaN in the input still shows up in the output as it does
in the NumPy reference. error_model="numpy" makes a division by zero give inf (as NumPy)
instead of raising, which also lets LLVM vectorize loops that divide.

Each kernel is built twice from the same Python function: with parallel=True (its prange
loops spread over numba's threads) and without (prange is range). threads.py decides per
launch which one runs: one thread, small work, or a process forked from one that already
used the parallel build (GNU OpenMP cannot run in such a child) take the serial build.

Compiled code is cached on disk (cache=True, in __pycache__ next to each module, or in
NUMBA_CACHE_DIR): a second process loads the machine code instead of compiling it, and
says nothing. The first compile in a fresh cache prints one line to stderr. Numba keys
the cache on each kernel's own source file and on the CPU it compiles for (NUMBA_CPU_NAME
or the host), so another CPU kind gets code of its own; cache.stamped adds every kernels
source file, since a kernel's code holds the helpers it inlines from other modules. When no cache directory is
writable, kernels are compiled in memory instead, with one warning.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable

import numba

from mobilevit_np.kernels.runtime.cache import (
    heal_corrupt_cache,
    load_without_link_module,
    load_without_refresh,
    stamped,
)

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
OPTIONS = dict(fastmath=set(FASTMATH), error_model="numpy", nogil=True)

_caching = True  # False once numba has found no writable cache directory (warned once)
_announced = False


class Kernel:
    """A kernel's two builds; threads.launch picks one per call."""

    def __init__(self, func: Callable) -> None:
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.py_func = func
        self.parallel = _compile(func, parallel=True, launched=True)
        self.serial = _compile(_renamed(func, "_serial"), parallel=False, launched=True)

    def __call__(self, *args):
        from mobilevit_np.kernels.runtime.threads import launch

        return launch(self, args)


def kernel(func: Callable) -> Kernel:
    """The decorator for every top-level kernel: nopython, cached, FASTMATH, serial + parallel builds."""
    return Kernel(func)


def helper(func: Callable) -> Callable:
    """Decorator for jitted functions that kernels call (never launched from Python themselves)."""
    return _compile(func, parallel=False)


def inlined(func: Callable) -> Callable:
    """Decorator for small jitted functions called once per tile or row: numba inlines them into the caller.

    A call that is not inlined passes each array by value and increments and decrements its reference
    count around the call: two atomic operations per array, ~300 cycles for the seven arrays of one
    gemm tile, which measured longer than the tile's arithmetic on a 16-channel 1x1 conv."""
    return numba.njit(inline="always", **OPTIONS)(func)


def _renamed(func: Callable, suffix: str) -> Callable:
    """A copy of func under another name. numba's disk cache is keyed by the function's name and
    signature, not by its options: without this, the serial build would load the parallel
    build's machine code from the cache (and run OpenMP in a forked child)."""
    copy = types.FunctionType(
        func.__code__, func.__globals__, func.__name__ + suffix, func.__defaults__, func.__closure__
    )
    copy.__qualname__ = func.__qualname__ + suffix
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy


def _compile(func: Callable, parallel: bool, launched: bool = False):
    """numba.njit(cache=True, ...)(func), or without the cache when numba has nowhere to write it.
    launched: a kernel's build, called from Python only (never from other jitted code)."""
    global _caching
    if _caching:
        try:
            dispatcher = stamped(numba.njit(cache=True, parallel=parallel, **OPTIONS)(func))
            if launched:
                dispatcher = load_without_refresh(load_without_link_module(dispatcher))
            return _announcing(heal_corrupt_cache(dispatcher), launched)
        except RuntimeError as e:  # numba: "cannot cache function ...: no locator available for file ..."
            if "cannot cache" not in str(e):
                raise
            _caching = False
            warnings.warn(
                "mobilevit_np.kernels: no writable numba cache directory (read-only install, no writable user "
                "cache); compiling in memory, once per process (set NUMBA_CACHE_DIR to a writable folder to keep it)",
                RuntimeWarning,
                stacklevel=3,
            )
    return numba.njit(parallel=parallel, **OPTIONS)(func)


def _announcing(dispatcher, launched: bool = False):
    """The dispatcher, wrapped so that the first compile of the process says once that it happens once,
    and so that numba's threading layer is up before any kernel's code is compiled or loaded; for a
    launched build, its linking module is released once its code is in place (_release_link_modules)."""
    if not hasattr(dispatcher, "compile"):  # NUMBA_DISABLE_JIT=1: the plain Python function
        return dispatcher
    original = dispatcher.compile

    def compile_once_said(sig):
        global _announced
        # Kernels call the threading layer's get_num_threads (jobs.py), a symbol numba registers when it
        # launches the layer. A serial build loaded from the cache before anything launched it would be
        # linked against nothing (measured: a segmentation fault); numba.get_num_threads() launches it.
        numba.get_num_threads()
        # Asked of each build until one compiles: a process that loads some builds from the cache can still
        # compile others (the serial builds, on a first run with one thread after runs with two).
        if not _announced and not dispatcher.overloads and not _cache_has(dispatcher):
            _announced = True
            print(
                "mobilevit_np: compiling the fast kernels for this CPU (once; later runs load them from the cache)",
                file=sys.stderr,
            )
        entry = original(sig)
        if launched:
            _release_link_modules(dispatcher)
        return entry

    dispatcher.compile = compile_once_said
    return dispatcher


def _release_link_modules(dispatcher) -> None:
    """Drop the LLVM module numba keeps beside each build's machine code for linking it into callers.

    After a compile (and after a load numba did its own way, cache.load_without_link_module) that
    module is the build's whole code as LLVM IR, ~11 MB in memory for a large kernel, kept for a
    jitted caller to inline; a kernel has no jitted callers (threads.launch calls it from Python), so
    the module is never used again. Measured when loads still parsed it: peak RSS of import + load +
    one mobilevit-small image 262 -> 227 MB, outputs equal. The attribute is numba's own
    (codegen.CPUCodeLibrary); with another numba that lacks it, nothing is dropped."""
    for result in list(dispatcher.overloads.values()):  # a copy: another thread may add a build meanwhile
        library = getattr(result, "library", None)
        if getattr(library, "_shared_module", None) is not None:
            library._shared_module = None


def _cache_has(dispatcher) -> bool:
    """Whether numba's disk cache already holds some build of this dispatcher (then nothing is compiled)."""
    try:
        index = dispatcher._cache._cache_file._load_index()  # {(signature, target key): file}; {} when empty
    except Exception:  # a cache layout of another numba version: assume a compile
        return False
    return bool(index)
