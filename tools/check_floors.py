"""Run the unit tests against the lowest versions pyproject.toml allows (or another pin list).

    python tools/check_floors.py                       # every dependency at its floor
    python tools/check_floors.py --pins tools/colab_versions.txt --python python3.12

Creates a virtual environment (``--venv``, default ``/tmp/colorlib-floors``;
kept between runs, so a second run installs nothing new), installs every
dependency of ``[project] dependencies`` pinned to its ``>=`` floor (or to
the versions in ``--pins``), binary wheels only, then colorlib itself
without dependencies and the test tools, and runs the unit tests
(``pytest tests -m "not slow and not cuda"``: the notebooks and end-to-end
runs need the dev tools' own versions and minutes each).

A floor without a wheel for this Python fails the install, naming the
package: that floor must be raised in pyproject.toml. Exit status: pip's if
the install fails, else pytest's.

The first run downloads the floor's PyTorch with its CUDA libraries (about
2.5 GB for torch 2.3) and takes 5-15 minutes; later runs take the test time
only (about 6 minutes on a 2-core CPU). Too slow for every CI run; run it
when pyproject's floors change.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = ["pytest", "pyyaml", "nbformat", "nbval", "ipykernel", "nbstripout"]  # the dev extra


def floors(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """``{package: lowest version}`` from ``[project] dependencies`` (``name>=version``)."""
    text = pyproject.read_text()
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    if block is None:
        raise SystemExit(f"{pyproject}: no [project] dependencies list")
    pins = {}
    for entry in re.findall(r'"([^"]+)"', block.group(1)):
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][^,;\s]*)", entry.strip())
        if match is None:
            raise SystemExit(f"{pyproject}: {entry!r} has no '>=' floor to test")
        pins[match.group(1)] = match.group(2)
    return pins


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines, or a bare ``name`` for its newest release (comments skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name.strip()):
                raise SystemExit(f"{path}: {line!r} is not name==version or a name")
            pins[name.strip()] = version.strip()
    return pins


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/colorlib-floors"))
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument("--pins", type=Path, default=None,
                        help="name==version lines to install instead of the floors")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (default: the unit tests)")
    args = parser.parse_args(argv)
    pins = read_pins(args.pins) if args.pins else floors()
    py = args.venv / "bin" / "python"
    if not py.exists():
        subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    wanted = [f"{name}=={version}" if version else name for name, version in pins.items()]
    print("installing:", " ".join(wanted), flush=True)
    start = time.perf_counter()
    pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(pip + ["--only-binary", ":all:", *wanted, *TEST_TOOLS])
    if done.returncode:
        print("check_floors: a pinned version has no wheel for this Python or conflicts "
              "(see pip's message above)", file=sys.stderr)
        return done.returncode
    done = subprocess.run(pip + ["--no-deps", "-e", str(ROOT)])
    if done.returncode:
        return done.returncode
    freeze = subprocess.run([str(py), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    names = {n.lower().replace("_", "-") for n in pins}
    got = [line for line in freeze.splitlines()
           if line.split("==")[0].lower().replace("_", "-") in names]
    print(f"installed in {time.perf_counter() - start:.0f} s:", ", ".join(got), flush=True)
    tests = args.pytest_args or ["tests", "-m", "not slow and not cuda", "-q",
                                 "-p", "no:cacheprovider"]
    start = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COLORLIB_")}
    code = subprocess.run([str(py), "-m", "pytest", *tests], cwd=ROOT, env=env).returncode
    print(f"pytest exit {code} after {time.perf_counter() - start:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
