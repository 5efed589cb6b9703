"""numba's disk cache, made safe: stale when any kernel source changes, and healed when corrupt.

Stale code. numba checks a cached function against its own source file only (its mtime and
size). A kernel's machine code also holds every helper and intrinsic it inlines from other
modules (simd.py's register tiles, jobs.py's cursors): after an edit or an upgrade that
changed only simd.py, conv.py's cached code would be the old tiles, which can be wrong or
crash (an edited intrinsic met this way measured a segmentation fault). stamped() adds a
digest of every source file of the kernels package to the stamp numba compares, so any
change there recompiles every kernel once.

Corrupt files. Recover from a corrupt numba cache file instead of failing every run until it is deleted.
(heal_corrupt_cache, below.)

numba keeps a cache=True function's machine code in two pickles, NAME.nbi (the index) and
NAME.nbc (the code), in __pycache__ or NUMBA_CACHE_DIR. When one is truncated or garbled
(a full disk, a crash while numba wrote it, two numba versions sharing a folder), numba
raises the unpickling error (UnpicklingError, EOFError, ...) from every call of the
function, in every process, until someone deletes the file.

    kernel = heal_corrupt_cache(numba.njit(cache=True)(func))

makes a failed cache load a cache miss: the index is reset, the function compiled again
and its cache rewritten, with one RuntimeWarning naming the file. It reaches into the
dispatcher's `_cache` (numba.core.caching.Cache), which numba 0.5x-0.6x all have; a
dispatcher without one (cache=False) is returned unchanged.

Loading light. A cache entry holds a build's machine code and its LLVM bitcode, which numba
parses on every load for jitted callers to inline; kernels have none (load_without_link_module).
And numba readies its whole compiler before every load, which a load does not use
(load_without_refresh).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir

KERNELS = Path(__file__).resolve().parents[1]  # the kernels package (mobilevit_np.kernels)


@functools.cache
def sources_digest(folder: Path) -> str:
    """A digest of the contents of every .py file under folder (names included), once per process."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def stamped(dispatcher: Any, folder: Path = KERNELS) -> Any:
    """`dispatcher` (a numba cache=True function) whose cache is stale when any source under folder changes."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    if cache_file is not None and hasattr(cache_file, "_source_stamp"):
        cache_file._source_stamp = (cache_file._source_stamp, sources_digest(folder))
    return dispatcher


def heal_corrupt_cache(dispatcher: Any) -> Any:
    """`dispatcher` (a numba cache=True function), made to recompile when its cache files are corrupt."""
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "load_overload", None)
    if load is None or not hasattr(cache, "flush"):
        return dispatcher

    def load_or_reset(sig: Any, target_context: Any) -> Any:
        try:
            return load(sig, target_context)
        except Exception as e:  # whatever unpickling garbage raises; None below means "not cached"
            index = getattr(getattr(cache, "_cache_file", None), "_index_path", "")
            folder = os.path.relpath(os.path.dirname(index)) if index else "numba's cache folder"
            warnings.warn(
                f"numba cache of {getattr(dispatcher, '__qualname__', dispatcher)} is corrupt ({type(e).__name__}: "
                f"{e}); its index (in {folder}) was reset and the function is compiled again",
                RuntimeWarning,
                stacklevel=2,
            )
            cache.flush()  # writes an empty index, so the bad entry is never read again
            return None

    cache.load_overload = load_or_reset
    return dispatcher


def load_without_link_module(dispatcher: Any) -> Any:
    """`dispatcher` (a kernel's build, called from Python only), loaded from the cache without parsing its bitcode.

    numba loads a cached build (CompileResult._rebuild) as its machine code plus its bitcode parsed into
    an LLVM module, kept for jitted callers to inline and read for the names of the symbols the code
    defines, of which numba then asks for the Python entry point's (CPUContext.get_executable). A
    kernel has no jitted callers, so the module is never used: here the bitcode handed to numba is that
    of empty functions with the build's own entry names (its code stays the cached machine code).
    Measured (mobilevit-small, import + load + one image, warm cache): the first call 0.70-1.08 s ->
    0.42-0.54 s, peak RSS 226 -> 214 MB, logits equal. A cache entry of another shape (another numba)
    is loaded numba's way.
    """
    impl = getattr(getattr(dispatcher, "_cache", None), "_impl", None)
    rebuild = getattr(impl, "rebuild", None)
    if rebuild is None:
        return dispatcher

    def rebuild_light(target_context: Any, payload: tuple) -> Any:
        try:
            (name, kind, (machine_code, _bitcode)), fndesc = payload[0], payload[1]
            entries = [fndesc.llvm_func_name, fndesc.llvm_cpython_wrapper_name]
        except (TypeError, ValueError, AttributeError, IndexError):
            return rebuild(target_context, payload)
        if kind != "object":
            return rebuild(target_context, payload)
        light = (name, kind, (machine_code, _empty_functions_bitcode(entries)))
        return rebuild(target_context, (light, *payload[1:]))

    impl.rebuild = rebuild_light
    return dispatcher


def _empty_functions_bitcode(names: list[str]) -> bytes:
    """The bitcode of a module defining `void name() {}` for each name (a few KB: numba's names are long)."""
    module = ir.Module()
    for name in names:
        function = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name=name)
        ir.IRBuilder(function.append_basic_block()).ret_void()
    return llvm.parse_assembly(str(module)).as_bitcode()


def load_without_refresh(dispatcher: Any) -> Any:
    """`dispatcher` (a kernel's build, called from Python only), loaded from the cache without readying the compiler.

    numba's Cache.load_overload first refreshes the target context: it imports and registers every
    lowering and typing module numba has (numba.np.arrayobj, numba.cpython.*, ...: ~50 modules), which
    only compiling uses. Loading cached machine code needs the code generator and numba's runtime (NRT,
    whose functions the code calls; the helper library's and the threading layer's symbols come with the
    context and numba.get_num_threads, jit.py), not the registries; a cache miss still compiles
    numba's way, and numba's compiler refreshes the context itself first (compiler.CompilerBase).
    Measured (mobilevit-small, import + load + one image, warm cache, Intel, 3 runs each, alternating): 0.96-1.20 s ->
    0.78-0.96 s, peak RSS 198 -> 188 MB, logits equal. A numba without these attributes loads its own way.
    """
    cache = getattr(dispatcher, "_cache", None)
    load = getattr(cache, "_load_overload", None)
    guard = getattr(cache, "_guard_against_spurious_io_errors", None)
    if load is None or guard is None:
        return dispatcher

    def load_unrefreshed(sig: Any, target_context: Any) -> Any:
        import numba.cpython.hashing  # noqa: F401  the one refresh import that registers symbols (hash secrets)
        from numba.core.runtime import rtsys

        rtsys.initialize(target_context)  # NRT: compiled once per process, its symbols registered for the code
        with guard():  # numba's own: a spurious EACCES on Windows is a cache miss
            return load(sig, target_context)

    cache.load_overload = load_unrefreshed
    return dispatcher
