"""Segmentation post-processing (transformers' rule, masks at the image's size) and the VOC colours."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import MobileViTForSemanticSegmentation, MobileViTImageProcessor
from mobilevit_np.palette import PASCAL_VOC_LABELS, colorize, overlay, voc_palette
from mobilevit_np.postprocess import OUTSIDE, mask_at_image_size, segment_image, top_k_classes

post_process_semantic_segmentation = MobileViTImageProcessor().post_process_semantic_segmentation


def random_logits(shape=(2, 5, 8, 8), seed=0) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=shape).astype(np.float32)


def test_top_k_classes_most_probable_first_ties_in_label_order():
    logits = np.array([0.0, 2.0, 1.0, 2.0, -1.0], dtype=np.float32)
    top, probs = top_k_classes(logits, 3)
    np.testing.assert_array_equal(top, [1, 3, 2])  # classes 1 and 3 tie: label order
    exp = np.exp(logits.astype(np.float64))
    np.testing.assert_allclose(probs, exp[[1, 3, 2]] / exp.sum(), rtol=1e-15)
    assert probs.dtype == np.float64  # float64 softmax whatever the model's dtype
    top, probs = top_k_classes(logits, 10)  # k above num_labels: every class
    assert list(top) == [1, 3, 2, 0, 4] and abs(probs.sum() - 1) < 1e-15


def test_without_target_sizes_argmax_at_logit_resolution():
    logits = random_logits()
    masks = post_process_semantic_segmentation(SimpleNamespace(logits=logits))
    assert len(masks) == 2 and masks[0].shape == (8, 8) and masks[0].dtype == np.int64
    np.testing.assert_array_equal(masks[1], logits[1].argmax(0))


def test_target_sizes_resize_each_image():
    logits = random_logits()
    masks = post_process_semantic_segmentation(logits, target_sizes=[(50, 60), (8, 8)])
    assert masks[0].shape == (50, 60) and masks[1].shape == (8, 8)
    np.testing.assert_array_equal(masks[1], logits[1].argmax(0))  # same size: no change
    # Upsampling x2 with align_corners=False: output pixel (1, 1) sits at input (0.25, 0.25).
    twice = post_process_semantic_segmentation(logits[:1], target_sizes=[(16, 16)])[0]
    expected = 0.5625 * logits[0, :, 0, 0] + 0.1875 * (logits[0, :, 0, 1] + logits[0, :, 1, 0])
    expected += 0.0625 * logits[0, :, 1, 1]
    assert twice[1, 1] == expected.argmax()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_sizes": [(5, 5)]}, "as many target sizes as the batch dimension"),
        ({"target_sizes": [(5, 0), (5, 5)]}, "positive integers"),
    ],
)
def test_bad_target_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        post_process_semantic_segmentation(random_logits(), **kwargs)


def test_logits_must_be_4d():
    with pytest.raises(ValueError, match="batch, num_labels, height, width"):
        post_process_semantic_segmentation(np.zeros((5, 8, 8)))


@pytest.mark.parity
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-5), (np.float64, 1e-9)])
@pytest.mark.parametrize("target_sizes", [[(50, 60), (480, 640)], None])
def test_matches_transformers_post_processing(target_sizes, dtype, rtol):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    theirs_processor = (
        getattr(transformers, "MobileViTImageProcessorPil", None) or transformers.MobileViTImageProcessor
    )()
    logits = random_logits((2, 21, 32, 32), seed=3).astype(dtype)
    theirs = theirs_processor.post_process_semantic_segmentation(
        SimpleNamespace(logits=torch.from_numpy(logits)), target_sizes=target_sizes, return_segmentation_scores=True
    )
    ours = post_process_semantic_segmentation(
        SimpleNamespace(logits=logits), target_sizes=target_sizes, return_segmentation_scores=True
    )
    masks = post_process_semantic_segmentation(logits, target_sizes)  # the default: masks only, as theirs
    sizes = target_sizes or [(32, 32)] * 2
    assert len(ours) == len(theirs) == len(masks) == 2
    for a, b, mask, size in zip(ours, theirs, masks, sizes, strict=True):
        assert set(a) == set(b) == {"segmentation", "segmentation_scores"}
        assert a.segmentation.shape == size and a.segmentation.dtype == np.int64
        np.testing.assert_array_equal(a.segmentation, b.segmentation.numpy())
        np.testing.assert_array_equal(mask, a.segmentation)
        # Relative to the scores' scale: interpolated values cross zero, where elementwise rtol means nothing.
        b_scores = b.segmentation_scores.numpy()
        assert a.segmentation_scores.dtype == dtype
        np.testing.assert_allclose(a.segmentation_scores, b_scores, rtol=rtol, atol=rtol * np.abs(b_scores).max())


def test_mask_at_image_size_undoes_crop_and_resize():
    """60x40 image -> resized 30x20 -> crop 20x20 at columns 5..24; class 1 on the crop's left half."""
    processor = MobileViTImageProcessor(size=20, crop_size=20)
    logits = np.zeros((2, 20, 20), np.float32)
    logits[1, :, :10] = 1.0
    logits[0, :, 10:] = 1.0
    mask = mask_at_image_size(logits, (40, 60), processor)
    assert mask.shape == (40, 60) and mask.dtype == np.int64
    expected = np.full((40, 60), OUTSIDE)
    expected[:, 10:30] = 1  # resized columns 5..14, doubled
    expected[:, 30:50] = 0
    np.testing.assert_array_equal(mask, expected)


