"""The three public MobileViTV2 models, named and called like transformers' (without torch).

    model = MobileViTV2ForImageClassification.from_pretrained("apple/mobilevitv2-1.0-imagenet1k-256")
    logits = model(pixel_values).logits  # pixel_values (B, 3, H, W) float

Loading, input checks, tracing and the backends are v1's (modeling._PreTrained); the
forward pass is model_v2.py (backend="numpy") or the fast engine (backend="numba",
kernels/engine_v2.py). As in transformers, v2 has no attention probabilities to return:
its outputs carry `attentions=None` (the context scores are in `model.trace(x)`).
"""

from __future__ import annotations

import numpy as np

from mobilevit_np.architecture_v2 import BACKBONE, backbone_shapes, parameter_shapes
from mobilevit_np.config import LabelledConfig
from mobilevit_np.config_v2 import MobileViTV2Config
from mobilevit_np.layers import global_avg_pool
from mobilevit_np.model import BackboneResult, classification_head
from mobilevit_np.model_v2 import backbone
from mobilevit_np.modeling import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    SemanticSegmenterOutput,
    _as_tuple,
    _Backbone,
    _PreTrained,
)
from mobilevit_np.trace import record


class _PreTrainedV2(_PreTrained):
    config_class = MobileViTV2Config
    base_model_prefix = BACKBONE

    @classmethod
    def _expected_shapes(cls, config: MobileViTV2Config, **kwargs) -> dict[str, tuple[int, ...]]:
        return parameter_shapes(config, cls.head)

    def _reference_backbone(self, x: np.ndarray) -> BackboneResult:
        return backbone(x, self._backbone_params, self.config)

    def _run(self, pixel_values: np.ndarray, output_hidden_states: bool | None) -> tuple[dict, bool]:
        """The forward pass (engine or reference) and whether hidden states were asked for."""
        hidden = self._option("output_hidden_states", output_hidden_states)
        return self._forward(pixel_values, hidden, False), hidden


class MobileViTV2Model(_PreTrainedV2, _Backbone):
    """The backbone: stem and five encoder stages; with expand_output also the mean-pooled features."""

    @classmethod
    def _expected_shapes(cls, config: MobileViTV2Config, expand_output: bool = True) -> dict[str, tuple[int, ...]]:
        return backbone_shapes(config)  # expand_output adds no weights in v2

    def __call__(
        self, pixel_values: np.ndarray, output_hidden_states: bool | None = None, return_dict: bool | None = None
    ) -> BaseModelOutputWithPooling | tuple:
        """Options left None take the config's value, as in v1."""
        out, hidden = self._run(pixel_values, output_hidden_states)
        output = BaseModelOutputWithPooling(
            last_hidden_state=out["last_hidden_state"],
            pooler_output=out.get("pooler_output"),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
        )
        return self._returned(output, return_dict)

    def _head(self, result: BackboneResult) -> dict:
        if not self.expand_output:
            return {"last_hidden_state": result.last_hidden_state}
        pooled = record("pooler", global_avg_pool(result.last_hidden_state))
        return {"last_hidden_state": result.last_hidden_state, "pooler_output": pooled}


class MobileViTV2ForImageClassification(_PreTrainedV2):
    """Backbone, mean pooling, then a linear classifier (ImageNet-1k in the Apple checkpoints)."""

    head = "classification"
    loss = MobileViTForImageClassification.loss  # transformers' rule, the same for both generations

    def __call__(
        self,
        pixel_values: np.ndarray,
        output_hidden_states: bool | None = None,
        labels: np.ndarray | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        """Options left None take the config's value; return_dict=False gives (loss?, logits, hidden_states?)."""
        out, hidden = self._run(pixel_values, output_hidden_states)
        logits = out["logits"]
        output = ImageClassifierOutput(
            logits=logits,
            loss=None if labels is None else self.loss(logits, labels),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
        )
        return self._returned(output, return_dict)

    def _head(self, result: BackboneResult) -> dict:
        pooled = record("pooler", global_avg_pool(result.last_hidden_state))  # (B, 512 w)
        return {"logits": classification_head(pooled, self.params.get("classifier"))}


class MobileViTV2ForSemanticSegmentation(_PreTrainedV2):
    """Backbone, then v1's DeepLabV3 head (ASPP with aspp_out_channels=512 by default, a 1x1 classifier)."""

    head = "segmentation"
    loss = MobileViTForSemanticSegmentation.loss

    def __call__(
        self,
        pixel_values: np.ndarray,
        labels: np.ndarray | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SemanticSegmenterOutput | tuple:
        """Options left None take the config's value; return_dict=False gives (loss?, logits, hidden_states?)."""
        if labels is not None and self.config.num_labels == 1:
            raise ValueError("The number of labels should be greater than one")
        out, hidden = self._run(pixel_values, output_hidden_states)
        logits = out["logits"]
        output = SemanticSegmenterOutput(
            logits=logits,
            loss=None if labels is None else self.loss(logits, labels),
            hidden_states=_as_tuple(out["hidden_states"], hidden),
        )
        return self._returned(output, return_dict)

    _head = MobileViTForSemanticSegmentation._head  # v1's DeepLabV3 head on the last hidden state


MODEL_CLASSES: dict[str, dict[str, type[_PreTrained]]] = {
    "mobilevit": {
        "base": MobileViTModel,
        "classification": MobileViTForImageClassification,
        "segmentation": MobileViTForSemanticSegmentation,
    },
    "mobilevitv2": {
        "base": MobileViTV2Model,
        "classification": MobileViTV2ForImageClassification,
        "segmentation": MobileViTV2ForSemanticSegmentation,
    },
}


def model_class(config: LabelledConfig, head: str) -> type[_PreTrained]:
    """The model class for `head` ("base", "classification", "segmentation") of the config's generation."""
    return MODEL_CLASSES[config.model_type][head]
