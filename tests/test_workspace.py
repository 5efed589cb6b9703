"""The fast path's reusable buffers: reuse, growth, limits, per-thread state, and no aliasing of anything kept."""

import gc
import threading

import numpy as np
import pytest

pytest.importorskip("numba")

from mobilevit_np.kernels import ops, workspace  # noqa: E402
from mobilevit_np.kernels.conv import dense_conv2d  # noqa: E402
from mobilevit_np.kernels.elementwise import SILU  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_workspace(monkeypatch):
    monkeypatch.setattr(workspace, "MIN_RECYCLED_BYTES", 0)  # pool the tiny arrays of these tests too
    workspace.release()
    yield
    workspace.release()


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_a_slot_is_reused_once_its_array_is_gone_and_grows_when_asked_for_more():
    first = workspace.work_array("a", (4, 5), np.float32)
    assert first.shape == (4, 5) and first.dtype == np.float32 and first.flags.c_contiguous
    start = address(first)
    assert not np.shares_memory(first, workspace.work_array("a", (4, 5), np.float32))  # first still held
    del first
    assert address(workspace.work_array("a", (3,), np.float64)) == start  # 24 bytes fit in the 80 held
    larger = workspace.work_array("a", (100,), np.float32)
    assert address(larger) != start and workspace.kept_bytes() == 400
    del larger
    assert address(workspace.work_array("a", (10,), np.float32)) != start


