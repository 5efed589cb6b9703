"""transformers' Auto classes for MobileViT: pick the class a checkpoint's config files name.

    model = AutoModelForImageClassification.from_pretrained("apple/mobilevit-small")
    processor = AutoImageProcessor.from_pretrained("apple/mobilevit-small")

As transformers decides: the model class comes from config.json's `model_type` ("mobilevit"
or "mobilevitv2": MobileViTV2Model, ...), and a head class must fit the checkpoint, which `architectures`
names, or else its tensor names (a segmenter's checkpoint is not a classifier). The processor comes from
preprocessor_config.json's `image_processor_type`, or its legacy `feature_extractor_type`
(MobileViTFeatureExtractor -> MobileViTImageProcessor), a trailing "Fast" or "Pil" naming the
same processor; without either, from config.json's model_type.
"""

from __future__ import annotations

import os
from typing import Any

from mobilevit_np.checkpoints.hub import resolve_checkpoint
from mobilevit_np.checkpoints.safetensors_io import read_header
from mobilevit_np.config import ConfigError, LabelledConfig, read_json_file
from mobilevit_np.config_v2 import CONFIG_CLASSES, config_from_dict
from mobilevit_np.fast_processor import MobileViTImageProcessorFast
from mobilevit_np.image_processing import PREPROCESSOR_CONFIG, MobileViTImageProcessor
from mobilevit_np.modeling import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    _PreTrained,
)
from mobilevit_np.modeling_v2 import model_class as generation_class

PROCESSOR_NAMES = ("MobileViTImageProcessor", "MobileViTImageProcessorFast", "MobileViTImageProcessorPil")
HEAD_CLASSES = {cls.head: cls for cls in (MobileViTForImageClassification, MobileViTForSemanticSegmentation)}


def read_model_type(folder: str) -> dict[str, Any]:
    """config.json as a dict, after checking its model_type is MobileViT's or MobileViTV2's (one clear error if not)."""
    file = os.path.join(folder, "config.json")
    if not os.path.isfile(file):
        raise ConfigError(f"config.json not found: {file}")
    data = read_json_file(file, ConfigError)
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(
            f"{file}: model_type is {model_type!r}; mobilevit_np's Auto classes know only 'mobilevit' "
            "(MobileViTModel, MobileViTForImageClassification, MobileViTForSemanticSegmentation) and 'mobilevitv2' "
            "(the same classes named MobileViTV2...)"
        )
    return data


def checkpoint_head(folder: str, config: LabelledConfig) -> str | None:
    """ "classification" or "segmentation" from the folder's config (its architectures), else from the tensor names."""
    architectures = config.extra.get("architectures") or []
    names = " ".join(architectures)
    if not names and os.path.isfile(os.path.join(folder, "model.safetensors")):
        names = " ".join(read_header(os.path.join(folder, "model.safetensors"))[0])  # header only, no weights
    if "Segmentation" in names or "segmentation_head." in names:
        return "segmentation"
    if "ImageClassification" in names or "classifier." in names:
        return "classification"
    return None


class AutoConfig:
    """AutoConfig.from_pretrained(folder or Hub id) -> MobileViTConfig or MobileViTV2Config (by model_type)."""

    @staticmethod
    def from_pretrained(name_or_path: str | os.PathLike, **overrides: Any) -> LabelledConfig:
        """config.json as its generation's config; keyword arguments override its fields (as transformers' kwargs)."""
        folder = resolve_checkpoint(name_or_path)
        data = read_model_type(folder)
        return config_from_dict({**data, **overrides})


