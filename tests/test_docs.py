"""The docs cannot drift: generated tables are current, links resolve, linked functions exist, quotes match the code."""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")  # [text](target)
QUOTE = re.compile(r"<!-- quote: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def load_make_figures():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "tools" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_docs():
    names = {p.name for p in DOCS}
    assert {"architecture.md", "weights.md", "preprocessing.md", "unfold_fold.md"} <= names


def test_generated_tables_are_current():
    make_figures = load_make_figures()
    for name, (file, table) in make_figures.generated_tables().items():
        text = (ROOT / "docs" / file).read_text(encoding="utf-8")
        assert make_figures.replace_block(text, name, table) == text, (
            f"docs/{file}: table {name} is stale; run python tools/make_figures.py --tables-only"
        )


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve_and_linked_functions_exist(doc):
    text = doc.read_text(encoding="utf-8")
    for label, target in LINK.findall(text):
        if target.startswith(("http://", "https://", "#")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (doc.parent / path).resolve()
        assert resolved.exists(), f"{doc.name}: link to {target} does not resolve"
        function = re.fullmatch(r"`(\w+)`", label)
        if function and resolved.suffix == ".py":
            source = resolved.read_text(encoding="utf-8")
            name = function.group(1)
            defined = re.search(rf"^\s*(def|class) {name}\b|^{name}\s*[:=]", source, re.MULTILINE)
            assert defined, f"{doc.name}: [`{name}`]({target}) but {path} defines no {name}"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{doc.name}: no heading #{anchor} in {path}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_figures_exist(doc):
    for figure in re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", doc.read_text(encoding="utf-8")):
        assert (doc.parent / figure).is_file(), f"{doc.name}: missing {figure}; run python tools/make_figures.py"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_quoted_code_is_in_the_source(doc):
    """A ```python block after <!-- quote: path --> must be lines of that file, verbatim."""
    for path, block in QUOTE.findall(doc.read_text(encoding="utf-8")):
        source_lines = {line.strip() for line in (ROOT / path).read_text(encoding="utf-8").splitlines()}
        for line in block.strip().splitlines():
            assert line.strip() in source_lines, f"{doc.name}: quoted line not in {path}: {line.strip()}"
