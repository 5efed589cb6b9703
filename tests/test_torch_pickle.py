"""The allowlist pytorch_model.bin reader: real torch files load exactly, hostile pickles never run."""

from __future__ import annotations

import os
import pickle
import struct
import warnings
import zipfile

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification, WeightsError
from mobilevit_np.checkpoints.safetensors_io import load_safetensors
from mobilevit_np.checkpoints.state_dict import load_checkpoint_tensors
from mobilevit_np.checkpoints.torch_pickle import UnsafePickleError, convert, load_torch_pickle

# ------------------------------------------------- a torch-free .bin writer


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def _tuple(values) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"  # MARK ... TUPLE


def state_dict_pickle(tensors: dict[str, np.ndarray]) -> bytes:
    """Protocol-2 opcodes as torch.save writes them for {name: float32 tensor}, one storage each."""
    out = b"\x80\x02" + b"ccollections\nOrderedDict\n)R("  # OrderedDict() then MARK
    for key, (name, array) in enumerate(tensors.items()):
        strides = [s // 4 for s in array.strides]
        pid = b"(" + _str("storage") + b"ctorch\nFloatStorage\n" + _str(str(key)) + _str("cpu") + _int(array.size)
        out += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += pid + b"tQ" + _int(0) + _tuple(array.shape) + _tuple(strides)  # TUPLE, BINPERSID
        out += b"\x89" + b"ccollections\nOrderedDict\n)R" + b"tR"  # requires_grad, hooks; args TUPLE, REDUCE
    return out + b"u."  # SETITEMS, STOP


def write_archive(path, program: bytes, records: dict[str, bytes], prefix: str = "archive/") -> str:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(prefix + "data.pkl", program)
        archive.writestr(prefix + "byteorder", "little")
        for key, data in records.items():
            archive.writestr(f"{prefix}data/{key}", data)
    return str(path)


def fake_bin(path, tensors: dict[str, np.ndarray]) -> str:
    records = {str(i): np.ascontiguousarray(a, "<f4").tobytes() for i, a in enumerate(tensors.values())}
    return write_archive(path, state_dict_pickle(tensors), records)


TENSORS = {
    "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
    "b.bias": np.array([1.5, -2.0], np.float32),
    "c": np.float32(7.0).reshape(()),
}


def test_reads_a_torch_style_archive_without_torch(tmp_path):
    out = load_torch_pickle(fake_bin(tmp_path / "pytorch_model.bin", TENSORS))
    assert sorted(out) == sorted(TENSORS)
    for name, value in TENSORS.items():
        assert out[name].dtype == np.float32 and out[name].shape == value.shape
        np.testing.assert_array_equal(out[name], value)


def test_the_archive_listing_is_read_once_not_per_storage(tmp_path, monkeypatch):
    path = fake_bin(tmp_path / "many.bin", {f"t{i}": np.full(2, i, np.float32) for i in range(20)})
    calls = []
    namelist = zipfile.ZipFile.namelist

    def counted(archive):
        calls.append(archive.filename)
        return namelist(archive)

    monkeypatch.setattr(zipfile.ZipFile, "namelist", counted)  # builds a new list on every call
    out = load_torch_pickle(path)
    assert calls == [path]
    np.testing.assert_array_equal(out["t7"], [7, 7])


def test_missing_data_record(tmp_path):
    path = write_archive(tmp_path / "m.bin", state_dict_pickle(TENSORS), {"0": TENSORS["a.weight"].tobytes()})
    with pytest.raises(WeightsError, match="storage '1', but data record archive/data/1 is missing"):
        load_torch_pickle(path)


def test_short_data_record(tmp_path):
    records = {"0": b"\0" * 8, "1": TENSORS["b.bias"].tobytes(), "2": TENSORS["c"].tobytes()}
    path = write_archive(tmp_path / "s.bin", state_dict_pickle(TENSORS), records)
    with pytest.raises(WeightsError, match="holds 8 bytes, but 12 x FloatStorage elements need 48"):
        load_torch_pickle(path)


def test_legacy_and_foreign_files_are_refused_clearly(tmp_path):
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"rest of an old torch file")
    with pytest.raises(WeightsError, match="legacy \\(pre-1.6\\) PyTorch file format.*torch >= 1.6"):
        load_torch_pickle(legacy)
    other = tmp_path / "other.bin"
    other.write_bytes(b"GIF89a not a checkpoint")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        load_torch_pickle(other)
    zipped = tmp_path / "zipped.bin"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("readme.txt", "no pickle here")
    with pytest.raises(WeightsError, match="not a torch.save archive"):
        load_torch_pickle(zipped)


