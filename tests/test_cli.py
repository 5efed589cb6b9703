"""The installed `mobilevit-np` command, end to end in subprocesses, on tiny random-weight checkpoints."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mobilevit_np import (
    MobileViTForImageClassification,
    MobileViTImageProcessor,
    MobileViTV2Config,
    MobileViTV2ForImageClassification,
)
from mobilevit_np.architecture import parameter_shapes
from mobilevit_np.backends import numba_available
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.cli import build_parser
from mobilevit_np.layers import softmax
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATS = os.path.join(ROOT, "examples", "images", "cats.png")
LABELS = {0: "tabby cat", 1: "remote control", 2: "blanket", 3: "sofa", 4: "dog"}


def run(*args: str, module: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed entry point (or `python -m mobilevit_np`) in a fresh process."""
    exe = shutil.which("mobilevit-np")
    assert exe, "the mobilevit-np entry point is not installed (pip install -e .)"
    command = [sys.executable, "-m", "mobilevit_np", *args] if module else [exe, *args]
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}  # tests never touch the network
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=full_env)


def assert_one_line_error(result: subprocess.CompletedProcess, message: str, code: int = 1) -> None:
    assert result.returncode == code, result
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def classifier(make_checkpoint, tmp_path):
    folder = make_checkpoint("classification", id2label=LABELS)
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    return folder


@pytest.fixture
def segmenter(tmp_path):
    config = tiny_config(num_labels=3, output_stride=16, extra={"architectures": ["MobileViTForSemanticSegmentation"]})
    folder = tmp_path / "segmenter"
    save_checkpoint(folder, config, random_state_dict(config, "segmentation", seed=1))
    MobileViTImageProcessor(size=80, crop_size=64).save_pretrained(folder)
    return folder


@pytest.fixture
def small_image(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.random.RandomState(5).randint(0, 256, (50, 90, 3), dtype=np.uint8)).save(path)
    return str(path)


# ---------------------------------------------------------------- classify


def test_classify_prints_top_k_as_the_library_computes(classifier, small_image):
    result = run("classify", CATS, small_image, "--model", str(classifier), "--top-k", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == CATS and lines[4] == small_image and len(lines) == 8
    model = MobileViTForImageClassification.from_pretrained(classifier)
    probs = softmax(model(MobileViTImageProcessor.from_pretrained(classifier)(CATS)["pixel_values"]).logits[0])
    best = int(np.argmax(probs))
    assert lines[1] == f"   1. {probs[best]:.4f}  {LABELS[best]}"


def test_classify_json(classifier):
    result = run("classify", CATS, "--model", str(classifier), "--json", "--top-k", "5")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    predictions = entry["predictions"]
    assert entry["image"] == CATS and [p["rank"] for p in predictions] == [1, 2, 3, 4, 5]
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 1e-6
    assert {p["label"] for p in predictions} == set(LABELS.values())


def test_python_dash_m_and_backend_numba(classifier):
    pytest.importorskip("numba")
    numpy_run = run("classify", CATS, "--model", str(classifier), "--json", module=True)
    numba_run = run("classify", CATS, "--model", str(classifier), "--json", "--backend", "numba")
    assert numpy_run.returncode == 0 and numba_run.returncode == 0, (numpy_run.stderr, numba_run.stderr)
    a, b = (json.loads(r.stdout)[0]["predictions"] for r in (numpy_run, numba_run))
    assert [p["index"] for p in a] == [p["index"] for p in b]
    np.testing.assert_allclose([p["probability"] for p in a], [p["probability"] for p in b], rtol=1e-4)


def backend_choices(command: str) -> list[str]:
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    [backend] = [a for a in subcommands.choices[command]._actions if "--backend" in a.option_strings]
    return list(backend.choices)


def test_backend_choices_are_the_readmes():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        documented = re.findall(r"--backend ([a-z|]+)", f.read())
    assert documented, "the README documents no --backend"
    for command in ("classify", "segment"):
        assert {"|".join(backend_choices(command))} == set(documented) == {"numpy|numba|auto"}


def test_backend_auto_runs_numba_when_installed_else_numpy(classifier):
    auto_run = run("classify", CATS, "--model", str(classifier), "--json", "--backend", "auto")
    numpy_run = run("classify", CATS, "--model", str(classifier), "--json")
    assert auto_run.returncode == 0 and numpy_run.returncode == 0, (auto_run.stderr, numpy_run.stderr)
    a, b = (json.loads(r.stdout)[0]["predictions"] for r in (auto_run, numpy_run))
    assert [p["index"] for p in a] == [p["index"] for p in b]
    np.testing.assert_allclose([p["probability"] for p in a], [p["probability"] for p in b], rtol=1e-4)


def test_classify_without_preprocessor_config_notes_the_defaults(make_checkpoint):
    result = run("classify", CATS, "--model", str(make_checkpoint()))
    assert result.returncode == 0
    assert "note: no preprocessor_config.json" in result.stderr and "shortest edge 224" in result.stderr


# ----------------------------------------------------------------- segment


def test_segment_writes_mask_and_overlay_at_image_size(segmenter, small_image, tmp_path):
    mask_path, overlay_path = tmp_path / "mask.png", tmp_path / "overlay.png"
    result = run(
        "segment", small_image, "--model", str(segmenter), "--out", str(mask_path), "--overlay", str(overlay_path)
    )
    assert result.returncode == 0, result.stderr
    mask = Image.open(mask_path)
    assert mask.mode == "P" and mask.size == (90, 50) and Image.open(overlay_path).size == (90, 50)
    values = set(np.unique(np.asarray(mask)))
    assert values <= {0, 1, 2, 255} and 255 in values  # 90x50 -> 144x80, crop 64x64 sees only the middle
    shares = [float(line.split("%")[0]) for line in result.stdout.splitlines() if "%" in line]
    assert abs(sum(shares) - 100) < 0.05
    assert f"wrote mask: {mask_path}" in result.stdout


# ----------------------------------------------------------------- summary


def test_summary_of_presets_counts_what_the_architecture_holds():
    result = run("summary", "--model", "small", "--image-size", "256")
    assert result.returncode == 0, result.stderr
    shapes = parameter_shapes(__import__("mobilevit_np.presets").presets.preset_config("small"), "classification")
    trainable = sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(("running_mean", "running_var")))
    assert trainable == 5_578_632  # transformers' num_parameters() for apple/mobilevit-small
    assert "5,578,632 parameters" in result.stdout and "2,000,831,488 multiply-accumulates" in result.stdout
    assert "encoder.layer.2.transformer.layer.0  (4, 256, 144)" in result.stdout
    seg = run("summary", "--model", "xx-small", "--head", "segmentation", "--image-size", "512")
    assert seg.returncode == 0 and "segmentation_head.aspp.convs.1" in seg.stdout and "(21, 32, 32)" in seg.stdout


