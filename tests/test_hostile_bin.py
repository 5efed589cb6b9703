"""The allowlist .bin reader against hostile files: nothing runs, nothing big is allocated, nothing is misread.

The error messages themselves are in the catalogue (test_hostile_catalogue.py); these
tests prove what a message cannot: that a refused pickle had no side effect, that a
refused record was never read, and that a file asking for gigabytes gets an error
without the allocation.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from test_hostile_catalogue import catalogue
from test_torch_pickle import _str, write_archive

from mobilevit_np import WeightsError
from mobilevit_np.checkpoints.safetensors_io import load_safetensors
from mobilevit_np.checkpoints.torch_pickle import UnsafePickleError, load_torch_pickle

FIXTURES = Path(__file__).parent / "fixtures" / "bin"


def test_reads_a_real_torch_save_file_without_torch():
    """tiny.bin was written by torch.save (tools/make_bin_fixture.py); tiny.safetensors holds its values."""
    tensors, expected = load_torch_pickle(FIXTURES / "tiny.bin"), load_safetensors(FIXTURES / "tiny.safetensors")
    assert sorted(tensors) == sorted(expected)
    for name, value in expected.items():
        assert tensors[name].dtype == value.dtype and tensors[name].flags.c_contiguous, name
        np.testing.assert_array_equal(tensors[name], value)


# --------------------------------------------------------- no side effects


def payloads(marker: Path) -> dict[str, object]:
    """Three pickled calls that would each create `marker`: os.system, eval, and any other global."""
    return {
        "os.system": catalogue.Calls(os.system, f"touch {marker}"),
        "eval": catalogue.Calls(eval, f"open({str(marker)!r}, 'w').close()"),
        "shutil.copyfile": catalogue.Calls(shutil.copyfile, __file__, str(marker)),
    }


def record_opens(monkeypatch) -> list[str]:
    """The names of the zip records read from now on (ZipFile.read goes through ZipFile.open)."""
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def open_and_note(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", open_and_note)
    return opened


@pytest.mark.parametrize("kind", ["os.system", "eval", "shutil.copyfile"])
@pytest.mark.parametrize("protocol", [2, 4])
def test_refused_pickles_have_no_side_effect(kind, protocol, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    program = pickle.dumps({"weight": payloads(marker)[kind]}, protocol=protocol)
    path = catalogue.write_bin(program)
    opened = record_opens(monkeypatch)
    with pytest.raises(UnsafePickleError, match="nothing was executed"):
        load_torch_pickle(path)
    assert not marker.exists()
    assert opened == ["tiny/data.pkl"]  # no storage record was read
    # The control: the real unpickler runs the same program, so the test above could fail.
    monkeypatch.undo()
    pickle.loads(program)
    assert marker.exists()


def test_hostile_call_after_valid_tensors_is_refused_before_any_record_is_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    valid = zipfile.ZipFile(FIXTURES / "tiny.bin").read("tiny/data.pkl")
    evil = pickle.dumps(payloads(marker)["os.system"], protocol=2)[2:-1]  # without PROTO and STOP
    program = valid[:-2] + _str("late") + evil + b"s."  # the fixture's dict, one more SETITEM, STOP
    path = catalogue.write_bin(program)
    opened = record_opens(monkeypatch)
    with pytest.raises(UnsafePickleError, match="system"):
        load_torch_pickle(path)
    assert not marker.exists()
    assert opened == ["tiny/data.pkl"]


# ------------------------------------------------------- giant allocations


def _number(n: int) -> bytes:
    raw = n.to_bytes(n.bit_length() // 8 + 1, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1: any size, as pickle writes big ints


def _numbers(values) -> bytes:
    return b"(" + b"".join(_number(v) for v in values) + b"t"  # MARK ... TUPLE


def tensor_program(entries: list[tuple]) -> bytes:
    """A protocol-2 state-dict pickle, as torch.save writes it, from (name, storage type, key, numel, size, stride)."""
    out = b"\x80\x02}("  # EMPTY_DICT, MARK
    for name, storage_type, key, numel, size, stride in entries:
        pid = b"(" + _str("storage") + f"ctorch\n{storage_type}\n".encode() + _str(key) + _str("cpu") + _number(numel)
        out += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("  # the tensor: its function, MARK
        out += pid + b"tQ" + _number(0) + _numbers(size) + _numbers(stride)  # TUPLE, BINPERSID, offset, size, stride
        out += b"\x89" + b"ccollections\nOrderedDict\n)R" + b"tR"  # requires_grad, hooks; TUPLE, REDUCE
    return out + b"u."  # SETITEMS, STOP


def peak_megabytes(function) -> float:
    tracemalloc.start()
    try:
        function()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


@pytest.mark.parametrize(
    "entries, records, message",
    [
        # 2**40 elements over a 1-element storage (stride 0): 4 TB if materialised.
        ([("w", "FloatStorage", "0", 1, (2**40,), (0,))], {"0": bytes(4)}, "has 1099511627776 elements"),
        # A storage declared with 2**40 elements: refused by the record's size before it is read.
        ([("w", "FloatStorage", "0", 2**40, (4,), (1,))], {"0": bytes(16)}, "need 4398046511104"),
        # Zero elements, but NumPy cannot even describe the shape.
        ([("w", "FloatStorage", "0", 0, (0, 2**62, 2**62), (1, 1, 1))], {"0": b""}, "cannot be built"),
        # One storage read as two dtypes.
        (
            [("a", "FloatStorage", "0", 4, (4,), (1,)), ("b", "DoubleStorage", "0", 2, (2,), (1,))],
            {"0": bytes(16)},
            "declared twice",
        ),
    ],
    ids=["stride-0", "huge-storage", "huge-empty-shape", "storage-two-dtypes"],
)
def test_a_tiny_file_cannot_ask_for_a_giant_allocation(entries, records, message, tmp_path):
    path = write_archive(tmp_path / "x.bin", tensor_program(entries), records)

    def load():
        with pytest.raises(WeightsError, match=message):
            load_torch_pickle(path)

    assert peak_megabytes(load) < 8


def forge_sizes(data: bytes, name: str, compress_size: int, file_size: int) -> bytes:
    """A zip whose directory entry for `name` claims other sizes than the bytes it holds."""
    at = 0
    while True:
        at = data.index(b"PK\x01\x02", at)
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length].decode() == name:
            return data[: at + 20] + struct.pack("<II", compress_size, file_size) + data[at + 28 :]
        at += 4


@pytest.mark.parametrize(
    "compress_size, file_size, message",
    [
        (48, 2**31, "holds 2147483648 bytes, but 12 x FloatStorage elements need 48"),
        (2**31, 48, "claims 48 bytes \\(2147483648 stored\\)"),
    ],
    ids=["declared-size", "stored-size"],
)
def test_forged_record_sizes_are_refused_before_reading(compress_size, file_size, message, tmp_path):
    path = tmp_path / "forged.bin"
    path.write_bytes(forge_sizes((FIXTURES / "tiny.bin").read_bytes(), "tiny/data/0", compress_size, file_size))

    def load():
        with pytest.raises(WeightsError, match=message):
            load_torch_pickle(path)

    assert peak_megabytes(load) < 8


def test_compressed_record_is_never_decompressed(tmp_path, monkeypatch):
    """A zip bomb: 64 MB of zeros in a 64 KB deflated record, under a pickle that asks for exactly that."""
    program = tensor_program([("w", "FloatStorage", "0", 2**24, (2**24,), (1,))])
    path = tmp_path / "bomb.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", program)
        archive.writestr("archive/data/0", bytes(2**26), zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**17

    def load():
        with pytest.raises(WeightsError, match="is compressed.*zip bomb"):
            load_torch_pickle(path)

    assert peak_megabytes(load) < 8


# ---------------------------------------------------------------- formats


def test_legacy_tar_format_is_named(tmp_path):
    """torch < 0.4 wrote a tar archive ("ustar" at byte 257): the legacy message, not "not a checkpoint"."""
    path = tmp_path / "old.bin"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("sys_info")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    with pytest.raises(WeightsError, match="legacy \\(pre-1.6\\) PyTorch file format"):
        load_torch_pickle(path)


def test_encrypted_record_is_named(tmp_path):
    data = bytearray((FIXTURES / "tiny.bin").read_bytes())
    at = data.index(b"PK\x01\x02")  # the first directory entry: data.pkl
    data[at + 8] |= 1  # general-purpose flag bit 0: encrypted
    (tmp_path / "locked.bin").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="data.pkl is encrypted"):
        load_torch_pickle(tmp_path / "locked.bin")


DEEP = 200_000  # tuples nested this deep crash CPython when hashed or printed


@pytest.mark.parametrize(
    "use, message",
    [
        (b"K\x00s", "nested 9 deep"),  # the nested tuple as a dict key (SETITEM), value 0
        (b"Q", "nested 9 deep"),  # the nested tuple as a persistent id (BINPERSID)
    ],
    ids=["dict-key", "persistent-id"],
)
def test_deeply_nested_tuples_are_refused_without_crashing(use, message, tmp_path):
    """A 200 kB pickle of 200,000 nested tuples segfaulted the interpreter when used as a dict key."""
    program = b"\x80\x02}" + b"K\x00" + b"\x85" * DEEP + use + b"."  # PROTO 2, EMPTY_DICT, BININT1 0, TUPLE1 x N
    path = write_archive(tmp_path / "deep.bin", program, {})
    with pytest.raises(UnsafePickleError, match=message):
        load_torch_pickle(path)


def test_dict_keys_must_be_names(tmp_path):
    program = b"\x80\x02}K\x01K\x02s."  # {1: 2}
    with pytest.raises(WeightsError, match="a dict key is a int, not a name"):
        load_torch_pickle(write_archive(tmp_path / "intkey.bin", program, {}))
