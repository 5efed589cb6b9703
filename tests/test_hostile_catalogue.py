"""Every case of the hostile-input catalogue (tools/error_catalogue.py) raises the documented error.

Each case builds one broken weight file, config, .bin, image or array in a scratch
folder; the test checks the exception (or warning) type and that the message names the
problem and the file or tensor. docs/errors.md quotes the same messages, written by the
tool; the last test fails when that table is stale.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_catalogue():
    spec = importlib.util.spec_from_file_location("error_catalogue", ROOT / "tools" / "error_catalogue.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


catalogue = load_catalogue()


@pytest.mark.parametrize("case", catalogue.CASES, ids=lambda case: f"{case.section.split()[0]}: {case.name}")
def test_case_raises_a_clear_error(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = catalogue.run(case)
    assert type(error) is case.error, (case.name, type(error), error)
    message = str(error)
    for name in case.names:
        assert name in message, f"{case.name}: {name!r} not in {message!r}"


def test_the_cases_cover_every_section_of_the_issue():
    sections = {case.section for case in catalogue.CASES}
    assert len(sections) == 10
    assert len(catalogue.CASES) == len({(case.section, case.name) for case in catalogue.CASES}), "duplicate names"


def test_docs_table_is_current(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert catalogue.replace_block(text, "error-catalogue", catalogue.table(catalogue.run_all())) == text, (
        "docs/errors.md: the error table is stale; run python tools/error_catalogue.py"
    )
