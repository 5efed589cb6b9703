"""kernels/runtime/cache.py's light load, piece by piece (no compile: these also run with NUMBA_DISABLE_JIT=1).

The whole paths, second processes loading real cached kernels, are tests/test_hostile_threads.py's
test_kernels_load_from_the_cache_without_parsing_their_bitcode and
test_a_kernel_loads_from_the_cache_without_readying_the_compiler."""

from types import SimpleNamespace

import llvmlite.binding as llvm
import pytest

from mobilevit_np.kernels.runtime.cache import _empty_functions_bitcode, load_without_link_module, load_without_refresh

ENTRIES = ["_ZN12mobilevit_np7kernels4conv12conv2d_tilesB3v12E5ArrayIfLi5E", "cpython._ZN12mobilevit_np4convE"]


def test_the_stand_in_bitcode_defines_each_entry_name_as_an_empty_function():
    module = llvm.parse_bitcode(_empty_functions_bitcode(ENTRIES))
    functions = {f.name: f for f in module.functions}
    assert sorted(functions) == sorted(ENTRIES)
    for f in functions.values():
        assert not f.is_declaration
        assert [i.opcode for b in f.blocks for i in b.instructions] == ["ret"]


def _dispatcher_recording_rebuilds() -> tuple[SimpleNamespace, list]:
    """An object with the attribute path load_without_link_module wraps (dispatcher._cache._impl.rebuild)."""
    seen: list = []
    impl = SimpleNamespace(rebuild=lambda context, payload: seen.append(payload) or "built")
    return SimpleNamespace(_cache=SimpleNamespace(_impl=impl)), seen


def test_a_cached_build_is_rebuilt_from_its_machine_code_and_the_stand_in():
    dispatcher, seen = _dispatcher_recording_rebuilds()
    fndesc = SimpleNamespace(llvm_func_name=ENTRIES[0], llvm_cpython_wrapper_name=ENTRIES[1])
    payload = (("conv2d_tiles", "object", (b"machine code", b"bitcode of the whole build")), fndesc, "rest")
    assert load_without_link_module(dispatcher)._cache._impl.rebuild("context", payload) == "built"
    (name, kind, (machine_code, bitcode)), *rest = seen[0]
    assert (name, kind, machine_code, rest) == ("conv2d_tiles", "object", b"machine code", [fndesc, "rest"])
    assert bitcode == _empty_functions_bitcode(ENTRIES)


def test_a_cache_entry_of_another_shape_is_rebuilt_as_numba_stored_it():
    dispatcher, seen = _dispatcher_recording_rebuilds()
    rebuild = load_without_link_module(dispatcher)._cache._impl.rebuild
    fndesc = SimpleNamespace(llvm_func_name=ENTRIES[0], llvm_cpython_wrapper_name=ENTRIES[1])
    other_kind = (("f", "assembly", (b"code", b"bitcode")), fndesc)
    other_layout = (("f", "object", b"code and bitcode together"), fndesc)
    no_names = (("f", "object", (b"code", b"bitcode")), "a descriptor without entry names")
    for payload in (other_kind, other_layout, no_names):
        rebuild("context", payload)
    assert seen == [other_kind, other_layout, no_names]


def test_a_dispatcher_without_a_disk_cache_is_left_alone():
    plain = SimpleNamespace(_cache=None)
    assert load_without_link_module(plain) is plain


def test_a_cache_of_another_shape_loads_with_numbas_refresh():
    """load_without_refresh needs numba's Cache._load_overload and its I/O guard; without them it changes nothing."""
    load = object()
    other = SimpleNamespace(_cache=SimpleNamespace(load_overload=load))
    assert load_without_refresh(other)._cache.load_overload is load
    plain = SimpleNamespace(_cache=None)
    assert load_without_refresh(plain) is plain


def test_numbas_own_load_is_still_a_refresh_then_the_guarded_load():
    """load_without_refresh stands in for numba's Cache.load_overload minus its refresh: if a numba release
    makes that method do more, this says so before a load skips it."""
    numba_caching = pytest.importorskip("numba.core.caching")
    names = set(numba_caching.Cache.load_overload.__code__.co_names)
    assert names == {"refresh", "_guard_against_spurious_io_errors", "_load_overload"}, names
