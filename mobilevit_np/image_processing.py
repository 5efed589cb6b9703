"""MobileViTImageProcessor: a picture in, `pixel_values` out, exactly as transformers prepares them.

    processor = MobileViTImageProcessor.from_pretrained("path/to/mobilevit-small")
    inputs = processor(load_image("cats.png"), return_tensors="np")
    inputs["pixel_values"]  # float32 (1, 3, 256, 256), BGR, values in [0, 1]

The real work is five steps, in transformers' order (its Pillow-based processor,
`MobileViTImageProcessorPil` in transformers 5.x, `MobileViTImageProcessor` in 4.x):

    1. resize so the shortest edge is `size["shortest_edge"]` (Pillow, `resample`)
    2. rescale: uint8 -> float32 times 1/255
    3. center crop to `crop_size`, padding with zeros when the image is smaller
    4. flip RGB -> BGR (the Apple checkpoints were trained on OpenCV's BGR images)
    5. stack channels first: (B, 3, H, W)

There is no mean/std normalisation: MobileViT sees pixels in [0, 1].

Resizing goes through Pillow, not NumPy, because Pillow's filters antialias when
shrinking and round to uint8; matching transformers bit for bit needs the same code.

Which images become RGB, and EXIF orientation (checked against transformers 5.24):
- A path (str or os.PathLike) is opened by `load_image`, which applies the EXIF
  orientation tag and converts to RGB, as transformers' `load_image` (and so its
  processor, when given a path) does.
- A PIL image is used as stored: no EXIF rotation, as in transformers. Non-RGB modes
  (L, LA, P, RGBA, CMYK, 1, I;16) are converted to RGB with Pillow's `convert("RGB")`,
  so `processor(Image.open(p))` equals `processor(p)` for an upright image. transformers
  does not convert a PIL image (do_convert_rgb is None for MobileViT): it would hand a
  1- or 4-channel image to the model. Alpha is dropped, not composited.
- 16-bit grey (PIL mode I;16) keeps its high byte (value >> 8); Pillow's convert, and so
  transformers' load_image, clips such values at 255, which turns most 16-bit images white.
- Arrays: (H, W) grey, (H, W, C) or (C, H, W) with C in 1, 3, 4 (channels first wins when
  both ends could be channels, as in transformers); grey is repeated to 3 channels and a
  4th (alpha) channel is dropped. uint8 arrays are pixels 0..255; float arrays in [0, 1]
  are quantised to uint8 for Pillow (x * 255, truncated) and scaled back by 1/255 after
  resizing, exactly as transformers does, so pass them with do_rescale=False.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from mobilevit_np.config import read_settings_file, write_json_file
from mobilevit_np.image_sources import is_url, open_source
from mobilevit_np.layers import interpolate_bilinear

if TYPE_CHECKING:
    from mobilevit_np.modeling import SemanticSegmenterOutput

PREPROCESSOR_CONFIG = "preprocessor_config.json"
RESAMPLE_NAMES = {int(r): r.name for r in Image.Resampling}  # 0 NEAREST, 2 BILINEAR, 3 BICUBIC, ...
CHANNEL_COUNTS = (1, 3, 4)  # what an array's channel axis may hold (grey, RGB, RGBA)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")

ImageLike = Any  # PIL.Image.Image | np.ndarray | str | os.PathLike


# ------------------------------------------------------------------ reading images


def load_image(image: str | os.PathLike | Image.Image, timeout: float | None = None) -> Image.Image:
    """An image upright and in RGB, as transformers' `load_image` returns it (EXIF orientation applied).

    `image`: a local path, an http(s) URL (downloaded, redirects followed; `timeout` in seconds,
    None waits forever as in transformers), a base64 string or data URI, or a PIL image (see
    image_sources.py). Data that is not a whole, readable image is a ValueError naming its
    source. Pillow's decompression-bomb limit applies: above PIL.Image.MAX_IMAGE_PIXELS (89.5
    million pixels by default) Pillow warns (DecompressionBombWarning) and the image loads;
    above twice that it is refused before any pixel is decoded.
    """
    if isinstance(image, Image.Image):
        return to_rgb(ImageOps.exif_transpose(image))
    if not isinstance(image, (str, os.PathLike)):
        raise TypeError(
            f"an image must be a path, an http(s) URL, base64 text or a PIL image, got {type(image).__name__}"
        )
    source = open_source(image, timeout)
    path = os.fspath(image) if isinstance(source, str) else _describe(image)
    if isinstance(source, str):
        check_image_file(path)
        if os.path.getsize(path) == 0:
            raise ValueError(f"{path}: empty file (0 bytes), not an image")
    elif not source.getbuffer().nbytes:
        raise ValueError(f"{path}: empty (0 bytes), not an image")
    return decode_image(source, path)


def decode_image(source: str | io.BytesIO, name: str) -> Image.Image:
    """An image file (a path, or its bytes in memory, e.g. read through fsspec) -> upright RGB; errors name `name`."""
    try:
        with Image.open(source) as opened:
            opened.load()  # read the pixels before the file closes
            upright = ImageOps.exif_transpose(opened)
    except Image.UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise ValueError(
            f"{name}: refused as a possible decompression bomb ({e}); if you trust the file, raise "
            "PIL.Image.MAX_IMAGE_PIXELS"
        ) from None
    except MemoryError:
        raise
    except Exception as e:  # Pillow's decoders report broken data as OSError, SyntaxError, ValueError, EOFError, ...
        raise ValueError(f"{name}: truncated or corrupt image file ({type(e).__name__}: {e})") from None
    try:
        return to_rgb(upright)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def check_image_file(path: str) -> None:
    """Refuse a path that is not a regular file: missing, a folder, or a pipe or device (which could block)."""
    if os.path.isfile(path):
        return
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not an image file")
    if os.path.exists(path):
        raise ValueError(f"{path} is not a regular file (a pipe, socket or device); images are read from files")
    raise FileNotFoundError(f"image not found: {path}")


def _describe(source: str | os.PathLike) -> str:
    """How errors name an image that is not a file: the URL itself, or the start of its base64 text."""
    text = os.fspath(source)
    return text if is_url(text) else f"base64 image data {text[:32]!r}..."


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB (grey repeated, palette looked up, alpha dropped, 16-bit reduced to 8).

    32-bit modes have no pixel range Pillow's convert understands: it saturates mode I values
    above 255 to white and turns mode F black (and so does transformers). Mode I is taken when
    its values lie in 0..255 (where transformers agrees); otherwise both are refused.
    """
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        # Keep the high byte, as Pillow itself does for 16-bit RGB PNGs.
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8))
    elif image.mode == "F":
        raise ValueError(
            "a 32-bit float image (PIL mode F) has no standard pixel range (Pillow's RGB conversion turns it black); "
            "scale it to 0..255 and convert it to mode L, or pass an array of values in [0, 1] with do_rescale=False"
        )
    elif image.mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(
                f"a 32-bit integer image (PIL mode I) with values {values.min()}..{values.max()}: Pillow's RGB "
                "conversion would saturate them to white; scale them to 0..255 (mode L) first"
            )
        image = Image.fromarray(values.astype(np.uint8))
    return image.convert("RGB")


