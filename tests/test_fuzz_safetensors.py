"""Property-based fuzzing of the safetensors reader: random bytes and mutations of a valid file.

Whatever the bytes, loading either succeeds or raises WeightsError with a message: never
another exception, a crash, or a giant allocation. FUZZ_EXAMPLES raises the example count.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from mobilevit_np import WeightsError
from mobilevit_np.checkpoints.safetensors_io import load_safetensors

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
VALID = save(
    {"weight": np.arange(12, dtype=np.float32).reshape(3, 4), "bias": np.ones(3, np.float16)},
    metadata={"format": "pt"},
)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load_bytes(data: bytes) -> dict | None:
    with tempfile.NamedTemporaryFile(suffix=".safetensors", delete=False) as f:
        f.write(data)
    try:
        return load_safetensors(f.name)
    except WeightsError as e:
        assert str(e), "an error must say what is wrong"
        return None
    finally:
        os.unlink(f.name)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data):
    load_bytes(data)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_flips_of_a_valid_file(flips):
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    tensors = load_bytes(bytes(data))
    if tensors is not None:
        assert all(isinstance(v, np.ndarray) for v in tensors.values())


@FUZZ
@given(st.integers(0, len(VALID)))
def test_truncation_at_every_length(length):
    result = load_bytes(VALID[:length])
    assert result is None or length == len(VALID)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(
    st.dictionaries(
        st.text(max_size=10),
        json_values
        | st.fixed_dictionaries(
            {
                "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "F8", "x"]) | json_values,
                "shape": st.lists(st.integers(-2, 2**40), max_size=4) | json_values,
                "data_offsets": st.lists(st.integers(-5, 2**62), min_size=2, max_size=2) | json_values,
            }
        ),
        max_size=4,
    ),
    st.binary(max_size=64),
)
def test_hostile_headers(header, data):
    raw = json.dumps(header).encode()
    load_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_deeply_nested_header():
    raw = b"[" * 100_000 + b"]" * 100_000
    assert load_bytes(struct.pack("<Q", len(raw)) + raw) is None
