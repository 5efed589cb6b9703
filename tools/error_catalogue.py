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
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from make_figures import replace_block  # the <!-- generated:NAME --> blocks (tools/ is on sys.path)
from PIL import Image

from mobilevit_np import ConfigError, MobileViTForImageClassification, MobileViTImageProcessor, WeightsError
from mobilevit_np.checkpoints.safetensors_io import write_safetensors
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.checkpoints.torch_pickle import LEGACY_MAGIC, UnsafePickleError, convert, load_torch_pickle
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
        'model_type "mobilevitv2" (MobileViTV2)',
        broken_config(setting(model_type="mobilevitv2")),
        ConfigError,
        ("not supported yet", CONFIG),
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
        return process("big.png")
    finally:
        Image.MAX_IMAGE_PIXELS = limit


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
]


# ------------------------------------------------------------ files written


def convert_onto_existing() -> object:
    shutil.copy(BIN_FIXTURES / "tiny.bin", BIN)
    Path("model.safetensors").write_bytes(b"precious")
    return convert(BIN, "model.safetensors")


ON_FILES = "Files written (`convert`)"
FILE_CASES = [
    Case(
        ON_FILES,
        "the output exists (without --force / overwrite=True)",
        convert_onto_existing,
        FileExistsError,
        ("model.safetensors already exists", "--force"),
    ),
]

CASES = WEIGHT_CASES + BIN_CASES + CONFIG_CASES + IMAGE_CASES + ARRAY_CASES + FILE_CASES


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
                message = "<br>".join(f"`{line.strip()}`" for line in str(error).splitlines())
                lines.append(f"| {case.name} | `{type(error).__name__}` | {message.replace('|', '&#124;')} |")
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
