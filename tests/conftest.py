"""Shared test fixtures: tiny checkpoints written to a temporary folder (the config: mobilevit_np.presets.tiny_config).

tools/ is on sys.path too (pyproject.toml's pytest `pythonpath`): the transformers side of the
parity checks (reference.py) and the golden fixtures' format (golden.py) live there, beside
the scripts that write the fixtures.
"""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict


@pytest.fixture
def make_checkpoint(tmp_path):
    """make_checkpoint(head="classification", **config_overrides) -> folder with config.json + model.safetensors."""

    def make(head: str = "classification", seed: int = 0, **overrides):
        config = tiny_config(**overrides)
        folder = tmp_path / f"{head}-{seed}"
        save_checkpoint(folder, config, random_state_dict(config, head, seed))
        return folder

    return make


@pytest.fixture
def tiny_classifier(tmp_path) -> str:
    """A tiny classifier folder with 5 named labels and a preprocessor_config.json (resize 72, crop 64)."""
    from photos import write_classifier

    return write_classifier(tmp_path / "tiny-classifier")


@pytest.fixture
def pixel_values():
    return np.random.RandomState(0).uniform(0, 1, (2, 3, 64, 64)).astype(np.float32)


def pytest_terminal_summary(terminalreporter):
    """Say how many live comparisons against transformers ran, so a CI log shows they were not all skipped."""
    counts = {
        outcome: sum("parity" in report.keywords for report in terminalreporter.stats.get(outcome, []))
        for outcome in ("passed", "failed", "skipped")
    }
    terminalreporter.write_line(
        "live parity against transformers: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
    )
