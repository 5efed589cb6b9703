"""pipeline(): transformers' three vision pipelines for MobileViT, same arguments and output format, without torch.

    classifier = pipeline("image-classification", model="apple/mobilevit-small")
    classifier("cats.png")                     # [{"label": "tabby, tabby cat", "score": 0.41}, ...] top 5
    classifier(["a.png", "https://..."], top_k=2, batch_size=2)   # a list of lists

    segmenter = pipeline("image-segmentation", model="apple/deeplabv3-mobilevit-small")
    segmenter(image)   # [{"score": None, "label": "cat", "mask": <PIL "L" image, 0/255>}, ...], one per class present

    extractor = pipeline("image-feature-extraction", model="apple/mobilevit-small")
    extractor(image, pool=True, return_tensors=True)  # (1, 640) pooler_output as a NumPy array

Images are paths, http(s) URLs, base64 strings / data URIs, PIL images or NumPy arrays
(see image_processing.load_image). Each step follows transformers' pipelines (checked against
them in tests/test_pipelines.py): classification scores are a float32 softmax (or sigmoid,
or none) of the logits, sorted high to low with ties in label order; segmentation logits are
resized bilinearly (half-pixel) to the original image size and each class present becomes
a 0/255 mask; feature extraction returns outputs[0] or pooler_output.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PIL import Image

from mobilevit_np.auto import (
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSemanticSegmentation,
    read_model_type,
)
from mobilevit_np.checkpoints.hub import resolve_checkpoint
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.modeling import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    _PreTrained,
)

FUNCTIONS = ("softmax", "sigmoid", "none")
SEGMENTATION_SUBTASKS = (None, "semantic")


# ------------------------------------------------------------------ the shared loop


class Pipeline:
    """One task: images in, transformers-shaped answers out. Build it with pipeline()."""

    task = ""
    model_class: type[_PreTrained]
    preprocess_parameters: tuple[str, ...] = ("timeout",)
    postprocess_parameters: tuple[str, ...] = ()

    def __init__(self, model: _PreTrained, image_processor: MobileViTImageProcessor, **defaults: Any) -> None:
        # Either generation: a MobileViTV2 model with the same head runs the same pipeline.
        if not isinstance(model, _PreTrained) or model.head != self.model_class.head:
            raise ValueError(
                f"the {self.task!r} pipeline needs a {self.model_class.__name__}, got {type(model).__name__}"
            )
        self.model, self.image_processor = model, image_processor
        self.defaults = self._check_parameters({"batch_size": 1, **defaults})

    def _check_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        known = {"batch_size", *self.preprocess_parameters, *self.postprocess_parameters}
        unknown = sorted(set(parameters) - known)
        if unknown:
            raise TypeError(
                f"the {self.task!r} pipeline got unknown argument(s) {', '.join(unknown)}; "
                f"it takes {', '.join(sorted(known))}"
            )
        batch_size = parameters.get("batch_size", 1)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return parameters

    def __call__(self, inputs: Any = None, **kwargs: Any) -> list:
        """One image -> its answer; a list (or tuple) of images -> a list of answers, in order."""
        if "images" in kwargs:  # transformers' other name for the inputs
            inputs = kwargs.pop("images")
        if inputs is None:
            raise ValueError(
                f"the {self.task!r} pipeline needs an image (a path, URL, base64 string, PIL image or array)"
            )
        parameters = self._check_parameters({**self.defaults, **kwargs})
        pre = {k: v for k, v in parameters.items() if k in self.preprocess_parameters}
        post = {k: v for k, v in parameters.items() if k in self.postprocess_parameters}
        single = not isinstance(inputs, (list, tuple))
        images = [inputs] if single else list(inputs)
        results = []
        size = parameters["batch_size"]
        for start in range(0, len(images), size):
            prepared = [self.preprocess(image, **pre) for image in images[start : start + size]]
            results.extend(self._forward_and_postprocess(prepared, post))
        return results[0] if single else results

    def _forward_and_postprocess(self, prepared: list[tuple[np.ndarray, Any]], post: dict[str, Any]) -> list:
        """One forward pass for a batch of same-sized inputs (the center crop makes them so), else one each."""
        pixel_values = [p for p, _ in prepared]
        if len({p.shape for p in pixel_values}) == 1:
            outputs = self.model(np.concatenate(pixel_values), return_dict=True)
            return [self.postprocess(outputs, i, context, **post) for i, (_, context) in enumerate(prepared)]
        return [self.postprocess(self.model(p, return_dict=True), 0, context, **post) for p, context in prepared]

    def _pixel_values(self, image: Any, **processor_arguments: Any) -> np.ndarray:
        return self.image_processor(image, return_tensors="np", **processor_arguments)["pixel_values"]

    def preprocess(self, image: Any, timeout: float | None = None) -> tuple[np.ndarray, Any]:
        """(pixel_values (1, 3, H, W), what postprocess needs to know about the image)."""
        raise NotImplementedError

    def postprocess(self, outputs: Any, index: int, context: Any, **parameters: Any) -> Any:
        raise NotImplementedError


# ------------------------------------------------------------------ the three tasks


def _scores(logits: np.ndarray, function: str) -> np.ndarray:
    """transformers' float32 softmax / sigmoid / identity of one image's logits."""
    logits = logits.astype(np.float32)
    if function == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    if function == "sigmoid":
        return 1.0 / (1.0 + np.exp(-logits))
    return logits


class ImageClassificationPipeline(Pipeline):
    """[{"label", "score"}] for the top_k classes (default 5, at most num_labels), highest score first."""

    task = "image-classification"
    model_class = MobileViTForImageClassification
    postprocess_parameters = ("top_k", "function_to_apply")

    def preprocess(self, image: Any, timeout: float | None = None) -> tuple[np.ndarray, None]:
        if not isinstance(image, np.ndarray):  # arrays go straight to the processor, as in transformers
            image = load_image(image, timeout=timeout)
        return self._pixel_values(image), None

    def default_function(self) -> str:
        """transformers' rule: regression -> none; multi-label or a single label -> sigmoid; else softmax."""
        config = self.model.config
        if config.problem_type == "regression":
            return "none"
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def postprocess(
        self, outputs: Any, index: int, context: None, top_k: int = 5, function_to_apply: str | None = None
    ) -> list[dict[str, Any]]:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        function = self.default_function() if function_to_apply is None else str(function_to_apply).lower()
        if function not in FUNCTIONS:
            raise ValueError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}, got {function_to_apply!r}")
        scores = _scores(outputs.logits[index], function)
        labels = self.model.config.id2label
        ranked = sorted(
            ({"label": labels[i], "score": float(score)} for i, score in enumerate(scores)),
            key=lambda answer: answer["score"],
            reverse=True,  # Python's sort is stable, so equal scores keep label order
        )
        return ranked[: min(top_k, self.model.config.num_labels)]