def is_channels_first(shape: tuple[int, ...]) -> bool:
    """Whether an image array of this shape is (C, H, W): 3-D with 1, 3 or 4 first; else (H, W) or (H, W, C).

    When both ends could be channels, as in (3, 4, 3), the first axis wins.
    """
    return len(shape) == 3 and shape[0] in CHANNEL_COUNTS


def _as_chw(image: ImageLike) -> np.ndarray:
    """One image -> (3, H, W) array: uint8 from files and PIL, the array's own dtype otherwise."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image)).transpose(2, 0, 1)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"an image must be a PIL image, a NumPy array or a file path, got {type(image).__name__}")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"image arrays must hold integers or floats, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[None]  # (1, H, W)
    elif image.ndim != 3:
        raise ValueError(f"an image array must be (H, W), (H, W, C) or (C, H, W), got shape {image.shape}")
    elif not is_channels_first(image.shape):
        if image.shape[2] not in CHANNEL_COUNTS:
            raise ValueError(f"cannot find the channel axis of shape {image.shape}: expected 1, 3 or 4 channels")
        image = image.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
    if min(image.shape[1:]) < 1:
        raise ValueError(f"empty image: shape {image.shape}")
    if image.shape[0] == 1:
        return np.repeat(image, 3, axis=0)  # grey -> RGB
    return image[:3]  # RGBA -> RGB (alpha dropped, as Pillow's convert does)


def _as_label_map(label_map: ImageLike) -> np.ndarray:
    """One segmentation map (PIL image or 2-D array of class indices) -> (1, H, W) array."""
    if isinstance(label_map, Image.Image):
        if label_map.mode not in ("L", "P", "I", *SIXTEEN_BIT_MODES):
            raise ValueError(f"a segmentation map must be a one-channel image (L, P or I), got mode {label_map.mode}")
        label_map = np.asarray(label_map)
    if not isinstance(label_map, np.ndarray) or label_map.ndim != 2:
        shape = getattr(label_map, "shape", type(label_map).__name__)
        raise ValueError(f"a segmentation map must be a PIL image or a 2-D array of class indices, got {shape}")
    if not np.issubdtype(label_map.dtype, np.integer):
        raise ValueError(f"segmentation maps hold integer class indices, got dtype {label_map.dtype}")
    if label_map.size and (label_map.min() < 0 or label_map.max() > 255):
        # Maps are resized through Pillow's 8-bit mode, as transformers' Pillow processor does.
        raise ValueError(f"segmentation map class indices must lie in 0..255, got {label_map.min()}..{label_map.max()}")
    return label_map[None]


def _flat_list(items: Any, single_ndim: int) -> list:
    """An image (or map), a list of them, or a stacked batch array -> a list."""
    if isinstance(items, np.ndarray):
        return list(items) if items.ndim == single_ndim + 1 else [items]
    if isinstance(items, (list, tuple)):
        if not items:
            raise ValueError("no images given (empty list)")
        return list(items)
    return [items]


# ------------------------------------------------------------ the five steps


def shortest_edge_size(height: int, width: int, shortest_edge: int) -> tuple[int, int]:
    """(new_height, new_width) with the shorter side == shortest_edge; the longer side truncates.

    640x480 (W x H) at 288 -> (288, 384): int(288 * 640 / 480) = 384. Same rule as
    transformers' get_resize_output_image_size (and torchvision's Resize).
    """
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest_edge, int(shortest_edge * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def bounded_edges_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """{shortest_edge, longest_edge}: the shorter side to shortest_edge unless the longer would pass longest_edge.

    transformers' get_size_with_aspect_ratio, rounding included: when the longer side would be
    too long, the shorter becomes round(longest_edge * short / long) and the longer side is
    truncated from that unrounded value.
    """
    short, long = min(height, width), max(height, width)
    target, raw = shortest_edge, None
    if long / short * shortest_edge > longest_edge:
        raw = longest_edge * short / long
        target = int(round(raw))
    if short == target:
        return height, width
    scale = target if raw is None else raw
    if width < height:
        return int(scale * height / width), target
    return target, int(scale * width / height)


def max_height_width_size(height: int, width: int, max_height: int, max_width: int) -> tuple[int, int]:
    """{max_height, max_width}: the largest aspect-preserving size inside the box (may enlarge), truncated."""
    scale = min(max_height / height, max_width / width)
    return int(height * scale), int(width * scale)


def resized_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """(new_height, new_width) for any form of `size` (see _size_dict), as transformers' resize decides it."""
    if "longest_edge" in size:
        return bounded_edges_size(height, width, size["shortest_edge"], size["longest_edge"])
    if "shortest_edge" in size:
        return shortest_edge_size(height, width, size["shortest_edge"])
    if "max_height" in size:
        return max_height_width_size(height, width, size["max_height"], size["max_width"])
    return size["height"], size["width"]


