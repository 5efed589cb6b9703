"""A loaded model shared by threads gives the same answers as run serially (no shared scratch state)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mobilevit_np import MobileViTForSemanticSegmentation
from mobilevit_np.random_weights import random_pixel_values


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_four_threads_match_serial_runs(make_checkpoint, backend):
    if backend == "numba":
        pytest.importorskip("numba")
    folder = make_checkpoint("segmentation", output_stride=16)
    model = MobileViTForSemanticSegmentation.from_pretrained(folder, backend=backend)
    inputs = [random_pixel_values((1, 3, 40 + 8 * i, 64), seed=i) for i in range(8)]
    serial = [model(x, output_hidden_states=True) for x in inputs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda x: model(x, output_hidden_states=True), inputs))
    for one, other in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(one.logits, other.logits)
        for a, b in zip(one.hidden_states, other.hidden_states, strict=True):
            np.testing.assert_array_equal(a, b)
