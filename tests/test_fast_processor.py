"""MobileViTImageProcessorFast: transformers' arguments accepted, our outputs; size forms against transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import MobileViTImageProcessor, MobileViTImageProcessorFast

CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"


@pytest.fixture(scope="module")
def images():
    cats = Image.open(CATS).convert("RGB")
    return [cats, cats.crop((0, 0, 90, 170)), cats.resize((33, 21))]


SIZES = [
    224,
    {"height": 100, "width": 130},
    {"shortest_edge": 200},
    {"shortest_edge": 200, "longest_edge": 240},
    {"shortest_edge": 21, "longest_edge": 300},
    {"max_height": 150, "max_width": 120},
    {"max_height": 500, "max_width": 400},
]


@pytest.mark.parametrize("size", SIZES)
def test_same_outputs_as_the_processor_for_every_size_form(images, size):
    fast = MobileViTImageProcessorFast(size=size, crop_size={"height": 96, "width": 80})
    plain = MobileViTImageProcessor(size=size, crop_size={"height": 96, "width": 80})
    np.testing.assert_array_equal(fast(images)["pixel_values"], plain(images)["pixel_values"])


@pytest.mark.parity
@pytest.mark.parametrize("size", SIZES)
def test_size_forms_match_transformers_pil_processor(images, size):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("torch")
    from transformers.models.mobilevit.image_processing_pil_mobilevit import MobileViTImageProcessorPil

    settings = dict(size=size, crop_size={"height": 96, "width": 80}, resample=2)
    theirs = MobileViTImageProcessorPil(**settings)
    ours = MobileViTImageProcessor(**settings)
    for image in images:
        expected = theirs(image, return_tensors="np")["pixel_values"]
        np.testing.assert_array_equal(ours(image)["pixel_values"], expected)
        resized = ours(image, do_center_crop=False)["pixel_values"]
        assert resized.shape == theirs(image, do_center_crop=False, return_tensors="np")["pixel_values"].shape
    assert transformers.__version__


def test_torch_only_and_ignored_arguments_are_accepted(images):
    plain = MobileViTImageProcessor()(images[0])["pixel_values"]
    fast = MobileViTImageProcessorFast(do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_pad=True)
    out = fast(
        images[0], do_normalize=True, do_pad=True, pad_size={"height": 512, "width": 512}, disable_grouping=True,
        device="cpu", do_convert_rgb=True,
    )  # fmt: skip
    np.testing.assert_array_equal(out["pixel_values"], plain)  # normalisation and padding are not applied


def test_data_formats(images):
    fast = MobileViTImageProcessorFast(crop_size=64, size=64)
    first = fast(images[1])["pixel_values"]
    last = fast(images[1], data_format="channels_last")["pixel_values"]
    assert last.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(last, first.transpose(0, 2, 3, 1))
    # (3, 5, 3) could be read either way: input_data_format decides
    array = np.random.RandomState(0).randint(0, 256, (3, 5, 3)).astype(np.uint8)
    as_last = fast(array, input_data_format="channels_last", do_resize=False, do_center_crop=False)["pixel_values"]
    assert as_last.shape == (1, 3, 3, 5)
    as_first = fast(array, input_data_format="channels_first", do_resize=False, do_center_crop=False)["pixel_values"]
    assert as_first.shape == (1, 3, 5, 3)


def test_return_tensors(images):
    fast = MobileViTImageProcessorFast(crop_size=32, size=32)
    assert isinstance(fast(images[0], return_tensors=None)["pixel_values"], list)
    try:
        import torch
    except ImportError:
        with pytest.raises(ValueError, match='return_tensors="pt" needs torch'):
            fast(images[0], return_tensors="pt")
    else:
        out = fast(images[0], return_tensors="pt")["pixel_values"]
        assert isinstance(out, torch.Tensor) and tuple(out.shape) == (1, 3, 32, 32)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"device": "cuda"}, "device must be 'cpu'"),
        ({"data_format": "channels_middle"}, "data_format must be 'channels_first' or 'channels_last'"),
        ({"return_tensors": "tf"}, "return_tensors must be 'np', 'pt' or None"),
        ({"size": {"longest_edge": 3}}, r"size must have the keys \{shortest_edge\} or"),
    ],
)
def test_bad_arguments_are_clear_errors(images, arguments, message):
    with pytest.raises(ValueError, match=message):
        MobileViTImageProcessorFast()(images[0], **arguments)


def test_unknown_arguments_are_refused():
    with pytest.raises(TypeError):
        MobileViTImageProcessorFast(do_sharpen=True)
