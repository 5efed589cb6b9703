"""pipeline(), the Auto classes, return_dict=False and half precision, against transformers on the same checkpoints.

Random-weight tiny checkpoints (tests/conftest.py) are written once with config.json,
model.safetensors and preprocessor_config.json; transformers' own pipeline() reads the same
folder. Labels must be equal, scores within 1e-5, masks equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForSemanticSegmentation,
    ConfigError,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTImageProcessor,
    MobileViTImageProcessorFast,
    MobileViTModel,
    pipeline,
)
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"
ARCHITECTURES = {
    "classification": "MobileViTForImageClassification",
    "segmentation": "MobileViTForSemanticSegmentation",
}


def write_checkpoint(folder: Path, head: str, dtype=np.float32, **overrides) -> Path:
    config = tiny_config(**overrides)
    config.extra["architectures"] = [ARCHITECTURES[head]]
    state = {k: v.astype(dtype) for k, v in random_state_dict(config, head, seed=3).items()}
    if head == "segmentation":  # no class favoured by its bias: the masks then hold several classes
        state["segmentation_head.classifier.convolution.bias"][:] = 0
    save_checkpoint(folder, config, state)
    MobileViTImageProcessor(size={"shortest_edge": 72}, crop_size=64).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {head: write_checkpoint(root / head, head) for head in ("classification", "segmentation")}


@pytest.fixture(scope="module")
def images():
    cats = Image.open(CATS).convert("RGB")
    return [cats, cats.crop((10, 30, 150, 110)), cats.resize((53, 97))]


def transformers_pipeline(task: str, folder: Path):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return transformers.pipeline(task, model=str(folder), dtype="float32")


def assert_same_answers(ours: list[dict], theirs: list[dict]) -> None:
    assert [a["label"] for a in ours] == [a["label"] for a in theirs]
    np.testing.assert_allclose([a["score"] for a in ours], [a["score"] for a in theirs], rtol=0, atol=1e-5)


# ------------------------------------------------------------------ parity with transformers


@pytest.mark.parity
@pytest.mark.parametrize(
    "arguments", [{}, {"top_k": 3}, {"top_k": 50}, {"function_to_apply": "sigmoid"}, {"function_to_apply": "none"}]
)
def test_classification_matches_transformers(checkpoints, images, arguments):
    theirs = transformers_pipeline("image-classification", checkpoints["classification"])
    ours = pipeline("image-classification", model=checkpoints["classification"], backend="numpy")
    for image in images:
        assert_same_answers(ours(image, **arguments), theirs(image, **arguments))
    assert len(ours(images[0], **arguments)) == min(arguments.get("top_k", 5), 5)  # capped at num_labels


@pytest.mark.parity
def test_classification_of_a_list_with_batches_and_of_paths_and_arrays(checkpoints, images, tmp_path):
    theirs = transformers_pipeline("image-classification", checkpoints["classification"])
    ours = pipeline("image-classification", model=checkpoints["classification"], top_k=2)  # default backend "auto"
    answers = ours(images, batch_size=2)
    assert len(answers) == len(images) and all(len(a) == 2 for a in answers)
    for a, b in zip(answers, theirs(images, top_k=2), strict=True):
        assert_same_answers(a, b)
    assert_same_answers(ours(str(CATS)), theirs(str(CATS), top_k=2))
    array = np.asarray(images[1])
    assert_same_answers(ours(array), theirs(array, top_k=2))


@pytest.mark.parity
def test_segmentation_matches_transformers(checkpoints, images):
    theirs = transformers_pipeline("image-segmentation", checkpoints["segmentation"])
    ours = pipeline("image-segmentation", model=checkpoints["segmentation"], backend="numpy")
    classes_found = set()
    for image in images:
        a, b = ours(image), theirs(image)
        assert [x["label"] for x in a] == [x["label"] for x in b]
        classes_found.update(x["label"] for x in a)
        for x, y in zip(a, b, strict=True):
            assert x["score"] is None and x["mask"].mode == "L" and x["mask"].size == image.size
            np.testing.assert_array_equal(np.asarray(x["mask"]), np.asarray(y["mask"]))
    assert len(classes_found) >= 2  # the comparison covered more than one class


@pytest.mark.parity
@pytest.mark.parametrize("pool", [False, True])
def test_feature_extraction_matches_transformers(checkpoints, images, pool):
    theirs = transformers_pipeline("image-feature-extraction", checkpoints["classification"])
    ours = pipeline("image-feature-extraction", model=checkpoints["classification"], backend="numpy")
    expected = np.asarray(theirs(images[0], pool=pool))
    as_list = ours(images[0], pool=pool)
    assert isinstance(as_list, list)
    array = ours(images[0], pool=pool, return_tensors=True)
    assert isinstance(array, np.ndarray) and array.shape == expected.shape
    np.testing.assert_allclose(np.asarray(as_list), expected, rtol=2e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(as_list, dtype=np.float32), array)


@pytest.mark.parity
@pytest.mark.parametrize("head", ["base", "classification", "segmentation"])
@pytest.mark.parametrize("hidden", [False, True])
def test_return_dict_false_is_transformers_tuple(checkpoints, head, hidden):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = checkpoints["segmentation" if head == "segmentation" else "classification"]
    ours_cls = {"base": AutoModel, "classification": AutoModelForImageClassification}.get(
        head, AutoModelForSemanticSegmentation
    )
    theirs_cls = {
        "base": transformers.AutoModel,
        "classification": transformers.AutoModelForImageClassification,
    }.get(head, transformers.AutoModelForSemanticSegmentation)
    x = random_pixel_values((1, 3, 64, 64))
    labels = None
    if head != "base":
        labels = np.array([1]) if head == "classification" else np.random.RandomState(0).randint(0, 5, (1, 64, 64))
    kwargs = {} if labels is None else {"labels": labels}
    ours = ours_cls.from_pretrained(folder)(x, output_hidden_states=hidden, return_dict=False, **kwargs)
    model = theirs_cls.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        torch_kwargs = {} if labels is None else {"labels": torch.from_numpy(labels)}
        theirs = model(torch.from_numpy(x), output_hidden_states=hidden, return_dict=False, **torch_kwargs)
    assert isinstance(ours, tuple) and len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        pairs = zip(a, b, strict=True) if isinstance(a, tuple) else [(a, b)]
        for p, q in pairs:
            np.testing.assert_allclose(p, q.numpy(), rtol=2e-5, atol=2e-5 * float(np.abs(q.numpy()).max()))


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float16", np.float16, "auto"])
def test_float16_checkpoint_equals_transformers_float32_run(tmp_path, images, dtype):
    folder = write_checkpoint(tmp_path / "half", "classification", dtype=np.float16)
    model = MobileViTForImageClassification.from_pretrained(folder, dtype=dtype)
    assert model.precision.storage == np.float16 and model.dtype == np.float32
    assert model.params["classifier"]["weight"].dtype == np.float16  # half the memory
    theirs = transformers_pipeline("image-classification", folder)  # its float32 run of the same (f16) weights
    ours = pipeline("image-classification", model=folder, dtype=dtype, backend="numpy")
    for image in images:
        assert_same_answers(ours(image), theirs(image))


def test_bfloat16_rounds_the_weights_and_computes_in_float32(checkpoints, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(checkpoints["classification"], dtype="bfloat16")
    weight = model.params["classifier"]["weight"]
    assert weight.dtype == np.float32 and not (weight.view(np.uint32) & 0xFFFF).any()  # bf16 values
    full = MobileViTForImageClassification.from_pretrained(checkpoints["classification"])
    assert model(pixel_values).logits.dtype == np.float32
    assert not np.array_equal(model(pixel_values).logits, full(pixel_values).logits)


def test_float16_on_the_numba_path_is_widened(tmp_path, pixel_values):
    pytest.importorskip("numba")
    folder = write_checkpoint(tmp_path / "half", "classification", dtype=np.float16)
    fast = MobileViTForImageClassification.from_pretrained(folder, dtype="float16", backend="numba")
    reference = MobileViTForImageClassification.from_pretrained(folder, dtype="float16", backend="numpy")
    np.testing.assert_allclose(fast(pixel_values).logits, reference(pixel_values).logits, rtol=2e-5, atol=1e-5)


# ------------------------------------------------------------------ our own rules and errors


def test_output_defaults_come_from_the_config(checkpoints, pixel_values):
    model = MobileViTForImageClassification.from_pretrained(checkpoints["classification"])
    assert model(pixel_values).hidden_states is None
    model.config.output_hidden_states, model.config.return_dict = True, False
    logits, hidden = model(pixel_values)
    assert len(hidden) == 5 and logits.shape == (2, 5)
    out = model(pixel_values, return_dict=True, output_hidden_states=False)
    assert out.hidden_states is None and out[0] is out.logits and out["logits"] is out.logits
    assert "loss" not in out and out.to_tuple() == (out.logits,)


def test_ties_keep_label_order(tmp_path):
    config = tiny_config(num_labels=4)
    state = random_state_dict(config, "classification")
    state["classifier.weight"][:] = 0
    state["classifier.bias"][:] = 0  # every logit equal
    model = MobileViTForImageClassification.from_config(config, state)
    answers = pipeline("image-classification", model=model, image_processor=MobileViTImageProcessor(crop_size=64))(
        np.zeros((64, 64, 3), np.uint8)
    )
    assert [a["label"] for a in answers] == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    assert all(a["score"] == pytest.approx(0.25) for a in answers)


def test_default_function_follows_problem_type(tmp_path):
    for overrides, expected in [
        ({}, "softmax"),
        ({"problem_type": "multi_label_classification"}, "sigmoid"),
        ({"num_labels": 1}, "sigmoid"),
        ({"problem_type": "regression"}, "none"),
    ]:
        folder = write_checkpoint(tmp_path / str(len(list(tmp_path.iterdir()))), "classification", **overrides)
        assert pipeline("image-classification", model=folder, backend="numpy").default_function() == expected


def test_task_is_read_from_architectures(checkpoints):
    assert pipeline(model=checkpoints["segmentation"], backend="numpy").task == "image-segmentation"
    assert pipeline(model=checkpoints["classification"], backend="numpy").task == "image-classification"


@pytest.mark.parametrize(
    "task, head, arguments, message",
    [
        ("image-classification", "classification", {"top_k": 0}, "top_k must be a positive integer"),
        ("image-classification", "classification", {"function_to_apply": "relu"}, "function_to_apply must be one of"),
        ("image-classification", "classification", {"batch_size": 0}, "batch_size must be a positive integer"),
        ("image-segmentation", "segmentation", {"subtask": "instance"}, "Subtask instance is not supported"),
        ("image-segmentation", "segmentation", {"subtask": "panoptic"}, "semantic segmentation only"),
    ],
)
def test_bad_call_arguments_are_one_clear_error(checkpoints, images, task, head, arguments, message):
    with pytest.raises(ValueError, match=message):
        pipeline(task, model=checkpoints[head], backend="numpy")(images[0], **arguments)


def test_unknown_task_wrong_head_and_unknown_model_type(checkpoints, tmp_path, make_checkpoint):
    with pytest.raises(ValueError, match="unknown task 'depth-estimation'; .* supports image-classification"):
        pipeline("depth-estimation", model=checkpoints["classification"])
    with pytest.raises(ValueError, match=r"is a segmentation checkpoint \(a MobileViTForSemanticSegmentation\); "):
        pipeline("image-classification", model=checkpoints["segmentation"], backend="numpy")
    unnamed = make_checkpoint("segmentation")  # config.json names no architectures: the tensor names tell
    with pytest.raises(ValueError, match="AutoModelForImageClassification needs a classification checkpoint"):
        pipeline("image-classification", model=unnamed, backend="numpy")
    with pytest.raises(
        ValueError, match="needs a MobileViTForSemanticSegmentation, got MobileViTForImageClassification"
    ):
        classifier = AutoModelForImageClassification.from_pretrained(checkpoints["classification"])
        pipeline("image-segmentation", model=classifier, image_processor=MobileViTImageProcessor())
    with pytest.raises(TypeError, match="unknown argument"):
        pipeline("image-classification", model=checkpoints["classification"], pool=True, backend="numpy")
    other = tmp_path / "v3"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "mobilevitv3"}))
    with pytest.raises(ConfigError, match="model_type is 'mobilevitv3'; .* know only 'mobilevit'"):
        pipeline("image-classification", model=other, backend="numpy")
    with pytest.raises(ConfigError, match="know only 'mobilevit'"):
        AutoConfig.from_pretrained(other)


def test_auto_classes_pick_the_class(checkpoints):
    assert isinstance(AutoConfig.from_pretrained(checkpoints["classification"], output_stride=16).output_stride, int)
    assert type(AutoModel.from_pretrained(checkpoints["segmentation"])) is MobileViTModel
    assert type(AutoModelForSemanticSegmentation.from_pretrained(checkpoints["segmentation"])) is (
        MobileViTForSemanticSegmentation
    )
    random = AutoModelForImageClassification.from_config(tiny_config())
    assert random(random_pixel_values((1, 3, 64, 64))).logits.shape == (1, 5)


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"image_processor_type": "MobileViTImageProcessor"}, MobileViTImageProcessor),
        ({"image_processor_type": "MobileViTImageProcessorFast"}, MobileViTImageProcessor),
        ({"feature_extractor_type": "MobileViTFeatureExtractor"}, MobileViTImageProcessor),
        ({}, MobileViTImageProcessor),
    ],
)
def test_auto_image_processor_reads_the_type(checkpoints, tmp_path, settings, expected):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "config.json").write_text((checkpoints["classification"] / "config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**settings, "crop_size": 32}))
    processor = AutoImageProcessor.from_pretrained(folder)
    assert type(processor) is expected and processor.crop_size == {"height": 32, "width": 32}
    assert type(AutoImageProcessor.from_pretrained(folder, use_fast=True)) is MobileViTImageProcessorFast
    assert AutoImageProcessor.from_pretrained(folder, crop_size=48).crop_size["height"] == 48


def test_auto_image_processor_refuses_another_models_processor(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "ViTImageProcessor"}))
    with pytest.raises(ValueError, match="names the image processor 'ViTImageProcessor'; mobilevit_np has only"):
        AutoImageProcessor.from_pretrained(tmp_path)


@pytest.mark.parity
@pytest.mark.parametrize("torch_dtype", ["float16", "bfloat16"])
def test_half_precision_pytorch_model_bin_loads(tmp_path, pixel_values, torch_dtype):
    """A .bin saved by torch in float16 / bfloat16 (read without unpickling) equals transformers' float32 run."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = tiny_config()
    folder = tmp_path / "bin"
    config.save_pretrained(folder)
    state = {k: torch.from_numpy(v).to(getattr(torch, torch_dtype)) for k, v in random_state_dict(config).items()}
    torch.save(state, folder / "pytorch_model.bin")
    with pytest.warns(UserWarning, match="converted"):
        ours = MobileViTForImageClassification.from_pretrained(
            folder, dtype="auto" if torch_dtype == "float16" else torch_dtype
        )
    assert ours.precision.storage == (np.float16 if torch_dtype == "float16" else np.float32)  # "auto" saw float16
    model = transformers.MobileViTForImageClassification(transformers.MobileViTConfig(**config.to_dict())).eval()
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    with torch.no_grad():
        expected = model(torch.from_numpy(pixel_values)).logits.numpy()
    np.testing.assert_allclose(ours(pixel_values).logits, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_auto_classes_and_pipelines_take_mobilevitv2(tmp_path):
    """A MobileViTV2 checkpoint: the Auto classes pick the V2 classes by model_type, and the pipelines run it."""
    from mobilevit_np import MobileViTV2Config, MobileViTV2ForImageClassification, MobileViTV2Model

    config = MobileViTV2Config(
        width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[1, 1, 1], num_labels=3,
        extra={"architectures": ["MobileViTV2ForImageClassification"]},
    )  # fmt: skip
    folder = tmp_path / "v2"
    save_checkpoint(folder, config, random_state_dict(config, "classification", seed=1))
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    assert type(AutoConfig.from_pretrained(folder)) is MobileViTV2Config
    assert type(AutoModel.from_pretrained(folder)) is MobileViTV2Model
    model = AutoModelForImageClassification.from_pretrained(folder)
    assert type(model) is MobileViTV2ForImageClassification
    assert type(AutoModelForImageClassification.from_config(config)) is MobileViTV2ForImageClassification
    with pytest.raises(ValueError, match="is a classification checkpoint"):
        AutoModelForSemanticSegmentation.from_pretrained(folder)
    results = pipeline("image-classification", model=str(folder), backend="numpy", top_k=2)(str(CATS))
    processor = MobileViTImageProcessor.from_pretrained(folder)
    logits = model(processor(str(CATS))["pixel_values"]).logits[0]
    assert [r["label"] for r in results][0] == config.id2label[int(logits.argmax())]
