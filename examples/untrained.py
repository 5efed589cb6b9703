"""A stand-in checkpoint for the examples: the real architecture with seeded random weights.

The Apple checkpoints cannot be downloaded everywhere (CI runs offline), so without
--checkpoint the examples write one of these to a temporary folder and say so. Its
weights are UNTRAINED: shapes and code paths are real, predictions are noise. To use
the real model, download apple/mobilevit-small (or apple/deeplabv3-mobilevit-small)
once, e.g. with `huggingface-cli download apple/mobilevit-small --local-dir mobilevit-small`,
and pass --checkpoint mobilevit-small.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.image_processing import MobileViTImageProcessor
from mobilevit_np.palette import PASCAL_VOC_LABELS
from mobilevit_np.presets import preset_config
from mobilevit_np.random_weights import random_state_dict

CATS = Path(__file__).resolve().parent / "images" / "cats.png"

ARCHITECTURES = {
    "classification": "MobileViTForImageClassification",
    "segmentation": "MobileViTForSemanticSegmentation",
}
# What the Apple checkpoints' preprocessor_config.json files say.
PROCESSORS = {
    "classification": dict(size={"shortest_edge": 288}, crop_size={"height": 256, "width": 256}),
    "segmentation": dict(size={"shortest_edge": 544}, crop_size={"height": 512, "width": 512}),
}


@contextmanager
def checkpoint_folder(checkpoint: str | None, head: str = "classification", size: str = "small") -> Iterator[str]:
    """`checkpoint` itself when given; otherwise a temporary untrained checkpoint, deleted afterwards."""
    if checkpoint is not None:
        yield checkpoint
        return
    overrides = {"id2label": dict(enumerate(PASCAL_VOC_LABELS))} if head == "segmentation" else {}
    config = preset_config(size, head, **overrides)
    config.extra["architectures"] = [ARCHITECTURES[head]]  # as in the real checkpoints' config.json
    with tempfile.TemporaryDirectory(prefix="mobilevit-untrained-") as folder:
        save_checkpoint(folder, config, random_state_dict(config, head, seed=0))
        MobileViTImageProcessor(**PROCESSORS[head]).save_pretrained(folder)
        print(
            f"note: no --checkpoint given, so this runs mobilevit-{size}'s architecture with UNTRAINED random "
            "weights: the code paths and shapes are real, the predictions are noise.",
            file=sys.stderr,
        )
        yield folder
