"""Arrays into the model, beyond tests/test_inputs.py: float16 input, and NaN and the smallest sizes on both backends.

The error messages for bad arrays are in the catalogue (test_hostile_catalogue.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification
from mobilevit_np.backends import numba_available
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="needs numba"))]


def classifier(backend: str = "numpy", dtype=np.float32) -> MobileViTForImageClassification:
    config = tiny_config()
    state = random_state_dict(config, "classification")
    return MobileViTForImageClassification.from_config(config, state, dtype=dtype, backend=backend)


@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
def test_float16_input_is_cast_to_the_model_dtype(model_dtype):
    """As documented: any float input is cast to the model's dtype first, so float16 pixels give the same
    answer as the same values in the model's dtype."""
    model = classifier(dtype=model_dtype)
    half = random_pixel_values((2, 3, 48, 40)).astype(np.float16)
    logits = model(half).logits
    assert logits.dtype == model_dtype
    np.testing.assert_array_equal(logits, model(half.astype(model_dtype)).logits)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_stays_in_its_own_image(backend):
    model = classifier(backend)
    clean = random_pixel_values((3, 3, 64, 64))
    poisoned = clean.copy()
    poisoned[1, 2, 30, 7] = np.nan
    logits = model(poisoned).logits
    assert np.isnan(logits[1]).all()
    np.testing.assert_array_equal(logits[[0, 2]], model(clean).logits[[0, 2]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("height, width", [(1, 1), (1, 2), (3, 1)])
def test_the_smallest_sizes_run(backend, height, width):
    """1x1 pixel is the minimum (every stride-2 layer pads); 0 is refused (the catalogue's message)."""
    model = classifier(backend)
    logits = model(random_pixel_values((1, 3, height, width))).logits
    assert logits.shape == (1, 5) and np.isfinite(logits).all()
    for below in [(0, width), (height, 0)]:
        with pytest.raises(ValueError, match="is empty"):
            model(np.zeros((1, 3, *below), np.float32))