def _to_uint8_for_pillow(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Pillow resizes 8-bit images: convert as transformers' to_pil_image does.

    Returns the uint8 image and whether it was scaled from [0, 1] (to be scaled back).
    Integer-valued data in [0, 255] is cast; floats in [0, 1] are multiplied by 255 and
    truncated (not rounded), which is what transformers does.
    """
    if image.dtype == np.uint8:
        return image, False
    with np.errstate(invalid="ignore"):
        integral = np.allclose(image, image.astype(np.int64))
    if integral:
        if image.min() < 0 or image.max() > 255:
            raise ValueError(
                f"image values must lie in [0, 255] (or [0, 1] for floats) to be resized, got "
                f"[{image.min()}, {image.max()}]"
            )
        return image.astype(np.uint8), False
    if not (image.min() >= 0 and image.max() <= 1):
        raise ValueError(f"float image values must lie in [0, 1] to be resized, got [{image.min()}, {image.max()}]")
    return (image.astype(np.float64) * 255).astype(np.float32).astype(np.uint8), True


def resize(image: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """(C, H, W) -> (C, *size) with Pillow's filter `resample` (C is 1 or 3)."""
    pixels, scaled = _to_uint8_for_pillow(image)
    hwc = pixels.transpose(1, 2, 0)
    pil = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)  # mode L or RGB
    out = np.asarray(pil.resize((size[1], size[0]), resample=resample))  # Pillow takes (width, height)
    out = (out[:, :, None] if out.ndim == 2 else out).transpose(2, 0, 1)  # (C, h, w)
    return rescale(out, 1 / 255) if scaled else out


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """image * factor as float32, computed in float64 first (transformers' order of rounding)."""
    return (image.astype(np.float64) * factor).astype(np.float32)


