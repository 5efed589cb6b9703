"""MobileViTImageProcessor without torch: committed transformers outputs, config forms, inputs, errors."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import MobileViTImageProcessor
from mobilevit_np.image_processing import (
    center_crop,
    is_channels_first,
    load_image,
    reduce_labels,
    shortest_edge_size,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "processor")
CATS = os.path.join(ROOT, "examples", "images", "cats.png")
EXPECTED = np.load(os.path.join(FIXTURES, "expected.npz"))
META = json.loads(str(EXPECTED["meta"]))
CASES = ["odd", "tall", "wide", "tiny", "grey", "rgba", "palette", "cats"]
# The preprocessor_config.json of apple/mobilevit-small as published (the old form).
APPLE_OLD = {
    "crop_size": 256,
    "do_center_crop": True,
    "do_flip_channels": True,
    "do_resize": True,
    "feature_extractor_type": "MobileViTFeatureExtractor",
    "resample": 2,
    "size": 288,
}


def case_path(case: str) -> str:
    return CATS if case == "cats" else os.path.join(FIXTURES, "images", f"{case}.png")


def assert_within_one_ulp(ours: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert ours.shape == expected.shape and ours.dtype == np.float32, (what, ours.shape, ours.dtype)
    ulps = np.abs(ours.view(np.int32).astype(np.int64) - expected.astype(np.float32).view(np.int32))
    worst = int(np.unravel_index(ulps.argmax(), ulps.shape)[-1]) if ulps.size else 0
    assert ulps.max() <= 1, (
        f"{what}: {int((ulps > 1).sum())} values differ by more than 1 ULP (max abs diff "
        f"{np.abs(ours - expected).max():.3g}; made with {META['versions']}); e.g. at [.., {worst}]"
    )


# ---------------------------------------------------------------- fixtures


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("setting", ["small", "fixed-bicubic"])
def test_matches_transformers_fixture_full(setting, case):
    processor = MobileViTImageProcessor(**META["settings"][setting])
    ours = processor(case_path(case))["pixel_values"]
    assert_within_one_ulp(ours, EXPECTED[f"{setting}/{case}/pixel_values"], f"{setting}/{case}")


@pytest.mark.parametrize("case", CASES)
def test_matches_transformers_fixture_apple_setting(case):
    """288 -> 256 as the Apple checkpoints: exact bytes (sha256), else statistics and a sample locate the change."""
    ours = MobileViTImageProcessor(**META["settings"]["apple"])(case_path(case))["pixel_values"]
    key = f"apple/{case}"
    assert ours.shape == tuple(EXPECTED[f"{key}/shape"])
    stride = META["sample_stride"]
    assert_within_one_ulp(ours[..., ::stride, ::stride], EXPECTED[f"{key}/sample"], key)
    np.testing.assert_allclose(
        [ours.mean(dtype=np.float64), ours.std(dtype=np.float64), ours.min(), ours.max()],
        EXPECTED[f"{key}/stats"],
        rtol=1e-6,
    )
    digest = hashlib.sha256(np.ascontiguousarray(ours, dtype="<f4").tobytes()).hexdigest()
    assert digest == str(EXPECTED[f"{key}/sha256"]), f"{key}: bytes differ from transformers' output"


def test_cats_mean_matches_the_published_value():
    """transformers.js's test gives 0.5215 for this image with the 288/256 settings."""
    pixels = MobileViTImageProcessor(size=288, crop_size=256)(CATS)["pixel_values"]
    assert pixels.shape == (1, 3, 256, 256)
    assert abs(pixels.mean(dtype=np.float64) - 0.5215) < 5e-4


def test_segmentation_labels_match_fixture():
    processor = MobileViTImageProcessor(**META["settings"]["small"], do_reduce_labels=True)
    out = processor(case_path("odd"), segmentation_maps=Image.open(os.path.join(FIXTURES, "images", "labels.png")))
    assert out["labels"].dtype == np.int64
    np.testing.assert_array_equal(out["labels"], EXPECTED["small/odd/labels"])
    assert out.labels is out["labels"]  # attribute access, like transformers' BatchFeature


# ---------------------------------------------------------------- config


def test_class_defaults_follow_transformers_docs():
    p = MobileViTImageProcessor()
    assert p.size == {"shortest_edge": 224} and p.crop_size == {"height": 256, "width": 256}
    assert p.resample == Image.Resampling.BILINEAR and p.rescale_factor == 1 / 255
    assert p.do_resize and p.do_center_crop and p.do_rescale and p.do_flip_channel_order and not p.do_reduce_labels


def write_config(folder, data) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump(data, f)
    return str(folder)


