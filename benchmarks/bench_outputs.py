"""The output rule of issue 20 for the benchmark scripts, with colorlib's own helpers.

Every file a benchmark script writes (results JSON, plots, markdown, run folders and what
goes in them) follows the rule colorlib's commands follow (:mod:`colorlib.inference.output_rule`,
:mod:`colorlib.system.atomic_files`); this module only applies those helpers, one flag at a time:

* decided before any work (:func:`output_file`, :func:`output_folder`): a folder where a
  file goes, a file where a folder goes, a symbolic link to nowhere or a folder that cannot
  be written is refused in one line naming the flag;
* never over an input of the same command, never over a file colorlib did not write
  (:func:`colorlib.inference.output_rule.check_output`); a results file the script wrote itself is
  replaced without a flag: regenerating it is its purpose (the committed results, plots
  and ``RESULTS.md``);
* written atomically (:func:`write_text`, :func:`append_line`, :func:`save_plot`: a
  temporary file beside it, renamed into place), so a full disk keeps the earlier file
  and the error names the file.

A results file is recognised as the script's own by what the script records in it: the
command that wrote it (``command``, ``meta.command`` or ``what`` naming
``benchmarks/<script>``, :func:`written_by`), or for files inside a run folder their layout
(:func:`json_shaped`, :func:`text_starting`); plots by colorlib's figure marker
(:func:`colorlib.teaching.figures.is_colorlib_figure`). A subprocess's log is streamed, not written
atomically, so that a crash keeps what it said.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator

from colorlib.cli import (CLIError, _count, _ensure_writable_dir, _ensure_writable_file,
                          _finite_positive, _positive_int, _seed, _size)
from colorlib.inference.output_rule import OutputRefused, check_output
from colorlib.system.atomic_files import atomic_write

HERE = Path(__file__).resolve().parent

__all__ = ["CLIError", "OutputRefused", "append_line", "choices", "count", "input_file",
           "input_folder", "json_shaped", "one_line_errors", "output_file", "output_folder",
           "plot_output", "positive_int", "positive_number", "save_plot", "seed", "size",
           "text_starting", "write_text", "written_by"]

# argparse types: colorlib's own, so a bad value is named with its flag in the same words
positive_int, count, seed, size = _positive_int, _count, _seed, _size


positive_number = _finite_positive()  # minutes, seconds


def choices(allowed: Iterable[str]) -> Callable[[str], str]:
    """A comma-separated subset of ``allowed`` (``--only data,gan``), for argparse."""
    allowed = tuple(allowed)

    def parse(text: str) -> str:
        unknown = [part for part in text.split(",") if part and part not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}; "
                                             f"choose from {', '.join(allowed)}")
        return text

    return parse


# ------------------------------------------------------------------ deciding
def output_file(path: str | os.PathLike, flag: str, *, is_ours: Callable[[Path], bool],
                what: str, inputs: Iterable[tuple[str, Iterable[os.PathLike]]] = ()) -> Path:
    """Decide one output file before any work; return it.

    Its folder is created and proven writable, and the file must not be a folder, a
    symbolic link to nowhere, an input of the command (``inputs``: ``(role, paths)``) or
    a file colorlib did not write; an earlier file for which ``is_ours`` is true (this
    script's own results) may be replaced. Raises :class:`CLIError` or
    :class:`OutputRefused`, one line naming ``flag``.
    """
    path = Path(path)
    _ensure_writable_file(path, flag)
    check_output(path, flag, overwrite=True, is_ours=is_ours, what=what, inputs=inputs)
    return path


def plot_output(path: str | os.PathLike, flag: str,
                inputs: Iterable[tuple[str, Iterable[os.PathLike]]] = ()) -> Path:
    """:func:`output_file` for a plot: an earlier plot colorlib drew may be replaced; in
    ``benchmarks/`` (a folder only colorlib writes) also one matplotlib made before
    colorlib marked its figures."""
    from colorlib.teaching.figures import is_colorlib_figure

    legacy = _legacy_ok(Path(path))
    return output_file(path, flag, is_ours=lambda p: is_colorlib_figure(p, legacy),
                       what="a plot", inputs=inputs)


def _legacy_ok(path: Path) -> bool:
    try:
        return path.resolve().parent == HERE
    except OSError:
        return False


def output_folder(path: str | os.PathLike, flag: str) -> Path:
    """A run folder: created now and proven writable (not a file, not a link to nowhere)."""
    path = Path(path)
    _ensure_writable_dir(path, flag)
    return path


def input_folder(path: str | os.PathLike, flag: str) -> Path:
    """A folder the command reads: it must be there."""
    return _existing(Path(path), flag, Path.is_dir, "folder")


def input_file(path: str | os.PathLike, flag: str) -> Path:
    """A file the command reads: it must be there."""
    return _existing(Path(path), flag, Path.is_file, "file")


def _existing(path: Path, flag: str, is_kind: Callable[[Path], bool], noun: str) -> Path:
    if not is_kind(path):
        raise CLIError(f"{flag}: {path}: no such {noun}" if not os.path.lexists(path)
                       else f"{flag}: {path} is not a {noun}")
    return path


def different(paths: dict[str, Path | None]) -> None:
    """Two outputs of one command never share a file (``{flag: path}``; None: not written)."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None:
            continue
        key = Path(os.path.abspath(path))
        with contextlib.suppress(OSError):
            key = Path(path).resolve()
        if key in seen:
            raise OutputRefused(f"{flag}: {path} is also the {seen[key]} file; give each "
                                "output its own file")
        seen[key] = flag


# ------------------------------------------------------------------ whose file
def _read_json(path: Path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(64 << 20))
    except (OSError, ValueError):
        return None


def written_by(script: str) -> Callable[[Path], bool]:
    """``is_ours`` for a JSON results file of ``benchmarks/<script>``: the command it records
    (``command``, ``meta.command``, or ``what`` for a published summary) names the script."""
    pattern = re.compile(rf"(?<![\w.-])benchmarks/{re.escape(script)}(?![\w.])")

    def is_ours(path: Path) -> bool:
        data = _read_json(path)
        if not isinstance(data, dict):
            return False
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        said = (data.get("command"), data.get("what"), meta.get("command"))
        return any(isinstance(s, str) and pattern.search(s) for s in said)

    return is_ours


def json_shaped(keys: Iterable[str], test: Callable[[dict], bool] = lambda d: True
                ) -> Callable[[Path], bool]:
    """``is_ours`` for a JSON file of a run folder: a dict with ``keys`` (and ``test``)."""
    keys = tuple(keys)

    def is_ours(path: Path) -> bool:
        data = _read_json(path)
        return isinstance(data, dict) and all(k in data for k in keys) and bool(test(data))

    return is_ours


def text_starting(prefix: str, contains: str = "") -> Callable[[Path], bool]:
    """``is_ours`` for a text file the script wrote: it starts with ``prefix`` (and holds
    ``contains``)."""
    def is_ours(path: Path) -> bool:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return False
        return text.startswith(prefix) and contains in text

    return is_ours


# ------------------------------------------------------------------ writing
def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically; an earlier file stays as it was if this fails."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def append_line(path: str | os.PathLike, line: str) -> Path:
    """Add ``line`` to a log such as ``steps.jsonl``, by writing the whole file anew
    atomically: a full disk leaves the log as it was, never a half line."""
    path = Path(path)
    try:
        old = path.read_bytes()
    except FileNotFoundError:
        old = b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    data = old + line.rstrip("\n").encode("utf-8") + b"\n"
    return atomic_write(path, lambda f: f.write(data))


def save_plot(fig, path: str | os.PathLike, dpi: int) -> Path:
    """Save ``fig`` atomically with colorlib's figure marker (and close it)."""
    from colorlib.teaching.figures import save_figure

    path = Path(path)
    return save_figure(fig, path, dpi=dpi, legacy_ok=_legacy_ok(path))


# ------------------------------------------------------------------ failing
@contextlib.contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """A refusal or a failed write ends the script in one line, ``<prog>: error: ...``,
    exit status 2."""
    try:
        yield
    except (CLIError, OSError) as err:  # OutputRefused and WriteFailed are OSErrors
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{prog}: error: {text}", file=sys.stderr)
        raise SystemExit(2) from None
