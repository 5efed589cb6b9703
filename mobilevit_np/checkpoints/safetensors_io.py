"""Read .safetensors files with NumPy alone, checking every byte range first; write them safely.

Format: 8 bytes little-endian u64 N, then N bytes of JSON header
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the data; offsets count from the end of the header. The file is memory-mapped and
each tensor copied out once, so a 20 MB checkpoint never sits in memory twice.
Writing goes through the safetensors package, into a temporary file that is renamed
into place, so an interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import reprlib
from collections.abc import Iterable

import numpy as np

from mobilevit_np.files import write_atomically

# safetensors dtype name -> NumPy dtype (always little-endian on disk). BF16 has no NumPy
# dtype: it is read as its raw 16 bits and widened to float32 (see _decode).
DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
METADATA_KEY = "__metadata__"  # the header's one entry that is not a tensor
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's own limit
MAX_DIMS = 64  # NumPy's limit on an array's number of axes
MAX_DIM_BITS = 62  # larger sizes overflow NumPy's index type even when another axis is 0


class WeightsError(ValueError):
    """A weight file that is corrupt, truncated, or does not fit the model's config."""


def _read_json_header(path: str) -> tuple[dict, int, int]:
    """The header as a JSON object, its length and the file's size; nothing checked inside it yet."""
    size = os.path.getsize(path)
    if size < 8:
        raise WeightsError(f"{path}: not a safetensors file: only {size} bytes, shorter than the 8-byte header length")
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise WeightsError(
                f"{path}: corrupt or truncated safetensors file: header length {header_len} "
                f"points past the end of the {size}-byte file"
            )
        raw = f.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_refuse_duplicates)
    except _DuplicateKey as e:
        raise WeightsError(
            f"{path}: corrupt safetensors file: the header names {e} twice (which one is meant cannot be known)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WeightsError(f"{path}: corrupt safetensors file: header is not valid JSON ({e!r:.200})") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: corrupt safetensors file: header is not a JSON object")
    return header, header_len, size


class _DuplicateKey(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's dict; a key given twice (json.loads would keep the last) is refused."""
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _DuplicateKey(repr(duplicate))
    return result


def read_header(path: str) -> tuple[dict, int]:
    """The parsed, validated JSON header of a safetensors file and where its data starts."""
    header, header_len, size = _read_json_header(path)
    header.pop(METADATA_KEY, None)
    _check_entries(path, header, size - 8 - header_len)
    return header, 8 + header_len


def read_metadata(path: str | os.PathLike) -> dict:
    """The free-form "__metadata__" strings of a safetensors file ({} when it has none)."""
    metadata = _read_json_header(os.fspath(path))[0].get(METADATA_KEY)
    return metadata if isinstance(metadata, dict) else {}


def _check_entries(path: str, header: dict, data_size: int) -> None:
    """Every tensor's dtype, shape and byte range must be sane before any is read."""
    ranges = []
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise WeightsError(f"{where}: header entry needs dtype, shape and data_offsets")
        if not isinstance(entry["dtype"], str) or entry["dtype"] not in DTYPES:
            raise WeightsError(f"{where}: unknown dtype {entry['dtype']!r} (known: {', '.join(DTYPES)})")
        shape, offsets = entry["shape"], entry["data_offsets"]
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_is_dimension(d) for d in shape)):
            raise WeightsError(
                f"{where}: shape {reprlib.repr(shape)} is not a list of at most {MAX_DIMS} non-negative integers "
                f"below 2**{MAX_DIM_BITS}"
            )
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise WeightsError(f"{where}: data_offsets {offsets!r} is not a [begin, end] pair")
        begin, end = offsets
        if not 0 <= begin <= end <= data_size:
            raise WeightsError(
                f"{where}: data_offsets [{begin}, {end}] fall outside the {data_size} data bytes "
                "(truncated or corrupt file)"
            )
        if end - begin != math.prod(shape) * DTYPES[entry["dtype"]].itemsize:
            raise WeightsError(
                f"{where}: data_offsets span {end - begin} bytes but shape {shape} of "
                f"{entry['dtype']} needs {math.prod(shape) * DTYPES[entry['dtype']].itemsize}"
            )
        ranges.append((begin, end, name))
    ranges.sort()
    for (_, end_a, name_a), (begin_b, _, name_b) in itertools.pairwise(ranges):
        if begin_b < end_a:
            raise WeightsError(f"{path}: corrupt safetensors file: tensors {name_a!r} and {name_b!r} overlap")
    _check_no_gaps(path, ranges, data_size)


