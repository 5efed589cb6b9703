"""The three public models, named and called like transformers' (without torch).

    model = MobileViTForImageClassification.from_pretrained("path/to/mobilevit-small")
    logits = model(pixel_values).logits  # pixel_values (B, 3, H, W) float

Each model holds its config and its parameters (a nested dict, see checkpoints.state_dict.build_tree)
and runs the functions of model.py (backend="numpy"), or the fast engine built from the
same parameters (backend="numba", kernels/engine.py).
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mobilevit_np import losses
from mobilevit_np.architecture import backbone_shapes, parameter_shapes
from mobilevit_np.backends import make_engine, resolve_backend
from mobilevit_np.checkpoints.hub import resolve_checkpoint
from mobilevit_np.checkpoints.state_dict import build_tree, load_checkpoint_tensors, prepare_state_dict
from mobilevit_np.config import MobileViTConfig
from mobilevit_np.layers import interpolate_bilinear
from mobilevit_np.memory import check_forward_memory
from mobilevit_np.model import BackboneResult, backbone, classification_head, expand_and_pool, segmentation_head
from mobilevit_np.precision import Precision, precision_name, resolve_precision, store
from mobilevit_np.trace import Trace, per_image, tracing, tracing_active

# ---------------------------------------------------------------------- outputs
# hidden_states (output_hidden_states=True): the outputs of encoder layer_1 .. layer_5,
#   (B, neck[1..5], H/2^k, W/2^k); for mobilevit-small at 256x256: (B, 32, 128, 128),
#   (B, 64, 64, 64), (B, 96, 32, 32), (B, 128, 16, 16), (B, 160, 8, 8).
# attentions (output_attentions=True): the softmax probabilities of every transformer
#   layer in order (2 in layer_3, 4 in layer_4, 3 in layer_5), each
#   (B * patch_area, heads, num_patches, num_patches): one attention matrix per image,
#   per pixel offset inside a patch (patch_area = patch_size**2) and per head, between
#   the num_patches = (h/patch_size) * (w/patch_size) patches of that layer's map.
#   For mobilevit-small at 256x256: (4B, 4, 256, 256), (4B, 4, 64, 64), (4B, 4, 16, 16).
#   transformers documents this field but leaves it None; here it is filled.


class ModelOutput:
    """transformers' ModelOutput access: out.logits, out["logits"], out[0], out.to_tuple().

    Integer indices and to_tuple() skip the fields that are None, as transformers' do, in
    transformers' field order (loss first); that is also what return_dict=False returns.
    """

    _tuple_order: tuple[str, ...] = ()

    def to_tuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self._tuple_order if getattr(self, name) is not None)

    def keys(self) -> list[str]:
        return [name for name in self._tuple_order if getattr(self, name) is not None]

    def __contains__(self, name: object) -> bool:
        return name in self.keys()

    def __getitem__(self, key: int | slice | str):
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(key)
            return getattr(self, key)
        return self.to_tuple()[key]


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: np.ndarray  # (B, C, h, w)
    pooler_output: np.ndarray | None = None  # (B, C), None without expand_output
    hidden_states: tuple[np.ndarray, ...] | None = None  # the 5 encoder layers' outputs
    attentions: tuple[np.ndarray, ...] | None = None  # (B*patch_area, heads, num_patches, num_patches) per layer
    _tuple_order = ("last_hidden_state", "pooler_output", "hidden_states", "attentions")


@dataclass
class ImageClassifierOutput(ModelOutput):
    logits: np.ndarray  # (B, num_labels)
    loss: np.ndarray | None = None
    hidden_states: tuple[np.ndarray, ...] | None = None
    attentions: tuple[np.ndarray, ...] | None = None
    _tuple_order = ("loss", "logits", "hidden_states", "attentions")


@dataclass
class SemanticSegmenterOutput(ModelOutput):
    logits: np.ndarray  # (B, num_labels, H/output_stride, W/output_stride)
    loss: np.ndarray | None = None
    hidden_states: tuple[np.ndarray, ...] | None = None
    attentions: tuple[np.ndarray, ...] | None = None
    _tuple_order = ("loss", "logits", "hidden_states", "attentions")


# ------------------------------------------------------------------ base class


_Model = TypeVar("_Model", bound="_PreTrained")  # from_config / from_pretrained return the class they are called on


class _PreTrained:
    """Loading and input checking shared by the three models."""

    head = "base"
    precision: Precision | None = None  # set by from_config / from_pretrained (weights' and computation's dtype)
    config_class = MobileViTConfig  # what from_pretrained reads config.json as
    base_model_prefix = "mobilevit"  # a head model's backbone weights are "<prefix>.*", as in transformers

    def __init__(self, config: MobileViTConfig, params: dict, dtype: np.dtype, backend: str = "numpy") -> None:
        self.config = config
        self.dtype = np.dtype(dtype)
        self.backend = resolve_backend(backend)  # "numpy" (the reference) or "numba"; see backends.py
        self.params = params
        self._engine = None  # built on first use (subclasses set their options first)

    @classmethod
    def _expected_shapes(cls, config: MobileViTConfig, **kwargs) -> dict[str, tuple[int, ...]]:
        return parameter_shapes(config, cls.head)

    @classmethod
    def _check_options(cls, method: str, kwargs: dict) -> None:
        """Refuse options the model's __init__ does not take, before any weight is read."""
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "config", "params", "dtype", "backend"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            takes = f"it takes {', '.join(sorted(accepted))}" if accepted else "it takes no model options"
            raise TypeError(f"{cls.__name__}.{method}() got an unexpected keyword argument {unknown[0]!r} ({takes})")

    @classmethod
    def from_config(
        cls: type[_Model],
        config: MobileViTConfig,
        state_dict: dict[str, np.ndarray],
        dtype: np.dtype | type | str = np.float32,
        backend: str = "numpy",
        **kwargs: bool,
    ) -> _Model:
        """Build the model from a config and a flat {transformers name: array} dict.

        dtype: float32 (default), float64, "float16" / "bfloat16" (weights kept in half
        precision, computation in float32; see precision.py) or "auto" (the state_dict's dtype).
        backend: "numpy" (reference), "numba" (fast; needs the `fast` extra) or "auto".
        """
        cls._check_options("from_config", kwargs)
        precision_name(dtype)  # fail before reading weights
        backend = resolve_backend(backend)
        precision = resolve_precision(dtype, config.extra, state_dict)
        expected = cls._expected_shapes(config, **kwargs)
        # copy: the model must not change when the caller later edits their arrays (nor the reverse)
        weights = prepare_state_dict(
            state_dict,
            expected,
            cls.head,
            precision.storage,
            source="state_dict",
            copy=True,
            backbone=cls.base_model_prefix,
        )
        return cls._build(config, weights, precision, backend, kwargs)

    @classmethod
    def from_pretrained(
        cls: type[_Model],
        path: str | os.PathLike,
        dtype: np.dtype | type | str = np.float32,
        backend: str = "numpy",
        config: MobileViTConfig | None = None,
        **kwargs: bool,
    ) -> _Model:
        """Load a checkpoint: config.json and its weights, from a local folder or a Hub id ("owner/name").

        The weights are model.safetensors, a sharded model.safetensors.index.json, or
        pytorch_model.bin (read by the allowlist reader in torch_pickle.py, never unpickled,
        and converted once to model.safetensors beside it).
        dtype: float32 (default), float64, "float16" / "bfloat16" (weights kept in half
        precision, computation in float32, since NumPy has no fast half arithmetic; see
        precision.py) or "auto" (config.json's "dtype", else the checkpoint's tensors').
        backend: "numpy" (reference), "numba" (fast; needs the `fast` extra) or "auto".
        config: build with this config instead of the folder's config.json (as transformers'
        `config=`, e.g. another output_stride); the weights must still fit it.
        """
        cls._check_options("from_pretrained", kwargs)
        precision_name(dtype)  # fail before any download
        backend = resolve_backend(backend)
        if config is not None and not isinstance(config, cls.config_class):
            raise TypeError(f"config must be a {cls.config_class.__name__}, got {type(config).__name__}")
        path = resolve_checkpoint(path)  # a local folder, or the Hub download of an "owner/name" id
        if config is None:
            config = cls.config_class.from_pretrained(path)
        tensors = load_checkpoint_tensors(path)
        precision = resolve_precision(dtype, config.extra, tensors)
        expected = cls._expected_shapes(config, **kwargs)
        weights = prepare_state_dict(
            tensors, expected, cls.head, precision.storage, source=path, backbone=cls.base_model_prefix
        )
        return cls._build(config, weights, precision, backend, kwargs)

    @classmethod
    def _build(
        cls: type[_Model], config: MobileViTConfig, weights: dict, precision: Precision, backend: str, kwargs: dict
    ) -> _Model:
        model = cls(
            config, build_tree(store(weights, precision, backend)), precision.compute, backend=backend, **kwargs
        )
        model.precision = precision  # .dtype is what it computes in; .precision.storage what its weights are held in
        return model

    def _check_input(self, pixel_values: np.ndarray) -> np.ndarray:
        """(B, C, H, W) floats in the model's dtype, or a ValueError naming what is wrong."""
        x = np.asarray(pixel_values)
        if x.ndim != 4:
            raise ValueError(f"pixel_values must be 4-D (batch, channels, height, width), got shape {x.shape}")
        if x.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {x.shape[1]} channels (shape {x.shape}); the config expects "
                f"num_channels={self.config.num_channels} in axis 1 (channels first)"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"pixel_values must be floating point, got {x.dtype}; scale images with the image "
                "processor (uint8 / 255) first"
            )
        if min(x.shape[2:]) < 1 or x.shape[0] < 1:
            raise ValueError(f"pixel_values is empty: shape {x.shape}")
        check_forward_memory(self.config, x.shape, self.dtype)  # a batch too large fails now, saying so
        return np.ascontiguousarray(x, dtype=self.dtype)

    def trace(self, pixel_values: np.ndarray, **kwargs) -> Trace:
        """Run the model once, recording every named intermediate (see trace.py).

        `print(model.trace(x))` shows the shape of every step; `.output` holds what
        `model(x, **kwargs)` returns.
        """
        with tracing() as recorded:
            recorded.output = self(pixel_values, **kwargs)
        return recorded

    # ------------------------------------------- what a call returns (transformers' defaults)
    def _option(self, name: str, value: bool | None) -> bool:
        """output_hidden_states / output_attentions / return_dict: the call's value, else the config's."""
        return getattr(self.config, name) if value is None else value

    def _wanted(self, output_hidden_states: bool | None, output_attentions: bool | None) -> tuple[bool, bool]:
        return self._option("output_hidden_states", output_hidden_states), self._option(
            "output_attentions", output_attentions
        )

    def _returned(self, output: ModelOutput, return_dict: bool | None) -> ModelOutput | tuple:
        """The output dataclass, or with return_dict=False transformers' tuple (its non-None fields, loss first)."""
        return output if self._option("return_dict", return_dict) else output.to_tuple()

    def _forward(self, pixel_values: np.ndarray, hidden_states: bool, attentions: bool) -> dict:
        """The forward pass as {"hidden_states", "attentions", and the head's outputs}: the fast
        engine when the backend has one for this model (not while tracing: the trace records
        the reference's steps), else the reference functions of model.py, one image at a time."""
        x = self._check_input(pixel_values)
        if not tracing_active():
            if self._engine is None:
                self._engine = make_engine(self)  # False when this model runs the reference
            if self._engine:
                return self._engine(x, hidden_states, attentions)
        if len(x) == 1:
            return self._reference_forward(x)
        # Images are independent at inference, and one image's feature maps stay in the CPU's caches
        # where a batch's stream through memory: one at a time runs faster (docs/performance.md).
        return _join_images(per_image(self._reference_forward, x))

    def _reference_forward(self, x: np.ndarray) -> dict:
        """The reference functions of model.py (model_v2.py) on a batch, as _forward returns them."""
        result = self._reference_backbone(x)
        return {"hidden_states": result.hidden_states, "attentions": result.attentions, **self._head(result)}

    def _reference_backbone(self, x: np.ndarray) -> BackboneResult:
        """The backbone of model.py (modeling_v2 runs model_v2.py's)."""
        return backbone(x, self._backbone_params, self.config)

    def _head(self, result: BackboneResult) -> dict:
        raise NotImplementedError

    @property
    def _backbone_params(self) -> dict:
        """The backbone's weights: a head model keeps them under "mobilevit.", as transformers names them."""
        return self.params if self.head == "base" else self.params[self.base_model_prefix]


