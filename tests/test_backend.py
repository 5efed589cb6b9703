"""backend="numpy" | "numba" | "auto": selection, errors, and whole-model parity of the engine against the reference."""

import importlib.util
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTConfig,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    MobileViTV2Config,
    MobileViTV2ForImageClassification,
    MobileViTV2ForSemanticSegmentation,
    MobileViTV2Model,
)
from mobilevit_np.backends import make_engine, resolve_backend
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

# float32 rounding through ~30 layers; the kernels reorder sums and use their own exp.
RTOL32 = 1e-5


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture
def no_numba(monkeypatch):
    """Make `import numba` fail, as on an install without the fast extra."""
    monkeypatch.setitem(sys.modules, "numba", None)


def test_resolve_backend_names():
    assert resolve_backend("numpy") == "numpy"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cuda")


def test_missing_numba_names_the_fast_extra(no_numba, make_checkpoint):
    with pytest.raises(ImportError, match=r"mobilevit-np\[fast\]"):
        resolve_backend("numba")
    folder = make_checkpoint("classification")
    with pytest.raises(ImportError, match=r"mobilevit-np\[fast\]"):
        MobileViTForImageClassification.from_pretrained(folder, backend="numba")
    model = MobileViTForImageClassification.from_pretrained(folder, backend="auto")
    assert model.backend == "numpy" and make_engine(model) is False


numba_only = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba (the fast extra) not installed"
)


@numba_only
def test_auto_picks_numba_and_float64_runs_the_reference(make_checkpoint, pixel_values):
    from mobilevit_np.kernels.engine import Engine

    folder = make_checkpoint("classification")
    model = MobileViTForImageClassification.from_pretrained(folder, backend="auto")
    assert model.backend == "numba" and isinstance(make_engine(model), Engine)
    assert "normalization" in model.params["mobilevit"]["conv_stem"]  # the engine packs its own copy
    double = MobileViTForImageClassification.from_pretrained(folder, backend="numba", dtype=np.float64)
    assert make_engine(double) is False
    np.testing.assert_array_equal(
        double(pixel_values).logits,
        MobileViTForImageClassification.from_pretrained(folder, dtype=np.float64)(pixel_values).logits,
    )


@numba_only
@pytest.mark.parametrize("dtype, rtol", [(np.float32, RTOL32), (np.float64, 1e-10)])
def test_classifier_numba_matches_numpy(make_checkpoint, pixel_values, dtype, rtol):
    folder = make_checkpoint("classification")
    ref = MobileViTForImageClassification.from_pretrained(folder, dtype=dtype)
    fast = MobileViTForImageClassification.from_pretrained(folder, dtype=dtype, backend="numba")
    a = ref(pixel_values, output_hidden_states=True, output_attentions=True)
    b = fast(pixel_values, output_hidden_states=True, output_attentions=True)
    assert b.logits.dtype == dtype
    assert relative_error(b.logits, a.logits) < rtol
    for h_fast, h_ref in zip(b.hidden_states, a.hidden_states, strict=True):
        assert relative_error(h_fast, h_ref) < rtol
    for p_fast, p_ref in zip(b.attentions, a.attentions, strict=True):
        np.testing.assert_allclose(p_fast, p_ref, rtol=rtol, atol=rtol * 1e-2)


@numba_only
def test_segmenter_and_base_numba_match_numpy(make_checkpoint):
    # output_stride 8 (dilated stages, ASPP) and a size that is no multiple of the patch grid (bilinear resize)
    x = np.random.RandomState(1).uniform(0, 1, (2, 3, 66, 75)).astype(np.float32)
    folder = make_checkpoint("segmentation", output_stride=8)
    a = MobileViTForSemanticSegmentation.from_pretrained(folder)(x).logits
    b = MobileViTForSemanticSegmentation.from_pretrained(folder, backend="numba")(x).logits
    assert b.shape == a.shape and relative_error(b, a) < RTOL32
    base_folder = make_checkpoint("classification")
    a = MobileViTModel.from_pretrained(base_folder)(x)
    b = MobileViTModel.from_pretrained(base_folder, backend="numba")(x)
    assert relative_error(b.pooler_output, a.pooler_output) < RTOL32
    assert relative_error(b.last_hidden_state, a.last_hidden_state) < RTOL32


@numba_only
def test_from_config_takes_backend_and_trace_works(pixel_values):
    config = tiny_config()
    state_dict = random_state_dict(config, "classification", seed=3)
    ref = MobileViTForImageClassification.from_config(config, state_dict)
    fast = MobileViTForImageClassification.from_config(config, state_dict, backend="numba")
    assert relative_error(fast(pixel_values).logits, ref(pixel_values).logits) < RTOL32
    traced = fast.trace(pixel_values)
    assert traced.names == ref.trace(pixel_values).names


