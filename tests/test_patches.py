"""unfold / fold against the index formula spelled out in loops (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np.patches import fold, unfold

RNG = np.random.default_rng(0)


def unfold_loops(x: np.ndarray, p: int) -> np.ndarray:
    """The index formula of patches.py spelled out, one element at a time (divisible sizes)."""
    b_, c_, h, w = x.shape
    nh, nw = h // p, w // p
    out = np.empty((b_ * p * p, nh * nw, c_), x.dtype)
    for b in range(b_):
        for py in range(p):
            for px in range(p):
                for ny in range(nh):
                    for nx in range(nw):
                        out[b * p * p + py * p + px, ny * nw + nx] = x[b, :, ny * p + py, nx * p + px]
    return out


@pytest.mark.parametrize("p, shape", [(2, (2, 3, 4, 6)), (3, (1, 5, 9, 6)), (1, (1, 2, 3, 3))])
def test_unfold_matches_its_index_formula_and_fold_inverts_it(p, shape):
    x = RNG.standard_normal(shape)
    patches, grid = unfold(x, p)
    np.testing.assert_array_equal(patches, unfold_loops(x, p))
    np.testing.assert_array_equal(fold(patches, grid), x)


def test_unfold_resizes_maps_not_divisible_by_the_patch():
    x = RNG.standard_normal((1, 2, 5, 7))
    patches, grid = unfold(x, 2)
    assert patches.shape == (4, 3 * 4, 2) and grid.resized
    assert fold(patches, grid).shape == x.shape
