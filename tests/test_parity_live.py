"""Live parity against transformers on random configs and input sizes (needs the `parity` extra).

Each run draws PARITY_CASES configs (default 8) from PARITY_SEED (default: a new seed each
run, printed so a failure can be replayed) and compares every hidden state and the
head's output in float32 and float64.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTConfig,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
)
from mobilevit_np.backends import numba_available
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

pytest.importorskip("torch")
pytest.importorskip("transformers")
from reference import outputs_by_name, reference_outputs, transformers_model  # noqa: E402

pytestmark = pytest.mark.parity

TOLERANCE = {np.float32: 2e-5, np.float64: 1e-9}
MODELS = {
    "base": MobileViTModel,
    "classification": MobileViTForImageClassification,
    "segmentation": MobileViTForSemanticSegmentation,
}
NUM_CASES = int(os.environ.get("PARITY_CASES", "8"))
SEED = int(os.environ.get("PARITY_SEED", random.SystemRandom().randrange(2**31)))


def draw_case(rng: random.Random) -> tuple[str, dict, tuple[int, int, int]]:
    """A small random config transformers accepts, a head, and an input (batch, height, width)."""
    heads = rng.choice([1, 2, 4])
    width = lambda: heads * rng.randint(1 if heads > 1 else 2, 12)  # noqa: E731  divisible by the head count
    neck = sorted(rng.randint(4, 24) for _ in range(6)) + [rng.randint(16, 64)]
    config = dict(
        hidden_sizes=[width(), width(), width()],
        neck_hidden_sizes=neck,
        num_attention_heads=heads,
        expand_ratio=rng.choice([1.0, 2.0, 2.5, 4.0]),
        mlp_ratio=rng.choice([1.0, 2.0, 3.0]),
        patch_size=rng.choice([1, 2, 2, 3]),
        conv_kernel_size=rng.choice([3, 3, 5]),
        output_stride=rng.choice([8, 16, 32]),
        hidden_act=rng.choice(["silu", "silu", "gelu", "relu", "gelu_new", "swish", "mish"]),
        qkv_bias=rng.choice([True, False]),
        layer_norm_eps=rng.choice([1e-5, 1e-6]),
        aspp_out_channels=rng.randint(4, 24),
        atrous_rates=sorted(rng.sample(range(1, 20), 3)),
        num_labels=rng.randint(2, 12),
    )
    head = rng.choice(["base", "classification", "segmentation"])
    size = (rng.randint(1, 3), rng.randint(33, 130), rng.randint(33, 130))
    return head, config, size


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / max(np.abs(reference).max(), np.finfo(reference.dtype).tiny))


# Below this many features, a layer norm is ill-conditioned in float32: two nearly equal values
# make (x - mean) / std divide a rounding error by their tiny spread. PARITY_SEED=1541435219 case 34
# (a width-2 transformer) shows it: each of our float32 ops is as close to the float64 result as
# transformers' own, yet one near-singular layer norm amplifies ~1e-7 errors 1000-fold, and the two
# float32 outputs land 1e-3 apart by chance. Such configs are still checked in float64 (1e-9),
# which is what proves the arithmetic identical; real checkpoints have widths of 64 and more.
MIN_FLOAT32_WIDTH = 8


@pytest.mark.parametrize("index", range(NUM_CASES))
def test_random_config_matches_transformers(index: int):
    rng = random.Random(SEED * 1000 + index)
    head, overrides, (batch, height, width) = draw_case(rng)
    config = MobileViTConfig(**overrides)
    state_dict = random_state_dict(config, head, seed=index)
    pixel_values = random_pixel_values((batch, config.num_channels, height, width), seed=index)
    reference = transformers_model(head, config, state_dict)
    replay = f"PARITY_SEED={SEED} case {index}: {head} {overrides} input {(batch, height, width)}"
    print(replay)
    # float64 on the reference; float32 on the reference and on the fast engine (when numba is installed)
    runs = [(np.float64, "numpy"), (np.float32, "numpy")] + [(np.float32, "numba")] * numba_available()
    for dtype, backend in runs:
        ref = reference_outputs(reference, pixel_values, dtype)
        model = MODELS[head].from_config(config, state_dict, dtype=dtype, backend=backend)
        ours = outputs_by_name(model(pixel_values, output_hidden_states=True))
        assert sorted(ours) == sorted(ref), f"{replay}: outputs {sorted(ours)} vs transformers' {sorted(ref)}"
        if dtype == np.float32 and min(config.hidden_sizes) < MIN_FLOAT32_WIDTH:
            continue
        for name in ref:
            assert ours[name].shape == ref[name].shape, (
                f"{replay}: {name} shape {ours[name].shape} vs {ref[name].shape}"
            )
            error = relative_error(ours[name], ref[name])
            label = f"{np.dtype(dtype).name} {backend}"
            assert error <= TOLERANCE[dtype], f"{replay}: {label} {name} relative error {error:.2e}"


def test_report_parity_cases():
    """Says how many live cases this run drew, and the seed to replay them."""
    print(f"live parity: {NUM_CASES} random configs, PARITY_SEED={SEED}")
    assert NUM_CASES > 0