class _AutoModel:
    model_class: type[_PreTrained]

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> _PreTrained:
        """The checkpoint as `model_class` (keyword arguments as its from_pretrained: dtype, backend, config, ...)."""
        folder = resolve_checkpoint(name_or_path)
        config = kwargs.pop("config", None)
        if config is None:
            config = config_from_dict(read_model_type(folder))
        saved = checkpoint_head(folder, config)
        wanted = cls.model_class.head
        target = generation_class(config, wanted)  # MobileViT or MobileViTV2, by model_type
        if wanted == "base" and saved == "segmentation":
            # A segmenter has no conv_1x1_exp (transformers would fill it with random weights): leave it out.
            kwargs.setdefault("expand_output", False)
        elif wanted != "base" and saved not in (None, wanted):
            raise ValueError(
                f"{name_or_path} is a {saved} checkpoint (a {HEAD_CLASSES[saved].__name__}); {cls.__name__} "
                f"needs a {wanted} checkpoint (a {target.__name__})"
            )
        return target.from_pretrained(folder, config=config, **kwargs)

    @classmethod
    def from_config(cls, config: LabelledConfig, state_dict: dict | None = None, **kwargs: Any) -> _PreTrained:
        """The model for `config` (either generation); without a state_dict, with seeded random weights."""
        if not isinstance(config, LabelledConfig):
            raise TypeError(f"config must be a MobileViTConfig or MobileViTV2Config, got {type(config).__name__}")
        target = generation_class(config, cls.model_class.head)
        if state_dict is None:
            from mobilevit_np.random_weights import random_state_dict

            state_dict = random_state_dict(config, target.head, shapes=target._expected_shapes(config))
        return target.from_config(config, state_dict, **kwargs)


class AutoModel(_AutoModel):
    """MobileViTModel: the backbone of any MobileViT checkpoint (a segmenter's without conv_1x1_exp)."""

    model_class = MobileViTModel


class AutoModelForImageClassification(_AutoModel):
    model_class = MobileViTForImageClassification


class AutoModelForSemanticSegmentation(_AutoModel):
    model_class = MobileViTForSemanticSegmentation


def processor_class_name(settings: dict[str, Any], folder: str) -> str:
    """The processor class preprocessor_config.json names (legacy names mapped), else config.json's model_type's."""
    name = settings.get("image_processor_type")
    if name is None and isinstance(settings.get("feature_extractor_type"), str):
        name = settings["feature_extractor_type"].replace("FeatureExtractor", "ImageProcessor")
    if name is None:
        read_model_type(folder)
        return "MobileViTImageProcessor"
    if name not in PROCESSOR_NAMES:
        raise ValueError(
            f"{os.path.join(folder, PREPROCESSOR_CONFIG)} names the image processor {name!r}; mobilevit_np has "
            f"only {', '.join(PROCESSOR_NAMES)} (MobileViT's)"
        )
    return name


class AutoImageProcessor:
    """AutoImageProcessor.from_pretrained(folder or Hub id) -> MobileViTImageProcessor (or ...Fast)."""

    @staticmethod
    def from_pretrained(
        name_or_path: str | os.PathLike, use_fast: bool | None = None, backend: str | None = None, **overrides: Any
    ) -> MobileViTImageProcessor:
        """The checkpoint's processor; keyword arguments override its settings (e.g. size=..., crop_size=...).

        MobileViTImageProcessor (Pillow, what transformers' "pil" backend computes) unless
        use_fast=True or backend="torchvision" asks for MobileViTImageProcessorFast by name
        (the same outputs).
        """
        if backend not in (None, "pil", "torchvision"):
            raise ValueError(f"backend must be 'pil', 'torchvision' or None, got {backend!r}")
        folder = resolve_checkpoint(name_or_path)
        file = os.path.join(folder, PREPROCESSOR_CONFIG)
        settings = read_json_file(file, ValueError) if os.path.isfile(file) else {}
        if not isinstance(settings, dict):
            raise ValueError(f"{file}: a preprocessor config must be a JSON object")
        processor_class_name(settings, folder)
        fast = bool(use_fast) or backend == "torchvision"
        cls = MobileViTImageProcessorFast if fast else MobileViTImageProcessor
        try:
            return cls.from_dict({**settings, **overrides})
        except ValueError as e:
            raise ValueError(f"{file}: {e}") from None
