"""Hostile inputs, round 2: bounded memory under real resource limits, nothing lost, the same refusals as the
reference libraries.

The messages are in the catalogue (test_hostile_catalogue.py); these tests prove what a
message cannot. Memory cases run in a child process under RLIMIT_AS (address space: the
pre-fix code died there, or asked for far more), so a pass means the work was refused
before the allocation, not that this machine happened to have the memory. A full disk is
RLIMIT_FSIZE, a real write error inside the safetensors package's writer.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_hostile_bin import record_opens
from test_hostile_catalogue import catalogue

from mobilevit_np import MobileViTImageProcessor, WeightsError
from mobilevit_np.checkpoints.safetensors_io import load_safetensors
from mobilevit_np.checkpoints.torch_pickle import convert, load_torch_pickle
from mobilevit_np.files import write_atomically
from mobilevit_np.palette import colorize
from mobilevit_np.postprocess import WIDE_OUTSIDE, mask_at_image_size

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "bin"
TINY_BIN = FIXTURES / "tiny.bin"

LIMITED = """
import resource, signal

def address_space_limit(extra):
    # The current address space plus `extra` bytes: what the rest of the run may still map.
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, resource.RLIM_INFINITY))

def file_size_limit(limit):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
"""


def run_limited(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` (after the limit helpers above) in a fresh single-threaded Python."""
    program = LIMITED + textwrap.dedent(code)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


# ------------------------------------------------------------ 1. memo reuse


def memo_bin(path: Path, names: int, numel: int) -> Path:
    """One storage of `numel` float32 (memoised) under `names` names: names x 4 x numel bytes as copies."""
    c = catalogue
    first = ("layer.0.weight", c.op_tensor("FloatStorage", numel) + b"q\x01")
    program = c.state_program([first] + [(f"layer.{i}.weight", b"h\x01") for i in range(1, names)])
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", program)
        archive.writestr("archive/data/0", bytes(4 * numel))
    return path


