"""What the models accept as pixel_values, and the clear errors for what they do not."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification


@pytest.fixture
def model(make_checkpoint):
    return MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((3, 64, 64), np.float32), "must be 4-D"),
        (np.zeros((1, 4, 64, 64), np.float32), "has 4 channels"),
        (np.zeros((1, 64, 64, 3), np.float32), "has 64 channels"),
        (np.zeros((1, 3, 64, 64), np.uint8), "must be floating point"),
        (np.zeros((0, 3, 64, 64), np.float32), "empty"),
    ],
)
def test_bad_arrays_get_clear_errors(model, array, message):
    with pytest.raises(ValueError, match=message):
        model(array)


def test_layout_and_dtype_of_the_input_do_not_change_the_answer(model, pixel_values):
    expected = model(pixel_values).logits
    channels_last = np.ascontiguousarray(pixel_values.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    strided = np.repeat(pixel_values, 2, axis=3)[:, :, :, ::2]
    np.testing.assert_array_equal(model(channels_last).logits, expected)
    np.testing.assert_array_equal(model(strided).logits, expected)
    np.testing.assert_array_equal(model(pixel_values.astype(np.float64)).logits, expected)


def test_batch_items_are_independent(model, pixel_values):
    batch = model(pixel_values).logits
    single = model(pixel_values[1:]).logits
    np.testing.assert_allclose(batch[1:], single, rtol=1e-5, atol=1e-6)


def test_classification_loss_like_transformers(model, pixel_values):
    logits = model(pixel_values).logits
    labels = np.array([1, 3])
    expected = -np.mean([logits[i, c] - np.log(np.exp(logits[i]).sum()) for i, c in enumerate(labels)])
    np.testing.assert_allclose(model(pixel_values, labels=labels).loss, expected, rtol=1e-5)


def test_nan_input_stays_in_its_own_image(model, pixel_values):
    """NaN pixels propagate to that image's logits (as in torch) and never leak into the rest of the batch."""
    poisoned = pixel_values.copy()
    poisoned[0, 1, 10, 20] = np.nan
    logits = model(poisoned).logits
    assert np.isnan(logits[0]).all()
    np.testing.assert_array_equal(logits[1], model(pixel_values).logits[1])


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (2, 3)])
def test_smallest_inputs_run(model, size):
    """Every stride-2 layer pads, so any size of at least 1x1 pixels goes through (transformers agrees)."""
    logits = model(np.full((1, 3, *size), 0.5, np.float32)).logits
    assert logits.shape == (1, 5) and np.isfinite(logits).all()