def test_summary_of_a_checkpoint_folder_needs_no_weights(segmenter):
    os.remove(segmenter / "model.safetensors")
    result = run("summary", "--model", str(segmenter))
    assert result.returncode == 0, result.stderr
    assert "(segmentation)" in result.stdout and "segmentation_head.classifier" in result.stdout


def test_summary_finds_the_head_from_tensor_names_without_architectures(tmp_path):
    config = tiny_config(num_labels=3, output_stride=16)  # config.json names no architectures
    save_checkpoint(tmp_path / "seg", config, random_state_dict(config, "segmentation", seed=1))
    result = run("summary", "--model", str(tmp_path / "seg"))
    assert result.returncode == 0, result.stderr
    assert "(segmentation)" in result.stdout


@pytest.mark.parametrize("command", ["summary", "segment", "classify"])
def test_each_command_reads_config_json_once(command, segmenter, classifier, small_image, tmp_path, monkeypatch):
    import mobilevit_np.config
    from mobilevit_np.cli import main

    read, reads = mobilevit_np.config.read_json_file, []

    def counted(file, error):
        reads.append(os.path.basename(file))
        return read(file, error)

    monkeypatch.setattr(mobilevit_np.config, "read_json_file", counted)
    args = {
        "summary": ["summary", "--model", str(segmenter)],
        "segment": ["segment", small_image, "--model", str(segmenter), "--out", str(tmp_path / "mask.png")],
        "classify": ["classify", small_image, "--model", str(classifier)],
    }[command]
    assert main(args) == 0
    assert reads.count("config.json") == 1


def test_summary_finds_the_head_in_config_json_architectures(segmenter, capsys):
    from mobilevit_np.cli import main

    assert main(["summary", "--model", str(segmenter)]) == 0
    assert "(segmentation)" in capsys.readouterr().out


# ----------------------------------------------------------------- convert


def test_convert_and_refuse_to_overwrite(tmp_path):
    from test_torch_pickle import TENSORS, fake_bin

    source = fake_bin(tmp_path / "pytorch_model.bin", TENSORS)
    target = tmp_path / "out.safetensors"
    result = run("convert", source, str(target))
    assert result.returncode == 0 and result.stdout.strip() == f"wrote {target}"
    from mobilevit_np.checkpoints.safetensors_io import load_safetensors

    np.testing.assert_array_equal(load_safetensors(target)["a.weight"], TENSORS["a.weight"])
    assert_one_line_error(run("convert", source, str(target)), "already exists (use --force")
    assert run("convert", source, str(target), "--force").returncode == 0


