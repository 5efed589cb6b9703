"""Shared test fixtures: tiny configs and checkpoints written to a temporary folder."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import MobileViTConfig
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.random_weights import random_state_dict

TINY = dict(
    hidden_sizes=[16, 24, 32],
    neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
    num_attention_heads=2,
    expand_ratio=2.0,
    image_size=64,
    aspp_out_channels=16,
)


def tiny_config(**overrides) -> MobileViTConfig:
    """A MobileViT small enough that a forward pass takes milliseconds."""
    return MobileViTConfig(**{**TINY, "num_labels": 5, **overrides})


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