def test_slots_and_threads_have_separate_buffers():
    a = workspace.work_array("a", (8,), np.float32)
    b = workspace.work_array("b", (8,), np.float32)
    assert not np.shares_memory(a, b)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(workspace.work_array("a", (8,), np.float32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(a, seen[0])


def test_recycled_arrays_are_reused_only_once_no_view_of_them_is_left():
    first = workspace.recycled_array((4, 6), np.float32)
    start = address(first)
    views = [first.T, first[1:], first.reshape(-1)[::2], memoryview(first), np.frombuffer(first, np.uint8)]
    del first
    others = []  # held, so that the only buffer that can come free is first's
    while views:  # drop the views one by one: the buffer stays taken while any is left
        others.append(workspace.recycled_array((4, 6), np.float32))
        assert address(others[-1]) != start
        views.pop()
    again = workspace.recycled_array((2, 12), np.float32)  # same size, other shape: the freed buffer
    assert address(again) == start and again.shape == (2, 12)


def test_small_results_and_many_kept_results_are_not_pooled(monkeypatch):
    monkeypatch.setattr(workspace, "MIN_RECYCLED_BYTES", 64)
    assert workspace.recycled_array((15,), np.float32).base is None  # 60 bytes: a plain array
    held = [workspace.recycled_array((16,), np.float32) for _ in range(workspace.MAX_RECYCLED_PER_SIZE + 3)]
    assert workspace.kept_bytes() == 64 * workspace.MAX_RECYCLED_PER_SIZE  # the rest were not pooled
    assert len({address(a) for a in held}) == len(held)


def test_the_per_thread_limit_drops_free_buffers_to_make_room(monkeypatch):
    monkeypatch.setattr(workspace, "MAX_KEPT_BYTES", 100)
    kept = workspace.work_array("a", (20,), np.float32)  # 80 bytes: kept
    assert workspace.recycled_array((8,), np.float32).base is None  # 32 more would pass the limit
    assert workspace.kept_bytes() == 80
    del kept
    workspace.release()
    old = workspace.recycled_array((20,), np.float32)  # 80 bytes in the pool, in use
    assert workspace.recycled_array((6,), np.float32).base is None  # no room, nothing free to drop
    del old
    new = workspace.recycled_array((6,), np.float32)  # the free 80-byte buffer is dropped for it
    assert new.base is not None and workspace.kept_bytes() == 24


def test_release_drops_the_buffers_but_not_the_arrays_in_use():
    a = workspace.work_array("a", (8,), np.float32)
    a[:] = 7
    workspace.release()
    assert workspace.kept_bytes() == 0
    b = workspace.work_array("a", (8,), np.float32)
    b[:] = 1
    assert not np.shares_memory(a, b) and (a == 7).all()


def test_a_primitive_run_again_in_its_own_middle_does_not_clobber_it():
    """A gc callback (or __del__) that runs the fast path while dense_conv2d holds its work arrays."""
    rng = np.random.RandomState(0)
    x, inner_x = rng.standard_normal((2, 1, 4, 9, 9)).astype(np.float32)
    weight, bias = rng.standard_normal((5, 4, 3, 3)).astype(np.float32), np.zeros(5, np.float32)
    expected = dense_conv2d(x, weight, bias, 1, 1, SILU).copy()

    busy = []

    def run_inside(phase, info):  # a collection can start at any allocation, so inside the outer call
        if phase == "start" and not busy:
            busy.append(True)
            dense_conv2d(inner_x, weight, bias, 1, 1, SILU)
            busy.pop()

    threshold = gc.get_threshold()
    gc.callbacks.append(run_inside)
    gc.set_threshold(1)
    try:
        out = dense_conv2d(x, weight, bias, 1, 1, SILU)
    finally:
        gc.callbacks.remove(run_inside)
        gc.set_threshold(*threshold)
    np.testing.assert_array_equal(out, expected)


def test_results_never_alias_the_workspace():
    """Outputs of primitives that use the workspace stay intact when the primitive runs again."""
    rng = np.random.RandomState(0)
    x1, x2 = rng.standard_normal((2, 1, 4, 9, 9)).astype(np.float32)
    weight, bias = rng.standard_normal((5, 4, 3, 3)).astype(np.float32), np.zeros(5, np.float32)
    first = dense_conv2d(x1, weight, bias, 1, 1, SILU)
    kept = first.copy()
    dense_conv2d(x2, weight, bias, 1, 1, SILU)
    np.testing.assert_array_equal(first, kept)

    stem = {"weight": rng.standard_normal((3, 4, 3, 3)).astype(np.float32)}  # stride 2: im2col into a slot
    first = ops.conv_layer(x1, stem, stride=2)
    kept = first.copy()
    ops.conv_layer(x2, stem, stride=2)
    np.testing.assert_array_equal(first, kept)

    for heads in (1, 2):  # one head: the context's head axis has size 1, the easy case to alias by mistake
        proj = {n: {"weight": rng.standard_normal((6, 6)).astype(np.float32)} for n in ("query", "key", "value")}
        tokens1, tokens2 = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
        context, probs = ops.multi_head_attention(tokens1, **proj, num_heads=heads)
        kept = context.copy(), probs.copy()
        ops.multi_head_attention(tokens2, **proj, num_heads=heads)
        np.testing.assert_array_equal(context, kept[0])
        np.testing.assert_array_equal(probs, kept[1])


def snapshot(output) -> list[np.ndarray]:
    """Copies of every array in a model output (logits, hidden states, attentions)."""
    arrays = [output.logits, *(output.hidden_states or ()), *(output.attentions or ())]
    return [a.copy() for a in arrays]


def test_everything_a_model_returns_survives_later_calls_with_every_result_pooled(make_checkpoint):
    """MIN_RECYCLED_BYTES is 0 here (fixture): every primitive's result comes from the pool."""
    from concurrent.futures import ThreadPoolExecutor

    from mobilevit_np import MobileViTForSemanticSegmentation
    from mobilevit_np.random_weights import random_pixel_values

    folder = make_checkpoint("segmentation", output_stride=16)
    fast = MobileViTForSemanticSegmentation.from_pretrained(folder, backend="numba")
    reference = MobileViTForSemanticSegmentation.from_pretrained(folder, backend="numpy")
    x1, x2 = (random_pixel_values((2, 3, 48, 64), seed=s) for s in (1, 2))
    options = dict(output_hidden_states=True, output_attentions=True)
    kept = fast(x1, **options)
    trace = fast.trace(x1)
    copies, trace_copies = snapshot(kept), [e.array.copy() for e in trace]
    for _ in range(2):
        fast(x2, **options)
    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(lambda x: fast(x, **options), [x1, x2, x2, x1]))
    for a, b in zip(snapshot(kept), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip((e.array for e in trace), trace_copies, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(copies, snapshot(reference(x1, **options)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
