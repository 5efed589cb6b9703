"""Memory reused from call to call by the fast path, so a forward pass rarely asks the OS for pages.

Allocating every array afresh costs more than it seems. glibc hands memory above its mmap
threshold (or at the top of a heap that has shrunk) back to the kernel when it is freed,
so the next call's array starts as untouched pages and pays one page fault per 4 kB
(NumPy asks for 2 MB pages above 4 MB, which the kernel must zero). Measured per call:
mobilevit-small batch 1 ~2,800 faults, ~5 ms of system time; mobilevit-xx-small ~2,900
faults, ~6 ms of a 21 ms call; mobilevit-small batch 8 ~4,600 faults, 77-99 ms of 430 ms.

Two kinds of memory, both kept per thread (a model may run in several threads at once):

- work_array(slot, ...): a temporary that dies inside one primitive (the padded input and
  per-tap products of a dense convolution, im2col's columns, attention's Q/K/V). One
  buffer per named slot, grown when a larger array is asked for. Its contents are valid
  until the same slot is asked for again.
- recycled_array(...): a large result that leaves the primitive (the output of a
  convolution, linear layer, layer norm or attention, including the attention
  probabilities the model keeps until the call ends). Buffers are pooled by size; one is
  handed out again only when nothing refers to it any more (CPython's reference count says
  so exactly, and every NumPy view of a buffer holds a reference to it), so a result the
  caller keeps is never overwritten.

With the slots in use, glibc stops shrinking its heap between calls, which removed the
faults at batch 1; pooling the results above 32 MB removed most of those at batch 8
(mobilevit-small batch 8: 459-467 -> 423-433 ms).
The price is memory kept between calls: buffers stay allocated while their thread lives,
up to MAX_KEPT_BYTES per thread, as ONNX Runtime's and PyTorch's allocators keep theirs.
Measured after a few calls: mobilevit-xx-small 5.5 MB, mobilevit-small 9.7 MB, batch 8
206 MB, the 512x512 segmenter 198 MB. release() frees the calling thread's buffers.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

MAX_KEPT_BYTES = 512 << 20  # per thread; beyond it arrays are allocated per call and freed as usual
# Results below this are left to malloc: glibc serves them from its heap, reusing memory just
# freed (still in cache), once its mmap threshold has grown; 32 MB is as far as it grows, so
# larger arrays are fresh, faulting pages on every call. Pooling smaller ones measured slower
# (mobilevit-small batch 1: 256 kB 51.9-57.8 ms, 4 MB 49.8-51.0 ms, 32 MB 48.6-50.8 ms).
MIN_RECYCLED_BYTES = 32 << 20
# Pooled buffers per size: a caller keeping many results of one size (outputs of many calls) gets
# fresh arrays past this, so the pool neither grows without bound nor scans long lists.
MAX_RECYCLED_PER_SIZE = 8

_local = threading.local()  # per thread: .slots {slot: uint8 buffer}, .pool {nbytes: [uint8 buffer]}, .kept


def work_array(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape`, from this thread's buffer for `slot`."""
    dtype, nbytes = _size(shape, dtype)
    slots = _state().slots
    buffer = slots.get(slot)
    if buffer is None or buffer.nbytes < nbytes:
        if buffer is not None:
            _local.kept -= buffer.nbytes
            del slots[slot]
        buffer = _keep(nbytes)
        if buffer is None:
            return np.empty(shape, dtype)
        slots[slot] = buffer
    return buffer[:nbytes].view(dtype).reshape(shape)


def recycled_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape`, reusing a pooled buffer nothing refers to any more."""
    dtype, nbytes = _size(shape, dtype)
    if nbytes < MIN_RECYCLED_BYTES or _FREE_REFERENCES is None:
        return np.empty(shape, dtype)
    pool = _state().pool.setdefault(nbytes, [])
    buffer = _first_free(pool)
    if buffer is None:
        buffer = _keep(nbytes) if len(pool) < MAX_RECYCLED_PER_SIZE else None
        if buffer is None:
            return np.empty(shape, dtype)
        pool.append(buffer)
    return buffer.view(dtype).reshape(shape)


def release() -> None:
    """Drop the calling thread's buffers (arrays still in use keep their memory until they go)."""
    _local.__dict__.clear()


def _state() -> threading.local:
    if not hasattr(_local, "kept"):
        _local.slots, _local.pool, _local.kept = {}, {}, 0
    return _local


def _size(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.dtype, int]:
    dtype = np.dtype(dtype)
    return dtype, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def _keep(nbytes: int) -> np.ndarray | None:
    """A new buffer counted against MAX_KEPT_BYTES, or None when the thread already keeps that much."""
    if _local.kept + nbytes > MAX_KEPT_BYTES:
        return None
    _local.kept += nbytes
    return np.empty(nbytes, np.uint8)


def _first_free(pool: list[np.ndarray]) -> np.ndarray | None:
    """The free buffer handed out most recently (likeliest still in cache), moved to the end of the pool."""
    for i in range(len(pool) - 1, -1, -1):
        if _references(pool, i) <= _FREE_REFERENCES:
            buffer = pool.pop(i)
            pool.append(buffer)
            return buffer
    return None


def _references(pool: list[np.ndarray], i: int) -> int:
    """sys.getrefcount of pool[i] as seen from here: the list's, this frame's, the call's and any others."""
    buffer = pool[i]
    return sys.getrefcount(buffer)


def _calibrate() -> int | None:
    """What _references counts for a buffer only the pool holds, measured rather than assumed (interpreter
    versions count borrowed references differently); None, and no pooling, if one more holder does not
    show as one more reference."""
    pool = [np.empty(0, np.uint8)]
    free = _references(pool, 0)
    held = pool[0]  # noqa: F841 (a second holder, to see the count move)
    return free if _references(pool, 0) == free + 1 else None


_FREE_REFERENCES = _calibrate()