@pytest.mark.slow
@numba_only
@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_full_size_numba_matches_numpy(head):
    config = MobileViTConfig(
        num_labels=21 if head == "segmentation" else 1000, output_stride=16 if head == "segmentation" else 32
    )
    cls = MobileViTForSemanticSegmentation if head == "segmentation" else MobileViTForImageClassification
    state_dict = random_state_dict(config, head, seed=0)
    x = np.random.RandomState(0).uniform(0, 1, (2, 3, 256, 256)).astype(np.float32)
    ref = cls.from_config(config, state_dict)(x).logits
    fast = cls.from_config(config, state_dict, backend="numba")(x).logits
    assert relative_error(fast, ref) < RTOL32


@numba_only
def test_engine_without_expansion_with_gelu_and_many_input_sizes():
    """Paths the default configs skip: MobileViTModel(expand_output=False), an activation the kernels do not fuse
    (applied as the reference function), and more input sizes than a thread keeps plans for."""
    from mobilevit_np.kernels.engine import MAX_PLANS_PER_THREAD

    config = tiny_config(hidden_act="gelu")
    state_dict = {
        k: v for k, v in random_state_dict(config, "base", seed=5).items() if not k.startswith("conv_1x1_exp")
    }
    ref = MobileViTModel.from_config(config, state_dict, expand_output=False)
    fast = MobileViTModel.from_config(config, state_dict, expand_output=False, backend="numba")
    for size in range(33, 33 + 2 * MAX_PLANS_PER_THREAD, 2):
        x = np.random.RandomState(size).uniform(0, 1, (1, 3, size, 40)).astype(np.float32)
        a, b = ref(x, output_hidden_states=True), fast(x, output_hidden_states=True)
        assert b.pooler_output is None and relative_error(b.last_hidden_state, a.last_hidden_state) < RTOL32
        for h_fast, h_ref in zip(b.hidden_states, a.hidden_states, strict=True):
            assert relative_error(h_fast, h_ref) < RTOL32
    assert len(fast._engine._thread_plans()) == MAX_PLANS_PER_THREAD


# ------------------------------------------------------------------ MobileViTV2 on the engine (engine_v2.py)

TINY_V2 = dict(width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[2, 1, 1], aspp_out_channels=24)
V2_MODELS = {
    "base": MobileViTV2Model,
    "classification": MobileViTV2ForImageClassification,
    "segmentation": MobileViTV2ForSemanticSegmentation,
}


def v2_pair(head: str, **overrides):
    """(reference, engine) MobileViTV2 models of `head` with the same random weights."""
    config = MobileViTV2Config(**{**TINY_V2, "num_labels": 5, **overrides})
    state_dict = random_state_dict(config, head, seed=7)
    cls = V2_MODELS[head]
    return cls.from_config(config, state_dict), cls.from_config(config, state_dict, backend="numba")


def assert_outputs_match(ours, reference) -> None:
    """Every array the reference returns (hidden states included), within RTOL32 relative."""
    for name in reference.keys():
        want, got = reference[name], ours[name]
        if isinstance(want, tuple):
            assert len(got) == len(want)
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                assert g.shape == w.shape and relative_error(g, w) < RTOL32, f"{name}[{i}]"
        else:
            assert got.shape == want.shape and relative_error(got, want) < RTOL32, name


@numba_only
@pytest.mark.parametrize(
    "head, overrides, size",
    [
        ("classification", {}, (2, 3, 70, 53)),  # odd sizes: pixels past the last whole patch in every stage
        ("segmentation", {"output_stride": 16}, (1, 3, 66, 75)),
        ("segmentation", {"output_stride": 8, "patch_size": 3}, (2, 3, 50, 61)),
        ("base", {"hidden_act": "gelu", "conv_kernel_size": 5}, (1, 3, 64, 64)),  # not fused: applied as the reference
        ("classification", {"width_multiplier": 0.5, "ffn_multiplier": 3}, (1, 3, 96, 80)),
    ],
)
def test_v2_engine_matches_numpy(head, overrides, size):
    ref, fast = v2_pair(head, **overrides)
    from mobilevit_np.kernels.engine_v2 import EngineV2

    x = np.random.RandomState(sum(size)).uniform(0, 1, size).astype(np.float32)
    b = fast(x, output_hidden_states=True)
    assert isinstance(fast._engine, EngineV2)
    assert_outputs_match(b, ref(x, output_hidden_states=True))
    assert fast.trace(x).names == ref.trace(x).names  # tracing records the reference's steps


@numba_only
def test_v2_engine_base_without_pooling_and_float64_runs_the_reference():
    config = MobileViTV2Config(**TINY_V2)
    state_dict = random_state_dict(config, "base", seed=2)
    x = np.random.RandomState(2).uniform(0, 1, (1, 3, 64, 72)).astype(np.float32)
    ref = MobileViTV2Model.from_config(config, state_dict, expand_output=False)
    fast = MobileViTV2Model.from_config(config, state_dict, expand_output=False, backend="numba")
    out = fast(x)
    assert out.pooler_output is None and relative_error(out.last_hidden_state, ref(x).last_hidden_state) < RTOL32
    double = MobileViTV2Model.from_config(config, state_dict, dtype=np.float64, backend="numba")
    assert make_engine(double) is False
    reference = MobileViTV2Model.from_config(config, state_dict, dtype=np.float64)
    np.testing.assert_array_equal(double(x).last_hidden_state, reference(x).last_hidden_state)


