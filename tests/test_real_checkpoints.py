"""The published outputs of Apple's real checkpoints (tests/fixtures/REFERENCE.md, copied from shared/data).

Skipped unless MOBILEVIT_CHECKPOINTS points at a folder holding the checkpoint folders, named as on
the Hub with or without the owner: `<folder>/mobilevit-xx-small` or `<folder>/apple/mobilevit-xx-small`.
Each needs config.json, model.safetensors (or pytorch_model.bin) and preprocessor_config.json.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import MobileViTForImageClassification, MobileViTForSemanticSegmentation, MobileViTImageProcessor

ROOT = os.environ.get("MOBILEVIT_CHECKPOINTS")
CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"
pytestmark = pytest.mark.skipif(not ROOT, reason="set MOBILEVIT_CHECKPOINTS to a folder of apple/* checkpoints")


def checkpoint(name: str) -> Path:
    for folder in (Path(ROOT) / name, Path(ROOT) / "apple" / name):
        if folder.is_dir():
            return folder
    pytest.skip(f"{name} not found under {ROOT}")


def cats_pixels(folder: Path) -> np.ndarray:
    processor = MobileViTImageProcessor.from_pretrained(folder)
    return processor(Image.open(CATS), return_tensors="np")["pixel_values"]


def test_mobilevit_xx_small_logits():
    folder = checkpoint("mobilevit-xx-small")
    logits = MobileViTForImageClassification.from_pretrained(folder)(cats_pixels(folder)).logits
    assert logits.shape == (1, 1000)
    np.testing.assert_allclose(logits[0, :3], [-1.9364, -1.2327, -0.4653], rtol=1e-4, atol=1e-4)


def test_deeplabv3_mobilevit_xx_small_logits_and_post_processing():
    folder = checkpoint("deeplabv3-mobilevit-xx-small")
    outputs = MobileViTForSemanticSegmentation.from_pretrained(folder)(cats_pixels(folder))
    assert outputs.logits.shape == (1, 21, 32, 32)
    expected = [
        [[6.9713, 6.9786, 7.2422], [7.2893, 7.2825, 7.4446], [7.6580, 7.8797, 7.9420]],
        [[-10.6869, -10.3250, -10.3471], [-10.4228, -9.9868, -9.7132], [-11.0405, -11.0221, -10.7318]],
        [[-3.3089, -2.8539, -2.6740], [-3.2706, -2.5621, -2.5108], [-3.2534, -2.6615, -2.6651]],
    ]
    np.testing.assert_allclose(outputs.logits[0, :3, :3, :3], expected, rtol=1e-4, atol=1e-4)
    processor = MobileViTImageProcessor.from_pretrained(folder)
    assert processor.post_process_semantic_segmentation(outputs, target_sizes=[(50, 60)])[0].shape == (50, 60)
    assert processor.post_process_semantic_segmentation(outputs)[0].shape == (32, 32)
