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
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

pytest.importorskip("torch")
pytest.importorskip("transformers")
from reference import reference_outputs, transformers_model  # noqa: E402

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
    width = lambda: heads * rng.randint(2, 8)  # noqa: E731  hidden sizes must divide by the head count
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


def check_float32(name: str, ours: np.ndarray, theirs: np.ndarray, exact: np.ndarray, replay: str) -> None:
    """Ours (float32) against transformers (float32), knowing the exact answer (float64, already checked).

    Normally both float32 results sit ~1e-6 from the exact answer, so they agree within 2e-5.
    Some random configs are ill-conditioned in float32: a layer norm over 2 or 3 features whose
    values nearly coincide divides a rounding error by their tiny spread (PARITY_SEED=470025511
    case 26: transformers' own float32 output is 5e-5 from the exact one). There, two correct
    float32 programs legitimately differ by more than 2e-5, so the test asks instead that ours be
    no farther from the exact answer than 10x transformers' own float32 error. The float64
    comparison (1e-9) is what proves the arithmetic identical in every case.
    """
    error = relative_error(ours, theirs)
    if error <= TOLERANCE[np.float32]:
        return
    reference_error = relative_error(theirs, exact)
    ill_conditioned = reference_error > TOLERANCE[np.float32] / 2
    assert ill_conditioned and relative_error(ours, exact) <= 10 * reference_error, (
        f"{replay}: float32 {name} relative error {error:.2e} against transformers, whose own float32 error "
        f"is {reference_error:.2e}"
    )


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
    outputs = {}
    for dtype in (np.float64, np.float32):
        ref = reference_outputs(reference, pixel_values, dtype)
        out = MODELS[head].from_config(config, state_dict, dtype=dtype)(pixel_values, output_hidden_states=True)
        pairs = {f"hidden_states.{i}": (out.hidden_states[i], r) for i, r in enumerate(ref["hidden_states"])}
        pairs.update({k: (getattr(out, k), v) for k, v in ref.items() if k != "hidden_states"})
        outputs[dtype] = pairs
    for name, (ours, exact) in outputs[np.float64].items():
        assert ours.shape == exact.shape, f"{replay}: {name} shape {ours.shape} vs {exact.shape}"
        error = relative_error(ours, exact)
        assert error <= TOLERANCE[np.float64], f"{replay}: float64 {name} relative error {error:.2e}"
        check_float32(name, *outputs[np.float32][name], exact, replay)


def test_report_parity_cases():
    """Says how many live cases this run drew, and the seed to replay them."""
    print(f"live parity: {NUM_CASES} random configs, PARITY_SEED={SEED}")
    assert NUM_CASES > 0