def crop_window(shape: tuple[int, int], size: tuple[int, int]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where center_crop takes pixels from and puts them: (image slices, crop slices).

    Along each axis: if the image is at least as long as the crop, the window starts at
    (length - crop) // 2; otherwise the whole image lands at offset ceil((crop - length) / 2)
    of the crop, the rest being zeros. Same offsets as transformers' center_crop.
    """
    src, dst = [], []
    for length, crop in zip(shape, size, strict=True):
        if length >= crop:
            start = (length - crop) // 2
            src.append(slice(start, start + crop))
            dst.append(slice(0, crop))
        else:
            start = math.ceil((crop - length) / 2)
            src.append(slice(0, length))
            dst.append(slice(start, start + length))
    return tuple(src), tuple(dst)


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) -> (C, *size): the middle window, zero-padded where the image is smaller."""
    src, dst = crop_window(image.shape[1:], size)
    out = np.zeros((image.shape[0], *size), dtype=image.dtype)
    out[(slice(None), *dst)] = image[(slice(None), *src)]
    return out


def flip_channel_order(image: np.ndarray) -> np.ndarray:
    """(3, H, W) RGB <-> BGR."""
    return image[::-1]


def reduce_labels(label_map: np.ndarray) -> np.ndarray:
    """Shift class indices down by one; 0 (background) becomes 255, the ignore index.

    For datasets like ADE20k where 0 means "no class": 0 -> 255, k -> k-1, 255 stays 255.
    """
    labels = label_map.astype(np.int64)
    return np.where(labels == 0, 255, np.where(labels == 255, 255, labels - 1))


# ------------------------------------------------------------------- settings


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _check_side(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


SIZE_FORMS = ({"shortest_edge"}, {"shortest_edge", "longest_edge"}, {"max_height", "max_width"}, {"height", "width"})


def _size_dict(value: Any) -> dict[str, int]:
    """`size` in any of transformers' spellings -> a dict with one of the key sets of SIZE_FORMS.

    An int means the shortest edge (MobileViT resizes keeping the aspect ratio); a pair
    is (height, width). See resized_size for what each form does.
    """
    if isinstance(value, dict):
        if set(value) not in SIZE_FORMS:
            forms = " or ".join("{" + ", ".join(sorted(form)) + "}" for form in SIZE_FORMS)
            raise ValueError(f"size must have the keys {forms}, got {sorted(value)}")
        size = {k: _check_side(f"size.{k}", v) for k, v in value.items()}
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        size = {"height": _check_side("size", value[0]), "width": _check_side("size", value[1])}
    else:
        size = {"shortest_edge": _check_side("size", value)}
    if "shortest_edge" in size:  # every image becomes at least shortest_edge x shortest_edge (unless longest_edge)
        _check_area("size.shortest_edge", size["shortest_edge"], size["shortest_edge"])
    elif "max_height" in size:  # the box the image is fitted into
        _check_area("size", size["max_height"], size["max_width"])
    else:
        _check_area("size", size["height"], size["width"])
    return size


def _crop_dict(value: Any) -> dict[str, int]:
    """`crop_size`: an int (square), a (height, width) pair or {"height", "width"}."""
    if isinstance(value, dict):
        if set(value) != {"height", "width"}:
            raise ValueError(f"crop_size must have the keys {{height, width}}, got {sorted(value)}")
        crop = {k: _check_side(f"crop_size.{k}", value[k]) for k in ("height", "width")}
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        crop = {"height": _check_side("crop_size", value[0]), "width": _check_side("crop_size", value[1])}
    else:
        side = _check_side("crop_size", value)
        crop = {"height": side, "width": side}
    _check_area("crop_size", crop["height"], crop["width"])
    return crop


def _check_resample(value: Any) -> Image.Resampling:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) not in RESAMPLE_NAMES:
        choices = ", ".join(f"{k} ({v})" for k, v in RESAMPLE_NAMES.items())
        raise ValueError(f"resample must be one of Pillow's filters {choices}, got {value!r}")
    return Image.Resampling(int(value))


def _check_factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"rescale_factor must be a positive number (1/255 for 8-bit pixels), got {value!r}")
    return float(value)