def test_one_storage_under_many_names_is_refused_under_a_memory_limit(tmp_path):
    """A 4 MB file whose 1000 names would be 4 GB of copies: refused, naming the file, within 256 MB."""
    path = memo_bin(tmp_path / "pytorch_model.bin", names=1000, numel=2**20)
    assert path.stat().st_size < 5 * 2**20
    result = run_limited(
        f"""
        from mobilevit_np import WeightsError
        from mobilevit_np.checkpoints.torch_pickle import convert, load_torch_pickle
        address_space_limit(256 * 2**20)
        for call in (lambda: load_torch_pickle({str(path)!r}), lambda: convert({str(path)!r}, "out.safetensors")):
            try:
                call()
            except WeightsError as e:
                print("refused:", e)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(f"{path}: its 1000 tensors" in line and "would take" in line for line in lines)
    assert sorted(os.listdir(tmp_path)) == ["pytorch_model.bin"]  # convert wrote nothing


def test_tensors_sharing_a_storage_share_memory():
    """tiny.bin (torch.save) holds layer.weight and layer.row = weight[1]: one storage, so one buffer here too."""
    tensors = load_torch_pickle(TINY_BIN)
    assert np.shares_memory(tensors["layer.weight"], tensors["layer.row"])
    np.testing.assert_array_equal(tensors["layer.row"], tensors["layer.weight"][1])
    assert tensors["layer.weight_t"].flags.c_contiguous  # a transposed view is copied, as before
    np.testing.assert_array_equal(tensors["layer.weight_t"], tensors["layer.weight"].T)


def test_a_tied_tensor_under_two_names_loads_once(tmp_path):
    tensors = load_torch_pickle(memo_bin(tmp_path / "tied.bin", names=2, numel=1024))
    assert tensors["layer.0.weight"] is tensors["layer.1.weight"]


# ---------------------------------------------------- 2, 4. images and batches


def test_a_thin_png_is_refused_under_a_memory_limit(tmp_path):
    """1x4000 pixels (93 bytes) resized to a short edge of 224 would be 224 x 896,000 (the old code: 7.7 GB)."""
    Image.fromarray(np.zeros((4000, 1, 3), np.uint8)).save(tmp_path / "thin.png")
    result = run_limited(
        """
        import time
        from mobilevit_np import MobileViTImageProcessor
        address_space_limit(512 * 2**20)
        start = time.perf_counter()
        try:
            MobileViTImageProcessor()("thin.png")
        except ValueError as e:
            print(f"{time.perf_counter() - start:.2f}", e)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    seconds, message = result.stdout.split(" ", 1)
    assert float(seconds) < 2 and message.startswith("thin.png: resizing the 1x4000 image would make 224x896000")


def test_a_moderately_thin_image_still_matches_the_usual_path():
    """1x300 is far below the limit: processed as before (224 x 67,200 resized, then cropped)."""
    image = Image.fromarray(np.linspace(0, 255, 300, dtype=np.uint8).reshape(300, 1).repeat(3, axis=1)[:, None, :])
    out = MobileViTImageProcessor()(image)["pixel_values"]
    assert out.shape == (1, 3, 256, 256) and np.isfinite(out).all()


def test_a_batch_too_large_is_refused_before_running_under_a_memory_limit(tmp_path):
    """The tiny model needs ~9.4 GB for 64 images of 512x512; with 1.5 GB allowed it says so at once,
    while one image of 256x256 (~8 MB) runs under the same limit."""
    result = run_limited(
        """
        import numpy as np
        from mobilevit_np.presets import tiny_config
        from mobilevit_np import MobileViTForImageClassification
        from mobilevit_np.random_weights import random_state_dict
        config = tiny_config()
        model = MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification"))
        address_space_limit(1536 * 2**20)
        print(model(np.zeros((1, 3, 256, 256), np.float32)).logits.shape)
        try:
            model(np.broadcast_to(np.zeros((1, 3, 512, 512), np.float32), (64, 3, 512, 512)))
        except MemoryError as e:
            print(e)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first == "(1, 5)"
    assert second.startswith("a forward pass on 64 image(s) of 512x512 needs about 9.4 GB, but about 1.")
    assert "lower the batch size (about" in second


# --------------------------------------------------------------- 6-8. files


def test_full_disk_while_a_bin_only_folder_is_converted_loads_and_leaves_nothing(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(TINY_BIN.read_bytes())
    result = run_limited(
        """
        import warnings
        from mobilevit_np.checkpoints.state_dict import load_checkpoint_tensors
        file_size_limit(100)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tensors = load_checkpoint_tensors("ckpt")
        print(sorted(tensors))
        print(caught[0].message)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    names, warning = result.stdout.splitlines()
    assert names == str(sorted(load_safetensors(FIXTURES / "tiny.safetensors")))
    assert "could not save ckpt/model.safetensors ([Errno 5] cannot write ckpt/model.safetensors:" in warning
    assert ".tmp" not in warning
    assert os.listdir(folder) == ["pytorch_model.bin"]  # no temporary file, no half file


def test_two_converts_at_once_exactly_one_wins(tmp_path):
    """Two `mobilevit-np convert` processes to one destination, started together, five times."""
    source = tmp_path / "pytorch_model.bin"
    source.write_bytes(TINY_BIN.read_bytes())
    out = tmp_path / "model.safetensors"
    for _ in range(5):
        command = [sys.executable, "-m", "mobilevit_np", "convert", str(source), str(out)]
        runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        codes = sorted(run.wait(timeout=120) for run in runs)
        errors = [run.stderr.read() for run in runs]
        assert codes == [0, 1], errors
        assert any("already exists" in e or "appeared while it was being written" in e for e in errors), errors
        assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "pytorch_model.bin"]
        out.unlink()


def test_force_never_replaces_a_device_a_fifo_a_folder_a_link_or_the_source(tmp_path):
    source = tmp_path / "x.bin"
    source.write_bytes(TINY_BIN.read_bytes())
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    (tmp_path / "target").write_bytes(b"precious")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.link(source, tmp_path / "hard.bin")  # another name of the source
    for destination in ("/dev/null", tmp_path / "pipe", tmp_path / "folder", tmp_path / "link", source):
        with pytest.raises(FileExistsError, match="not a regular file|a folder|input of this run"):
            convert(source, destination, overwrite=True)
    with pytest.raises(FileExistsError, match="input of this run"):
        convert(tmp_path / "hard.bin", source, overwrite=True)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode) and os.path.islink(tmp_path / "link")
    assert (tmp_path / "target").read_bytes() == b"precious" and source.read_bytes() == TINY_BIN.read_bytes()


