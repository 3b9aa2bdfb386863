"""(Re)write the first cells of every notebook from pyproject.toml.

The repository URL has one home: ``[project.urls] Repository`` in
pyproject.toml. Each notebook starts with a badge cell (Open in Colab, Open
in Kaggle, pointing at that notebook on the ``main`` branch) and a setup
cell (installs colorlib from that repository on Colab/Kaggle). Both contain
the URL literally, because a badge is plain Markdown and the setup cell must
run before colorlib exists; this script keeps them in step with pyproject.
Notebooks that load data or train or load a stage (02-07) get a third
managed cell, the persistence cell (``nb.persist()``: Google Drive in Colab,
attached outputs on Kaggle), so nothing they do is lost with the machine.

    python tools/sync_notebooks.py          # rewrite cells that differ
    python tools/sync_notebooks.py --check  # exit 1 if any notebook is out of step
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no TOML parser in the standard library
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
BRANCH = "main"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
BADGE_TAG = "colorlib-badges"
SETUP_TAG = "colorlib-setup"
PERSIST_TAG = "colorlib-persist"
# Notebooks whose work must outlive the machine: the data (02) and every stage (03-07).
PERSIST_NOTEBOOKS = ("02", "03", "04", "05", "06", "07")


def repo_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project.urls] Repository`` without a trailing slash or ``.git``."""
    text = pyproject.read_text()
    if tomllib is not None:
        url = tomllib.loads(text).get("project", {}).get("urls", {}).get("Repository")
    else:
        match = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.M)
        url = match.group(1) if match else None
    if not url:
        raise SystemExit(f"{pyproject}: no [project.urls] Repository entry")
    url = url.rstrip("/")
    return url[:-4] if url.endswith(".git") else url


def badge_source(url: str, nb_path: str) -> str:
    """Markdown for the two badges of notebook ``nb_path`` (relative to the repo root)."""
    if not url.startswith("https://github.com/"):
        raise ValueError(f"Repository URL must be a https://github.com/ URL, got {url!r}")
    blob = f"{url}/blob/{BRANCH}/{nb_path}"
    colab = blob.replace("https://github.com/", "https://colab.research.google.com/github/", 1)
    kaggle = f"https://kaggle.com/kernels/welcome?src={blob}"
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab})\n"
            f"[![Open in Kaggle](https://kaggle.com/static/images/open-in-kaggle.svg)]({kaggle})\n"
            "\n"
            "**Colab:** choose *Runtime › Change runtime type › T4 GPU* before running. "
            "**Kaggle:** verify your phone number once (GPUs and Internet need it), then in the "
            "editor's *Settings* set *Accelerator* to *GPU T4 x2* and switch *Internet* on (the "
            "setup cell installs colorlib from GitHub). The settings cell's `RUN` chooses a "
            "quick, medium or full run; notebook 03's Settings section is the full run guide "
            "(Drive, sessions, Save Version, quotas, attaching outputs).")


def setup_source(url: str) -> str:
    """The setup cell: install colorlib on Colab/Kaggle, use the local install elsewhere."""
    return (
        "# Setup: on Colab or Kaggle install colorlib from GitHub (lower bounds only, so the\n"
        "# preinstalled torch stays); locally, `pip install -e .` has already done it.\n"
        "import importlib.util, os, subprocess, sys\n"
        "\n"
        'if ("google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ) \\\n'
        '        and importlib.util.find_spec("colorlib") is None:  # not yet on this machine\n'
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           \"colorlib[notebooks] @ git+{url}\"])\n"
        "\n"
        "import colorlib\n"
        'print("colorlib", colorlib.__version__)')


def persist_source() -> str:
    """The persistence cell: right after setup, before anything that reads or writes work."""
    return (
        "# Keep your work beyond this machine. In Colab every notebook runs on a new machine, so this\n"
        "# mounts your Google Drive (allow access when asked) and keeps checkpoints and the prepared\n"
        "# photos in MyDrive/colorlib; on Kaggle, attach the output of the notebook that trained the\n"
        "# previous stage (Add Input > Your Work) and this copies its checkpoints into\n"
        "# /kaggle/working/runs, which is saved as this notebook's output (elsewhere nothing changes).\n"
        "from colorlib.teaching import notebook as nb\n"
        "\n"
        "STORE = nb.persist()")


def needs_persist(nb_path: str) -> bool:
    return Path(nb_path).name[:2] in PERSIST_NOTEBOOKS


def expected_cells(url: str, nb_path: str) -> list:
    badge = nbformat.v4.new_markdown_cell(badge_source(url, nb_path))
    badge.metadata["tags"] = [BADGE_TAG]
    badge["id"] = BADGE_TAG  # fixed ids: re-syncing never churns the diff
    setup = nbformat.v4.new_code_cell(setup_source(url))
    setup.metadata["tags"] = [SETUP_TAG]
    setup["id"] = SETUP_TAG
    cells = [badge, setup]
    if needs_persist(nb_path):
        persist = nbformat.v4.new_code_cell(persist_source())
        persist.metadata["tags"] = [PERSIST_TAG]
        persist["id"] = PERSIST_TAG
        cells.append(persist)
    return cells


def notebooks(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob(NOTEBOOK_GLOB))


def _is_managed(cell, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


def sync_notebook(path: Path, url: str, root: Path = ROOT, write: bool = True) -> bool:
    """Make the first cells of ``path`` the managed ones (badges, setup, persistence); True if changed."""
    nb = nbformat.read(path, as_version=4)
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    managed = expected_cells(url, rel)
    tags = [c.metadata["tags"][0] for c in managed]
    cells = list(nb.cells)
    # Replace the managed cells where they are, or insert them in front.
    rest = [c for c in cells if not any(_is_managed(c, t) for t in (BADGE_TAG, SETUP_TAG,
                                                                       PERSIST_TAG))]
    n = len(managed)
    old = cells[:n]
    new_cells = managed + rest
    changed = (len(old) < n or [c.source for c in old] != [c.source for c in managed]
               or len(rest) != len(cells) - n
               or not all(_is_managed(c, t) for c, t in zip(old, tags)))
    if changed and write:
        nb.cells = new_cells
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report notebooks whose first cells differ (exit 1 if any)")
    args = parser.parse_args(argv)
    url = repo_url()
    stale = [p for p in notebooks() if sync_notebook(p, url, write=not args.check)]
    for p in stale:
        print(f"{p.relative_to(ROOT)}: {'out of step with' if args.check else 'synced from'} "
              "pyproject.toml")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
