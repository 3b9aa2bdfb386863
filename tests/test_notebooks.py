"""The committed notebooks: stripped, badged, set up, in step with pyproject, and run by pytest.

Executing them is nbval's job (see notebooks/conftest.py); these tests check
what nbval cannot: the files as committed.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _load_sync():
    spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "tools" / "sync_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sync = _load_sync()
URL = sync.repo_url()


def test_the_series_is_there():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("01_lab_colour.ipynb", "02_data.ipynb", "03_pix2pix_baseline.ipynb"):
        assert expected in names


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request):
    path = request.param
    return path, nbformat.read(path, as_version=4)


def test_valid_and_stripped(notebook):
    path, nb = notebook
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i}: has outputs (strip them)"
            assert cell.execution_count is None, f"{path.name} cell {i}: has an execution count"


def test_starts_with_badges_and_setup_from_pyproject(notebook):
    path, nb = notebook
    badge, setup = nb.cells[0], nb.cells[1]
    rel = path.relative_to(ROOT).as_posix()
    assert badge.cell_type == "markdown" and setup.cell_type == "code"
    assert "colab.research.google.com/github/" + URL.removeprefix("https://github.com/") \
        + f"/blob/main/{rel}" in badge.source
    assert f"kaggle.com/kernels/welcome?src={URL}/blob/main/{rel}" in badge.source
    assert f"colorlib[notebooks] @ git+{URL}" in setup.source  # ipywidgets too
    assert "google.colab" in setup.source and "KAGGLE_KERNEL_RUN_TYPE" in setup.source
    assert not sync.sync_notebook(path, URL, write=False), \
        f"{path.name}: first cells out of step; run python tools/sync_notebooks.py"


def test_setup_cell_is_identical_everywhere():
    setups = {nbformat.read(p, as_version=4).cells[1].source for p in NOTEBOOKS}
    assert setups == {sync.setup_source(URL)}


def test_one_settings_cell_and_no_models_defined_in_notebooks(notebook):
    path, nb = notebook
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sum("nb.settings(" in src for src in code) == 1, f"{path.name}: needs one settings cell"
    for src in code:
        tree = ast.parse("\n".join(line for line in src.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                pytest.fail(f"{path.name}: defines class {node.name}; models, losses and "
                            "loops belong in colorlib")
            if isinstance(node, ast.FunctionDef) and node.name in ("forward", "training_step"):
                pytest.fail(f"{path.name}: defines {node.name}(); it belongs in colorlib")


def test_sync_rewrites_stale_first_cells(tmp_path):
    (tmp_path / "notebooks").mkdir()
    path = tmp_path / "notebooks" / "09_demo.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title")]
    nbformat.write(nb, path)
    assert sync.sync_notebook(path, URL, root=tmp_path)
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source for c in cells[:2]] == [sync.badge_source(URL, "notebooks/09_demo.ipynb"),
                                            sync.setup_source(URL)]
    assert cells[2].source == "# Title"
    assert not sync.sync_notebook(path, URL, root=tmp_path)  # idempotent
    assert sync.sync_notebook(path, "https://github.com/someone/else", root=tmp_path, write=False)


def test_repo_url_read_from_pyproject(tmp_path):
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[project]\nname = "x"\n[project.urls]\nRepository = "https://github.com/a/b.git"\n')
    assert sync.repo_url(toml) == "https://github.com/a/b"
    toml.write_text('[project]\nname = "x"\n')
    with pytest.raises(SystemExit, match="Repository"):
        sync.repo_url(toml)
    with pytest.raises(ValueError, match="github"):
        sync.badge_source("https://gitlab.com/a/b", "notebooks/01.ipynb")


@pytest.mark.slow
def test_plain_pytest_collects_notebooks_with_nbval():
    """notebooks/conftest.py turns nbval on: plain ``pytest`` runs every notebook cell."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                          "-p", "no:cacheprovider", str(NOTEBOOKS[0])],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{NOTEBOOKS[0].name}::Cell 0" in out.stdout
