"""The hostile-input catalogue: every broken weight file, config, image and array, and what a user sees.

Each Case builds its broken input in the current (scratch) folder and triggers the error.
tests/test_hostile_catalogue.py runs every case and checks the exception (or warning)
type and that the message names the problem and the file or tensor; this script writes
the real messages into the table of docs/errors.md, so the docs quote the code:

    python tools/error_catalogue.py          # rewrite the table in docs/errors.md
    python tools/error_catalogue.py --check  # exit 1 if the table is stale

Paths in the messages are relative to the scratch folder: the checkpoint folder is
`ckpt`, images and .bin files sit beside it. Nothing here needs torch: the broken .bin
files are edits of tests/fixtures/bin/tiny.bin (written once by tools/make_bin_fixture.py).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.numpy
from make_figures import replace_block  # the <!-- generated:NAME --> blocks (tools/ is on sys.path)
from PIL import Image

from mobilevit_np import (
    ConfigError,
    MobileViTForImageClassification,
    MobileViTImageProcessor,
    WeightsError,
    cli,
    memory,
)
from mobilevit_np.checkpoints.safetensors_io import write_safetensors
from mobilevit_np.checkpoints.state_dict import load_checkpoint_tensors, save_checkpoint
from mobilevit_np.checkpoints.torch_pickle import (
    LEGACY_MAGIC,
    MAX_GROWTH,
    UnsafePickleError,
    convert,
    load_torch_pickle,
)
from mobilevit_np.image_processing import load_image
from mobilevit_np.loading import WrongHeadError
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

ROOT = Path(__file__).resolve().parents[1]

DOC = ROOT / "docs" / "errors.md"
BIN_FIXTURES = ROOT / "tests" / "fixtures" / "bin"
CKPT = "ckpt"
WEIGHTS = f"{CKPT}/model.safetensors"


@dataclass(frozen=True)
class Case:
    section: str
    name: str  # what is wrong, as the docs table says it
    trigger: Callable[[], object]  # run in a scratch folder; raises `error` (or warns it)
    error: type[BaseException] | type[Warning]
    names: tuple[str, ...]  # the message must contain each: the problem, and the file or tensor


# ------------------------------------------------------------------ weights


def write_checkpoint(state: dict[str, np.ndarray] | None = None, **config_overrides) -> None:
    """ckpt/: config.json + model.safetensors of the tests' tiny classifier (5 labels)."""
    config = tiny_config(**config_overrides)
    save_checkpoint(CKPT, config, random_state_dict(config, "classification") if state is None else state)


def load() -> MobileViTForImageClassification:
    return MobileViTForImageClassification.from_pretrained(CKPT)


def broken_file(mutate: Callable[[bytes], bytes]) -> Callable[[], object]:
    """A trigger: a good checkpoint whose model.safetensors bytes go through `mutate`, then loaded."""

    def trigger():
        write_checkpoint()
        data = Path(WEIGHTS).read_bytes()
        Path(WEIGHTS).write_bytes(mutate(data))
        return load()

    return trigger


