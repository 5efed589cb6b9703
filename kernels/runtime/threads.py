"""Which build of a kernel runs a launch: on numba's threads, or on the calling thread alone.

- One thread (NUMBA_NUM_THREADS=1, numba.set_num_threads(1), or a pool worker told so)
  runs the serial build: no parallel region to open and close.
- Small work (fewer than PARALLEL_MIN_WORK multiply-adds or values) runs serially too:
  opening a parallel region and waiting for the other threads costs microseconds, more
  than a small layer takes. The engine passes each launch's work (engine.py).
- A process forked after the parallel build ran cannot use it: GNU OpenMP aborts the child
  ("fork() called from a process already using GNU OpenMP"), and a multiprocessing pool
  with the fork start method then waits forever. After a fork every launch runs the serial
  build, so fork pools work, one thread per worker (which is what a pool wants anyway).
- numba's "workqueue" threading layer (its fallback when neither TBB nor OpenMP loads)
  aborts the process on concurrent parallel launches from several Python threads, so under
  it parallel launches take a lock; under "omp" and "tbb" they run concurrently.

- How a parallel launch shares its jobs among the threads (each its own band first, then
  taking over what is left of the others'): jobs.py.
- GNU OpenMP (numba's default here) is the fastest layer on a quiet machine, but every
  parallel region ends at a barrier that each thread of the team must reach, even one that got
  no job because another process holds its core: on a 2-core machine running two other jobs,
  mobilevit-xx-small on 2 threads took 520 ms per image under OpenMP and 18 ms under TBB,
  whose caller returns once the jobs are done (1 thread: 17.6 ms). On the quiet machine TBB
  cost more per launch (mobilevit-small b1: 33.5 ms against 27.7). So OpenMP stays the
  default; on a shared machine, `pip install tbb` and set NUMBA_THREADING_LAYER=tbb. numba
  looks for pip's libtbb only on the loader's path, so load_tbb() loads it by its full path
  when that variable asks for tbb.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from importlib import metadata

import numba

PARALLEL_MIN_WORK = 1 << 20  # multiply-adds (or values): ~5 us of one core, about what a parallel region costs

_forked = False
_lock = threading.Lock()
_threadsafe_layer: bool | None = None  # known after the first parallel launch


def _tbb_library() -> str | None:
    """The path of pip's libtbb.so.12 (the tbb wheel puts it in <prefix>/lib), or None."""
    try:
        files = metadata.files("tbb") or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == "libtbb.so.12":
            return str(file.locate())
    candidate = os.path.join(sys.prefix, "lib", "libtbb.so.12")
    return candidate if os.path.exists(candidate) else None


def load_tbb() -> bool:
    """With NUMBA_THREADING_LAYER=tbb, load pip's libtbb so numba finds it (module docstring); True if loaded."""
    if os.environ.get("NUMBA_THREADING_LAYER") != "tbb" or not sys.platform.startswith("linux"):
        return False
    path = _tbb_library()
    if path is None:
        return False
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)  # later dlopen("libtbb.so.12") calls find it loaded
    except OSError:
        return False
    return True


def prefer_openmp() -> None:
    """numba tries TBB first when it can load it; the engine puts OpenMP first (the module docstring
    says why), unless NUMBA_THREADING_LAYER or NUMBA_THREADING_LAYER_PRIORITY decides."""
    if not (os.environ.get("NUMBA_THREADING_LAYER") or os.environ.get("NUMBA_THREADING_LAYER_PRIORITY")):
        numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


prefer_openmp()
load_tbb()  # both before anything asks numba for its threads (serial_only does)


def _after_fork_in_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def serial_only() -> bool:
    """True when launches must not open a parallel region (one thread, or a forked child)."""
    return _forked or numba.get_num_threads() == 1


def _layer_is_threadsafe() -> bool:
    global _threadsafe_layer
    if _threadsafe_layer is None:
        try:
            _threadsafe_layer = numba.threading_layer() != "workqueue"
        except ValueError:  # no parallel kernel has run yet: the first launch picks the layer
            return False
    return _threadsafe_layer


def launch(kernel, args: tuple, work: int = PARALLEL_MIN_WORK):
    """kernel(*args) on the build that suits `work` (multiply-adds or values written) and the process."""
    if work < PARALLEL_MIN_WORK or serial_only():
        return kernel.serial(*args)
    if _layer_is_threadsafe():
        return kernel.parallel(*args)
    with _lock:
        return kernel.parallel(*args)
