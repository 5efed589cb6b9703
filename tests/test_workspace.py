"""The fast path's reusable work arrays: reuse, growth, per-thread buffers, and no aliasing of results."""

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


def test_a_slot_reuses_its_buffer_and_grows_when_asked_for_more():
    first = workspace.work_array("a", (4, 5), np.float32)
    assert first.shape == (4, 5) and first.dtype == np.float32 and first.flags.c_contiguous
    smaller = workspace.work_array("a", (3,), np.float64)  # 24 bytes: fits in the 80 already held
    assert np.shares_memory(first, smaller)
    larger = workspace.work_array("a", (100,), np.float32)
    assert not np.shares_memory(first, larger)
    assert np.shares_memory(larger, workspace.work_array("a", (10,), np.float32))


def test_slots_and_threads_have_separate_buffers():
    a = workspace.work_array("a", (8,), np.float32)
    b = workspace.work_array("b", (8,), np.float32)
    assert not np.shares_memory(a, b)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(workspace.work_array("a", (8,), np.float32)))
    thread.start()
    thread.join()
    assert not np.shares_memory(a, seen[0])


def test_recycled_arrays_are_reused_only_once_nothing_refers_to_them():
    first = workspace.recycled_array((4, 6), np.float32)
    second = workspace.recycled_array((4, 6), np.float32)
    assert not np.shares_memory(first, second)  # first is still held here
    view = first.T  # a view keeps the buffer in use
    del first
    third = workspace.recycled_array((4, 6), np.float32)
    assert not np.shares_memory(view, third) and not np.shares_memory(second, third)
    address = view.__array_interface__["data"][0]
    del view
    again = workspace.recycled_array((2, 12), np.float32)  # same size, other shape: the freed buffer
    assert again.__array_interface__["data"][0] == address and again.shape == (2, 12)


def test_small_results_and_many_kept_results_are_not_pooled(monkeypatch):
    monkeypatch.setattr(workspace, "MIN_RECYCLED_BYTES", 64)
    workspace.recycled_array((15,), np.float32)  # 60 bytes: plain np.empty
    assert 60 not in getattr(workspace._local, "pool", {})
    held = [workspace.recycled_array((16,), np.float32) for _ in range(workspace.MAX_RECYCLED_PER_SIZE + 3)]
    assert len(workspace._local.pool[64]) == workspace.MAX_RECYCLED_PER_SIZE  # the rest were not pooled
    assert len({a.__array_interface__["data"][0] for a in held}) == len(held)


def test_nothing_is_kept_beyond_the_per_thread_limit(monkeypatch):
    monkeypatch.setattr(workspace, "MAX_KEPT_BYTES", 100)
    kept = workspace.work_array("a", (20,), np.float32)  # 80 bytes: kept
    assert np.shares_memory(kept, workspace.work_array("a", (20,), np.float32))
    big = workspace.work_array("b", (8,), np.float32)  # 32 more would pass the limit: allocated per call
    assert not np.shares_memory(big, workspace.work_array("b", (8,), np.float32))
    workspace.recycled_array((8,), np.float32)
    assert workspace._local.pool[32] == []  # not pooled either
    assert workspace._local.kept == 80


def test_release_drops_the_buffers():
    a = workspace.work_array("a", (8,), np.float32)
    workspace.release()
    assert not np.shares_memory(a, workspace.work_array("a", (8,), np.float32))


def test_results_never_alias_the_workspace():
    """Outputs of primitives that use work arrays stay intact when the primitive runs again."""
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


def test_pooling_is_off_when_reference_counts_cannot_be_read(monkeypatch):
    monkeypatch.setattr(workspace, "_FREE_REFERENCES", None)  # what _calibrate returns if counts do not move
    first = workspace.recycled_array((8,), np.float32)
    assert first.base is None  # a plain array of its own, not a view of a pooled buffer
    assert getattr(workspace._local, "pool", {}) == {}


def test_calibration_sees_one_more_holder_as_one_more_reference():
    assert workspace._calibrate() == workspace._FREE_REFERENCES is not None