def test_old_and_current_config_forms_agree(tmp_path):
    current = {
        "crop_size": {"height": 256, "width": 256},
        "do_center_crop": True,
        "do_flip_channel_order": True,
        "do_rescale": True,
        "do_resize": True,
        "image_processor_type": "MobileViTImageProcessor",
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": 288},
    }
    old = MobileViTImageProcessor.from_pretrained(write_config(tmp_path / "old", APPLE_OLD))
    new = MobileViTImageProcessor.from_pretrained(write_config(tmp_path / "new", current))
    for p in (old, new):
        assert p.size == {"shortest_edge": 288} and p.crop_size == {"height": 256, "width": 256}
        assert p.resample == Image.Resampling.BILINEAR and p.do_flip_channel_order
    np.testing.assert_array_equal(old(CATS)["pixel_values"], new(CATS)["pixel_values"])
    # A JSON file path works too, and save_pretrained writes the current form back.
    again = MobileViTImageProcessor.from_pretrained(os.path.join(tmp_path / "old", "preprocessor_config.json"))
    again.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "preprocessor_config.json").read_text())
    assert saved["size"] == {"shortest_edge": 288} and saved["do_flip_channel_order"] is True
    assert MobileViTImageProcessor.from_pretrained(tmp_path / "saved").to_dict() == again.to_dict()


def test_legacy_do_flip_channels_false_is_ignored_like_transformers(tmp_path):
    folder = write_config(tmp_path, {**APPLE_OLD, "do_flip_channels": False})
    with pytest.warns(UserWarning, match="transformers ignores"):
        p = MobileViTImageProcessor.from_pretrained(folder)
    assert p.do_flip_channel_order is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"size": {"longest_edge": 3}}, "size must have the keys"),
        ({"size": 0}, "size must be a positive integer"),
        ({"crop_size": {"height": 3}}, "crop_size must have the keys"),
        ({"resample": 9}, "resample must be one of Pillow's filters"),
        ({"do_resize": "yes"}, "do_resize must be true or false"),
        ({"rescale_factor": "x"}, "rescale_factor must be a positive number"),
    ],
)
def test_bad_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MobileViTImageProcessor(**kwargs)


def test_bad_config_file_names_the_file(tmp_path):
    folder = write_config(tmp_path, {"size": {"longest_edge": 3}})
    with pytest.raises(ValueError, match="preprocessor_config.json: size must have"):
        MobileViTImageProcessor.from_pretrained(folder)
    (tmp_path / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        MobileViTImageProcessor.from_pretrained(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json not found"):
        MobileViTImageProcessor.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        MobileViTImageProcessor.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------- geometry


def test_shortest_edge_size_truncates_the_long_side():
    assert shortest_edge_size(480, 640, 288) == (288, 384)
    assert shortest_edge_size(640, 480, 288) == (384, 288)
    assert shortest_edge_size(10, 10, 7) == (7, 7)
    assert shortest_edge_size(3, 10, 4) == (4, 13)  # int(4 * 10 / 3) = 13


def test_center_crop_pads_with_zeros_at_transformers_offsets():
    image = np.arange(1, 16, dtype=np.float32).reshape(1, 3, 5)
    out = center_crop(image, (6, 3))
    # rows: 3 < 6 -> placed at ceil(3/2) = 2; columns: 5 >= 3 -> window starts at (5-3)//2 = 1
    expected = np.zeros((1, 6, 3), np.float32)
    expected[0, 2:5] = image[0, :, 1:4]
    np.testing.assert_array_equal(out, expected)


def test_reduce_labels():
    np.testing.assert_array_equal(reduce_labels(np.array([[0, 1, 2, 255]], np.uint8)), [[255, 0, 1, 255]])


def test_no_crop_keeps_the_resized_size_and_lists_without_stacking():
    p = MobileViTImageProcessor(size=20, do_center_crop=False)
    images = [np.zeros((30, 40, 3), np.uint8), np.zeros((40, 30, 3), np.uint8)]
    out = p(images, return_tensors=None)["pixel_values"]
    assert [a.shape for a in out] == [(3, 20, 26), (3, 26, 20)]
    with pytest.raises(ValueError, match="cannot stack pixel_values of different sizes"):
        p(images)


# ---------------------------------------------------------------- input forms


def test_every_input_form_gives_the_same_pixels():
    p = MobileViTImageProcessor(size=40, crop_size=(32, 48))
    pil = Image.open(case_path("wide")).convert("RGB")
    hwc = np.asarray(pil)
    reference = p(case_path("wide"))["pixel_values"]
    for image in (pil, hwc, hwc.transpose(2, 0, 1).copy(), [hwc], hwc[None]):
        np.testing.assert_array_equal(p(image)["pixel_values"], reference)
    batch = p([pil, hwc, case_path("wide")])["pixel_values"]
    assert batch.shape == (3, 3, 32, 48) and all(np.array_equal(b, reference[0]) for b in batch)
    floats = hwc.astype(np.float32) / 255  # transformers quantises floats in [0, 1] to uint8 for Pillow
    np.testing.assert_array_equal(p(floats, do_rescale=False)["pixel_values"], reference)


def test_per_call_settings_override_and_flip_is_bgr():
    p = MobileViTImageProcessor(size=40, crop_size=32)
    bgr = p(case_path("odd"))["pixel_values"]
    rgb = p(case_path("odd"), do_flip_channel_order=False)["pixel_values"]
    np.testing.assert_array_equal(bgr, rgb[:, ::-1])
    raw = p(case_path("odd"), do_rescale=False)["pixel_values"]
    assert raw.dtype == np.float32 and raw.max() > 1 and np.array_equal(raw, np.round(raw))
    with pytest.raises(TypeError, match="unknown processor argument"):
        p(case_path("odd"), do_normalise=True)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "1"])
