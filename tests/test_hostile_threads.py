"""The numba backend shared by threads, under every threading layer, and with nowhere to cache its code.

tests/test_threads.py covers the NumPy backend. The cache tests run in subprocesses,
because numba decides where to cache when the kernels are imported. CI runs as root,
where a read-only directory is still writable, so "nothing writable" is simulated by
making numba's own writability probe fail, the one thing it checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

TESTS = os.path.dirname(os.path.abspath(__file__))


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TESTS,
        env={**os.environ, **env},
    )


FOUR_THREADS = """
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    from mobilevit_np import MobileViTForSemanticSegmentation
    from mobilevit_np.presets import tiny_config
    from mobilevit_np.random_weights import random_pixel_values, random_state_dict

    config = tiny_config(output_stride=16)
    model = MobileViTForSemanticSegmentation.from_config(
        config, random_state_dict(config, "segmentation"), backend="numba"
    )
    inputs = [random_pixel_values((2, 3, 192 + 8 * i, 256), seed=i) for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda x: model(x).logits, inputs))
    serial = [model(x).logits for x in inputs]
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded))
    import numba
    print("layer", numba.threading_layer())
"""


def test_four_threads_under_the_workqueue_layer():
    """numba's workqueue layer aborts the process on concurrent parallel launches; the kernels serialise them."""
    result = run_python(FOUR_THREADS, NUMBA_THREADING_LAYER="workqueue")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layer workqueue" in result.stdout


def test_four_threads_under_tbb_from_pip():
    """NUMBA_THREADING_LAYER=tbb works with pip's tbb, whose library numba alone does not find (threads.py)."""
    from mobilevit_np.kernels.runtime.threads import _tbb_library

    if _tbb_library() is None:
        pytest.skip("tbb not installed (the test extra installs it on Linux x86-64)")
    result = run_python(FOUR_THREADS, NUMBA_THREADING_LAYER="tbb")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layer tbb" in result.stdout


def test_openmp_by_default_even_with_tbb_installed():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FOUR_THREADS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=TESTS,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layer omp" in result.stdout


def test_openmp_when_asked():
    result = run_python(FOUR_THREADS, NUMBA_THREADING_LAYER="omp")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "layer omp" in result.stdout


READ_ONLY_CACHES = """
    import errno
    import numba.core.caching

    def read_only(locator):  # what numba sees when __pycache__, the user cache dir and NUMBA_CACHE_DIR are read-only
        raise PermissionError(errno.EROFS, "Read-only file system", locator.get_cache_path())

    numba.core.caching._CacheLocator.ensure_cache_path = read_only
"""
A_KERNEL = """
    import numpy as np
    from mobilevit_np.kernels.norm import global_average_pool

    x = np.arange(2 * 3 * 4 * 16, dtype=np.float32).reshape(2, 1, 3, 4, 16)  # a blocked map, 2 images
    pooled = np.zeros((1, 1, 1, 2, 16), np.float32)
    global_average_pool(x, 0, 3 * 4 * 16, 3 * 4 * 16, 4 * 16, 3, 4, pooled)
    np.testing.assert_allclose(pooled[0, 0, 0], x.mean(axis=(2, 3))[:, 0])
    print("ok")
"""
# A_KERNEL on the serial build only; and its call again, on the parallel build
SERIAL_KERNEL = A_KERNEL.replace("global_average_pool(x,", "global_average_pool.serial(x,")
PARALLEL_TOO = "    global_average_pool.parallel(x, 0, 3 * 4 * 16, 3 * 4 * 16, 4 * 16, 3, 4, pooled)\n"


def test_no_writable_cache_compiles_in_memory_with_one_warning():
    result = run_python(textwrap.dedent(READ_ONLY_CACHES) + textwrap.dedent(A_KERNEL))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(warnings) == 1 and "no writable numba cache directory" in warnings[0], result.stderr


