"""Property-based fuzzing of the allowlist .bin reader: random bytes and mutations of a real torch.save file.

Whatever the bytes, load_torch_pickle either returns named arrays or raises WeightsError
(UnsafePickleError included) with a message: never another exception, a crash, a hang
(each example has a deadline) or a big allocation (tracemalloc's peak is bounded).
The seed file is tests/fixtures/bin/tiny.bin, written once by torch.save
(tools/make_bin_fixture.py). FUZZ_EXAMPLES raises the example count.
"""

from __future__ import annotations

import os
import tempfile
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_hostile_bin import tensor_program

from mobilevit_np import WeightsError
from mobilevit_np.checkpoints.torch_pickle import STORAGE_DTYPES, load_torch_pickle

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
MAX_PEAK_BYTES = 16 * 2**20  # the seed file is 3 KB; nothing it can say justifies more
VALID = (Path(__file__).parent / "fixtures" / "bin" / "tiny.bin").read_bytes()
with zipfile.ZipFile(Path(__file__).parent / "fixtures" / "bin" / "tiny.bin") as _archive:
    RECORDS = {info.filename: _archive.read(info) for info in _archive.infolist()}
PROGRAM = RECORDS["tiny/data.pkl"]


def load_bytes(data: bytes) -> dict | None:
    """Load `data` as a .bin file: the tensors, or None after a WeightsError; anything else fails the test."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(data)
    tracemalloc.start()
    try:
        tensors = load_torch_pickle(f.name)
        assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in tensors.items())
        return tensors
    except WeightsError as e:
        assert str(e), "an error must say what is wrong"
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        os.unlink(f.name)
        assert peak < MAX_PEAK_BYTES, f"{peak} bytes allocated"


def archive(records: dict[str, bytes]) -> bytes:
    """A zip of `records`, stored uncompressed as torch.save writes them."""
    with tempfile.TemporaryFile() as f:
        with zipfile.ZipFile(f, "w") as out:
            for name, data in records.items():
                out.writestr(name, data)
        f.seek(0)
        return f.read()


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data):
    load_bytes(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
@example([(30, 128)])  # found by this test: a name flagged UTF-8 that is not (UnicodeDecodeError)
@example([(2765, 129)])  # a record offset beyond what seek accepts (ValueError)
@example([(2782, 2)])  # a zip64 locator naming two disks (BadZipFile from is_zipfile itself)
def test_byte_flips_of_a_real_file(flips):
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    load_bytes(bytes(data))


@FUZZ
@given(st.integers(0, len(VALID) - 1))
def test_truncation(length):
    assert load_bytes(VALID[:length]) is None


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, len(PROGRAM) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_pickle_in_a_valid_archive(edits):
    """The pickle program, edited byte by byte, with every data record in place: the interpreter's turn."""
    program = bytearray(PROGRAM)
    for kind, position, value in edits:
        position %= max(len(program), 1)
        if kind == "flip":
            program[position] = value
        elif kind == "insert":
            program.insert(position, value)
        elif program:
            del program[position]
    load_bytes(archive({**RECORDS, "tiny/data.pkl": bytes(program)}))


@FUZZ
@given(st.binary(max_size=512))
def test_random_pickle_in_a_valid_archive(program):
    load_bytes(archive({**RECORDS, "tiny/data.pkl": program}))


sizes = st.lists(st.integers(0, 2**40) | st.integers(0, 6), max_size=4)


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.text(max_size=4),
            st.sampled_from(sorted(STORAGE_DTYPES)),
            st.sampled_from(["0", "1", "2"]),
            st.integers(0, 2**40) | st.integers(0, 64),
            sizes,
            sizes,
        ),
        min_size=1,
        max_size=3,
    ),
    st.dictionaries(st.sampled_from(["0", "1", "2"]), st.binary(max_size=256)),
)
@example([("w", "BFloat16Storage", "0", 0, [0, 265, 6690819, 1300482703], [0, 0, 0, 0])], {})  # found by this test
@example([("w", "BFloat16Storage", "0", 2, [], [])], {"0": bytes(4)})  # a bf16 scalar came out as a NumPy scalar
def test_hostile_tensor_geometry(entries, records):
    """Well-formed pickles whose sizes, strides and element counts are anything at all."""
    files = {"archive/data.pkl": tensor_program(entries)}
    files.update({f"archive/data/{key}": data for key, data in records.items()})
    load_bytes(archive(files))