class ImageSegmentationPipeline(Pipeline):
    """[{"score": None, "label", "mask"}]: one 0/255 PIL "L" mask at the image's size per class present."""

    task = "image-segmentation"
    model_class = MobileViTForSemanticSegmentation
    preprocess_parameters = ("timeout", "subtask")
    # accepted as in transformers; they steer instance and panoptic segmentation only
    postprocess_parameters = ("subtask", "threshold", "mask_threshold", "overlap_mask_area_threshold")

    def preprocess(
        self, image: Any, timeout: float | None = None, subtask: str | None = None
    ) -> tuple[np.ndarray, tuple[int, int]]:
        if subtask not in SEGMENTATION_SUBTASKS:
            raise ValueError(
                f"Subtask {subtask} is not supported for model {type(self.model).__name__}: a DeepLabV3 MobileViT "
                "does semantic segmentation only (subtask=None or 'semantic')"
            )
        image = load_image(image, timeout=timeout)
        return self._pixel_values(image), (image.height, image.width)

    def postprocess(self, outputs: Any, index: int, context: tuple[int, int], **ignored: Any) -> list[dict[str, Any]]:
        logits = outputs.logits[index : index + 1]  # (1, num_labels, h, w)
        segmentation = self.image_processor.post_process_semantic_segmentation(logits, target_sizes=[context])[0]
        labels = self.model.config.id2label
        return [
            {
                "score": None,
                "label": labels[int(k)],
                "mask": Image.fromarray(((segmentation == k) * 255).astype(np.uint8), mode="L"),
            }
            for k in np.unique(segmentation)
        ]


