"""MobileViTConfig: the same fields, names and defaults as transformers' MobileViTConfig.

A config describes the network's shape (channel counts, depths, strides); the weights
live in model.safetensors. `MobileViTConfig.from_pretrained(folder)` reads the
config.json that transformers' `save_pretrained` writes, as the apple/mobilevit-* and
apple/deeplabv3-mobilevit-* checkpoints ship it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any, ClassVar, TypeVar

from mobilevit_np.activations import ACTIVATIONS

T = TypeVar("T")

SUPPORTED_MODEL_TYPE = "mobilevit"
# Bounds on the fields no weight depends on, so nothing in a file ties them to real work.
# patch_size: a map smaller than a patch is upsampled to one patch, so a patch of 1000 turns
# a 32x32 map into 1000x1000 (a minute and gigabytes); Apple's checkpoints use 2. The
# atrous rates pad the ASPP's input by the rate on each side; Apple's use 6, 12, 18.
MAX_PATCH_SIZE = 32
MAX_ATROUS_RATE = 64
# config.json and preprocessor_config.json are a few KB (ImageNet-22k's 21,843 labels: ~1 MB).
MAX_SETTINGS_BYTES = 16 * 1024 * 1024
PROBLEM_TYPES = (None, "regression", "single_label_classification", "multi_label_classification")


class ConfigError(ValueError):
    """A config.json that is missing, unreadable, or holds a value MobileViT cannot use."""


@dataclass
class LabelledConfig:
    """What every config here shares with transformers' PretrainedConfig: the labels, the
    problem type, unknown keys kept verbatim, and config.json reading and writing.

    Subclasses (MobileViTConfig, MobileViTV2Config) add their network's fields and
    `_validate_network`; LIST_FIELDS names their list fields, given as tuples or lists.
    """

    id2label: dict[int, str] | None = None  # default: LABEL_0 .. LABEL_{num_labels-1}
    problem_type: str | None = None
    # transformers' PretrainedConfig defaults for what a call returns when it does not say
    output_hidden_states: bool = False
    output_attentions: bool = False
    return_dict: bool = True
    # Keys of config.json this class does not model (architectures, torch_dtype, ...),
    # kept so that nothing a checkpoint says is silently dropped.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    # As in transformers, MobileViTConfig(num_labels=21) makes generic labels; afterwards
    # num_labels is read from id2label (the property below).
    num_labels: InitVar[int | None] = None

    LIST_FIELDS: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self, num_labels: int | None) -> None:
        if self.id2label is None:
            count = 2 if num_labels is None else num_labels
            _check_int_value("num_labels", count, minimum=0)
            self.id2label = {i: f"LABEL_{i}" for i in range(count)}
        elif num_labels is not None and num_labels != len(self.id2label):
            raise ConfigError(f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} labels")
        # Tuples become lists; anything else is left for validate() to name.
        for name in self.LIST_FIELDS:
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        self.validate()

    # ------------------------------------------------------------------ labels
    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Raise ConfigError naming the first field whose value the network cannot use."""
        self._validate_network()
        for name in ("output_hidden_states", "output_attentions", "return_dict"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(f"problem_type must be one of {PROBLEM_TYPES}, got {self.problem_type!r}")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            # Output k of the classifier is labelled id2label[k]: every k must have one.
            keys = sorted(self.id2label)
            shown = ", ".join(map(str, keys[:5])) + (", ..." if len(keys) > 5 else "")
            raise ConfigError(f"id2label keys must be 0 .. {len(keys) - 1} (one per output), got {shown}")

    def _validate_network(self) -> None:
        raise NotImplementedError

    # --------------------------------------------------------------- file I/O
    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build a config from a transformers-style dict; unknown keys go to `extra`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "num_labels"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k != "label2id"}
        if "id2label" in data:
            known["id2label"] = _parse_id2label(data["id2label"])
        elif "num_labels" in data:
            known["num_labels"] = data["num_labels"]
        extra.pop("num_labels", None)
        if "image_size" in known:
            known["image_size"] = _square_size("image_size", known["image_size"])
        return cls(**known, extra=extra)

    @classmethod
    def from_pretrained(cls: type[C], path: str | os.PathLike) -> C:
        """Read `path/config.json`, or `path` itself when it is a JSON file."""
        return read_settings_file(
            config_file(path), "config.json", cls.from_dict, missing=ConfigError, invalid=ConfigError
        )

    def to_dict(self) -> dict[str, Any]:
        """A transformers-compatible dict (id2label keys become strings in JSON)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        data["label2id"] = self.label2id
        return {**self.extra, **data}

    def save_pretrained(self, folder: str | os.PathLike) -> None:
        os.makedirs(folder, exist_ok=True)
        write_json_file(os.path.join(folder, "config.json"), self.to_dict())


# The InitVar above only feeds __init__; on an instance num_labels is always id2label's size.
LabelledConfig.num_labels = property(lambda self: len(self.id2label), doc="len(id2label)")
C = TypeVar("C", bound=LabelledConfig)


@dataclass
class MobileViTConfig(LabelledConfig):
    """Hyper-parameters of a MobileViT network (field names follow transformers).

    The seven `neck_hidden_sizes` are the channel counts of: the stem, layer_1 ..
    layer_5 outputs, and the final 1x1 expansion. The three `hidden_sizes` are the
    token widths of the transformers inside layer_3, layer_4 and layer_5.
    """

    num_channels: int = 3
    image_size: int = 256
    patch_size: int = 2
    hidden_sizes: list[int] = field(default_factory=lambda: [144, 192, 240])
    neck_hidden_sizes: list[int] = field(default_factory=lambda: [16, 32, 64, 96, 128, 160, 640])
    num_attention_heads: int = 4
    mlp_ratio: float = 2.0
    expand_ratio: float = 4.0
    hidden_act: str = "silu"
    conv_kernel_size: int = 3
    output_stride: int = 32
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    qkv_bias: bool = True
    aspp_out_channels: int = 256
    atrous_rates: list[int] = field(default_factory=lambda: [6, 12, 18])
    aspp_dropout_prob: float = 0.1
    semantic_loss_ignore_index: int = 255
    model_type: str = SUPPORTED_MODEL_TYPE

    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("hidden_sizes", "neck_hidden_sizes", "atrous_rates")

    def _validate_network(self) -> None:
        if self.model_type != SUPPORTED_MODEL_TYPE:
            hint = (
                "; read it with MobileViTV2Config, or let load_config pick" if self.model_type == "mobilevitv2" else ""
            )
            raise ConfigError(
                f"model_type is {self.model_type!r}: MobileViTConfig reads 'mobilevit' (MobileViT v1){hint}"
            )
        _check_common(self)
        _check_int_list(self, "hidden_sizes", length=3)
        _check_int_list(self, "neck_hidden_sizes", length=7)
        _check_int(self, "num_attention_heads", minimum=1)
        for size in self.hidden_sizes:
            if size % self.num_attention_heads:
                raise ConfigError(
                    f"hidden_sizes: {size} is not divisible by num_attention_heads={self.num_attention_heads}"
                )
        _check_number(self, "mlp_ratio", positive=True)
        for size in self.hidden_sizes:
            if int(size * self.mlp_ratio) < 1:
                raise ConfigError(
                    f"mlp_ratio {self.mlp_ratio} gives the transformer of width {size} an MLP of "
                    f"int({size} * {self.mlp_ratio}) = 0 units; it needs at least 1"
                )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            _check_number(self, name)
        if not isinstance(self.qkv_bias, bool):
            raise ConfigError(f"qkv_bias must be true or false, got {self.qkv_bias!r}")


def config_file(path: str | os.PathLike) -> str:
    """`path/config.json`, or `path` itself when it is a file."""
    path = os.fspath(path)
    return os.path.join(path, "config.json") if os.path.isdir(path) else path


def read_json_file(file: str, error: type[Exception]) -> Any:
    """The parsed contents of a JSON file; malformed JSON, or a file too big to be settings, raises `error`."""
    size = os.path.getsize(file)
    if size > MAX_SETTINGS_BYTES:
        raise error(f"{file} is {size} bytes; a settings file is at most {MAX_SETTINGS_BYTES} (not read)")
    try:
        with open(file, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise error(f"{file} is not valid JSON: {e}") from None


def read_settings_file(
    file: str, name: str, build: Callable[[dict], T], missing: type[Exception], invalid: type[Exception]
) -> T:
    """build(the JSON in `file`), for config.json and preprocessor_config.json alike.

    Errors name the file: `missing` when it does not exist ("<name> not found: <file>"),
    `invalid` when it is not JSON or `build` rejects a value (build raises `invalid` itself).
    """
    if not os.path.isfile(file):
        raise missing(f"{name} not found: {file}")
    data = read_json_file(file, invalid)
    try:
        return build(data)
    except invalid as e:
        raise invalid(f"{file}: {e}") from None


def write_json_file(file: str, data: dict[str, Any]) -> None:
    """Write `data` as transformers does: 2-space indent, sorted keys, a final newline."""
    with open(file, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------- field checks
def _check_common(config: LabelledConfig) -> None:
    """The fields MobileViT and MobileViTV2 share, with the same meaning and rules."""
    _check_int(config, "num_channels", minimum=1)
    _check_int(config, "image_size", minimum=1)
    _check_int(config, "patch_size", minimum=1, maximum=MAX_PATCH_SIZE)
    _check_number(config, "expand_ratio", positive=True)
    if not isinstance(config.hidden_act, str) or config.hidden_act not in ACTIVATIONS:
        raise ConfigError(
            f"hidden_act: unknown activation {config.hidden_act!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
        )
    _check_int(config, "conv_kernel_size", minimum=1)
    if config.conv_kernel_size % 2 == 0:
        # transformers pads (k-1)//2 on each side, so an even kernel shrinks the map (and
        # v1's fusion concat fails); refuse it here rather than deep in the forward.
        raise ConfigError(f"conv_kernel_size must be odd, got {config.conv_kernel_size}")
    if config.output_stride not in (8, 16, 32) or isinstance(config.output_stride, bool):
        raise ConfigError(f"output_stride must be 8, 16 or 32, got {config.output_stride!r}")
    for name in ("classifier_dropout_prob", "aspp_dropout_prob", "initializer_range", "layer_norm_eps"):
        _check_number(config, name)
    if config.layer_norm_eps < 0:
        raise ConfigError(f"layer_norm_eps must be >= 0, got {config.layer_norm_eps}")
    _check_int(config, "aspp_out_channels", minimum=1)
    _check_int_list(config, "atrous_rates", length=3, maximum=MAX_ATROUS_RATE)
    _check_int(config, "semantic_loss_ignore_index")


def _check_int_value(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value} (see mobilevit_np.config for why)")


def _check_int(config: LabelledConfig, name: str, minimum: int | None = None, maximum: int | None = None) -> None:
    _check_int_value(name, getattr(config, name), minimum, maximum)


def _check_int_list(config: LabelledConfig, name: str, length: int, maximum: int | None = None) -> None:
    values = getattr(config, name)
    if not isinstance(values, list):
        raise ConfigError(f"{name} must be a list of {length} integers, got {values!r}")
    if len(values) != length:
        raise ConfigError(f"{name} must have {length} entries, got {len(values)}: {values}")
    for v in values:
        _check_int_value(name, v, minimum=1, maximum=maximum)


def _check_number(config: LabelledConfig, name: str, positive: bool = False) -> None:
    value = getattr(config, name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def _square_size(name: str, value: Any) -> Any:
    """transformers types image_size as int or pair; only the model card uses it, one side."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise ConfigError(f"{name} must be an integer or a square pair, got {value!r}")
        return value[0]
    return value


def _parse_id2label(mapping: Any) -> dict[int, str]:
    if not isinstance(mapping, dict):
        raise ConfigError(f"id2label must be an object, got {type(mapping).__name__}")
    try:
        return {int(k): str(v) for k, v in mapping.items()}
    except ValueError:
        raise ConfigError("id2label keys must be integers (as strings in JSON)") from None
