"""Every golden fixture: our outputs against transformers', float32 and float64, every hidden state,
on the NumPy reference and on the Numba fast path (when numba is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from golden import TOLERANCE, Case, case_names
from reference import outputs_by_name

from mobilevit_np.backends import numba_available

# Full-size cases whose NumPy forward takes seconds: run with -m slow.
SLOW = {"small-seg-os16", "v2-1.0-seg-os16-512"}

CASES = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in case_names()]
BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="needs numba"))]


def test_fixture_set_is_complete():
    names = case_names()
    assert len(names) >= 21
    assert sum(name.startswith("v2-") for name in names) >= 9


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_matches_transformers(name: str, dtype: str, backend: str, record_property):
    case = Case.load(name)
    output = case.model(np.dtype(dtype), backend=backend)(case.pixel_values(), output_hidden_states=True)
    ours = outputs_by_name(output)
    assert sorted(ours) == case.output_names(), "outputs differ from the fixture's"
    errors = {out: case.compare(out, ours[out], dtype) for out in case.output_names()}
    for out in errors:
        if out.startswith("hidden_states"):
            # Degenerate activations (all ~0 or exploding) would make any comparison meaningless.
            assert 0.05 <= float(case.golden[f"{dtype}/{out}/std"]) <= 20, f"{out} is degenerate in the fixture"
            assert 0.05 <= float(ours[out].std()) <= 20, f"our {out} is degenerate"
    worst = max(errors.values())
    record_property("max_relative_error", worst)
    print(f"{name} {dtype} {backend}: max relative error {worst:.2e} (tolerance {TOLERANCE[dtype]:.0e})")
