"""Every golden fixture: our outputs against transformers', float32 and float64, every hidden state."""

from __future__ import annotations

import numpy as np
import pytest
from golden import TOLERANCE, Case, case_names, outputs_by_name

# Full-size cases whose NumPy forward takes seconds: run with -m slow.
SLOW = {"small-seg-os16"}

CASES = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in case_names()]


def test_fixture_set_is_complete():
    assert len(case_names()) >= 12


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CASES)
def test_matches_transformers(name: str, dtype: str, record_property):
    case = Case.load(name)
    output = case.model(np.dtype(dtype))(case.pixel_values(), output_hidden_states=True)
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
    print(f"{name} {dtype}: max relative error {worst:.2e} (tolerance {TOLERANCE[dtype]:.0e})")
