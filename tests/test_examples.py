"""Every example script and notebook runs top to bottom, offline, with a headless matplotlib.

Each one builds its own untrained checkpoint, so nothing is downloaded. Notebooks are
executed with nbclient in a fresh kernel, from examples/notebooks/ as Jupyter would.
"""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted((EXAMPLES / "notebooks").glob("*.ipynb"))
HEADLESS = {**os.environ, "MPLBACKEND": "Agg"}


def run_script(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, env=HEADLESS, timeout=300
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr}"
    assert "UNTRAINED" in result.stderr  # the fixture says plainly what it is
    return result.stdout


def test_classify(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_script("classify.py", "--top-k", "3", "--plot", str(tmp_path / "top.png"))
    lines = out.splitlines()
    assert [line.split(".")[0] for line in lines[:3]] == ["1", "2", "3"] and "LABEL_" in lines[0]
    assert (tmp_path / "top.png").stat().st_size > 0


def test_segment(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_script("segment.py", "--plot", str(tmp_path / "overlay.png"))
    assert "640x480 pixels" in out and "(outside the crop)" in out  # the mask is at the photo's size
    assert (tmp_path / "overlay.png").stat().st_size > 0


def test_inspect_attention(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_script("inspect_attention.py", "--layer", "6", "--head", "3", "--out-dir", str(tmp_path))
    assert "`encoder.layer.2.unfold`" in out and "(4, 256, 144)" in out  # the trace table
    assert "attention layer 6: (4, 4, 16, 16)" in out
    assert {p.name for p in tmp_path.iterdir()} == {"attention.png", "feature_maps.png"}


@pytest.mark.parity
def test_compare_with_transformers(monkeypatch, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    # In this process, where the parity tests have already paid for importing torch: ~4 s saved.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setattr(sys, "argv", ["compare_with_transformers.py", "--size", "xx-small"])
    with pytest.raises(SystemExit) as exit_status:
        runpy.run_path(str(EXAMPLES / "compare_with_transformers.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert exit_status.value.code == 0, out
    assert "NOT OK" not in out
    assert out.count("attentions[") == 2 * 9 and "OK: mobilevit_np matches transformers" in out


def test_every_example_is_tested():
    tested = {"classify.py", "segment.py", "inspect_attention.py", "compare_with_transformers.py", "untrained.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(notebook, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(notebook, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit without outputs"
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    )
    client.execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
