"""tools/run_notebook.py: runs cells in order, stops at the first error, never edits the notebook."""
import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_notebook", ROOT / "tools" / "run_notebook.py")
run_notebook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebook)


def _notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t")] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_runs_in_order_in_the_notebooks_folder(tmp_path):
    nb_path = _notebook(tmp_path / "ok.ipynb", "import os\nx = 41",
                        "open('marker.txt', 'w').write(str(x + 1))")
    before = nb_path.read_text()
    out = tmp_path / "executed.ipynb"
    assert run_notebook.main([str(nb_path), "--output", str(out)]) == 0
    assert (tmp_path / "marker.txt").read_text() == "42"  # kernel ran in the notebook's folder
    assert nb_path.read_text() == before  # the committed notebook stays stripped
    assert nbformat.read(out, as_version=4).cells[1].cell_type == "code"


def test_stops_at_the_first_error(tmp_path, capsys):
    nb_path = _notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')",
                        "open('never.txt', 'w').write('x')")
    assert run_notebook.main([str(nb_path)]) == 1
    assert "boom" in capsys.readouterr().out
    assert not (tmp_path / "never.txt").exists()


def test_refuses_missing_notebook_and_overwriting_it(tmp_path):
    assert run_notebook.main([str(tmp_path / "nope.ipynb")]) == 2
    nb_path = _notebook(tmp_path / "x.ipynb", "1")
    assert run_notebook.main([str(nb_path), "--output", str(nb_path)]) == 2