def test_pil_modes_become_rgb(mode):
    p = MobileViTImageProcessor(size=40, crop_size=32)
    image = Image.open(case_path("odd")).convert(mode)
    out = p(image)["pixel_values"]
    assert out.shape == (1, 3, 32, 32)
    np.testing.assert_array_equal(out, p(image.convert("RGB"))["pixel_values"])


def test_grey_and_rgba_arrays_become_rgb():
    p = MobileViTImageProcessor(size=40, crop_size=32)
    grey = np.asarray(Image.open(case_path("grey")))
    np.testing.assert_array_equal(p(grey)["pixel_values"], p(np.stack([grey] * 3, axis=-1))["pixel_values"])
    rgba = np.asarray(Image.open(case_path("rgba")))
    np.testing.assert_array_equal(p(rgba)["pixel_values"], p(rgba[..., :3])["pixel_values"])


def test_16_bit_png_keeps_its_high_byte(tmp_path):
    values = (np.arange(40 * 30).reshape(40, 30) * 54).astype(np.uint16)  # spans 0 .. 64746
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    p = MobileViTImageProcessor(size=40, crop_size=32)
    high_byte = np.stack([(values >> 8).astype(np.uint8)] * 3, axis=-1)
    np.testing.assert_array_equal(p(tmp_path / "deep.png")["pixel_values"], p(high_byte)["pixel_values"])


def test_exif_orientation_applied_for_paths_not_for_pil_images(tmp_path):
    """As transformers: load_image (a path) rotates upright; a PIL image is taken as stored."""
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.open(case_path("wide")).convert("RGB").save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    stored = Image.open(tmp_path / "rotated.jpg")
    assert load_image(tmp_path / "rotated.jpg").size == (stored.height, stored.width)
    p = MobileViTImageProcessor(size=40, crop_size=32)
    upright = stored.transpose(Image.Transpose.ROTATE_270)
    np.testing.assert_array_equal(p(tmp_path / "rotated.jpg")["pixel_values"], p(upright)["pixel_values"])
    np.testing.assert_array_equal(p(stored)["pixel_values"], p(stored.convert("RGB"))["pixel_values"])


@pytest.mark.parametrize(
    "shape, first",
    [
        ((3, 40, 52), True),
        ((1, 40, 52), True),
        ((4, 5, 6), True),
        ((3, 4, 3), True),  # both ends could be channels: the first wins
        ((40, 52, 3), False),
        ((5, 6, 7), False),  # neither: not channels first (the processor then names the problem)
        ((40, 52), False),
        ((1, 3, 40, 52), False),
    ],
)
def test_channel_axis_rule(shape, first):
    assert is_channels_first(shape) is first


@pytest.mark.parametrize(
    "images, error, message",
    [
        (42, TypeError, "must be a PIL image, a NumPy array or a file path"),
        (np.zeros((5, 6, 7), np.uint8), ValueError, "cannot find the channel axis"),
        (np.zeros((2, 2, 2, 2, 3), np.uint8), ValueError, "must be \\(H, W\\)"),
        (np.full((4, 4, 3), 1.5, np.float32), ValueError, "float image values must lie in \\[0, 1\\]"),
        (np.full((4, 4, 3), 300, np.int32), ValueError, "must lie in \\[0, 255\\]"),
        (np.zeros((4, 4, 3), bool), ValueError, "integers or floats"),
        ([], ValueError, "no images given"),
        ("/nonexistent/cat.png", FileNotFoundError, "image not found"),
    ],
)
def test_bad_images_are_named(images, error, message):
    with pytest.raises(error, match=message):
        MobileViTImageProcessor()(images)


def test_non_image_file_is_named(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match="not an image file Pillow can read"):
        MobileViTImageProcessor()(tmp_path / "notes.png")


def test_bad_segmentation_maps_and_return_tensors():
    p = MobileViTImageProcessor(size=40, crop_size=32)
    image = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="1 images but 2 segmentation maps"):
        p(image, segmentation_maps=[np.zeros((40, 40), np.uint8)] * 2)
    with pytest.raises(ValueError, match="one-channel image"):
        p(image, segmentation_maps=Image.new("RGB", (40, 40)))
    with pytest.raises(ValueError, match="integer class indices"):
        p(image, segmentation_maps=np.zeros((40, 40), np.float32))
    with pytest.raises(ValueError, match=r"class indices must lie in 0\.\.255, got 0\.\.300"):
        p(image, segmentation_maps=np.where(np.eye(40, dtype=bool), 300, 0).astype(np.int32))
    with pytest.raises(ValueError, match=r"must lie in 0\.\.255, got -1\.\.0"):
        p(image, segmentation_maps=-np.eye(40, dtype=np.int64))
    with pytest.raises(ValueError, match="return_tensors must be 'np' or None"), warnings.catch_warnings():
        p(image, return_tensors="pt")
