"""Packaging promises: pyproject and environment.yml agree; README and CI agree."""
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # conda-forge spells a few packages differently


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _split(req: str) -> tuple[str, str]:
    name, _, bound = re.match(r"([A-Za-z0-9_.-]+)\s*(>=\s*([\w.]+))?", req).groups()
    return name.lower(), bound or ""


def test_environment_yml_lists_exactly_the_pyproject_requirements():
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    wanted = dict(_split(r) for r in project["dependencies"] + extras["notebooks"] + extras["dev"])
    wanted = {CONDA_NAMES.get(k, k): v for k, v in wanted.items()}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = dict(_split(d) for d in env["dependencies"] if isinstance(d, str)
                 and not d.startswith(("python", "pip")))
    assert conda == wanted
    pip_part = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_part == ["-e ."]


def test_dependencies_have_lower_bounds_only():
    # Colab/Kaggle preinstall torch; an upper bound or a pin could make pip replace it.
    for req in _pyproject()["project"]["dependencies"]:
        assert ">=" in req and "<" not in req and "==" not in req, req


def test_the_package_itself_does_not_need_the_notebooks_extra():
    """ipywidgets is for notebook cells; the dev extra (tests run the notebooks) has it too."""
    extras = _pyproject()["project"]["optional-dependencies"]
    names = lambda reqs: {_split(r)[0] for r in reqs}  # noqa: E731
    assert "ipywidgets" not in names(_pyproject()["project"]["dependencies"])
    assert names(extras["notebooks"]) <= names(extras["dev"])
    package = "\n".join(p.read_text() for p in (ROOT / "colorlib").glob("*.py"))
    assert not re.search(r"^\s*(import|from) ipywidgets", package, re.M)


def test_console_script_points_at_cli_main():
    assert _pyproject()["project"]["scripts"]["colorlib"] == "colorlib.cli:main"


def _quickstart_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    return [line.strip() for b in blocks for line in b.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _quickstart_commands()
    assert commands == ["make demo", "make test"]
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert commands[1] in ci
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:.*\n\t.*colorlib demo", makefile, re.M)
    assert re.search(r"^test:.*\n\t.*pytest", makefile, re.M)


def test_committed_notebooks_pass_nbstripout_verify():
    import subprocess
    import sys

    notebooks = sorted(str(p) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(notebooks) == 7
    proc = subprocess.run([sys.executable, "-m", "nbstripout", "--keep-id", "--verify", *notebooks],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_badges_agree_with_the_repository_url():
    url = _pyproject()["project"]["urls"]["Repository"].rstrip("/")
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    for name in notebooks:
        blob = f"{url}/blob/main/notebooks/{name}"
        assert blob.replace("https://github.com/", "https://colab.research.google.com/github/") in readme
        assert f"https://kaggle.com/kernels/welcome?src={blob}" in readme
    assert len(re.findall(r"colab-badge\.svg", readme)) == len(notebooks)