def edit_header(edit: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A mutation that rewrites the JSON header (with a consistent length) and keeps the data."""

    def mutate(data: bytes) -> bytes:
        length = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + length])
        edit(header)
        raw = json.dumps(header).encode()
        return struct.pack("<Q", len(raw)) + raw + data[8 + length :]

    return mutate


def set_entry(name: str, **fields) -> Callable[[dict], None]:
    return lambda header: header[name].update(fields)


def data_size(header: dict) -> int:
    return max(entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__")


def overlapping(header: dict) -> None:
    begin = header["classifier.weight"]["data_offsets"][0]
    header["classifier.bias"]["data_offsets"] = [begin, begin + 20]  # 5 float32 inside the weight's bytes


def out_of_range(header: dict) -> None:
    end = data_size(header)
    header["classifier.bias"]["data_offsets"] = [end - 4, end + 16]


def duplicate_name(data: bytes) -> bytes:
    """The header with classifier.bias's entry written a second time (pointing at the same bytes)."""
    length = int.from_bytes(data[:8], "little")
    text = data[8 : 8 + length].decode()
    entry = json.dumps(json.loads(text)["classifier.bias"])
    raw = (text[:-1] + f', "classifier.bias": {entry}}}').encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


def gap_in_data(data: bytes) -> bytes:
    """4 unclaimed bytes inserted before the second tensor's data (later tensors shifted to match)."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    body = data[8 + length :]
    begin = sorted(e["data_offsets"][0] for k, e in header.items() if k != "__metadata__")[1]
    for key, entry in header.items():
        if key != "__metadata__" and entry["data_offsets"][0] >= begin:
            entry["data_offsets"] = [offset + 4 for offset in entry["data_offsets"]]
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body[:begin] + bytes(4) + body[begin:]


def changed_state(change: Callable[[dict[str, np.ndarray]], None], **config_overrides) -> Callable[[], object]:
    """A trigger: the tiny classifier's weights edited by `change`, saved as a checkpoint, loaded."""

    def trigger():
        state = random_state_dict(tiny_config(), "classification")
        change(state)
        write_checkpoint(state, **config_overrides)
        return load()

    return trigger


def three_problems(state: dict[str, np.ndarray]) -> None:
    del state["mobilevit.conv_stem.convolution.weight"]
    state["mobilevit.extra.weight"] = np.zeros(3, np.float32)
    state["classifier.weight"] = np.zeros((10, 64), np.float32)


def ten_labels(state: dict[str, np.ndarray]) -> None:
    ten = random_state_dict(tiny_config(num_labels=10), "classification")
    state["classifier.weight"], state["classifier.bias"] = ten["classifier.weight"], ten["classifier.bias"]


def integer_bias(state: dict[str, np.ndarray]) -> None:
    state["classifier.bias"] = np.zeros(5, np.int64)


def non_finite(state: dict[str, np.ndarray]) -> None:
    state["classifier.bias"][0] = np.nan
    state["classifier.weight"][0, 0] = np.inf


def sharded(index: object | None = None, drop_shard: bool = False, duplicate: str | None = None):
    """A trigger: the checkpoint in two shards plus model.safetensors.index.json (`index` replaces its text)."""

    def trigger():
        write_checkpoint()
        state = {k: v for k, v in random_state_dict(tiny_config(), "classification").items()}
        os.remove(WEIGHTS)
        names = sorted(state)
        shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
        if duplicate:
            shards["model-00002-of-00002.safetensors"].append(duplicate)
        for file, part in shards.items():
            write_safetensors({n: state[n] for n in part}, f"{CKPT}/{file}")
        weight_map = {n: file for file, part in shards.items() for n in part}
        text = json.dumps({"metadata": {}, "weight_map": weight_map}) if index is None else index
        Path(f"{CKPT}/model.safetensors.index.json").write_text(text if isinstance(text, str) else json.dumps(text))
        if drop_shard:
            os.remove(f"{CKPT}/model-00002-of-00002.safetensors")
        return load()

    return trigger


def no_weights():
    write_checkpoint()
    os.remove(WEIGHTS)
    return load()


ON_WEIGHTS = "Weights (model.safetensors)"
WEIGHT_CASES = [
    Case(ON_WEIGHTS, "empty file (0 bytes)", broken_file(lambda d: b""), WeightsError, ("only 0 bytes", WEIGHTS)),
    Case(
        ON_WEIGHTS, "truncated inside the header", broken_file(lambda d: d[:40]), WeightsError, ("points past", WEIGHTS)
    ),
    Case(
        ON_WEIGHTS,
        "truncated inside the data",
        broken_file(lambda d: d[:-100]),
        WeightsError,
        ("fall outside", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "header length pointing past the end",
        broken_file(lambda d: struct.pack("<Q", 10**12) + d[8:]),
        WeightsError,
        ("header length 1000000000000 points past the end", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "header not JSON",
        broken_file(lambda d: d[:8] + b"{" * 16 + d[24:]),
        WeightsError,
        ("header is not valid JSON", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "unknown dtype",
        broken_file(edit_header(set_entry("classifier.bias", dtype="F8_E9"))),
        WeightsError,
        ("unknown dtype 'F8_E9'", "'classifier.bias'", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "tensor offsets out of range",
        broken_file(edit_header(out_of_range)),
        WeightsError,
        ("fall outside", "'classifier.bias'", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "two tensors overlap",
        broken_file(edit_header(overlapping)),
        WeightsError,
        ("tensors 'classifier.bias' and 'classifier.weight' overlap", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "a tensor name given twice in the header (json keeps the last)",
        broken_file(duplicate_name),
        WeightsError,
        ("the header names 'classifier.bias' twice", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "a gap in the data between two tensors",
        broken_file(gap_in_data),
        WeightsError,
        ("4 bytes after tensor", "belong to no tensor", "the safetensors library refuses such files", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "bytes after the last tensor",
        broken_file(lambda d: d + bytes(8)),
        WeightsError,
        ("the rest belongs to no tensor", WEIGHTS),
    ),
    Case(
        ON_WEIGHTS,
        "a tensor missing, an extra one and a wrong shape (all in one error)",
        changed_state(three_problems),
        WeightsError,
        (
            "3 problems",
            "missing tensor mobilevit.conv_stem.convolution.weight",
            "unexpected tensor mobilevit.extra.weight",
            "shape mismatch for classifier.weight",
            CKPT,
        ),
    ),
    Case(
        ON_WEIGHTS,
        "classifier for 10 labels, config.json says 1000",
        changed_state(ten_labels, num_labels=1000),
        WeightsError,
        ("shape mismatch for classifier.weight: file has (10, 64), config needs (1000, 64)", CKPT),
    ),
    Case(
        ON_WEIGHTS,
        "integer tensor where floats are needed",
        changed_state(integer_bias),
        WeightsError,
        ("dtype mismatch for classifier.bias", CKPT),
    ),
    Case(
        ON_WEIGHTS,
        "NaN or Inf in the weights (a warning; the model loads)",
        changed_state(non_finite),
        RuntimeWarning,
        ("NaN or Inf values in classifier.bias, classifier.weight", CKPT),
    ),
    Case(
        ON_WEIGHTS,
        "sharded: the index names a missing shard",
        sharded(drop_shard=True),
        WeightsError,
        ("names shard 'model-00002-of-00002.safetensors', which is missing", "model.safetensors.index.json"),
    ),
    Case(
        ON_WEIGHTS,
        "sharded: the index is not JSON",
        sharded(index="{not json"),
        WeightsError,
        ("not a valid safetensors index: not JSON", "model.safetensors.index.json"),
    ),
    Case(
        ON_WEIGHTS,
        "sharded: the index has no weight_map object",
        sharded(index={"weight_map": ["model-00001-of-00002.safetensors"]}),
        WeightsError,
        ('needs a "weight_map" object', "model.safetensors.index.json"),
    ),
    Case(
        ON_WEIGHTS,
        "sharded: a shard outside the checkpoint folder",
        sharded(index={"weight_map": {"classifier.bias": "../../etc/passwd"}}),
        WeightsError,
        ("'../../etc/passwd', which is not a file inside the checkpoint folder", "model.safetensors.index.json"),
    ),
    Case(
        ON_WEIGHTS,
        "sharded: one tensor in two shards",
        sharded(duplicate="classifier.bias"),
        WeightsError,
        ("tensor classifier.bias is in two shards", CKPT),
    ),
    Case(ON_WEIGHTS, "no weights in the folder", no_weights, WeightsError, ("no model.safetensors", CKPT)),
    Case(
        ON_WEIGHTS,
        "the folder does not exist",
        lambda: MobileViTForImageClassification.from_pretrained("nowhere"),
        FileNotFoundError,
        ("checkpoint folder not found: nowhere",),
    ),
]


# ------------------------------------------------------------ pytorch_model.bin

BIN = "pytorch_model.bin"


class Calls:
    """Pickles as a call of `function(*args)`: what a hostile pickle asks the unpickler to run."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def write_bin(program: bytes | None = None, drop=(), replace=None, compress=()) -> str:
    """pytorch_model.bin: the records of tests/fixtures/bin/tiny.bin, edited.

    program replaces data.pkl; drop / replace / compress name records by their key under
    the archive's folder (e.g. "data/1")."""
    replace = replace or {}
    with zipfile.ZipFile(BIN_FIXTURES / "tiny.bin") as source, zipfile.ZipFile(BIN, "w") as out:
        for info in source.infolist():
            key = info.filename.split("/", 1)[1]
            if key in drop:
                continue
            data = source.read(info)
            data = program if key == "data.pkl" and program is not None else replace.get(key, data)
            out.writestr(info.filename, data, zipfile.ZIP_DEFLATED if key in compress else zipfile.ZIP_STORED)
    return BIN


def hostile(payload: object, protocol: int = 2) -> Callable[[], object]:
    """A trigger: a .bin whose data.pkl is the pickle of {"weight": payload}."""
    return lambda: load_torch_pickle(write_bin(pickle.dumps({"weight": payload}, protocol=protocol)))


def copy_fixture(name: str) -> Callable[[], object]:
    def trigger():
        shutil.copy(BIN_FIXTURES / name, BIN)
        return load_torch_pickle(BIN)

    return trigger


def written(data: bytes) -> Callable[[], object]:
    def trigger():
        Path(BIN).write_bytes(data)
        return load_torch_pickle(BIN)

    return trigger


def corrupt_central_directory() -> object:
    data = (BIN_FIXTURES / "tiny.bin").read_bytes()
    at = data.index(b"PK\x01\x02")  # the first central-directory entry's signature
    Path(BIN).write_bytes(data[:at] + b"PK\x01\x00" + data[at + 4 :])
    return load_torch_pickle(BIN)


def zip_without_pickle() -> object:
    with zipfile.ZipFile(BIN, "w") as archive:
        archive.writestr("readme.txt", "no pickle here")
    return load_torch_pickle(BIN)


# Pickle programs written opcode by opcode, as torch.save writes them (protocol 2), for
# the globals torch has and this script cannot import.
def op_str(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def op_int(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)  # BININT


def op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()  # GLOBAL


def op_tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


NO_HOOKS = op_global("collections", "OrderedDict") + b")R"  # OrderedDict()


def op_tensor(storage: str, numel: int, size=None, dtype: str | None = None, module: str = "torch") -> bytes:
    """torch._utils._rebuild_tensor_v2 (v3 with a dtype) of storage record '0', `numel` elements."""
    size = (op_int(numel),) if size is None else size
    pid = op_tuple(op_str("storage"), op_global(module, storage), op_str("0"), op_str("cpu"), op_int(numel))
    args = [pid + b"Q", op_int(0), op_tuple(*size), op_tuple(*(op_int(1),) * len(size)), b"\x89", NO_HOOKS]
    rebuild = "_rebuild_tensor_v2" if dtype is None else "_rebuild_tensor_v3"
    return op_global("torch._utils", rebuild) + op_tuple(*args, *([op_global("torch", dtype)] if dtype else [])) + b"R"


def state_program(entries: list[tuple[str, bytes]]) -> bytes:
    """{name: object} from (name, opcodes building the object) pairs."""
    return b"\x80\x02}(" + b"".join(op_str(name) + ops for name, ops in entries) + b"u."


def archive_bin(program: bytes, record: bytes) -> str:
    """pytorch_model.bin holding `program` and one storage record '0'."""
    with zipfile.ZipFile(BIN, "w") as archive:
        archive.writestr("archive/data.pkl", program)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", record)
    return BIN


def one_tensor(storage: str, numel: int, itemsize: int, **tensor) -> Callable[[], object]:
    program = state_program([("weight", op_tensor(storage, numel, **tensor))])
    return lambda: load_torch_pickle(archive_bin(program, bytes(numel * itemsize)))


def memo_reuse(names: int = 300, numel: int = 4096) -> Callable[[], object]:
    """One 16 KB tensor (memoised with BINPUT 1) under `names` names (BINGET 1): 4.8 MB as copies."""
    first = ("layer.0.weight", op_tensor("FloatStorage", numel) + b"q\x01")
    program = state_program([first] + [(f"layer.{i}.weight", b"h\x01") for i in range(1, names)])
    return lambda: load_torch_pickle(archive_bin(program, bytes(4 * numel)))


def convert_metadata_named() -> object:
    archive_bin(state_program([("__metadata__", op_tensor("FloatStorage", 3))]), bytes(12))
    return convert(BIN, "out.safetensors")


ON_BIN = "PyTorch pytorch_model.bin (allowlist reader)"
NOTHING_RAN = "nothing was executed"
BIN_CASES = [
    Case(
        ON_BIN,
        "the pickle calls os.system",
        hostile(Calls(os.system, "echo pwned")),
        UnsafePickleError,
        (f"calls for {os.name}.system", NOTHING_RAN, BIN),
    ),
    Case(
        ON_BIN,
        "the pickle calls eval",
        hostile(Calls(eval, "print('pwned')"), protocol=4),  # protocol 4 names it with STACK_GLOBAL
        UnsafePickleError,
        ("calls for builtins.eval", NOTHING_RAN, BIN),
    ),
    Case(
        ON_BIN,
        "the pickle imports any other global (shutil.rmtree)",
        hostile(Calls(shutil.rmtree, "/")),
        UnsafePickleError,
        ("calls for shutil.rmtree", NOTHING_RAN, BIN),
    ),
    Case(
        ON_BIN,
        "an opcode a state dict never uses (a set)",
        hostile(set(), protocol=4),
        UnsafePickleError,
        ("refused pickle opcode EMPTY_SET", NOTHING_RAN, BIN),
    ),
    Case(
        ON_BIN,
        "an entry that is not a tensor",
        hostile(1.5),
        WeightsError,
        ("entry 'weight' is a float", BIN),
    ),
    Case(
        ON_BIN,
        "a data record missing from the zip",
        lambda: load_torch_pickle(write_bin(drop=("data/1",))),
        WeightsError,
        ("storage '1', but data record tiny/data/1 is missing", BIN),
    ),
    Case(
        ON_BIN,
        "a data record of the wrong size",
        lambda: load_torch_pickle(write_bin(replace={"data/0": bytes(8)})),
        WeightsError,
        ("data record tiny/data/0 holds 8 bytes, but 12 x FloatStorage elements need 48", BIN),
    ),
    Case(
        ON_BIN,
        "a compressed data record (a possible zip bomb)",
        lambda: load_torch_pickle(write_bin(compress=("data/0",))),
        WeightsError,
        ("record tiny/data/0 is compressed", "zip bomb", BIN),
    ),
    Case(
        ON_BIN,
        "an expanded tensor (stride 0: more elements than its storage)",
        copy_fixture("expanded.bin"),
        WeightsError,
        ("tensor 'expanded' has 12288 elements but its storage '0' holds 3", BIN),
    ),
    Case(
        ON_BIN,
        "a corrupt pickle program",
        lambda: load_torch_pickle(write_bin(b"\x80\x02.")),
        WeightsError,
        ("corrupt pickle", BIN),
    ),
    Case(
        ON_BIN,
        "a corrupt zip directory",
        corrupt_central_directory,
        WeightsError,
        ("corrupt zip archive", BIN),
    ),
    Case(ON_BIN, "a zip without data.pkl", zip_without_pickle, WeightsError, ("not a torch.save archive", BIN)),
    Case(
        ON_BIN,
        "a legacy (torch < 1.6, not zip) file",
        written(pickle.dumps(LEGACY_MAGIC, protocol=2) + b"rest of an old torch file"),
        WeightsError,
        ("legacy (pre-1.6) PyTorch file format", "unsupported", "re-save it with torch >= 1.6", "convert", BIN),
    ),
    Case(ON_BIN, "not a checkpoint at all", written(b"GIF89a..."), WeightsError, ("not a PyTorch checkpoint", BIN)),
    Case(
        ON_BIN,
        "one storage under many names (pickle memo reuse: a small file asking for a copy per name)",
        memo_reuse(),
        WeightsError,
        ("300 tensors (over 1 storages) would take 4915200 bytes", f"more than {MAX_GROWTH} x the file's", BIN),
    ),
    Case(
        ON_BIN,
        "a float8 tensor (torch.save: UntypedStorage + _rebuild_tensor_v3)",
        one_tensor("UntypedStorage", 3, 1, dtype="float8_e4m3fn", module="torch.storage"),
        WeightsError,
        ("tensor 'weight': unsupported dtype float8_e4m3fn", BIN),
    ),
    Case(
        ON_BIN,
        "a uint16 tensor",
        one_tensor("UntypedStorage", 6, 1, dtype="uint16", module="torch.storage"),
        WeightsError,
        ("tensor 'weight': unsupported dtype uint16", BIN),
    ),
    Case(
        ON_BIN,
        "a complex64 tensor (ComplexFloatStorage)",
        one_tensor("ComplexFloatStorage", 3, 8),
        WeightsError,
        ("tensor 'weight': unsupported dtype complex64", BIN),
    ),
    Case(
        ON_BIN,
        "a tensor size of booleans",
        one_tensor("FloatStorage", 3, 4, size=(b"\x88",)),
        WeightsError,
        ("malformed tensor", "size (True,)", "non-negative integers", BIN),
    ),
    Case(
        ON_BIN,
        "the pickle calls a storage type",
        lambda: load_torch_pickle(
            archive_bin(state_program([("weight", op_global("torch", "FloatStorage") + b")R")]), b"")
        ),  # noqa: E501
        UnsafePickleError,
        ("refused a call of torch.FloatStorage", BIN),
    ),
    Case(
        ON_BIN,
        "convert: a tensor named __metadata__ (safetensors' reserved name)",
        convert_metadata_named,
        WeightsError,
        ("a tensor is named '__metadata__'", "out.safetensors"),
    ),
]


# ------------------------------------------------------------------- config


def broken_config(edit: Callable[[dict], object] | str) -> Callable[[], object]:
    """A trigger: a good checkpoint whose config.json is edited (or replaced by a string), then loaded."""

    def trigger():
        write_checkpoint()
        path = Path(f"{CKPT}/config.json")
        if isinstance(edit, str):
            path.write_text(edit)
        else:
            config = json.loads(path.read_text())
            edit(config)
            path.write_text(json.dumps(config))  # NaN is written as NaN, which json.load accepts
        return load()

    return trigger


def setting(**fields) -> Callable[[dict], None]:
    return lambda config: config.update(fields)


def huge_file(path: str, trigger: Callable[[], object]) -> object:
    """A good checkpoint whose file `path` is replaced by 1 GB (sparse: nothing is written), then trigger()."""
    write_checkpoint()
    with open(path, "wb") as f:
        f.truncate(2**30)
    return trigger()


def no_config():
    write_checkpoint()
    os.remove(f"{CKPT}/config.json")
    return load()


ON_CONFIG = "Config (config.json)"
CONFIG = f"{CKPT}/config.json"
CONFIG_CASES = [
    Case(ON_CONFIG, "config.json missing", no_config, ConfigError, ("config.json not found", CONFIG)),
    Case(ON_CONFIG, "not JSON", broken_config("{oops"), ConfigError, ("is not valid JSON", CONFIG)),
    Case(ON_CONFIG, "not a JSON object", broken_config("[1, 2]"), ConfigError, ("must be a JSON object", CONFIG)),
    Case(
        ON_CONFIG,
        "wrong type: integer field",
        broken_config(setting(num_attention_heads="2")),
        ConfigError,
        ("num_attention_heads must be an integer, got '2'", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "wrong type: number field",
        broken_config(setting(mlp_ratio="2.0")),
        ConfigError,
        ("mlp_ratio must be a finite number, got '2.0'", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "not finite: number field",
        broken_config(setting(layer_norm_eps=float("nan"))),
        ConfigError,
        ("layer_norm_eps must be a finite number, got nan", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "wrong type: true/false field",
        broken_config(setting(qkv_bias="yes")),
        ConfigError,
        ("qkv_bias must be true or false", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "wrong type: name field",
        broken_config(setting(hidden_act=3)),
        ConfigError,
        ("hidden_act: unknown activation 3", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "wrong type: list field",
        broken_config(setting(hidden_sizes=144)),
        ConfigError,
        ("hidden_sizes must be a list of 3 integers, got 144", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "wrong type: object field",
        broken_config(setting(id2label=["cat", "dog"])),
        ConfigError,
        ("id2label must be an object", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "id2label keys not 0 .. N-1",
        broken_config(setting(id2label={"0": "cat", "7": "dog"})),
        ConfigError,
        ("id2label keys must be 0 .. 1", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "output_stride 4",
        broken_config(setting(output_stride=4)),
        ConfigError,
        ("output_stride must be 8, 16 or 32, got 4", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "hidden_sizes not divisible by num_attention_heads",
        broken_config(setting(hidden_sizes=[16, 25, 32])),
        ConfigError,
        ("hidden_sizes: 25 is not divisible by num_attention_heads=2", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "a list of the wrong length",
        broken_config(setting(neck_hidden_sizes=[8, 8, 16])),
        ConfigError,
        ("neck_hidden_sizes must have 7 entries, got 3", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "patch_size 1000 (a 32x32 map upsampled to 1000x1000)",
        broken_config(setting(patch_size=1000)),
        ConfigError,
        ("patch_size must be <= 32, got 1000", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "mlp_ratio 0.001 (an MLP of 0 units)",
        broken_config(setting(mlp_ratio=0.001)),
        ConfigError,
        ("mlp_ratio 0.001 gives the transformer of width 16 an MLP of", "= 0 units", CONFIG),
    ),
    Case(
        ON_CONFIG,
        "atrous_rates [6, 12, 100000] (padding the ASPP input by 100000)",
        broken_config(setting(atrous_rates=[6, 12, 100000])),
        ConfigError,
        ("atrous_rates must be <= 64, got 100000", CONFIG),
    ),
    Case(ON_CONFIG, "a 1 GB config.json", lambda: huge_file(CONFIG, load), ConfigError, ("1073741824 bytes", CONFIG)),
    Case(
        ON_CONFIG,
        'model_type "mobilevitv2" given to a MobileViT (v1) class',
        broken_config(setting(model_type="mobilevitv2")),
        ConfigError,
        ("read it with MobileViTV2Config", CONFIG),
    ),
]


# ------------------------------------------------------------ preprocessor


PREPROCESSOR = f"{CKPT}/preprocessor_config.json"


def preprocessor(**settings) -> Callable[[], object]:
    def trigger():
        os.makedirs(CKPT, exist_ok=True)
        Path(PREPROCESSOR).write_text(json.dumps({"crop_size": 256, "size": 288, **settings}))
        return MobileViTImageProcessor.from_pretrained(CKPT)

    return trigger


ON_PREPROCESSOR = "Preprocessor config (preprocessor_config.json)"
PREPROCESSOR_CASES = [
    Case(
        ON_PREPROCESSOR,
        "rescale_factor -1",
        preprocessor(rescale_factor=-1),
        ValueError,
        ("rescale_factor must be a positive number", PREPROCESSOR),
    ),
    Case(
        ON_PREPROCESSOR,
        "crop_size 100000",
        preprocessor(crop_size=100000),
        ValueError,
        ("crop_size asks for 100000x100000 = 10000000000 pixels", "MAX_IMAGE_PIXELS", PREPROCESSOR),
    ),
    Case(
        ON_PREPROCESSOR,
        "shortest_edge 100000",
        preprocessor(size={"shortest_edge": 100000}),
        ValueError,
        ("size.shortest_edge asks for 100000x100000", PREPROCESSOR),
    ),
    Case(
        ON_PREPROCESSOR,
        "a 1 GB preprocessor_config.json",
        lambda: huge_file(PREPROCESSOR, lambda: MobileViTImageProcessor.from_pretrained(CKPT)),
        ValueError,
        ("1073741824 bytes", "at most", PREPROCESSOR),
    ),
]


# ------------------------------------------------------------------- images


def gradient() -> Image.Image:
    """A smooth 48x64 RGB picture (smooth, so encoders give stable sizes)."""
    y, x = np.mgrid[0:48, 0:64]
    return Image.fromarray(np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8))


def process(path: str):
    return MobileViTImageProcessor()(path)


def image_file(name: str, data: Callable[[], bytes]) -> Callable[[], object]:
    def trigger():
        Path(name).write_bytes(data())
        return process(name)

    return trigger


def encoded(fmt: str, cut: float = 1.0) -> Callable[[], bytes]:
    """The gradient encoded as `fmt`, keeping the first `cut` fraction of the bytes."""

    def data() -> bytes:
        path = Path(tempfile.mkdtemp()) / f"image.{fmt}"
        gradient().save(path)
        raw = path.read_bytes()
        shutil.rmtree(path.parent)
        return raw[: int(len(raw) * cut)]

    return data


def encoded_array(array: np.ndarray, fmt: str = "png") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height RGB pixels and holds none (what a decompression bomb looks like)."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def over_lowered_limit() -> object:
    """64x48 = 3072 pixels against a limit lowered to 2000: over it, not over twice it."""
    gradient().save("big.png")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 2000
    try:
        return load_image("big.png")  # (the processor would refuse its 256x256 crop: above the limit too)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def thirty_two_bit(mode: str) -> Callable[[], object]:
    """A TIFF of PIL mode I (values to 61,420) or F (values in [0, 1])."""
    values = np.arange(48 * 64).reshape(48, 64) * 20

    def trigger():
        array = values.astype(np.int32) if mode == "I" else (values / values.max()).astype(np.float32)
        Image.fromarray(array).save(f"{mode}.tiff")
        return process(f"{mode}.tiff")

    return trigger


def folder_as_image() -> object:
    os.mkdir("photos")
    return process("photos")


def fifo() -> object:
    os.mkfifo("pipe.png")
    return process("pipe.png")


ON_IMAGES = "Images (a path given to the processor or `load_image`)"
IMAGE_CASES = [
    Case(
        ON_IMAGES,
        "file not found",
        lambda: process("missing.jpg"),
        FileNotFoundError,
        ("image not found: missing.jpg",),
    ),
    Case(
        ON_IMAGES,
        "zero-byte file",
        image_file("empty.png", lambda: b""),
        ValueError,
        ("empty file (0 bytes)", "empty.png"),
    ),
    Case(
        ON_IMAGES,
        "a text file renamed .jpg",
        image_file("notes.jpg", lambda: b"shopping list: milk, eggs\n"),
        ValueError,
        ("not an image file Pillow can read", "notes.jpg"),
    ),
    Case(
        ON_IMAGES,
        "truncated JPEG",
        image_file("cut.jpg", encoded("jpg", 0.5)),
        ValueError,
        ("truncated or corrupt image file", "cut.jpg"),
    ),
    Case(
        ON_IMAGES,
        "truncated PNG",
        image_file("cut.png", encoded("png", 0.5)),
        ValueError,
        ("truncated or corrupt image file", "cut.png"),
    ),
    Case(
        ON_IMAGES,
        "decompression bomb: a PNG declaring 100000 x 100000 pixels",
        image_file("bomb.png", lambda: png_header(100_000, 100_000)),
        ValueError,
        ("refused as a possible decompression bomb", "MAX_IMAGE_PIXELS", "bomb.png"),
    ),
    Case(
        ON_IMAGES,
        "a 1x4000 PNG (93 bytes; its short edge resized to 224 would make 224 x 896,000 pixels)",
        image_file("thin.png", lambda: encoded_array(np.zeros((4000, 1, 3), np.uint8))),
        ValueError,
        ("would make 224x896000 = 200704000 pixels", "MAX_IMAGE_PIXELS", "aspect ratio of 4000:1", "thin.png"),
    ),
    Case(
        ON_IMAGES,
        "a 32-bit integer image (PIL mode I, e.g. a TIFF) with values above 255",
        thirty_two_bit("I"),
        ValueError,
        ("PIL mode I", "values 0..61420", "saturate them to white", "I.tiff"),
    ),
    Case(
        ON_IMAGES,
        "a 32-bit float image (PIL mode F)",
        thirty_two_bit("F"),
        ValueError,
        ("PIL mode F", "no standard pixel range", "F.tiff"),
    ),
    Case(ON_IMAGES, "a folder given as an image", folder_as_image, IsADirectoryError, ("photos is a folder",)),
    Case(ON_IMAGES, "a named pipe (FIFO) given as an image", fifo, ValueError, ("pipe.png is not a regular file",)),
    Case(
        ON_IMAGES,
        "more pixels than PIL.Image.MAX_IMAGE_PIXELS, less than twice (a warning; the image loads)",
        over_lowered_limit,
        Image.DecompressionBombWarning,
        ("exceeds limit of 2000 pixels",),
    ),
]


# ------------------------------------------------------------------- arrays


def model_call(shape: tuple[int, ...], dtype=np.float32) -> Callable[[], object]:
    def trigger():
        config = tiny_config()
        model = MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification"))
        return model(np.zeros(shape, dtype))

    return trigger


def big_batch() -> object:
    """64 zero images of 512x512, as one broadcast view (nothing allocated until the model copies it)."""
    config = tiny_config()
    model = MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification"))
    return model(np.broadcast_to(np.zeros((1, 3, 512, 512), np.float32), (64, 3, 512, 512)))


def with_available_memory(available: int, trigger: Callable[[], object]) -> object:
    """trigger() on a machine reporting `available` free bytes (so the docs' numbers do not depend on
    this one; tests/test_hostile_resources.py runs the real thing under a resource limit)."""
    real = memory.available_bytes
    memory.available_bytes = lambda: available
    try:
        return trigger()
    finally:
        memory.available_bytes = real


ON_ARRAYS = "Arrays given to a model"
ARRAY_CASES = [
    Case(ON_ARRAYS, "wrong ndim (3-D)", model_call((3, 64, 64)), ValueError, ("must be 4-D", "(3, 64, 64)")),
    Case(
        ON_ARRAYS, "wrong channel count", model_call((1, 4, 64, 64)), ValueError, ("has 4 channels", "num_channels=3")
    ),
    Case(
        ON_ARRAYS, "channels last (B, H, W, C)", model_call((1, 64, 64, 3)), ValueError, ("has 64 channels", "axis 1")
    ),
    Case(
        ON_ARRAYS,
        "integer dtype",
        model_call((1, 3, 64, 64), np.uint8),
        ValueError,
        ("must be floating point", "uint8"),
    ),
    Case(ON_ARRAYS, "smaller than 1x1 (0 rows)", model_call((1, 3, 0, 1)), ValueError, ("pixel_values is empty",)),
    Case(
        ON_ARRAYS,
        "a batch too large for the memory available (here: 8 GB available)",
        lambda: with_available_memory(8 * 10**9, big_batch),
        MemoryError,
        ("64 image(s) of 512x512 needs about 9.4 GB", "about 8.0 GB is available", "lower the batch size (about 54"),
    ),
]


# ------------------------------------------------------------ files written


def convert_onto_existing() -> object:
    shutil.copy(BIN_FIXTURES / "tiny.bin", BIN)
    Path("model.safetensors").write_bytes(b"precious")
    return convert(BIN, "model.safetensors")


def convert_with(out: str, overwrite: bool = False) -> object:
    shutil.copy(BIN_FIXTURES / "tiny.bin", BIN)
    return convert(BIN, out, overwrite=overwrite)


def file_size_limit(limit: int, trigger: Callable[[], object]) -> object:
    """trigger() with writes beyond `limit` bytes failing (EFBIG), as on a full disk: a real I/O error
    in the safetensors package's own writer (RLIMIT_FSIZE; SIGXFSZ ignored, so write() fails instead)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        return trigger()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def bin_only_folder_on_a_full_disk() -> object:
    os.mkdir(CKPT)
    shutil.copy(BIN_FIXTURES / "tiny.bin", f"{CKPT}/{BIN}")
    return file_size_limit(100, lambda: load_checkpoint_tensors(CKPT))


def disk_full_convert() -> object:
    shutil.copy(BIN_FIXTURES / "tiny.bin", BIN)
    return file_size_limit(100, lambda: convert(BIN, "out.safetensors"))


def second_run_meanwhile() -> object:
    """convert to out.safetensors while another convert (run from inside the first's write) finishes first."""
    shutil.copy(BIN_FIXTURES / "tiny.bin", BIN)
    real = safetensors.numpy.save_file

    def other_run_first(*args, **kwargs):
        safetensors.numpy.save_file = real
        convert(BIN, "out.safetensors")  # the other run: it checks, writes and finishes now
        return real(*args, **kwargs)

    safetensors.numpy.save_file = other_run_first
    try:
        return convert(BIN, "out.safetensors")
    finally:
        safetensors.numpy.save_file = real


ON_FILES = "Files written (`convert`, `segment -o`)"
FILE_CASES = [
    Case(
        ON_FILES,
        "the output exists (without --force / overwrite=True)",
        convert_onto_existing,
        FileExistsError,
        ("model.safetensors already exists", "--force"),
    ),
    Case(
        ON_FILES,
        "two conversions to one destination at once (the second to finish is refused)",
        second_run_meanwhile,
        FileExistsError,
        ("out.safetensors appeared while it was being written", "left as it is"),
    ),
    Case(
        ON_FILES,
        "--force onto a device (/dev/null), a folder or a pipe",
        lambda: convert_with("/dev/null", overwrite=True),
        FileExistsError,
        ("/dev/null exists and is not a regular file", "never replaced, not even with --force"),
    ),
    Case(
        ON_FILES,
        "--force onto the source (`convert x.bin x.bin --force`)",
        lambda: convert_with(BIN, overwrite=True),
        FileExistsError,
        (f"{BIN} is an input of this run", "write the output elsewhere"),
    ),
    Case(
        ON_FILES,
        "the destination's folder does not exist (checked before the .bin is read)",
        lambda: convert_with("missing/model.safetensors"),
        FileNotFoundError,
        ("cannot write missing/model.safetensors: the folder missing does not exist",),
    ),
    Case(
        ON_FILES,
        "disk full while writing",
        disk_full_convert,
        OSError,
        ("cannot write out.safetensors", "File too large"),
    ),
    Case(
        ON_FILES,
        "disk full while a bin-only folder is converted on load (a warning; the .bin's weights load)",
        bin_only_folder_on_a_full_disk,
        UserWarning,
        (f"read {CKPT}/{BIN}", f"could not save {CKPT}/model.safetensors", "File too large"),
    ),
]


# ---------------------------------------------------------------- the command


def run_cli(*argv: str) -> object:
    """The `mobilevit-np` command's work, with its exception (main() would print its first line)."""
    args = cli.build_parser().parse_args(list(argv))
    return args.run(args)


def segment_to(*outputs: str) -> Callable[[], object]:
    def trigger():
        gradient().save("in.png")
        Path("mask.png").write_bytes(b"yesterday's mask")
        os.mkdir("masks")
        return run_cli("segment", "in.png", "--model", CKPT, *outputs)

    return trigger


def classify_without_labels() -> object:
    write_checkpoint(num_labels=0)
    gradient().save("in.png")
    return run_cli("classify", "in.png", "--model", CKPT)


ON_CLI = "The `mobilevit-np` command (checked before the model runs)"
CLI_CASES = [
    Case(
        ON_CLI,
        "segment -o onto the input image",
        segment_to("-o", "in.png", "--force"),
        FileExistsError,
        ("in.png is an input of this run",),
    ),
    Case(
        ON_CLI,
        "segment -o onto an existing file, without --force",
        segment_to("-o", "mask.png"),
        FileExistsError,
        ("mask.png already exists", "--force"),
    ),
    Case(ON_CLI, "segment -o a folder", segment_to("-o", "masks"), cli.CLIError, ("--output masks is a folder",)),
    Case(
        ON_CLI,
        "segment -o m.jpg (a mask is a PNG: one class index per pixel)",
        segment_to("-o", "m.jpg"),
        cli.CLIError,
        ("--output m.jpg", "name it .png"),
    ),
    Case(
        ON_CLI,
        "segment --overlay with an unknown extension",
        segment_to("--overlay", "overlay.xyz"),
        cli.CLIError,
        ("--overlay overlay.xyz: .xyz is not an image format Pillow writes",),
    ),
    Case(
        ON_CLI,
        "classify with a config that has no labels (num_labels 0)",
        classify_without_labels,
        WrongHeadError,
        (f"{CKPT}/config.json has no labels",),
    ),
]


# ----------------------------------------------- command line: several images


class CommandResult(Exception):
    """What `mobilevit-np` did in a command-line case: its exit status, then its stdout (a prediction's
    top-k list shortened to its length), as the case's "message"."""

    def __init__(self, status: int, stdout: str) -> None:
        super().__init__("\n".join([f"exit status {status}", *_shortened(json.loads(stdout))]))
        self.status = status


def _shortened(document: object) -> list[str]:
    entries = document if isinstance(document, list) else [document]
    return [
        json.dumps({**e, "predictions": f"[{len(e['predictions'])} entries]"} if "predictions" in e else e)
        for e in entries
    ]


def command(*args: str, setup: Callable[[], object] = lambda: None) -> Callable[[], object]:
    """Run `mobilevit-np ARGS` in this process (stderr discarded) and raise what it printed on stdout."""

    def trigger():
        setup()
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            status = cli.main(list(args))
        raise CommandResult(status, stdout.getvalue())

    return trigger


def good_and_unreadable() -> None:
    write_checkpoint()
    gradient().save("good.png")
    Path("notes.jpg").write_text("shopping list: milk, eggs\n")


ON_COMMANDS = "The `mobilevit-np` command with several images"
COMMAND_CASES = [
    Case(
        ON_COMMANDS,
        "classify --json with several images, one unreadable: each image gets its entry; exit 1",
        command("classify", "good.png", "notes.jpg", "--model", CKPT, "--json", setup=good_and_unreadable),
        CommandResult,
        ("exit status 1", '{"image": "good.png", "predictions"', "notes.jpg: not an image file Pillow can read"),
    ),
    Case(
        ON_COMMANDS,
        "classify --json when the run cannot start (no checkpoint): a JSON error object",
        command("classify", "good.png", "--model", "missing", "--json"),
        CommandResult,
        ("exit status 1", '{"error": "checkpoint folder not found: missing'),
    ),
]


# ----------------------------------------------------------- numba's cache

KERNEL = """
import numba
from mobilevit_np.kernels.runtime.cache import heal_corrupt_cache


@heal_corrupt_cache
@numba.njit(cache=True)
def add_one(x):
    return x + 1
"""


def corrupt_numba_cache() -> object:
    """A cached numba function whose .nbi index is then cut to 0 bytes, called from a fresh import."""
    import importlib

    Path("kernel_module.py").write_text(KERNEL)
    sys.path.insert(0, os.getcwd())
    try:
        for corrupt in (False, True):
            sys.modules.pop("kernel_module", None)
            module = importlib.import_module("kernel_module")
            if corrupt:
                return module.add_one(1)
            module.add_one(1)  # compiles and writes the cache
            for index in Path("__pycache__").glob("*.nbi"):
                index.write_bytes(b"")
    finally:
        sys.path.remove(os.getcwd())
        sys.modules.pop("kernel_module", None)


ON_NUMBA = "The numba fast path"
NUMBA_CASES = [
    Case(
        ON_NUMBA,
        "a corrupt numba cache file (.nbi / .nbc; a warning, the function is compiled again)",
        corrupt_numba_cache,
        RuntimeWarning,
        ("numba cache of add_one is corrupt (EOFError: Ran out of input)", "its index (in __pycache__) was reset"),
    ),
]

CASES = (
    WEIGHT_CASES
    + BIN_CASES
    + CONFIG_CASES
    + PREPROCESSOR_CASES
    + IMAGE_CASES
    + ARRAY_CASES
    + FILE_CASES
    + CLI_CASES
    + COMMAND_CASES
    + NUMBA_CASES
)


# ------------------------------------------------------------------ running


def run(case: Case) -> BaseException | Warning:
    """Run one case in the current folder; the exception it raised or the warning it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            case.trigger()
        except Exception as error:
            return error
    for warning in caught:
        if issubclass(warning.category, case.error):
            return warning.message
    raise AssertionError(f"{case.name}: no {case.error.__name__} (warnings: {[str(w.message) for w in caught]})")


def run_all() -> list[tuple[Case, BaseException | Warning]]:
    """Every case, each in its own fresh scratch folder."""
    results = []
    start = os.getcwd()
    for case in CASES:
        with tempfile.TemporaryDirectory() as scratch:
            os.chdir(scratch)
            try:
                results.append((case, run(case)))
            finally:
                os.chdir(start)
    return results


def table(results: list[tuple[Case, BaseException | Warning]]) -> str:
    lines: list[str] = []
    for section in dict.fromkeys(case.section for case, _ in results):
        lines += ["", f"### {section}", "", "| what is wrong | raises | the message |", "|---|---|---|"]
        for case, error in results:
            if case.section == section:
                message, raised = str(error), f"`{type(error).__name__}`"
                if isinstance(error, CommandResult):  # the status goes in the "raises" column
                    raised, message = message.split("\n", 1)
                message = "<br>".join(f"`{line.strip()}`" for line in message.splitlines())
                lines.append(f"| {case.name} | {raised} | {message.replace('|', '&#124;')} |")
    return "\n".join(lines[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/errors.md's table is stale")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    new = replace_block(text, "error-catalogue", table(run_all()))
    if args.check:
        if new != text:
            print("docs/errors.md: the error table is stale; run python tools/error_catalogue.py")
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)} ({len(CASES)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
