"""Loading a checkpoint for a task, with the checks the commands and bulk runs share.

    folder, config = check_checkpoint(MobileViTForImageClassification, "path/to/mobilevit-small")
    model, folder = load_model(MobileViTForImageClassification, "apple/mobilevit-small", backend="auto")
    processor = load_processor(folder)

A checkpoint with the other head (a segmenter given to classify) is refused after reading
config.json (or the safetensors header), before any weight is loaded.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mobilevit_np.config import MobileViTConfig
    from mobilevit_np.image_processing import MobileViTImageProcessor
    from mobilevit_np.modeling import _Model


class WrongHeadError(ValueError):
    """A checkpoint without the head the task needs: a segmenter given to classify (or the reverse), or no labels."""


def check_checkpoint(cls: type[_Model], model: str) -> tuple[str, MobileViTConfig]:
    """Resolve --model (folder or Hub id) and check that the checkpoint's head is cls's (reads config.json only)."""
    from mobilevit_np.auto import checkpoint_head
    from mobilevit_np.checkpoints.hub import resolve_checkpoint
    from mobilevit_np.config_v2 import load_config

    folder = resolve_checkpoint(model)
    config = load_config(folder)  # MobileViT or MobileViTV2, by model_type
    head = checkpoint_head(folder, config)
    if head is not None and head != cls.head:
        command = "segment" if head == "segmentation" else "classify"
        raise WrongHeadError(f"{model} is a {head} checkpoint; use `mobilevit-np {command}` for it")
    if config.num_labels == 0:  # transformers then puts an identity where the classifier would be
        raise WrongHeadError(
            f"{folder}/config.json has no labels (num_labels 0): the model outputs features, not classes"
        )
    return folder, config


def load_model(cls: type[_Model], model: str, backend: str = "numpy") -> tuple[_Model, str]:
    """Resolve --model, check the checkpoint's head, and load it: as `cls`'s MobileViTV2 twin for a v2 checkpoint."""
    from mobilevit_np.modeling_v2 import model_class

    folder, config = check_checkpoint(cls, model)
    return model_class(config, cls.head).from_pretrained(folder, backend=backend, config=config), folder


def load_processor(folder: str) -> MobileViTImageProcessor:
    """The checkpoint's preprocessor_config.json, or the documented defaults (with a note) if it has none."""
    from mobilevit_np.image_processing import PREPROCESSOR_CONFIG, MobileViTImageProcessor

    if os.path.isfile(os.path.join(folder, PREPROCESSOR_CONFIG)):
        return MobileViTImageProcessor.from_pretrained(folder)
    processor = MobileViTImageProcessor()
    crop = processor.crop_size
    defaults = f"shortest edge {processor.size['shortest_edge']}, crop {crop['height']}x{crop['width']}, bilinear"
    warnings.warn(f"no {PREPROCESSOR_CONFIG} in {folder}; using the defaults ({defaults})", stacklevel=2)
    return processor