def test_unusable_numba_cache_dir_falls_back_without_error(tmp_path):
    """NUMBA_CACHE_DIR under a regular file cannot be created (even by root): numba uses __pycache__ instead."""
    (tmp_path / "a-file").write_text("")
    result = run_python(A_KERNEL, NUMBA_CACHE_DIR=str(tmp_path / "a-file" / "cache"))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    assert "Warning" not in result.stderr


def test_a_serial_build_loaded_from_the_cache_runs_first_in_a_process(tmp_path):
    """The serial build, called before anything launched numba's threads, loaded from a warm cache."""
    for run in ("compiles", "loads from the cache"):
        result = run_python(SERIAL_KERNEL, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
        assert result.returncode == 0 and result.stdout.strip() == "ok", (run, result.returncode, result.stderr[-2000:])


RELEASED = """
    from mobilevit_np.kernels.norm import global_average_pool

    for build in (global_average_pool.parallel, global_average_pool.serial):
        libraries = [result.library for result in build.overloads.values()]
        assert libraries and all(getattr(lib, "_shared_module", None) is None for lib in libraries), build
    global_average_pool(x, 0, 3 * 4 * 16, 3 * 4 * 16, 4 * 16, 3, 4, pooled)  # and it still runs
    np.testing.assert_allclose(pooled[0, 0, 0], x.mean(axis=(2, 3))[:, 0])
    print("released")
"""


def test_a_kernel_keeps_no_linking_module_after_compiling_or_loading(tmp_path):
    """jit._release_link_modules: numba keeps an LLVM module beside each build's code for jitted callers to
    inline (~11 MB each when loaded from the cache); kernels have none, so it goes once the code is in place."""
    both_builds = SERIAL_KERNEL + PARALLEL_TOO
    for run in ("compiles", "loads from the cache"):
        result = run_python(both_builds + RELEASED, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
        assert result.returncode == 0, (run, result.stderr[-2000:])
        assert result.stdout.split() == ["ok", "released"], (run, result.stdout)


COUNT_REFRESHES = """
    import numba.core.base

    refreshes = []  # each time numba readies its compiler's registries (BaseContext.refresh)
    refresh = numba.core.base.BaseContext.refresh
    numba.core.base.BaseContext.refresh = lambda self: refreshes.append(1) or refresh(self)
"""
THEN_FLOAT64 = """
    print(len(refreshes))
    x64 = x.astype(np.float64)  # a signature the cache lacks: compiled in this process after the load
    pooled64 = np.zeros((1, 1, 1, 2, 16), np.float64)
    global_average_pool(x64, 0, 3 * 4 * 16, 3 * 4 * 16, 4 * 16, 3, 4, pooled64)
    np.testing.assert_allclose(pooled64[0, 0, 0], x64.mean(axis=(2, 3))[:, 0], rtol=1e-12)
    print(len(refreshes) > 0)
"""


def test_a_kernel_loads_from_the_cache_without_readying_the_compiler(tmp_path):
    """cache.load_without_refresh: a load of the serial and the parallel build skips numba's refresh of its
    registries (~0.2 s, 10 MB at start-up); a signature the cache lacks still compiles, after the load."""
    both_builds = A_KERNEL + PARALLEL_TOO
    float32_only = COUNT_REFRESHES + both_builds + "    print(len(refreshes))\n"
    compiled = run_python(float32_only, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert compiled.returncode == 0, compiled.stderr[-2000:]
    assert compiled.stdout.split()[0] == "ok" and int(compiled.stdout.split()[1]) > 0, compiled.stdout
    loaded = run_python(COUNT_REFRESHES + both_builds + THEN_FLOAT64, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split() == ["ok", "0", "True"], loaded.stdout


def test_a_build_compiled_after_others_loaded_from_the_cache_says_so(tmp_path):
    """The compile notice is asked of each build until one compiles, not only of the process's first build:
    a first run on one thread after runs on two loads the parallel builds and compiles the serial ones
    (measured: 10.6 s of compiling without a word before this)."""
    first = run_python(SERIAL_KERNEL, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert first.returncode == 0 and first.stderr.count("compiling the fast kernels") == 1, first.stderr[-2000:]
    then_parallel = SERIAL_KERNEL + PARALLEL_TOO
    second = run_python(then_parallel, NUMBA_CACHE_DIR=str(tmp_path / "cache"))  # serial loads, parallel compiles
    assert second.returncode == 0 and second.stderr.count("compiling the fast kernels") == 1, second.stderr[-2000:]
    third = run_python(then_parallel, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert third.returncode == 0 and "compiling" not in third.stderr, third.stderr[-2000:]


LIGHT_LOAD = """
    import llvmlite.binding as llvm
    import numpy as np
    from mobilevit_np import MobileViTForImageClassification
    from mobilevit_np.presets import tiny_config
    from mobilevit_np.random_weights import random_pixel_values, random_state_dict

    parsed = []  # the size of every bitcode numba parses in this process
    parse = llvm.parse_bitcode
    llvm.parse_bitcode = lambda data: parsed.append(len(data)) or parse(data)
    config = tiny_config()
    weights = random_state_dict(config, "classification")
    x = random_pixel_values((2, 3, 64, 64), seed=0)
    fast = MobileViTForImageClassification.from_config(config, weights, backend="numba")(x).logits
    reference = MobileViTForImageClassification.from_config(config, weights, backend="numpy")(x).logits
    np.testing.assert_allclose(fast, reference, rtol=2e-5, atol=2e-5)
    print(len(parsed), max(parsed, default=0), fast.tobytes().hex())
"""


def test_kernels_load_from_the_cache_without_parsing_their_bitcode():
    """cache.load_without_link_module: a kernel's build comes back as its cached machine code, with a stand-in
    of a few KB for the bitcode numba would parse (0.1-1 MB per kernel); the outputs stay equal."""
    warm = run_python(LIGHT_LOAD)  # compiles into the default cache if nothing has yet
    assert warm.returncode == 0, warm.stderr[-2000:]
    loaded = run_python(LIGHT_LOAD)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    count, largest, logits = loaded.stdout.split()
    assert int(count) > 0 and int(largest) < 16_000, loaded.stdout[:200]
    assert logits == warm.stdout.split()[2]


FORK_POOL = """
    import multiprocessing
    import numpy as np
    from mobilevit_np import MobileViTForImageClassification
    from mobilevit_np.presets import tiny_config
    from mobilevit_np.random_weights import random_pixel_values, random_state_dict

    config = tiny_config()
    model = MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification"),
                                                        backend="numba")
    inputs = [random_pixel_values((2, 3, 256, 256), seed=i) for i in range(4)]  # enough work for parallel launches
    expected = [model(x).logits for x in inputs]  # the parallel build has run: GNU OpenMP is up in this process

    def logits(x):
        return model(x).logits

    with multiprocessing.get_context("fork").Pool(2) as pool:
        forked = pool.map_async(logits, inputs).get(timeout=120)
    assert all(np.array_equal(a, b) for a, b in zip(expected, forked))
    print("ok")
"""


def test_a_fork_pool_after_the_fast_path_works():
    """GNU OpenMP aborts a forked child that opens a parallel region; after a fork the engine runs serially."""
    result = run_python(FORK_POOL)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


COMPILE_ONCE = """
    import numpy as np
    from mobilevit_np import MobileViTForImageClassification
    from mobilevit_np.presets import tiny_config
    from mobilevit_np.random_weights import random_pixel_values, random_state_dict

    config = tiny_config()
    model = MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification"),
                                                        backend="numba")
    print(model(random_pixel_values((1, 3, 64, 64), seed=0)).logits.argmax())
"""


@pytest.mark.slow
def test_the_first_compile_says_so_once_and_a_second_process_compiles_nothing(tmp_path):
    first = run_python(COMPILE_ONCE, NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stderr.count("compiling the fast kernels") == 1, first.stderr[-2000:]
    second = run_python(COMPILE_ONCE, NUMBA_CACHE_DIR=str(tmp_path))
    assert second.returncode == 0 and "compiling" not in second.stderr, second.stderr[-2000:]
    assert second.stdout == first.stdout
