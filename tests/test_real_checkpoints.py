"""The published outputs of Apple's real checkpoints (tests/fixtures/REFERENCE.md, copied from shared/data).

Skipped unless MOBILEVIT_CHECKPOINTS points at a folder holding the checkpoint folders, named as on
the Hub with or without the owner: `<folder>/mobilevit-xx-small` or `<folder>/apple/mobilevit-xx-small`
(MobileViTV2: apple/mobilevitv2-1.0-imagenet1k-256, shehan97/mobilevitv2-1.0-voc-deeplabv3).
Each needs config.json, model.safetensors (or pytorch_model.bin) and preprocessor_config.json.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTImageProcessor,
    MobileViTV2ForImageClassification,
    MobileViTV2ForSemanticSegmentation,
)

ROOT = os.environ.get("MOBILEVIT_CHECKPOINTS")
CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"
pytestmark = pytest.mark.skipif(not ROOT, reason="set MOBILEVIT_CHECKPOINTS to a folder of apple/* checkpoints")


def checkpoint(name: str, owner: str = "apple") -> Path:
    for folder in (Path(ROOT) / name, Path(ROOT) / owner / name):
        if folder.is_dir():
            return folder
    pytest.skip(f"{name} not found under {ROOT}")


def cats_pixels(folder: Path) -> np.ndarray:
    processor = MobileViTImageProcessor.from_pretrained(folder)
    return processor(Image.open(CATS), return_tensors="np")["pixel_values"]


# (checkpoint folder name, Hub owner, model class, logits[0, :3], tolerance), from tests/fixtures/REFERENCE.md
CLASSIFIERS = [
    ("mobilevit-xx-small", "apple", MobileViTForImageClassification, [-1.9364, -1.2327, -0.4653], 1e-4),
    (
        "mobilevitv2-1.0-imagenet1k-256",
        "apple",
        MobileViTV2ForImageClassification,
        [-1.6336, -0.073204, -0.51883],
        2e-4,
    ),
]
# (checkpoint folder name, Hub owner, model class, logits[0, :3, :3, :3], tolerance)
SEGMENTERS = [
    (
        "deeplabv3-mobilevit-xx-small",
        "apple",
        MobileViTForSemanticSegmentation,
        [
            [[6.9713, 6.9786, 7.2422], [7.2893, 7.2825, 7.4446], [7.6580, 7.8797, 7.9420]],
            [[-10.6869, -10.3250, -10.3471], [-10.4228, -9.9868, -9.7132], [-11.0405, -11.0221, -10.7318]],
            [[-3.3089, -2.8539, -2.6740], [-3.2706, -2.5621, -2.5108], [-3.2534, -2.6615, -2.6651]],
        ],
        1e-4,
    ),
    (
        "mobilevitv2-1.0-voc-deeplabv3",
        "shehan97",
        MobileViTV2ForSemanticSegmentation,
        [
            [[7.0863, 7.1525, 6.8201], [6.6931, 6.8770, 6.8933], [6.2978, 7.0366, 6.9636]],
            [[-3.7134, -3.6712, -3.6675], [-3.5825, -3.3549, -3.4777], [-3.3435, -3.3979, -3.2857]],
            [[-2.9329, -2.8003, -2.7369], [-3.0564, -2.4780, -2.0207], [-2.6889, -1.9298, -1.7640]],
        ],
        2e-4,
    ),
]


@pytest.mark.parametrize("name, owner, cls, expected, tolerance", CLASSIFIERS, ids=[c[0] for c in CLASSIFIERS])
def test_classifier_logits(name, owner, cls, expected, tolerance):
    folder = checkpoint(name, owner)
    logits = cls.from_pretrained(folder)(cats_pixels(folder)).logits
    assert logits.shape == (1, 1000)
    np.testing.assert_allclose(logits[0, :3], expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name, owner, cls, expected, tolerance", SEGMENTERS, ids=[s[0] for s in SEGMENTERS])
def test_segmenter_logits_and_post_processing(name, owner, cls, expected, tolerance):
    folder = checkpoint(name, owner)
    outputs = cls.from_pretrained(folder)(cats_pixels(folder))
    assert outputs.logits.shape == (1, 21, 32, 32)
    np.testing.assert_allclose(outputs.logits[0, :3, :3, :3], expected, rtol=tolerance, atol=tolerance)
    processor = MobileViTImageProcessor.from_pretrained(folder)
    assert processor.post_process_semantic_segmentation(outputs, target_sizes=[(50, 60)])[0].shape == (50, 60)
    assert processor.post_process_semantic_segmentation(outputs)[0].shape == (32, 32)