# ------------------------------------------------- several images, some unreadable


def test_json_gives_every_image_its_own_entry_when_one_is_unreadable(classifier, small_image, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping list")
    missing = str(tmp_path / "gone.png")
    result = run("classify", CATS, str(notes), small_image, missing, "--model", str(classifier), "--json")
    assert result.returncode == 1, result.stderr  # 1: not every image succeeded
    entries = json.loads(result.stdout)
    assert [e["image"] for e in entries] == [CATS, str(notes), small_image, missing]
    assert entries[1] == {"image": str(notes), "error": f"{notes}: not an image file Pillow can read"}
    assert set(entries[3]) == {"image", "error"} and entries[3]["error"].startswith(f"image not found: {missing}")
    alone = json.loads(run("classify", CATS, small_image, "--model", str(classifier), "--json").stdout)
    assert [entries[0], entries[2]] == alone  # the good images' results, as without the bad ones
    assert "Traceback" not in result.stderr


def test_text_output_keeps_the_good_results_and_names_the_bad_file(classifier, small_image, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping list")
    result = run("classify", CATS, str(notes), small_image, "--model", str(classifier), "--top-k", "2")
    assert result.returncode == 1
    assert result.stdout.splitlines()[::3] == [CATS, small_image]
    assert_one_line_error(result, f"{notes}: not an image file Pillow can read")


@pytest.mark.parametrize(
    "args, message",
    [
        ([CATS, "--model", "/nonexistent/folder"], "checkpoint folder not found: /nonexistent/folder"),
        ([CATS, "--model", "{classifier}", "--top-k", "0"], "--top-k must be at least 1"),
        ([CATS, "{tmp}/*.webp", "--model", "{classifier}"], "no files match this pattern"),
    ],
)
def test_json_prints_a_json_error_object_when_the_run_fails(args, message, classifier, tmp_path):
    result = run("classify", *[a.format(classifier=classifier, tmp=tmp_path) for a in args], "--json")
    assert json.loads(result.stdout) == {"error": result.stderr.strip().removeprefix("mobilevit-np: error: ")}
    assert_one_line_error(result, message)


# ------------------------------------------------------------- error paths


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "/nonexistent/cat.png", "--model", "{classifier}"], "image not found: /nonexistent/cat.png"),
        (["classify", "{notes}", "--model", "{classifier}"], "not an image file Pillow can read"),
        (["classify", CATS, "--model", "{empty}"], "config.json not found"),
        (["classify", CATS, "--model", "{no_weights}"], "no model.safetensors or model.safetensors.index.json"),
        (["classify", CATS, "--model", "/nonexistent/folder"], "checkpoint folder not found: /nonexistent/folder"),
        (["classify", CATS, "--model", "{classifier}", "--top-k", "0"], "--top-k must be at least 1"),
        (["classify", CATS, "--model", "{segmenter}"], "is a segmentation checkpoint; use `mobilevit-np segment`"),
        (["segment", CATS, "--model", "{classifier}"], "is a classification checkpoint; use `mobilevit-np classify`"),
        (
            ["segment", CATS, "--model", "{segmenter}", "--out", "/nonexistent/m.png"],
            "the folder /nonexistent does not exist",
        ),
        (["summary", "--model", "huge"], "unknown model 'huge': not a folder, a Hub id, or one of small"),
        (["summary", "--model", "small", "--image-size", "0"], "--image-size must be positive"),
        (["convert", "/nonexistent/pytorch_model.bin", "x.safetensors"], "file not found"),
        (["convert", "{notes}", "{tmp}/x.safetensors"], "not a PyTorch checkpoint"),
        (["classify", CATS, "--model", "someone/some-model"], "could not get 'someone/some-model' from the Hugging"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(args, message, classifier, segmenter, tmp_path, make_checkpoint):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    no_weights = make_checkpoint(seed=3)
    os.remove(no_weights / "model.safetensors")
    names = dict(classifier=classifier, segmenter=segmenter, notes=tmp_path / "notes.txt", tmp=tmp_path)
    names.update(empty=tmp_path / "empty", no_weights=no_weights)
    result = run(*[a.format(**names) for a in args], env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(result, message)


def test_hub_error_says_how_to_use_a_local_folder(tmp_path):
    result = run("classify", CATS, "--model", "apple/mobilevit-small", env={"HF_HOME": str(tmp_path / "hf")})
    assert_one_line_error(result, "pass that folder instead")


def test_main_restores_the_callers_showwarning(capsys):
    import warnings

    from mobilevit_np.cli import main

    before = warnings.showwarning
    assert main(["summary", "--model", "small"]) == 0
    assert main(["summary", "--model", "huge"]) == 1
    assert warnings.showwarning is before
    capsys.readouterr()


def test_bad_arguments_exit_2_and_debug_shows_the_traceback(classifier):
    assert run("classify", CATS).returncode == 2  # --model missing: argparse's usage error
    assert run("frobnicate").returncode == 2
    debug = run("--debug", "classify", CATS, "--model", str(classifier), "--top-k", "0")
    assert (
        debug.returncode == 1 and "Traceback" in debug.stderr and "CLIError: --top-k must be at least 1" in debug.stderr
    )
    after = run("classify", CATS, "--model", "/nonexistent/folder", "--debug")
    assert "Traceback" in after.stderr


# ---------------------------------------------------------------- progress


def test_no_progress_bar_when_stderr_is_a_pipe(classifier, small_image):
    result = run("classify", CATS, small_image, CATS, "--model", str(classifier))
    assert result.returncode == 0 and "images," not in result.stderr and "\r" not in result.stderr


# ----------------------------------------------------------------- MobileViTV2

V2_TINY = dict(width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[1, 1, 1], aspp_out_channels=8)


@pytest.fixture
def v2_checkpoints(tmp_path):
    """A MobileViTV2 classifier and segmenter, as transformers' save_pretrained names them."""
    folders = {}
    for head, architecture, labels in (
        ("classification", "MobileViTV2ForImageClassification", LABELS),
        ("segmentation", "MobileViTV2ForSemanticSegmentation", {0: "background", 1: "cat", 2: "sofa"}),
    ):
        config = MobileViTV2Config(**V2_TINY, id2label=labels, extra={"architectures": [architecture]})
        folders[head] = tmp_path / f"v2-{head}"
        save_checkpoint(folders[head], config, random_state_dict(config, head, seed=2))
        MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folders[head])
    return folders


def test_v2_classify_and_segment(v2_checkpoints, tmp_path):
    result = run("classify", CATS, "--model", str(v2_checkpoints["classification"]), "--json", "--top-k", "2")
    assert result.returncode == 0, result.stderr
    model = MobileViTV2ForImageClassification.from_pretrained(v2_checkpoints["classification"])
    processor = MobileViTImageProcessor.from_pretrained(v2_checkpoints["classification"])
    probs = softmax(model(processor(CATS)["pixel_values"]).logits[0])
    [entry] = json.loads(result.stdout)
    assert entry["predictions"][0]["index"] == int(np.argmax(probs))
    assert abs(entry["predictions"][0]["probability"] - float(probs.max())) < 1e-6
    segmented = run("segment", CATS, "--model", str(v2_checkpoints["segmentation"]), "--out", str(tmp_path / "m.png"))
    assert segmented.returncode == 0, segmented.stderr
    assert Image.open(tmp_path / "m.png").size == Image.open(CATS).size


def test_v2_wrong_head_is_a_one_line_error_and_the_fast_backend_classifies(v2_checkpoints):
    assert_one_line_error(
        run("classify", CATS, "--model", str(v2_checkpoints["segmentation"])), "is a segmentation checkpoint"
    )
    if numba_available():
        args = ("classify", CATS, "--model", str(v2_checkpoints["classification"]), "--json", "--top-k", "3")
        fast, reference = run(*args, "--backend", "numba"), run(*args)
        assert fast.returncode == 0, fast.stderr
        [ours], [theirs] = json.loads(fast.stdout), json.loads(reference.stdout)
        assert [p["index"] for p in ours["predictions"]] == [p["index"] for p in theirs["predictions"]]
        for a, b in zip(ours["predictions"], theirs["predictions"], strict=True):
            assert abs(a["probability"] - b["probability"]) < 1e-5


def test_v2_summary_of_presets_and_folders(v2_checkpoints):
    result = run("summary", "--model", "v2-1.0")
    assert result.returncode == 0, result.stderr
    # transformers' num_parameters() and torch's FLOP counter / 2 (tests/test_summary.py checks every width)
    assert "4,901,841 parameters" in result.stdout and "1,812,090,880 multiply-accumulates" in result.stdout
    assert result.stdout.startswith("MobileViTV2-1.0 (classification, built-in config, no weights)")
    assert "encoder.layer.2.transformer.layer.0  (128, 4, 256)" in result.stdout
    folder = run("summary", "--model", str(v2_checkpoints["segmentation"]))
    assert folder.returncode == 0 and "(segmentation)" in folder.stdout and "segmentation_head.aspp" in folder.stdout