def _join_images(outputs: list[dict]) -> dict:
    """_forward's outputs for single images -> the batch's: arrays joined along the batch axis, lists of
    arrays (hidden states, attentions) item by item. An attention's batch axis is image-major
    (B * patch_area), so joining along it gives the batch's layout too."""
    joined = {}
    for name, first in outputs[0].items():
        if isinstance(first, list):
            joined[name] = [np.concatenate(items) for items in zip(*(output[name] for output in outputs), strict=True)]
        else:
            joined[name] = np.concatenate([output[name] for output in outputs])
    return joined


def _as_tuple(arrays: list[np.ndarray], wanted: bool) -> tuple[np.ndarray, ...] | None:
    return tuple(arrays) if wanted else None


# ---------------------------------------------------------------------- models


class _Backbone(_PreTrained):
    """What both generations' backbone models (MobileViTModel, MobileViTV2Model) add: expand_output."""

    def __init__(
        self,
        config: MobileViTConfig,
        params: dict,
        dtype: np.dtype = np.float32,
        expand_output: bool = True,
        backend: str = "numpy",
    ) -> None:
        super().__init__(config, params, dtype, backend)
        self.expand_output = expand_output


class MobileViTModel(_Backbone):
    """The backbone: stem, five encoder stages and (with expand_output) a 1x1 expansion and mean pooling."""

    @classmethod
    def _expected_shapes(cls, config: MobileViTConfig, expand_output: bool = True) -> dict[str, tuple[int, ...]]:
        return backbone_shapes(config, expand_output)

    def __call__(
        self,
        pixel_values: np.ndarray,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Options left None take the config's value (output_hidden_states=False, return_dict=True by default)."""
        hidden, attentions = self._wanted(output_hidden_states, output_attentions)
        out = self._forward(pixel_values, hidden, attentions)
        output = BaseModelOutputWithPooling(
            last_hidden_state=out["last_hidden_state"],
            pooler_output=out.get("pooler_output"),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
            attentions=_as_tuple(out["attentions"], attentions),
        )
        return self._returned(output, return_dict)

    def _head(self, result: BackboneResult) -> dict:
        if not self.expand_output:
            return {"last_hidden_state": result.last_hidden_state}
        last, pooled = expand_and_pool(result.last_hidden_state, self.params["conv_1x1_exp"], self.config)
        return {"last_hidden_state": last, "pooler_output": pooled}


class MobileViTForImageClassification(_PreTrained):
    """Backbone, mean pooling, then a linear classifier (ImageNet-1k in the Apple checkpoints)."""

    head = "classification"

    def __call__(
        self,
        pixel_values: np.ndarray,
        output_hidden_states: bool | None = None,
        labels: np.ndarray | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        """Options left None take the config's value; return_dict=False gives (loss?, logits, hidden_states?)."""
        hidden, attentions = self._wanted(output_hidden_states, output_attentions)
        out = self._forward(pixel_values, hidden, attentions)
        logits = out["logits"]
        output = ImageClassifierOutput(
            logits=logits,
            loss=None if labels is None else self.loss(logits, labels),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
            attentions=_as_tuple(out["attentions"], attentions),
        )
        return self._returned(output, return_dict)

    def _head(self, result: BackboneResult) -> dict:
        _, pooled = expand_and_pool(result.last_hidden_state, self._backbone_params["conv_1x1_exp"], self.config)
        return {"logits": classification_head(pooled, self.params.get("classifier"))}

    def loss(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """transformers' rule: regression for 1 label, cross-entropy for integer labels, else multi-label BCE."""
        labels = np.asarray(labels)
        problem = self.config.problem_type
        if problem is None:
            if self.config.num_labels == 1:
                problem = "regression"
            elif np.issubdtype(labels.dtype, np.integer):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        if problem == "regression":
            return losses.mse(logits.squeeze(), labels.astype(logits.dtype).squeeze())
        if problem == "single_label_classification":
            return losses.cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1))
        return losses.bce_with_logits(logits, labels.astype(logits.dtype))


class MobileViTForSemanticSegmentation(_PreTrained):
    """Backbone without the 1x1 expansion, then a DeepLabV3 head (ASPP + 1x1 classifier)."""

    head = "segmentation"

    def __call__(
        self,
        pixel_values: np.ndarray,
        labels: np.ndarray | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SemanticSegmenterOutput | tuple:
        """Options left None take the config's value; return_dict=False gives (loss?, logits, hidden_states?)."""
        if labels is not None and self.config.num_labels == 1:
            raise ValueError("The number of labels should be greater than one")
        hidden, attentions = self._wanted(output_hidden_states, output_attentions)
        out = self._forward(pixel_values, hidden, attentions)
        logits = out["logits"]
        output = SemanticSegmenterOutput(
            logits=logits,
            loss=None if labels is None else self.loss(logits, labels),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
            attentions=_as_tuple(out["attentions"], attentions),
        )
        return self._returned(output, return_dict)

    def _head(self, result: BackboneResult) -> dict:
        head = self.params["segmentation_head"]
        return {"logits": segmentation_head(result.last_hidden_state, head["aspp"], head["classifier"], self.config)}

    def loss(self, logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Cross-entropy at label resolution: logits are upsampled bilinearly to labels' (H, W)."""
        labels = np.asarray(labels)
        upsampled = interpolate_bilinear(logits, labels.shape[-2:])
        return losses.cross_entropy(upsampled, labels, ignore_index=self.config.semantic_loss_ignore_index)