def test_mask_at_image_size_when_the_crop_pads():
    """A crop larger than the resized image: every pixel was seen, none is OUTSIDE."""
    processor = MobileViTImageProcessor(size=16, crop_size=(32, 32))
    logits = random_logits((1, 3, 4, 4))[0]
    mask = mask_at_image_size(logits, (20, 30), processor)
    assert mask.shape == (20, 30) and OUTSIDE not in mask


def test_segment_image_in_one_call(make_checkpoint):
    model = MobileViTForSemanticSegmentation.from_pretrained(make_checkpoint("segmentation", num_labels=4))
    processor = MobileViTImageProcessor(size=64, crop_size=64)
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (45, 70, 3), dtype=np.uint8))
    mask = segment_image(model, processor, image)
    assert mask.shape == (45, 70)
    assert set(np.unique(mask)) <= {0, 1, 2, 3, OUTSIDE} and OUTSIDE in mask  # 70 -> 99 wide, crop 64
    logits = model(processor(image)["pixel_values"]).logits
    np.testing.assert_array_equal(mask, mask_at_image_size(logits, (45, 70), processor))
    np.testing.assert_array_equal(segment_image(model, processor, np.asarray(image)), mask)
    np.testing.assert_array_equal(segment_image(model, processor, np.asarray(image).transpose(2, 0, 1)), mask)


# ---------------------------------------------------------------- colours


def test_voc_palette_known_colours():
    palette = voc_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]  # aeroplane
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # ignore / border
    assert len({tuple(c) for c in palette}) == 256


def test_voc_labels_beside_their_colours():
    assert len(PASCAL_VOC_LABELS) == 21 and PASCAL_VOC_LABELS[8] == "cat" and PASCAL_VOC_LABELS[15] == "person"
    assert voc_palette()[PASCAL_VOC_LABELS.index("aeroplane")].tolist() == [128, 0, 0]


def test_colorize_keeps_the_class_indices():
    mask = np.array([[0, 1, 2], [15, 255, 3]])
    image = colorize(mask)
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), mask)
    np.testing.assert_array_equal(np.asarray(image.convert("RGB")), voc_palette()[mask])


def test_overlay_blends_only_predicted_classes():
    photo = np.full((2, 3, 3), 200, np.uint8)
    mask = np.array([[0, 1, 255], [15, 15, 1]])
    out = np.asarray(overlay(Image.fromarray(photo), mask, alpha=0.5))
    assert out[0, 0].tolist() == [200, 200, 200] and out[0, 2].tolist() == [200, 200, 200]  # background, 255
    assert out[0, 1].tolist() == [164, 100, 100]  # (200 + 128) / 2, (200 + 0) / 2
    everything = np.asarray(overlay(photo, mask, alpha=1.0, background=None))
    assert everything[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((2, 2)), "integer class indices"),
        (np.full((2, 3), 70000), "must lie in \\[0, 65535\\]"),
        (np.zeros((3, 3), int), "same height and width"),
    ],
)
def test_overlay_errors(mask, message):
    with pytest.raises(ValueError, match=message):
        overlay(np.zeros((2, 3, 3), np.uint8), mask)
