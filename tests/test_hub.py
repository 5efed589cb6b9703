"""Checkpoint resolution: local folders, Hub ids from a (pre-filled, offline) Hub cache, clear errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification, MobileViTImageProcessor
from mobilevit_np.checkpoints.hub import HubError, is_hub_id, resolve_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATS = os.path.join(ROOT, "examples", "images", "cats.png")


def test_hub_ids():
    assert is_hub_id("apple/mobilevit-small") and is_hub_id("a/b.c_d")
    for name in ("small", "./apple/x", "/abs/path", "a/b/c", "../x", "a/..", ""):
        assert not is_hub_id(name), name


def test_local_folder_and_missing_path(make_checkpoint, tmp_path):
    folder = make_checkpoint()
    assert resolve_checkpoint(folder) == str(folder)
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found: .*nor is it a Hub id"):
        resolve_checkpoint(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found: small"):
        MobileViTForImageClassification.from_pretrained("small")


def test_a_file_path_says_to_pass_its_folder(make_checkpoint):
    folder = make_checkpoint()
    weights = os.path.join(folder, "model.safetensors")
    with pytest.raises(NotADirectoryError, match=f"is a file, not a checkpoint folder; .*: {re.escape(str(folder))}$"):
        MobileViTForImageClassification.from_pretrained(weights)


def test_without_huggingface_hub_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    with pytest.raises(HubError, match=r"pip install 'mobilevit-np\[hub\]'.*pass that folder instead"):
        resolve_checkpoint("apple/mobilevit-small")


def test_download_failures_become_one_clear_error(monkeypatch):
    hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise hub.errors.LocalEntryNotFoundError("Cannot find the requested files in the local cache")

    monkeypatch.setattr(hub, "snapshot_download", offline)
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", True)  # no probe of the real Hub
    with pytest.raises(HubError, match="could not get 'apple/mobilevit-small' .*LocalEntryNotFoundError"):
        MobileViTForImageClassification.from_pretrained("apple/mobilevit-small")


def fill_hub_cache(hf_home, repo_id: str, files: dict[str, str]) -> str:
    """Lay files out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = os.path.join(hf_home, "hub", "models--" + repo_id.replace("/", "--"))
    snapshot = os.path.join(repo, "snapshots", commit)
    os.makedirs(snapshot)
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)
    for name, source in files.items():
        shutil.copy(source, os.path.join(snapshot, name))
    return snapshot


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_hub_id_from_the_offline_cache_end_to_end(make_checkpoint, tmp_path, weights):
    """The CLI with a Hub id, HF_HUB_OFFLINE=1 and a filled cache: no network, same answer as the folder."""
    pytest.importorskip("huggingface_hub")
    from test_torch_pickle import fake_bin

    from mobilevit_np.checkpoints.safetensors_io import load_safetensors

    folder = make_checkpoint()
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    files = {name: os.path.join(folder, name) for name in ("config.json", "preprocessor_config.json")}
    if weights == "pytorch_model.bin":  # as the apple/* repositories: only a .bin on main
        files[weights] = fake_bin(tmp_path / "pytorch_model.bin", load_safetensors(folder / "model.safetensors"))
    else:
        files[weights] = os.path.join(folder, weights)
    snapshot = fill_hub_cache(tmp_path / "hf", "apple/mobilevit-tiny", files)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    command = [shutil.which("mobilevit-np"), "classify", CATS, "--json", "--model"]
    from_hub = subprocess.run(command + ["apple/mobilevit-tiny"], capture_output=True, text=True, env=env, timeout=120)
    from_folder = subprocess.run(command + [str(folder)], capture_output=True, text=True, env=env, timeout=120)
    assert from_hub.returncode == 0, from_hub.stderr
    assert from_hub.stdout.replace("apple/mobilevit-tiny", "") == from_folder.stdout.replace(str(folder), "")
    if weights == "pytorch_model.bin":
        assert "note: converted" in from_hub.stderr
        np.testing.assert_array_equal(
            load_safetensors(os.path.join(snapshot, "model.safetensors"))["classifier.weight"],
            load_safetensors(folder / "model.safetensors")["classifier.weight"],
        )


@pytest.mark.parity
def test_v2_hub_id_with_a_pytorch_model_bin_written_by_torch(tmp_path):
    """As apple/mobilevitv2-*: config.json and a torch-pickled .bin (read by the allowlist reader), via the CLI."""
    pytest.importorskip("huggingface_hub")
    pytest.importorskip("transformers")
    import torch
    from reference import transformers_model

    from mobilevit_np import MobileViTV2Config
    from mobilevit_np.random_weights import random_state_dict

    config = MobileViTV2Config(width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[1, 1, 1])
    reference = transformers_model("classification", config, random_state_dict(config, "classification", seed=3))
    folder = tmp_path / "saved"
    reference.save_pretrained(folder)  # config.json and model.safetensors, as transformers 5 writes them
    torch.save(reference.state_dict(), tmp_path / "pytorch_model.bin")  # what transformers 4 wrote
    files = {"config.json": str(folder / "config.json"), "pytorch_model.bin": str(tmp_path / "pytorch_model.bin")}
    fill_hub_cache(tmp_path / "hf", "apple/mobilevitv2-tiny", files)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    command = [shutil.which("mobilevit-np"), "classify", CATS, "--json", "--model"]
    from_hub = subprocess.run(
        command + ["apple/mobilevitv2-tiny"], capture_output=True, text=True, env=env, timeout=120
    )
    from_folder = subprocess.run(command + [str(folder)], capture_output=True, text=True, env=env, timeout=120)
    assert from_hub.returncode == 0 and from_folder.returncode == 0, (from_hub.stderr, from_folder.stderr)
    assert "note: converted" in from_hub.stderr
    assert from_hub.stdout.replace("apple/mobilevitv2-tiny", "") == from_folder.stdout.replace(str(folder), "")