class ImageFeatureExtractionPipeline(Pipeline):
    """outputs[0] (the conv_1x1_exp feature map, (1, C, h, w)) or with pool=True pooler_output (1, C)."""

    task = "image-feature-extraction"
    model_class = MobileViTModel
    preprocess_parameters = ("timeout", "image_processor_kwargs")
    postprocess_parameters = ("pool", "return_tensors")

    def preprocess(
        self, image: Any, timeout: float | None = None, image_processor_kwargs: dict | None = None
    ) -> tuple[np.ndarray, None]:
        image = load_image(image, timeout=timeout)
        return self._pixel_values(image, **(image_processor_kwargs or {})), None

    def postprocess(
        self, outputs: Any, index: int, context: None, pool: bool | None = None, return_tensors: bool = False
    ) -> list | np.ndarray:
        if pool:
            if outputs.pooler_output is None:
                raise ValueError(
                    "pool=True needs a pooled output; this MobileViTModel was built with expand_output=False"
                )
            features = outputs.pooler_output[index : index + 1]
        else:
            features = outputs[0][index : index + 1]
        return features if return_tensors else features.tolist()


TASKS: dict[str, tuple[type[Pipeline], type]] = {
    "image-classification": (ImageClassificationPipeline, AutoModelForImageClassification),
    "image-segmentation": (ImageSegmentationPipeline, AutoModelForSemanticSegmentation),
    "image-feature-extraction": (ImageFeatureExtractionPipeline, AutoModel),
}


# ------------------------------------------------------------------ building one


def default_task(folder: str) -> str:
    """The task of a checkpoint that names none: from config.json's architectures, as the Hub's pipeline tag would."""
    architectures = " ".join(read_model_type(folder).get("architectures") or [])
    if "SemanticSegmentation" in architectures:
        return "image-segmentation"
    if "ImageClassification" in architectures:
        return "image-classification"
    return "image-feature-extraction"


def pipeline(
    task: str | None = None,
    model: str | os.PathLike | _PreTrained | None = None,
    image_processor: str | os.PathLike | MobileViTImageProcessor | None = None,
    dtype: Any = np.float32,
    backend: str = "auto",
    device: Any = None,
    **kwargs: Any,
) -> Pipeline:
    """transformers' pipeline() for MobileViT: "image-classification", "image-segmentation", "image-feature-extraction".

    model: a checkpoint folder, a Hub id or a loaded model. image_processor: a folder, Hub id or
    processor; default the model folder's preprocessor_config.json. dtype and backend as
    from_pretrained (half precision keeps the weights at half size and computes in float32).
    device: None or "cpu" (-1 as transformers' CPU). Other keyword arguments are call
    defaults (top_k=3, function_to_apply=..., timeout=..., batch_size=..., pool=..., ...).
    """
    if device not in (None, "cpu", -1):
        raise ValueError(f"device must be 'cpu' (or None, -1): mobilevit_np runs on the CPU, got {device!r}")
    if model is None:
        raise ValueError(
            "pipeline() needs model=: a checkpoint folder, a Hub id such as apple/mobilevit-small, or a model"
        )
    folder = None if isinstance(model, _PreTrained) else resolve_checkpoint(model)
    if task is None:
        if folder is None:
            raise ValueError("pipeline() needs a task when given a loaded model: " + ", ".join(TASKS))
        task = default_task(folder)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; mobilevit_np's pipeline() supports {', '.join(TASKS)}")
    pipeline_class, auto_class = TASKS[task]
    if folder is not None:
        model = auto_class.from_pretrained(folder, dtype=dtype, backend=backend)
    return pipeline_class(model, _processor(image_processor, folder), **kwargs)


def _processor(image_processor: Any, folder: str | None) -> MobileViTImageProcessor:
    if isinstance(image_processor, MobileViTImageProcessor):
        return image_processor
    if image_processor is not None:
        return AutoImageProcessor.from_pretrained(image_processor)
    if folder is None:
        raise ValueError(
            "pipeline() was given a loaded model without image_processor=; pass the processor (or a checkpoint "
            "folder to read preprocessor_config.json from)"
        )
    return AutoImageProcessor.from_pretrained(folder)
