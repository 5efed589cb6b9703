"""Live parity with transformers' Pillow-based processor (MobileViTImageProcessorPil in 5.x).

Exact or within 1 float32 ULP, on the cats image and the generated images, for every input
form. `python tests/test_image_processing_parity.py` prints the max abs difference per image.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import MobileViTImageProcessor

transformers = pytest.importorskip("transformers")
from test_image_processing import APPLE_OLD, CASES, META, assert_within_one_ulp, case_path, write_config  # noqa: E402

pytestmark = pytest.mark.parity


def pil_processor_class():
    """transformers 5.x: MobileViTImageProcessorPil; 4.x: MobileViTImageProcessor (Pillow-based there)."""
    return getattr(transformers, "MobileViTImageProcessorPil", None) or transformers.MobileViTImageProcessor


def theirs(settings: dict, images, **kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pil_processor_class()(**settings)(images, return_tensors="np", **kwargs)


SETTINGS = {**META["settings"], "defaults-bilinear": {"resample": 2}}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_paths_match(setting, case):
    settings = SETTINGS[setting]
    ours = MobileViTImageProcessor(**settings)(case_path(case))["pixel_values"]
    assert_within_one_ulp(ours, theirs(settings, case_path(case))["pixel_values"], f"{setting}/{case}")


@pytest.mark.parametrize("case", ["cats", "odd", "tall", "tiny"])
def test_pil_and_array_inputs_match(case):
    settings = META["settings"]["apple"]
    rgb = Image.open(case_path(case)).convert("RGB")
    hwc = np.asarray(rgb)
    ours = MobileViTImageProcessor(**settings)
    for image in (rgb, hwc, hwc.transpose(2, 0, 1).copy(), [rgb, hwc]):
        assert_within_one_ulp(ours(image)["pixel_values"], theirs(settings, image)["pixel_values"], case)
    floats = hwc.astype(np.float32) / 255
    expected = theirs(settings, floats, do_rescale=False)["pixel_values"]
    assert_within_one_ulp(ours(floats, do_rescale=False)["pixel_values"], expected, f"{case} float")


def test_segmentation_maps_match():
    settings = {**META["settings"]["small"], "do_reduce_labels": True}
    image = Image.open(case_path("odd"))
    labels = Image.open(os.path.join(os.path.dirname(case_path("odd")), "labels.png"))
    ours = MobileViTImageProcessor(**settings)(image, segmentation_maps=labels)
    expected = theirs(settings, image, segmentation_maps=labels)
    np.testing.assert_array_equal(ours["labels"], expected["labels"])
    assert ours["labels"].dtype == expected["labels"].dtype == np.int64


def test_old_config_form_matches_transformers_from_pretrained(tmp_path):
    folder = write_config(tmp_path, APPLE_OLD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pil_processor_class().from_pretrained(folder)
    expected = reference(case_path("cats"), return_tensors="np")["pixel_values"]
    ours = MobileViTImageProcessor.from_pretrained(folder)(case_path("cats"))["pixel_values"]
    assert_within_one_ulp(ours, expected, "apple/mobilevit-small config")


def test_transformers_5_class_default_is_bicubic():
    """Documented difference: our class default is the docs' BILINEAR; transformers 5.x moved to BICUBIC."""
    if not hasattr(transformers, "MobileViTImageProcessorPil"):
        pytest.skip("transformers 4.x")
    assert int(transformers.MobileViTImageProcessorPil().resample) == 3
    assert MobileViTImageProcessor().resample == 2


if __name__ == "__main__":  # the numbers for the report
    for setting in sorted(SETTINGS):
        for case in CASES:
            a = MobileViTImageProcessor(**SETTINGS[setting])(case_path(case))["pixel_values"]
            b = theirs(SETTINGS[setting], case_path(case))["pixel_values"]
            print(f"{setting:>16} {case:>8} shape {a.shape} max|diff| {np.abs(a - b).max():.3g}")
