"""Losses against transformers: each problem type of the classifier, and the segmenter's ignore index."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification, MobileViTForSemanticSegmentation
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
from reference import transformers_model  # noqa: E402

pytestmark = pytest.mark.parity
X = random_pixel_values((3, 3, 64, 64), seed=5)


@pytest.mark.parametrize(
    "num_labels, labels",
    [
        (5, np.array([0, 4, 2])),  # single-label: integer labels
        (5, np.random.RandomState(0).randint(0, 2, (3, 5)).astype(np.float32)),  # multi-label: float targets
        (1, np.array([0.5, -1.0, 2.0], np.float32)),  # regression
    ],
    ids=["single-label", "multi-label", "regression"],
)
def test_classification_loss(num_labels, labels):
    config = tiny_config(num_labels=num_labels)
    state = random_state_dict(config, "classification", seed=2)
    ours = MobileViTForImageClassification.from_config(config, state)(X, labels=labels).loss
    with torch.no_grad():
        theirs = transformers_model("classification", config, state)(
            torch.from_numpy(X), labels=torch.from_numpy(labels)
        )
    np.testing.assert_allclose(ours, theirs.loss.item(), rtol=2e-5)


def test_segmentation_loss_upsamples_and_ignores():
    config = tiny_config(num_labels=6, semantic_loss_ignore_index=255)
    state = random_state_dict(config, "segmentation", seed=2)
    labels = np.random.RandomState(1).randint(0, 6, (3, 50, 61))
    labels[:, :10] = 255
    ours = MobileViTForSemanticSegmentation.from_config(config, state)(X, labels=labels).loss
    with torch.no_grad():
        reference = transformers_model("segmentation", config, state)
        theirs = reference(torch.from_numpy(X), labels=torch.from_numpy(labels))
    np.testing.assert_allclose(ours, theirs.loss.item(), rtol=2e-5)
