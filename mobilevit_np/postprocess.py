"""From logits to answers: a classifier's top-k classes, a segmenter's class mask at the image's own size.

    indices, probabilities = top_k_classes(classifier(pixel_values).logits[0], k=5)
    mask = segment_image(model, processor, image)      # (H, W) aligned with the image, in one call

transformers' rule lives where transformers has it, on the image processor:
`processor.post_process_semantic_segmentation(outputs, target_sizes=[(480, 640)])`.
Its target_sizes stretch the logits over the whole target: the logits only
see the processor's center crop, so on a non-square image the stretched mask is
shifted and squashed. `mask_at_image_size` instead undoes the processor's own
geometry (crop, then resize) and marks the pixels the crop cut off as 255, the
ignore index.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mobilevit_np.image_processing import (
    MobileViTImageProcessor,
    check_target_size,
    crop_window,
    is_channels_first,
    load_image,
)
from mobilevit_np.layers import interpolate_bilinear, softmax

if TYPE_CHECKING:
    from mobilevit_np.modeling import MobileViTForSemanticSegmentation

OUTSIDE = 255  # label of pixels the model did not see (the semantic_loss_ignore_index), up to 255 classes
WIDE_OUTSIDE = 65535  # the same for 256 .. 65535 classes, whose masks are saved as 16-bit PNGs
MAX_CLASSES = WIDE_OUTSIDE


def outside_label(num_labels: int) -> int:
    """The mask value of "not predicted" pixels: 255, or 65535 when 255 is a class id of its own."""
    if num_labels > MAX_CLASSES:
        raise ValueError(f"a segmenter of {num_labels} classes has more than a 16-bit mask can hold ({MAX_CLASSES})")
    return OUTSIDE if num_labels <= OUTSIDE else WIDE_OUTSIDE


def top_k_classes(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One image's logits (num_labels,) -> the k most probable (class indices, probabilities), most probable first.

    The softmax runs in float64, so the probabilities shown do not depend on the model's dtype;
    equal probabilities keep label order (a stable sort).
    """
    probs = softmax(np.asarray(logits).astype(np.float64))
    top = np.argsort(-probs, kind="stable")[:k]
    return top, probs[top]


def mask_at_image_size(
    logits: np.ndarray, image_size: tuple[int, int], processor: MobileViTImageProcessor
) -> np.ndarray:
    """One image's logits (num_labels, h, w) -> (H, W) mask aligned with the original image.

    The logits cover the processor's crop of the resized image. Upsample them to the
    crop (bilinear, as transformers), put the crop back where it came from in the resized
    image (pixels outside it get outside_label(num_labels): 255, or 65535 from 256 classes on),
    then resize that to the image's size
    with nearest neighbour, so labels stay labels.
    """
    logits = np.asarray(logits)
    logits = logits[0] if logits.ndim == 4 and logits.shape[0] == 1 else logits
    if logits.ndim != 3:
        raise ValueError(f"expected one image's logits (num_labels, h, w), got shape {logits.shape}")
    height, width = check_target_size(image_size)
    outside = outside_label(logits.shape[0])  # before the upsampling, which allocates per class
    geometry = processor.output_geometry(height, width)
    crop_mask = interpolate_bilinear(logits[None], geometry["crop"])[0].argmax(axis=0)  # (crop_h, crop_w)
    resized = np.full(geometry["resized"], outside, dtype=np.int32)
    image_part, crop_part = crop_window(geometry["resized"], geometry["crop"])
    resized[image_part] = crop_mask[crop_part]  # undo the center crop
    if geometry["resized"] != (height, width):
        resized = np.asarray(Image.fromarray(resized).resize((width, height), Image.Resampling.NEAREST))  # undo resize
    return resized.astype(np.int64)


def segment_image(
    model: MobileViTForSemanticSegmentation, processor: MobileViTImageProcessor, image: Any
) -> np.ndarray:
    """Image (path, PIL image or array) -> (H, W) int64 class mask at the image's own size, in one call."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    height, width = (image.height, image.width) if isinstance(image, Image.Image) else _array_size(image)
    logits = model(processor(image)["pixel_values"]).logits  # (1, K, h, w)
    return mask_at_image_size(logits[0], (height, width), processor)


def _array_size(image: np.ndarray) -> tuple[int, int]:
    """(H, W) of an (H, W), (H, W, C) or (C, H, W) array, by the processor's channel rule."""
    if is_channels_first(image.shape):
        return image.shape[1], image.shape[2]
    return image.shape[0], image.shape[1]