def _check_area(name: str, height: int, width: int) -> None:
    """A size setting whose output alone exceeds Pillow's decompression-bomb limit is refused up front."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and height * width > limit:
        raise ValueError(
            f"{name} asks for {width}x{height} = {height * width} pixels per image, more than "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit})"
        )


SETTINGS = {  # name -> checker; the processor's attributes, as transformers names them
    "do_resize": lambda v: _check_bool("do_resize", v),
    "size": _size_dict,
    "resample": _check_resample,
    "do_center_crop": lambda v: _check_bool("do_center_crop", v),
    "crop_size": _crop_dict,
    "do_rescale": lambda v: _check_bool("do_rescale", v),
    "rescale_factor": _check_factor,
    "do_flip_channel_order": lambda v: _check_bool("do_flip_channel_order", v),
    "do_reduce_labels": lambda v: _check_bool("do_reduce_labels", v),
}

# preprocessor_config.json keys that MobileViT's processor reads but does not use
# (its pipeline has no normalisation step) or that only name the class.
IGNORED_KEYS = {
    "feature_extractor_type",
    "image_processor_type",
    "processor_class",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
    "default_to_square",
    "do_flip_channels",
}


class BatchFeature(dict):
    """The processor's output: a dict whose keys also read as attributes (inputs.pixel_values)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class MobileViTImageProcessor:
    """Resize (shortest edge), center crop, rescale, flip to BGR: MobileViT's preprocessing.

    Defaults are those of transformers' MobileViT documentation: shortest edge 224,
    crop 256x256, BILINEAR, rescale 1/255, flip on. transformers 5.x changed its class
    default `resample` to BICUBIC; that only matters without a preprocessor_config.json,
    since every Apple checkpoint's config sets resample=2 (BILINEAR), size 288 (544 for
    the DeepLabV3 segmenters) and crop 256 (512).

    Every setting can also be passed per call: `processor(image, do_center_crop=False)`.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        do_resize: bool = True,
        size: int | dict[str, int] | None = None,
        resample: int = Image.Resampling.BILINEAR,
        do_center_crop: bool = True,
        crop_size: int | dict[str, int] | None = None,
        do_rescale: bool = True,
        rescale_factor: float = 1 / 255,
        do_flip_channel_order: bool = True,
        do_reduce_labels: bool = False,
    ) -> None:
        given = dict(
            do_resize=do_resize,
            size={"shortest_edge": 224} if size is None else size,
            resample=resample,
            do_center_crop=do_center_crop,
            crop_size={"height": 256, "width": 256} if crop_size is None else crop_size,
            do_rescale=do_rescale,
            rescale_factor=rescale_factor,
            do_flip_channel_order=do_flip_channel_order,
            do_reduce_labels=do_reduce_labels,
        )
        for name, value in given.items():
            setattr(self, name, SETTINGS[name](value))

    # ------------------------------------------------------------ config I/O
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MobileViTImageProcessor:
        """Build from a preprocessor_config.json dict, old ("size": 288) or current form.

        The old key `do_flip_channels` is ignored, as transformers ignores it (it always
        flips unless `do_flip_channel_order` says otherwise); a warning says so when the
        two would disagree. Keys that are not settings are kept in `extra`.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a preprocessor config must be a JSON object, got {type(data).__name__}")
        settings = {k: v for k, v in data.items() if k in SETTINGS}
        flip = settings.get("do_flip_channel_order", True)
        if "do_flip_channels" in data and data["do_flip_channels"] != flip:
            warnings.warn(
                f"do_flip_channels={data['do_flip_channels']!r} is a legacy key that transformers ignores; "
                f"the channels are flipped as do_flip_channel_order={flip!r} says. Set do_flip_channel_order "
                "to change it.",
                UserWarning,
                stacklevel=2,
            )
        processor = cls(**settings)
        processor.extra = {k: v for k, v in data.items() if k not in SETTINGS and k not in IGNORED_KEYS}
        return processor

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> MobileViTImageProcessor:
        """Read preprocessor_config.json from a checkpoint folder, a JSON file, or a Hub id."""
        from mobilevit_np.checkpoints.hub import resolve_checkpoint

        path = os.fspath(path)
        if os.path.isfile(path):
            file = path
        else:
            file = os.path.join(resolve_checkpoint(path), PREPROCESSOR_CONFIG)
        return read_settings_file(
            file, PREPROCESSOR_CONFIG, cls.from_dict, missing=FileNotFoundError, invalid=ValueError
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings in transformers' current form (as save_pretrained writes them)."""
        data = {name: getattr(self, name) for name in SETTINGS}
        data["resample"] = int(self.resample)
        return {**getattr(self, "extra", {}), **data, "image_processor_type": "MobileViTImageProcessor"}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        os.makedirs(folder, exist_ok=True)
        write_json_file(os.path.join(folder, PREPROCESSOR_CONFIG), self.to_dict())

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in SETTINGS)
        return f"MobileViTImageProcessor({settings})"

    # ------------------------------------------------------------ processing
    def _settings(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(SETTINGS))
        if unknown:
            raise TypeError(f"unknown processor argument(s): {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
        return {
            name: SETTINGS[name](overrides[name]) if name in overrides else getattr(self, name) for name in SETTINGS
        }

    def output_geometry(self, height: int, width: int, **overrides) -> dict[str, tuple[int, int]]:
        """Where an (height, width) image goes: {"resized": (h, w), "crop": (h, w)}.

        "crop" is the size of pixel_values; post-processing uses both to map masks back.
        """
        s = self._settings(overrides)
        resized = (height, width)
        if s["do_resize"]:
            resized = resized_size(height, width, s["size"])
        crop = (s["crop_size"]["height"], s["crop_size"]["width"]) if s["do_center_crop"] else resized
        _check_pixel_count("resizing", (height, width), resized)
        _check_pixel_count("cropping", (height, width), crop)
        return {"resized": resized, "crop": crop}

    def _process_image(self, image: np.ndarray, s: dict[str, Any]) -> np.ndarray:
        """(3, H, W) -> (3, crop_h, crop_w) float32."""
        geometry = self.output_geometry(*image.shape[1:], **s)
        if s["do_resize"]:
            image = resize(image, geometry["resized"], s["resample"])
        # Cropping before rescaling gives the same numbers as transformers' order (the padding is
        # 0 either way) and converts only the crop to float.
        if s["do_center_crop"]:
            image = center_crop(image, geometry["crop"])
        if s["do_rescale"]:
            image = rescale(image, s["rescale_factor"])
        if s["do_flip_channel_order"]:
            image = flip_channel_order(image)
        return np.ascontiguousarray(image, dtype=np.float32)

    def _pixel_values(self, image: ImageLike, s: dict[str, Any]) -> np.ndarray:
        """One image -> (3, crop_h, crop_w); a refusal names the file when the image is a path."""
        chw = _as_chw(image)
        try:
            return self._process_image(chw, s)
        except ValueError as e:
            if isinstance(image, (str, os.PathLike)):
                raise ValueError(f"{os.fspath(image)}: {e}") from None
            raise

    def _process_label_map(self, label_map: np.ndarray, s: dict[str, Any]) -> np.ndarray:
        """(1, H, W) class indices -> (crop_h, crop_w) int64: same geometry, nearest neighbour."""
        geometry = self.output_geometry(*label_map.shape[1:], **s)
        if s["do_reduce_labels"]:
            label_map = reduce_labels(label_map)
        if s["do_resize"]:
            label_map = resize(label_map, geometry["resized"], Image.Resampling.NEAREST)
        if s["do_center_crop"]:
            label_map = center_crop(label_map, geometry["crop"])
        return label_map[0].astype(np.int64)

    def preprocess(
        self,
        images: ImageLike | list[ImageLike],
        segmentation_maps: ImageLike | list[ImageLike] | None = None,
        return_tensors: str | None = "np",
        **overrides: Any,
    ) -> BatchFeature:
        """Images (and optional label maps) -> {"pixel_values": (B, 3, H, W) float32, "labels": (B, H, W) int64}.

        `images`: one image or a list; a 4-D array is a batch. With return_tensors=None
        the values are lists of per-image arrays (needed when do_center_crop=False and
        the images differ in size).
        """
        if return_tensors not in ("np", None):
            raise ValueError(f"return_tensors must be 'np' or None (NumPy arrays only), got {return_tensors!r}")
        s = self._settings(overrides)
        pixel_values = [self._pixel_values(image, s) for image in _flat_list(images, 3)]
        data = {"pixel_values": pixel_values}
        if segmentation_maps is not None:
            maps = _flat_list(segmentation_maps, 2)
            if len(maps) != len(pixel_values):
                raise ValueError(f"got {len(pixel_values)} images but {len(maps)} segmentation maps")
            data["labels"] = [self._process_label_map(_as_label_map(m), s) for m in maps]
        if return_tensors == "np":
            data = {key: _stack(key, arrays) for key, arrays in data.items()}
        return BatchFeature(data)

    __call__ = preprocess

    # ------------------------------------------------------------ post-processing
    def post_process_semantic_segmentation(
        self,
        outputs: SemanticSegmenterOutput | np.ndarray,
        target_sizes: list[tuple[int, int]] | None = None,
        return_segmentation_scores: bool = False,
    ) -> list[np.ndarray] | list[BatchFeature]:
        """One (H, W) int64 class mask per image, as transformers computes it.

        With target_sizes, each image's logits (num_labels, h, w) are resized bilinearly
        (align_corners=False) to its (height, width) and the argmax taken there; without,
        the argmax is at logit resolution. `outputs` is the segmenter's output or its
        logits (batch, num_labels, h, w). With return_segmentation_scores, each item is
        {"segmentation": (H, W) mask, "segmentation_scores": (num_labels, H, W) logits}.
        `mobilevit_np.postprocess.segment_image` gives the mask at the image's own size.
        """
        logits = np.asarray(getattr(outputs, "logits", outputs))
        if logits.ndim != 4:
            raise ValueError(
                f"segmentation logits must be (batch, num_labels, height, width), got shape {logits.shape}"
            )
        if target_sizes is None:
            scores = list(logits)
        elif len(target_sizes) != len(logits):
            raise ValueError("Make sure that you pass in as many target sizes as the batch dimension of the logits")
        else:
            scores = [
                interpolate_bilinear(logits[i : i + 1], check_target_size(size))[0]  # (K, H, W)
                for i, size in enumerate(target_sizes)
            ]
        if return_segmentation_scores:
            return [BatchFeature(segmentation=s.argmax(axis=0), segmentation_scores=s) for s in scores]
        return [s.argmax(axis=0) for s in scores]


def check_target_size(size: Any) -> tuple[int, int]:
    """A mask's (height, width) as two positive ints, or a ValueError naming it."""
    if len(size) != 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in size):
        raise ValueError(f"a target size must be (height, width) with positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _check_pixel_count(step: str, size: tuple[int, int], out: tuple[int, int]) -> None:
    """Refuse an output (h, w) above Pillow's decompression-bomb limit before anything is allocated.

    A 1x4000 image resized to a shortest edge of 224 would be 224 x 896,000 pixels: the limit
    that guards a file's own size guards what the processor makes of it too.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and out[0] * out[1] > limit:
        ratio = max(size) / max(min(size), 1)
        raise ValueError(
            f"{step} the {size[1]}x{size[0]} image would make {out[1]}x{out[0]} = {out[0] * out[1]} pixels, more "
            f"than PIL.Image.MAX_IMAGE_PIXELS ({limit}); an aspect ratio of {ratio:.0f}:1 or a size setting this "
            "large is refused (crop the image first, or raise the limit if you mean it)"
        )


def _stack(key: str, arrays: list[np.ndarray]) -> np.ndarray:
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"cannot stack {key} of different sizes {sorted(shapes)}; keep do_center_crop=True or pass "
            "return_tensors=None for a list"
        )
    return np.stack(arrays)
