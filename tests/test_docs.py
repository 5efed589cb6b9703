"""The docs cannot drift: generated tables are current, links resolve, linked functions exist, quotes match the code."""

import importlib.util
import re
import subprocess
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


def what_is_where() -> dict[Path, list[str]]:
    """README's "What is where" table: {path named in a row's first cell: the row's other `names`}.

    A first cell names one path from the repository root, then siblings by file name: `a/b.py`, `c.py`.
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## What is where", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in [line for line in table.splitlines() if line.startswith("|")][2:]:  # after the header and rule
        first, description = line.strip("|").split("|", 1)
        names = re.findall(r"`([^`]+)`", first)
        folder = (ROOT / names[0]).parent
        for name in names:
            rows[ROOT / name if name == names[0] else folder / name] = re.findall(r"`([^`]+)`", description)
    return rows


def test_readme_what_is_where_matches_the_tree():
    rows = what_is_where()
    for path, mentioned in rows.items():
        assert path.exists(), f"README's What is where names {path.relative_to(ROOT)}, which does not exist"
        for name in mentioned:  # a folder's row may name the files it holds
            if path.is_dir() and name.endswith(".py"):
                assert (path / name).is_file(), f"README's What is where: no {name} in {path.relative_to(ROOT)}"
    sources = [p for p in (ROOT / "mobilevit_np").rglob("*.py") if p.name != "__init__.py"]
    unlisted = [p for p in sources if not any(p == row or row in p.parents for row in rows)]
    assert not unlisted, f"README's What is where misses {[str(p.relative_to(ROOT)) for p in unlisted]}"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0:  # every top-level folder of the repository has a row or rows inside it
        folders = {ROOT / f.split("/")[0] for f in tracked.stdout.splitlines() if "/" in f and f[0] != "."}
        unlisted = [f.name for f in folders if not any(f == row or f in row.parents for row in rows)]
        assert not unlisted, f"README's What is where has no row for {sorted(unlisted)}"


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


def test_every_kernel_names_its_twin_in_the_twin_index():
    """Each @kernel's docstring has a "Twin:" line, and docs/fast_path.md's index lists the kernel."""
    pytest.importorskip("numba")
    import pkgutil

    import mobilevit_np.kernels as kernels
    from mobilevit_np.kernels.runtime.jit import Kernel

    index = (ROOT / "docs" / "fast_path.md").read_text()
    index = index[index.index("## Which kernel stands for which reference function") :]
    found = []
    for info in pkgutil.walk_packages(kernels.__path__, "mobilevit_np.kernels."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if isinstance(obj, Kernel) and obj.py_func.__module__ == module.__name__:
                found.append(name)
                assert re.search(r"^\s*Twin: ", obj.__doc__ or "", re.M), f"{info.name}.{name} names no twin"
                assert f"{info.name.rsplit('.', 1)[1]}.{name}" in index, f"{name} is not in the twin index"
    assert "inverted_residual_rows" in found and "conv2d_tiles" in found