def test_convert_to_a_missing_folder_reads_nothing(tmp_path, monkeypatch):
    source = tmp_path / "pytorch_model.bin"
    source.write_bytes(TINY_BIN.read_bytes())
    opened = record_opens(monkeypatch)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert(source, tmp_path / "missing" / "model.safetensors")
    assert opened == []


def test_a_failed_write_leaves_no_file(tmp_path):
    """What Pillow or safetensors wrote before failing is removed: no 0-byte or half file under any name."""

    def half_then_fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a PNG")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'mask.png'}: No space left on device"):
        write_atomically(tmp_path / "mask.png", half_then_fail)
    assert os.listdir(tmp_path) == []


def test_cli_segment_refuses_to_overwrite_and_writes_with_force(make_checkpoint, tmp_path):
    segmenter = make_checkpoint("segmentation")
    photo = tmp_path / "in.png"
    Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(photo)
    before = photo.read_bytes()
    (tmp_path / "mask.png").write_bytes(b"yesterday")
    command = [sys.executable, "-m", "mobilevit_np", "segment", str(photo), "--model", str(segmenter)]
    for outputs in (["-o", str(photo), "--force"], ["--overlay", str(photo)], ["-o", str(tmp_path / "mask.png")]):
        result = subprocess.run(command + outputs, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert photo.read_bytes() == before and (tmp_path / "mask.png").read_bytes() == b"yesterday"
    result = subprocess.run(command + ["-o", str(tmp_path / "mask.png"), "--force"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "mask.png").size == (60, 40)
    assert sorted(os.listdir(tmp_path)) == ["in.png", "mask.png", "segmentation-0"]


# --------------------------------------------------- 9. 256 and more classes


@pytest.mark.parametrize("num_labels", [256, 300])
def test_class_255_is_a_class_when_there_are_256_or_more(num_labels):
    """Logits where class 255 wins on the left half and the last class on the right; a 64x128 image
    cropped to 64x64 has columns the model never saw."""
    logits = np.zeros((num_labels, 8, 8), np.float32)
    logits[255, :, :4] = logits[num_labels - 1, :, 4:] = 10
    processor = MobileViTImageProcessor(size={"shortest_edge": 64}, crop_size=64)
    mask = mask_at_image_size(logits, (64, 128), processor)
    assert set(np.unique(mask)) == {255, num_labels - 1, WIDE_OUTSIDE}
    assert (mask[:, :32] == WIDE_OUTSIDE).all() and (mask[:, 32:60] == 255).all()
    image = colorize(mask)
    assert image.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(image), mask)


def test_a_300_class_mask_round_trips_through_a_png(tmp_path):
    mask = np.arange(300, dtype=np.int64).reshape(15, 20)
    colorize(mask).save(tmp_path / "mask.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "mask.png")), mask)


# --------------------------------------------------------- 10. 32-bit images


def test_mode_i_in_0_255_matches_transformers_and_beyond_is_refused(tmp_path):
    transformers = pytest.importorskip("transformers")
    values = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.int32)
    ours = MobileViTImageProcessor()(Image.fromarray(values))["pixel_values"]
    theirs = transformers.MobileViTImageProcessorPil(resample=2)(Image.fromarray(values), return_tensors="np")
    theirs = np.asarray(theirs["pixel_values"])  # one channel: transformers does not convert PIL images
    np.testing.assert_array_equal(ours[:, 0], theirs[:, 0])  # the grey value, in each of our 3 channels
    np.testing.assert_array_equal(ours[:, 0], ours[:, 2])
    with pytest.raises(ValueError, match="The image to be converted to a PIL image contains values outside"):
        transformers.MobileViTImageProcessorPil()(Image.fromarray(values * 200), return_tensors="np")
    with pytest.raises(ValueError, match="PIL mode I"):
        MobileViTImageProcessor()(Image.fromarray(values * 200))


# -------------------------------------------- 11, 12. the reference libraries


@pytest.mark.parametrize("mutate", ["gap_in_data", "trailing"])
def test_the_reference_safetensors_library_refuses_what_we_refuse(mutate, tmp_path, monkeypatch):
    from safetensors import SafetensorError
    from safetensors.numpy import load

    monkeypatch.chdir(tmp_path)
    catalogue.write_checkpoint()
    good = Path(catalogue.WEIGHTS).read_bytes()
    load(good)  # the control: the unmutated file loads
    bad = catalogue.gap_in_data(good) if mutate == "gap_in_data" else good + bytes(8)
    with pytest.raises(SafetensorError, match="invalid offset|not fully covered"):
        load(bad)
    Path(catalogue.WEIGHTS).write_bytes(bad)
    with pytest.raises(WeightsError, match="belong"):
        load_safetensors(catalogue.WEIGHTS)


@pytest.mark.parity
@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "complex64"])
def test_dtypes_torch_load_accepts_are_an_unsupported_dtype_error(dtype, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "pytorch_model.bin"
    torch.save({"ok": torch.zeros(2), "odd": torch.zeros(3, dtype=getattr(torch, dtype))}, path)
    assert torch.load(path, weights_only=True)["odd"].dtype == getattr(torch, dtype)  # torch accepts it
    with pytest.raises(WeightsError, match=f"{path}: tensor 'odd': unsupported dtype {dtype}"):
        load_torch_pickle(path)


def test_refused_calls_show_names_not_object_reprs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = catalogue.run(next(c for c in catalogue.CASES if c.name == "the pickle calls a storage type"))
    assert "0x" not in str(error) and " at " in str(error) and "object" not in str(error)


# --------------------------------------------------------- 13. the command


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`mobilevit-np summary ... | head -1` with the reader gone: exit 141 like any Unix tool, no message."""
    command = [sys.executable, "-m", "mobilevit_np", "summary", "--model", "small"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader goes away before the first line is written
    assert process.wait(timeout=120) == 141
    assert process.stderr.read() == b""


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_cli_names_folders_and_pipes_given_as_images(kind, make_checkpoint, tmp_path):
    path = tmp_path / "photo.png"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    command = [sys.executable, "-m", "mobilevit_np", "classify", str(path), "--model", str(make_checkpoint())]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)  # a FIFO must not block
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("is a folder" if kind == "folder" else "is not a regular file") in result.stderr


def test_a_healed_numba_cache_is_used_by_the_next_process(tmp_path):
    pytest.importorskip("numba")
    (tmp_path / "kernel_module.py").write_text(catalogue.KERNEL)
    program = "import kernel_module as k; k.add_one(1); print(sum(k.add_one.stats.cache_hits.values()))"

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-W", "always", "-c", program], cwd=tmp_path, capture_output=True, text=True
        )

    assert run().stdout.strip() == "0"  # compiled, cache written
    for index in (tmp_path / "__pycache__").glob("*.nbc"):
        index.write_bytes(b"garbage")
    healed = run()
    assert healed.stdout.strip() == "0" and "numba cache of add_one is corrupt" in healed.stderr
    again = run()
    assert again.stdout.strip() == "1" and "corrupt" not in again.stderr  # loaded from the rewritten cache


def test_a_cached_kernel_is_recompiled_when_a_helper_it_inlines_changes(tmp_path):
    """numba alone checks a cached function against its own file: the edited helper would not be seen."""
    pytest.importorskip("numba")
    (tmp_path / "helper_module.py").write_text(
        "import numba\n\n@numba.njit(inline='always')\ndef value():\n    return 1\n"
    )
    (tmp_path / "kernel_module.py").write_text(
        "import pathlib, numba, helper_module\n"
        "from mobilevit_np.kernels.runtime.cache import stamped\n\n"
        "def plain():\n    return helper_module.value()\n\n"
        "def kernel():\n    return helper_module.value()\n\n"
        "plain = numba.njit(cache=True)(plain)\n"
        "kernel = stamped(numba.njit(cache=True)(kernel), pathlib.Path(__file__).parent)\n"
    )
    program = "import kernel_module as k; print(k.plain(), k.kernel())"

    def run() -> str:
        result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert run() == "1 1"  # both compiled and cached
    (tmp_path / "helper_module.py").write_text(
        (tmp_path / "helper_module.py").read_text().replace("return 1", "return 2")
    )
    assert run() == "1 2"  # numba's own check keeps the stale code; the stamped one is compiled again
