"""Nothing lost: conversions write a temporary file and rename it, so an interruption leaves no half file.

The interruption is simulated by a safetensors writer that writes half of the real
file and then raises (Ctrl-C, or a full disk).
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

from mobilevit_np import cli
from mobilevit_np.checkpoints.safetensors_io import load_safetensors, write_safetensors
from mobilevit_np.checkpoints.state_dict import load_checkpoint_tensors
from mobilevit_np.checkpoints.torch_pickle import convert

TINY_BIN = Path(__file__).parent / "fixtures" / "bin" / "tiny.bin"
INTERRUPTIONS = [KeyboardInterrupt(), OSError(28, "No space left on device")]


@pytest.fixture
def source(tmp_path) -> Path:
    shutil.copy(TINY_BIN, tmp_path / "pytorch_model.bin")
    return tmp_path / "pytorch_model.bin"


def interrupt_writes(monkeypatch, interruption: BaseException) -> list[str]:
    """Make safetensors' save_file write half of its file, then raise; returns the paths it wrote."""
    written = []

    def half_then_raise(tensors, filename, metadata=None):
        data = safetensors.numpy.save(tensors, metadata=metadata)
        Path(filename).write_bytes(data[: len(data) // 2])
        written.append(str(filename))
        raise interruption

    monkeypatch.setattr(safetensors.numpy, "save_file", half_then_raise)
    return written


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=["ctrl-c", "disk-full"])
def test_interrupted_conversion_leaves_no_file(interruption, source, tmp_path, monkeypatch):
    written = interrupt_writes(monkeypatch, interruption)
    with pytest.raises(type(interruption)):
        convert(source, tmp_path / "model.safetensors")
    assert written and written[0] != str(tmp_path / "model.safetensors")  # the half file was a temporary one
    assert sorted(os.listdir(tmp_path)) == ["pytorch_model.bin"]  # no destination, no temporary file


@pytest.mark.parametrize("interruption", INTERRUPTIONS, ids=["ctrl-c", "disk-full"])
def test_interrupted_overwrite_keeps_the_old_file(interruption, source, tmp_path, monkeypatch):
    old = tmp_path / "model.safetensors"
    write_safetensors({"old": np.arange(3, dtype=np.float32)}, old)
    before = old.read_bytes()
    interrupt_writes(monkeypatch, interruption)
    with pytest.raises(type(interruption)):
        convert(source, old, overwrite=True)
    assert old.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "pytorch_model.bin"]


def test_refused_overwrite_leaves_the_file_untouched(source, tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="already exists"):
        convert(source)
    assert (tmp_path / "model.safetensors").read_bytes() == b"precious"


def test_cli_convert_interrupted(source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    interrupt_writes(monkeypatch, KeyboardInterrupt())
    assert cli.main(["convert", str(source), str(tmp_path / "out.safetensors")]) == 130
    assert "mobilevit-np: interrupted" in capsys.readouterr().err
    interrupt_writes(monkeypatch, OSError(28, "No space left on device"))
    assert cli.main(["convert", str(source), str(tmp_path / "out.safetensors")]) == 1
    out = tmp_path / "out.safetensors"
    assert f"error: [Errno 28] cannot write {out}: No space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["pytorch_model.bin"]


def test_bin_only_folder_interrupted_while_caching(source, tmp_path, monkeypatch):
    """Loading a .bin-only folder caches model.safetensors beside it; a failed cache write loses nothing."""
    interrupt_writes(monkeypatch, OSError(28, "No space left on device"))
    with pytest.warns(UserWarning, match="could not save"):
        tensors = load_checkpoint_tensors(tmp_path)
    np.testing.assert_array_equal(
        tensors["layer.weight"], load_safetensors(TINY_BIN.with_suffix(".safetensors"))["layer.weight"]
    )
    assert sorted(os.listdir(tmp_path)) == ["pytorch_model.bin"]
    interrupt_writes(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        load_checkpoint_tensors(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["pytorch_model.bin"]


def test_written_files_get_ordinary_permissions(source, tmp_path):
    """0o666 minus the umask, as any new file; the safetensors package alone would give 0o600."""
    convert(source, tmp_path / "model.safetensors")
    assert (tmp_path / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask()
