"""Memory reused from call to call by the fast path, so a forward pass rarely asks the OS for pages.

Allocating every array afresh costs more than it seems. glibc hands memory above its mmap
threshold (or at the top of a heap that has shrunk) back to the kernel when it is freed,
so the next call's array starts as untouched pages and pays one page fault per 4 kB
(NumPy asks for 2 MB pages above 4 MB, which the kernel must zero). Measured per call:
mobilevit-small batch 1 ~2,800 faults, ~5 ms of system time; mobilevit-xx-small ~2,900
faults, ~6 ms of a 21 ms call; mobilevit-small batch 8 ~4,600 faults, 77-99 ms of 430 ms.

Two ways in, both kept per thread (a model may run in several threads at once):

- work_array(slot, ...): a temporary that dies inside one primitive (the padded input and
  per-tap products of a dense convolution, im2col's columns, attention's Q/K/V). One
  buffer per named slot, grown when a larger array is asked for.
- recycled_array(...): a large result that leaves the primitive (the output of a
  convolution, linear layer, layer norm or attention). Up to MAX_RECYCLED_PER_SIZE buffers
  per byte size.

A buffer is handed out again only once the array last handed out from it, and every view
of that array, is gone, so nothing a caller keeps is ever overwritten, whatever it holds
(a reshape, a transpose, a memoryview, a trace record) and even if the fast path runs again
in the middle of a primitive (a __del__ or gc callback). How it knows: each hand-out is a
fresh plain-ndarray view of the buffer, whose type is a subclass (_Buffer); NumPy stops
collapsing a view's base chain where the type changes, so every later view holds that
hand-out alive, and a weak reference to it says when the last one has gone. If it has not,
the caller gets a plain new array instead.

With the slots in use, glibc stops shrinking its heap between calls, which removed the
faults at batch 1; pooling the results of 32 MB or more removed most of those at batch 8
(mobilevit-small batch 8: 459-467 -> 423-433 ms).
The price is memory kept between calls, per thread, as ONNX Runtime's and PyTorch's
allocators keep theirs. Measured after a few calls at one input size: mobilevit-xx-small
5.5 MB, mobilevit-small 9.7 MB, batch 8 206 MB, the 512x512 segmenter 198 MB. Each new
input size adds its own buffers, up to MAX_KEPT_BYTES per thread; past that, buffers that
are not in use are dropped to make room. release() frees the calling thread's buffers.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

MAX_KEPT_BYTES = 256 << 20  # per thread (batch 8 or a 512x512 segmenter needs ~200 MB); then free ones are dropped
# Results below this are left to malloc: glibc serves them from its heap, reusing memory just
# freed (still in cache), once its mmap threshold has grown; 32 MB is as far as it grows, so
# larger arrays are fresh, faulting pages on every call. Pooling smaller ones measured slower
# (mobilevit-small batch 1: 256 kB 51.9-57.8 ms, 4 MB 49.8-51.0 ms, 32 MB 48.6-50.8 ms).
MIN_RECYCLED_BYTES = 32 << 20
# Pooled buffers per size: a caller keeping many results of one size (outputs of many calls) gets
# fresh arrays past this, so the pool neither grows without bound nor scans long lists.
MAX_RECYCLED_PER_SIZE = 8


class _Buffer(np.ndarray):
    """Memory the workspace owns. A type of its own, so views of a hand-out stop at the hand-out."""


class _Entry:
    """One buffer and a weak reference to the array last handed out from it."""

    def __init__(self, nbytes: int) -> None:
        self.buffer = _Buffer(nbytes, np.uint8)
        self.handed_out: weakref.ref | None = None

    def free(self) -> bool:
        return self.handed_out is None or self.handed_out() is None

    def hand_out(self, shape: tuple[int, ...], dtype: np.dtype, nbytes: int) -> np.ndarray:
        owner = self.buffer[:nbytes].view(np.ndarray)  # base: the _Buffer; later views' bases: owner
        self.handed_out = weakref.ref(owner)
        return owner.view(dtype).reshape(shape)


class _State(threading.local):
    def __init__(self) -> None:
        self.slots: dict[str, _Entry] = {}
        self.pool: dict[int, list[_Entry]] = {}  # byte size -> entries, most recently handed out last
        self.kept = 0  # bytes in all entries


_state = _State()


def work_array(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape`, from this thread's buffer for `slot` when it is free."""
    dtype, nbytes = _size(shape, dtype)
    entry = _state.slots.get(slot)
    if entry is not None and not entry.free():  # still held (by a caller, or an outer call of this thread)
        return np.empty(shape, dtype)
    if entry is None or entry.buffer.nbytes < nbytes:
        if entry is not None:
            _drop(entry)
            del _state.slots[slot]
        entry = _new_entry(nbytes)
        if entry is None:
            return np.empty(shape, dtype)
        _state.slots[slot] = entry
    return entry.hand_out(shape, dtype, nbytes)


def recycled_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of `shape`; from 32 MB, in a pooled buffer nothing refers to any more."""
    dtype, nbytes = _size(shape, dtype)
    if nbytes < MIN_RECYCLED_BYTES:
        return np.empty(shape, dtype)
    entries = _state.pool.get(nbytes, [])
    for i in range(len(entries) - 1, -1, -1):  # the one handed out most recently: likeliest still in cache
        if entries[i].free():
            entry = entries.pop(i)
            break
    else:
        entry = _new_entry(nbytes) if len(entries) < MAX_RECYCLED_PER_SIZE else None
        if entry is None:
            return np.empty(shape, dtype)
    entries.append(entry)
    _state.pool[nbytes] = entries
    return entry.hand_out(shape, dtype, nbytes)


def release() -> None:
    """Drop the calling thread's buffers (arrays still in use keep their memory until they go)."""
    _state.slots.clear()
    _state.pool.clear()
    _state.kept = 0


def kept_bytes() -> int:
    """Bytes of buffers the calling thread keeps between calls."""
    return _state.kept


def _size(shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.dtype, int]:
    dtype = np.dtype(dtype)
    return dtype, math.prod(shape) * dtype.itemsize


def _new_entry(nbytes: int) -> _Entry | None:
    """A new buffer within MAX_KEPT_BYTES (dropping pooled buffers not in use to make room), or None."""
    if _state.kept + nbytes > MAX_KEPT_BYTES:
        for size, entries in list(_state.pool.items()):
            for entry in [e for e in entries if e.free()]:
                entries.remove(entry)
                _drop(entry)
            if not entries:
                del _state.pool[size]
        if _state.kept + nbytes > MAX_KEPT_BYTES:
            return None
    _state.kept += nbytes
    return _Entry(nbytes)


def _drop(entry: _Entry) -> None:
    _state.kept -= entry.buffer.nbytes