@numba_only
def test_v2_engine_on_one_and_two_numba_threads_and_shared_by_python_threads():
    """The parallel and serial builds agree, and Python threads sharing one model get what serial calls get."""
    import numba

    _, fast = v2_pair("segmentation", width_multiplier=0.5, output_stride=16)
    inputs = [np.random.RandomState(i).uniform(0, 1, (1, 3, 96 + 8 * i, 80)).astype(np.float32) for i in range(4)]
    serial = [fast(x, output_hidden_states=True) for x in inputs]
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one_thread = [fast(x).logits for x in inputs]
    finally:
        numba.set_num_threads(previous)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda x: fast(x, output_hidden_states=True), inputs))
    for one, single, other in zip(serial, one_thread, threaded, strict=True):
        assert relative_error(single, one.logits) < RTOL32
        np.testing.assert_array_equal(one.logits, other.logits)
        for a, b in zip(one.hidden_states, other.hidden_states, strict=True):
            np.testing.assert_array_equal(a, b)


def test_engine_buffers_are_reused_only_with_the_same_border():
    """A 2x2 map with a zero border of 1 has the shape of a 4x4 map without one: reusing the 4x4 map's buffer
    would leave its edge pixels where a depthwise conv reads zeros (a v2 layer_5 at 64x64 read them once)."""
    from mobilevit_np.kernels.engine import Buffers

    def build(buffers: Buffers) -> list:
        plain = buffers.new_map(1, 16, 4, 4)
        buffers.give(plain)
        bordered = buffers.new_map(1, 16, 2, 2, pad=1)
        buffers.give(bordered)
        return [plain, bordered, buffers.new_map(1, 16, 2, 2, pad=1), buffers.new_map(1, 16, 4, 4)]

    rehearsal = Buffers()
    build(rehearsal)
    plain, bordered, again, later = build(Buffers(rehearsal.spans))
    plain.buffer[...] = 1
    assert not np.shares_memory(bordered.buffer, plain.buffer) and not bordered.buffer.any()
    assert again.buffer is bordered.buffer  # a dead bordered buffer of the same shape and border
    assert np.shares_memory(later.buffer, plain.buffer)  # a dead border-less one: the arena's same place


def test_engine_plan_arena_never_overlaps_two_maps_alive_at_once():
    """arena_layout on random lifetimes: buffers alive at the same time are disjoint, and the arena is no larger
    than the sum of the sizes, no smaller than the most alive at once."""
    from mobilevit_np.kernels.engine import arena_layout

    rng = np.random.RandomState(0)
    for _ in range(50):
        n = rng.randint(1, 40)
        taken = rng.permutation(2 * n)[:n] + 1.0
        spans = [
            [16 * int(rng.randint(1, 100)), t, t + rng.randint(1, 20) if rng.rand() < 0.9 else np.inf] for t in taken
        ]
        offsets, size = arena_layout(spans)
        for i, (a, ta, ga) in enumerate(spans):
            assert 0 <= offsets[i] and offsets[i] + a <= size
            for j, (b, tb, gb) in enumerate(spans[:i]):
                if ta < gb and tb < ga:  # alive together
                    assert offsets[i] + a <= offsets[j] or offsets[j] + b <= offsets[i], (spans, offsets)
        peak = max(sum(s for s, t, g in spans if t <= now < g) for now in range(1, 2 * n + 1))
        assert peak <= size <= sum(s for s, _, _ in spans)


def test_engine_plan_takes_its_maps_from_one_arena():
    """A plan's border-less maps are views of one array, smaller than their sum; a map given back shares memory
    with a later one, never with a map still alive; a build that does not repeat its rehearsal is an error."""
    from mobilevit_np.kernels.engine import Buffers

    def build(buffers: Buffers) -> list:
        first, second = buffers.new_map(1, 64, 8, 8), buffers.new_map(1, 16, 8, 8)
        buffers.give(first)
        third = buffers.new_map(1, 32, 8, 8)
        return [first, second, third]

    rehearsal = Buffers()
    build(rehearsal)
    arena = Buffers(rehearsal.spans)
    first, second, third = build(arena)
    assert all(np.shares_memory(m.buffer, arena.arena) for m in (first, second, third))
    assert arena.arena.size == (64 + 16) * 64  # third fits where first was
    assert np.shares_memory(third.buffer, first.buffer) and not np.shares_memory(third.buffer, second.buffer)
    other = Buffers(rehearsal.spans)
    other.new_map(1, 64, 8, 8)
    with pytest.raises(RuntimeError, match="differs from its rehearsal"):
        other.new_map(1, 32, 8, 8)
