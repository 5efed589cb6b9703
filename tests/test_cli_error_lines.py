"""Errors that list several problems print each of them in the CLI (up to 20 lines), not "+N more lines"."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.cli import MAX_ERROR_LINES, main
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"


def mismatched_checkpoint(folder: Path, **config_overrides) -> Path:
    """Weights of the tiny config under a config.json that says otherwise."""
    config = tiny_config()
    save_checkpoint(folder, config, random_state_dict(config, "classification"))
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, **config_overrides}))
    return folder


def test_a_few_problems_are_all_printed(tmp_path, capsys):
    folder = mismatched_checkpoint(tmp_path / "ckpt", num_labels=7, id2label={str(i): f"c{i}" for i in range(7)})
    assert main(["classify", str(CATS), "--model", str(folder)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("mobilevit-np: error: ") and "does not match the config (2 problems)" in lines[0]
    assert lines[1:] == [
        "  shape mismatch for classifier.bias: file has (5,), config needs (7,)",
        "  shape mismatch for classifier.weight: file has (5, 64), config needs (7, 64)",
    ]


def test_many_problems_are_capped_at_twenty_lines(tmp_path, capsys):
    folder = mismatched_checkpoint(tmp_path / "ckpt", neck_hidden_sizes=[8, 16, 16, 24, 24, 40, 80])
    assert main(["classify", str(CATS), "--model", str(folder)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    total = int(re.search(r"\((\d+) problems\)", lines[0]).group(1))
    assert total > MAX_ERROR_LINES
    assert len(lines) == MAX_ERROR_LINES + 1
    shown = lines[1:MAX_ERROR_LINES]
    assert all(re.fullmatch(r"  shape mismatch for \S+: file has \(.*\), config needs \(.*\)", s) for s in shown), shown
    assert lines[-1] == f"  ... and {total + 1 - MAX_ERROR_LINES} more lines (--debug shows all)"