def test_a_list_is_not_a_state_dict(tmp_path):
    path = write_archive(tmp_path / "l.bin", b"\x80\x02]q\x00.", {})  # EMPTY_LIST, BINPUT, STOP
    with pytest.raises(WeightsError, match="holds a list, not a state dict"):
        load_torch_pickle(path)


# ------------------------------------------------------ hostile pickles


class RunsCommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('true')",))


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = {"weight": RunsCommand(f"touch {marker}")}
    path = write_archive(tmp_path / "evil.bin", pickle.dumps(payload, protocol=protocol), {})
    with pytest.raises(UnsafePickleError, match="nothing was executed"):
        load_torch_pickle(path)
    assert not marker.exists()
    # The same pickle through the real unpickler would run the command: the test can fail.
    pickle.loads(pickle.dumps(RunsCommand(f"touch {tmp_path / 'control'}"), protocol=protocol))
    assert (tmp_path / "control").exists()


def test_hostile_global_after_valid_tensors_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(RunsCommand(f"touch {marker}"), protocol=2)[2:-1]  # without PROTO and STOP
    program = state_dict_pickle(TENSORS)[:-2] + _str("late") + evil + b"u."  # a valid dict, then os.system
    records = {str(i): a.tobytes() for i, a in enumerate(TENSORS.values())}
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_torch_pickle(write_archive(tmp_path / "late.bin", program, records))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        (CallsEval(), "builtin__?s?.eval"),
        (pickle.loads(pickle.dumps({1, 2})), "builtin__?s?.set"),  # a harmless-looking global is refused too
        (np.float64(1.0), "numpy"),
    ],
)
def test_any_other_global_is_refused(tmp_path, payload, message):
    path = write_archive(tmp_path / "x.bin", pickle.dumps({"w": payload}, protocol=2), {})
    with pytest.raises(UnsafePickleError, match=message):
        load_torch_pickle(path)


def test_unexpected_opcode_is_refused(tmp_path):
    program = b"\x80\x02(cos\nsystem\nS'true'\no."  # OBJ opcode with a global: refused at the global
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_torch_pickle(write_archive(tmp_path / "o.bin", program, {}))
    program = b"\x80\x02\x82\x01."  # EXT1: the copyreg extension registry
    with pytest.raises(UnsafePickleError, match="refused pickle opcode EXT1"):
        load_torch_pickle(write_archive(tmp_path / "e.bin", program, {}))


# ------------------------------------------------------------ conversion


