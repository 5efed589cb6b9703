"""MobileViTImageProcessorFast: transformers' torchvision-backed processor by name and arguments, without torch.

    processor = MobileViTImageProcessorFast.from_pretrained("path/to/mobilevit-small")
    inputs = processor(image, return_tensors="np", device="cpu", disable_grouping=True)

Its outputs are MobileViTImageProcessor's (Pillow resizing, which is what transformers'
Pillow backend computes; its torchvision backend differs from that by antialiasing details).
The arguments that only steer transformers' torch machinery are accepted and checked:

- do_normalize, image_mean, image_std, do_pad, pad_size: transformers' MobileViT processor
  accepts these and never applies them (MobileViT sees pixels in [0, 1], unpadded); so here.
- do_convert_rgb: images are always converted to RGB (see image_processing.py), so True,
  False and None give the same result for RGB inputs.
- disable_grouping: transformers batches same-sized images together; here each image is
  processed on its own, so the flag changes nothing.
- device: "cpu" (or None); any other device is an error, NumPy runs on the CPU.
- data_format: "channels_first" (default, (B, 3, H, W)) or "channels_last" ((B, H, W, 3)).
- input_data_format: "channels_first" or "channels_last" says where an array's channels are,
  for arrays whose shape could be read either way.
- return_tensors: "np" or None as MobileViTImageProcessor; "pt" gives torch tensors when torch
  happens to be installed (this package never needs it) and is an error otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mobilevit_np.image_processing import BatchFeature, ImageLike, MobileViTImageProcessor

CHANNEL_FORMATS = ("channels_first", "channels_last")
IGNORED_ARGUMENTS = ("do_normalize", "image_mean", "image_std", "do_pad", "pad_size", "do_convert_rgb")
TORCH_ONLY_ARGUMENTS = ("disable_grouping", "device")


def _channel_format(name: str, value: Any) -> str | None:
    value = getattr(value, "value", value)  # transformers' ChannelDimension enum
    if value is not None and value not in CHANNEL_FORMATS:
        raise ValueError(f"{name} must be 'channels_first' or 'channels_last', got {value!r}")
    return value


def _check_device(device: Any) -> None:
    if device is not None and str(device) != "cpu":
        raise ValueError(f"device must be 'cpu' (or None): mobilevit_np runs on the CPU with NumPy, got {device!r}")


def _channels_first(image: ImageLike, input_data_format: str | None) -> ImageLike:
    """An (H, W, C) array said to be channels_last, as (C, H, W), so the channel axis is never guessed."""
    if input_data_format == "channels_last" and isinstance(image, np.ndarray) and image.ndim == 3:
        return image.transpose(2, 0, 1)
    return image


class MobileViTImageProcessorFast(MobileViTImageProcessor):
    """MobileViTImageProcessor under transformers' "Fast" name, taking every argument transformers' does."""

    def __init__(self, **kwargs: Any) -> None:
        extras = {name: kwargs.pop(name) for name in (*IGNORED_ARGUMENTS, *TORCH_ONLY_ARGUMENTS) if name in kwargs}
        _check_device(extras.get("device"))
        self.data_format = _channel_format("data_format", kwargs.pop("data_format", "channels_first"))
        super().__init__(**kwargs)
        self.ignored = extras  # kept so that to_dict writes back what the config said

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), **self.ignored, "image_processor_type": "MobileViTImageProcessorFast"}

    def preprocess(
        self,
        images: ImageLike | list[ImageLike],
        segmentation_maps: ImageLike | list[ImageLike] | None = None,
        return_tensors: str | None = "np",
        **overrides: Any,
    ) -> BatchFeature:
        """As MobileViTImageProcessor.preprocess, plus the arguments in this module's docstring."""
        for name in IGNORED_ARGUMENTS + ("disable_grouping",):
            overrides.pop(name, None)
        _check_device(overrides.pop("device", None))
        data_format = _channel_format("data_format", overrides.pop("data_format", self.data_format)) or "channels_first"
        input_format = _channel_format("input_data_format", overrides.pop("input_data_format", None))
        if return_tensors not in ("np", "pt", None):
            raise ValueError(f"return_tensors must be 'np', 'pt' or None, got {return_tensors!r}")
        torch = _torch() if return_tensors == "pt" else None
        if isinstance(images, (list, tuple)):
            images = [_channels_first(image, input_format) for image in images]
        else:
            images = _channels_first(images, input_format)
        arrays = None if return_tensors is None else "np"
        out = super().preprocess(images, segmentation_maps, return_tensors=arrays, **overrides)
        if data_format == "channels_last":
            out["pixel_values"] = _to_channels_last(out["pixel_values"])
        if torch is not None:
            return BatchFeature({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in out.items()})
        return out

    __call__ = preprocess


def _to_channels_last(pixel_values: np.ndarray | list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if isinstance(pixel_values, list):
        return [np.ascontiguousarray(p.transpose(1, 2, 0)) for p in pixel_values]
    return np.ascontiguousarray(pixel_values.transpose(0, 2, 3, 1))


def _torch():
    try:
        import torch
    except ImportError:
        raise ValueError(
            'return_tensors="pt" needs torch, which is not installed (mobilevit_np never needs it); use "np"'
        ) from None
    return torch