def _check_no_gaps(path: str, ranges: list[tuple[int, int, str]], data_size: int) -> None:
    """The tensors (sorted by offset) must tile the data exactly, as the reference safetensors library requires:
    bytes no tensor claims are hidden data no reader shows."""
    previous_end, previous = 0, None
    for begin, end, name in ranges:
        if begin != previous_end:
            after = f"after tensor {previous!r}" if previous else "at the start of the data"
            raise WeightsError(
                f"{path}: corrupt safetensors file: {begin - previous_end} bytes {after} belong to no tensor "
                f"(tensor {name!r} starts at {begin}); the safetensors library refuses such files"
            )
        previous_end, previous = end, name
    if previous_end != data_size:
        raise WeightsError(
            f"{path}: corrupt safetensors file: the tensors end at byte {previous_end} of the {data_size} data bytes; "
            "the rest belongs to no tensor (the safetensors library refuses such files)"
        )


def _is_dimension(d: object) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**MAX_DIM_BITS


def widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (their 16 bits, as uint16) as float32, exactly: bf16 is a float32's top half."""
    widened = bits.astype(np.uint32)
    widened <<= 16  # in place: `<<` would turn a 0-d array (a scalar tensor) into a NumPy scalar
    return widened.view(np.float32)


def round_to_bfloat16(values: np.ndarray) -> np.ndarray:
    """float values rounded to the nearest bfloat16 (ties to even, as torch's .to(torch.bfloat16)), as float32."""
    values = np.asarray(values, dtype=np.float32)
    bits = values.view(np.uint32).astype(np.uint64)  # uint64: adding the rounding bias cannot overflow
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(values), values, rounded).reshape(values.shape)


def _decode(raw: np.ndarray, dtype_name: str) -> np.ndarray:
    """A tensor's raw little-endian values as a native NumPy array (BF16 -> float32)."""
    if dtype_name == "BF16":
        return widen_bfloat16(raw)
    return raw.astype(raw.dtype.newbyteorder("="))


def load_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file, as NumPy arrays, by name."""
    path = os.fspath(path)
    header, data_start = read_header(path)
    if not header:
        return {}
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=data_start) if os.path.getsize(path) > data_start else None
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = DTYPES[entry["dtype"]]
        raw = data[begin:end].view(dtype) if end > begin else np.empty(0, dtype)
        tensors[name] = _decode(raw, entry["dtype"]).reshape(entry["shape"])
    del data
    return tensors


def write_safetensors(
    tensors: dict[str, np.ndarray],
    path: str | os.PathLike,
    overwrite: bool = False,
    metadata: dict[str, str] | None = None,
    sources: Iterable[str | os.PathLike] = (),
) -> None:
    """Write `tensors` (and `metadata` strings) to `path`, all or nothing (see files.write_atomically).

    `sources` are the files this run reads (e.g. the .bin being converted): never replaced.
    A failed write (a full disk) is an OSError naming `path`.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    if METADATA_KEY in tensors:
        raise WeightsError(
            f"cannot write {os.fspath(path)}: a tensor is named {METADATA_KEY!r}, the name safetensors keeps for "
            "its metadata; rename it"
        )
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}

    def save(tmp: str) -> None:
        try:
            save_file(arrays, tmp, metadata={"format": "pt", **(metadata or {})})
        except SafetensorError as e:  # its I/O errors (a full disk) are not OSErrors
            raise OSError(errno.EIO, str(e)) from None

    write_atomically(path, save, overwrite=overwrite, sources=sources)