def test_convert_writes_once_and_refuses_to_overwrite(tmp_path):
    source = fake_bin(tmp_path / "pytorch_model.bin", TENSORS)
    out = convert(source)
    assert out == str(tmp_path / "model.safetensors")
    loaded = load_safetensors(out)
    for name, value in TENSORS.items():
        np.testing.assert_array_equal(loaded[name], value)
    with pytest.raises(FileExistsError, match="already exists"):
        convert(source)
    convert(source, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["model.safetensors", "pytorch_model.bin"]  # no temp file left


def test_checkpoint_folder_with_only_a_bin_is_converted_beside_it(tmp_path):
    fake_bin(tmp_path / "pytorch_model.bin", TENSORS)
    with pytest.warns(UserWarning, match="converted .*pytorch_model.bin to .*model.safetensors"):
        first = load_checkpoint_tensors(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second load reads the safetensors file, silently
        second = load_checkpoint_tensors(tmp_path)
    for name in TENSORS:
        np.testing.assert_array_equal(first[name], second[name])


def test_a_replaced_bin_is_converted_again_not_shadowed(tmp_path):
    fake_bin(tmp_path / "pytorch_model.bin", TENSORS)
    with pytest.warns(UserWarning, match="converted"):
        load_checkpoint_tensors(tmp_path)
    newer = {name: value + 1 for name, value in TENSORS.items()}
    fake_bin(tmp_path / "pytorch_model.bin", newer)
    os.utime(tmp_path / "pytorch_model.bin", ns=(1, 1))  # a different stamp even within one clock tick
    with pytest.warns(UserWarning) as caught:
        tensors = load_checkpoint_tensors(tmp_path)
    messages = [str(w.message) for w in caught]
    assert "changed since it was converted" in messages[0] and "converted" in messages[1], messages
    np.testing.assert_array_equal(tensors["a.weight"], newer["a.weight"])
    np.testing.assert_array_equal(load_safetensors(tmp_path / "model.safetensors")["a.weight"], newer["a.weight"])


def test_a_checkpoint_shipping_both_files_reads_its_safetensors(tmp_path):
    """Hub repositories often hold both; only our own conversions are checked against the .bin."""
    fake_bin(tmp_path / "pytorch_model.bin", {name: value + 1 for name, value in TENSORS.items()})
    convert(tmp_path / "pytorch_model.bin", tmp_path / "other.safetensors")
    os.replace(tmp_path / "other.safetensors", tmp_path / "model.safetensors")
    os.utime(tmp_path / "pytorch_model.bin", ns=(1, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_checkpoint_tensors(tmp_path)


def test_unwritable_folder_still_loads(tmp_path, monkeypatch):
    import mobilevit_np.checkpoints.torch_pickle as tp

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(tp, "write_safetensors", refuse)
    fake_bin(tmp_path / "pytorch_model.bin", TENSORS)
    with pytest.warns(UserWarning, match="could not save"):
        tensors = load_checkpoint_tensors(tmp_path)
    np.testing.assert_array_equal(tensors["a.weight"], TENSORS["a.weight"])


# ------------------------------------------------------- real torch files


@pytest.mark.parity
def test_torch_save_dtypes_views_and_shared_storage(tmp_path):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {
        "float": base,
        "transposed": base.t(),  # strides (1, 6) into the same storage
        "row": base[2],  # offset 12
        "half": torch.randn(3, 5).half(),
        "bf16": torch.randn(7).to(torch.bfloat16),
        "double": torch.randn(2, 2, dtype=torch.float64),
        "long": torch.tensor([1, -2, 3]),
        "scalar": torch.tensor(4.5),
        "empty": torch.zeros(0, 3),
        "parameter": torch.nn.Parameter(torch.randn(3)),
        "bool": torch.tensor([True, False]),
    }
    torch.save(state, tmp_path / "weights.bin")
    out = load_torch_pickle(tmp_path / "weights.bin")
    for name, tensor in state.items():
        expected = tensor.detach()
        expected = (expected.float() if expected.dtype == torch.bfloat16 else expected).numpy()
        assert out[name].shape == expected.shape and out[name].dtype == expected.dtype, name
        np.testing.assert_array_equal(out[name], expected)


@pytest.mark.parity
def test_transformers_model_bin_equals_its_safetensors_twin(tmp_path):
    """transformers 4.x save_pretrained(safe_serialization=False) wrote torch.save(model.state_dict());
    transformers 5.x always writes safetensors, so the .bin is written here the way 4.x did."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from mobilevit_np.presets import TINY

    config = transformers.MobileViTConfig(**TINY, num_labels=5)
    torch.manual_seed(0)
    model = transformers.MobileViTForImageClassification(config).eval()
    twin, only_bin = tmp_path / "safetensors", tmp_path / "bin"
    model.save_pretrained(twin)
    model.save_pretrained(only_bin)
    os.remove(only_bin / "model.safetensors")
    torch.save(model.state_dict(), only_bin / "pytorch_model.bin")

    from_bin = load_torch_pickle(only_bin / "pytorch_model.bin")
    from_safetensors = load_safetensors(twin / "model.safetensors")
    assert sorted(from_bin) == sorted(from_safetensors)
    for name, value in from_safetensors.items():
        assert from_bin[name].dtype == value.dtype, name
        np.testing.assert_array_equal(from_bin[name], value)

    with pytest.warns(UserWarning, match="converted"):
        ours = MobileViTForImageClassification.from_pretrained(only_bin)
    pixels = np.random.RandomState(0).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(
        ours(pixels).logits, MobileViTForImageClassification.from_pretrained(twin)(pixels).logits
    )
