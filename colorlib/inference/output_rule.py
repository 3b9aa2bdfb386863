"""Where outputs go, and what colorlib may replace: never anything it did not write.

``colorlib colorize`` maps each input photo to an output file. The rules,
checked for every photo before any work starts:

* an output never replaces an input of the run (the output folder may be
  the input folder, or a link may point back at an input): that photo is
  refused by name and the others go on, ``--overwrite`` or not;
* an existing file is replaced only if colorlib wrote it (the ``Software``
  marker in its metadata, :func:`colorlib.photos.image_files.is_colorlib_output`) and
  ``--overwrite`` is given; ``--skip-existing`` keeps it and moves on; a
  file colorlib did not write is never replaced;
* folders keep their structure: ``album/2019/IMG_0001.jpg`` and
  ``album/2020/IMG_0001.jpg`` become ``out/2019/IMG_0001.png`` and
  ``out/2020/IMG_0001.png``, not one file twice;
* the output folder, when it lies inside an input folder, is not scanned
  as input, and files colorlib wrote earlier are left out of every scan,
  so a second run does not colorize the first run's results.

``colorlib demo`` keeps a manifest of the files it wrote
(:class:`Manifest`), and ``demo --overwrite`` removes exactly those.

The same rule holds for every other file colorlib writes
(:func:`check_output`: ``evaluate --json``, ``export --out``, ``train
--overwrite``, the notebooks' figures and uploads): decided before any work,
written atomically (:mod:`colorlib.system.atomic_files`), never over an input of the same
command, nor over a file colorlib did not write, nor without ``--overwrite``
over one it did; and ``--overwrite`` never replaces a training checkpoint
that resumes with a lesser file (a report, an export).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from colorlib.photos.image_files import SkippedImageWarning, is_colorlib_output, scan_folder


@dataclass
class Job:
    """Colorize ``source`` into ``target``; ``replace``: an earlier colorlib output is there."""

    source: Path
    target: Path
    replace: bool = False


@dataclass
class Plan:
    """What a colorize run will do, decided before the first photo is read."""

    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, the photo named first
    notes: list[str] = field(default_factory=list)  # worth saying, not a failure
    skipped: list[Job] = field(default_factory=list)  # --skip-existing: already done
    total: int = 0  # photos named or found (each once)


def plan_colorize(inputs: list[Path], out: Path, fmt: str = "png", overwrite: bool = False,
                  skip_existing: bool = False) -> Plan:
    """Map ``inputs`` (files and folders) to outputs in ``out`` under the rules above."""
    plan = Plan()
    pairs: list[tuple[Path, Path]] = []  # (source, target)
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            scan = scan_folder(item, exclude=(out,))
            for notice in scan.notices():
                _notice(plan, notice)
            if not scan.images and not scan.unsupported:
                plan.problems.append(f"{item}: folder contains no images")
            pairs += [(p, out / p.relative_to(item).with_suffix(f".{fmt}")) for p in scan.images]
        elif item.exists():
            pairs.append((item, out / f"{item.stem}.{fmt}"))
        else:
            plan.problems.append(f"{item}: no such file")
            plan.total += 1
    inputs_resolved = {source.resolve() for source, _ in pairs}
    done: set[Path] = set()
    claimed: dict[Path, Path] = {}
    for source, target in pairs:
        if source.resolve() in done:  # a photo named twice (or found twice) is done once
            continue
        done.add(source.resolve())
        plan.total += 1
        resolved = target.resolve()
        if resolved in inputs_resolved:
            which = "the photo itself" if resolved == source.resolve() else "an input photo"
            plan.problems.append(f"{source}: output {target} would replace {which}; kept it "
                                 "(choose an --out outside the input folders)")
            continue
        if resolved in claimed:  # photo.jpg and photo.png both want photo.png
            plan.problems.append(f"{source}: output {target} is already taken by "
                                 f"{claimed[resolved]} in this run; rename one of them")
            continue
        claimed[resolved] = source
        job = Job(source, target)
        blocked = _file_in_the_way(target, out)
        if blocked is not None:
            plan.problems.append(f"{source}: cannot write {target}: {blocked} is a file, where "
                                 "a folder of that name should be; kept it (choose another "
                                 "--out, or move that file away)")
        elif target.is_dir():
            plan.problems.append(f"{source}: cannot write {target}: a folder of that name is "
                                 "in the way")
        elif target.exists() or target.is_symlink():
            if not is_colorlib_output(target):
                plan.problems.append(f"{source}: output {target} exists and was not written by "
                                     "colorlib; kept it (choose another --out, or move that "
                                     "file away)")
            elif skip_existing:
                plan.skipped.append(job)
            elif overwrite:
                job.replace = True
                plan.jobs.append(job)
            else:
                plan.problems.append(f"{source}: output {target} already exists from an "
                                     "earlier run; kept it (--skip-existing goes on without it)")
        else:
            plan.jobs.append(job)
    return plan


def _file_in_the_way(target: Path, out: Path) -> Path | None:
    """A file (not a folder) at one of the subfolders between ``out`` and ``target``."""
    for parent in reversed(target.parents):
        if parent == out or out in parent.parents:
            if os.path.lexists(parent) and not parent.is_dir():
                return parent
    return None


def _notice(plan: Plan, notice: SkippedImageWarning) -> None:
    n = len(notice.paths)
    what = f"{notice.paths[0]}" if n == 1 else f"{n} files (e.g. {notice.paths[0]})"
    if notice.failed:
        plan.problems.append(f"{what}: {notice.reason}")
        plan.total += n
    else:
        plan.notes.append(f"left out {what}: {notice.reason}")


# --------------------------------------------------------------- one output file
class OutputRefused(FileExistsError):
    """An output would replace what it must not; the message is the one line to show."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


def check_output(path: str | os.PathLike, flag: str, *, overwrite: bool,
                 is_ours: Callable[[Path], bool], what: str,
                 inputs: Iterable[tuple[str, Iterable[os.PathLike]]] = ()) -> bool:
    """Apply the output rule to one file a command is about to write; True: it replaces an
    earlier output of colorlib's (allowed by ``overwrite``).

    ``is_ours(path)`` says whether an existing file is an earlier output of
    this kind (a report with colorlib's marker, an export); ``what`` names the
    kind (``"a report"``); ``inputs``: ``(role, paths)`` the command reads,
    e.g. ``("the --checkpoint", [ckpt])``. Raises :class:`OutputRefused` in
    one line naming ``flag`` and the file otherwise.
    """
    path = Path(path)
    for role, items in inputs:
        if any(_same(path, Path(item)) for item in items):
            raise OutputRefused(f"{flag}: {path} is an input of this command ({role}); kept it "
                                "(choose another file)")
    if not os.path.lexists(path):
        return False
    if path.is_dir():
        raise OutputRefused(f"{flag}: {path} is a folder; give a file name inside it")
    if is_ours(path):
        if overwrite:
            return True
        raise OutputRefused(f"{flag}: {path} already exists from an earlier colorlib run; kept "
                            "it (--overwrite replaces it)")
    if _is_resumable_checkpoint(path):
        raise OutputRefused(f"{flag}: {path} is a training checkpoint that resumes (another "
                            f"run's work); {what} never replaces one, even with --overwrite; "
                            "kept it (choose another file)")
    raise OutputRefused(f"{flag}: {path} exists and is not {what} colorlib wrote; kept it "
                        "(choose another file, or move that file away)")


def _is_resumable_checkpoint(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"PK":  # every checkpoint since torch 1.6 is a zip file
                return False
    except OSError:
        return False
    from colorlib.training.checkpoint import checkpoint_kind

    return checkpoint_kind(path)[0] == "training"


def is_colorlib_report(path: str | os.PathLike, command: str) -> bool:
    """True if ``path`` is a JSON report ``colorlib <command>`` wrote (its ``written_by``)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(64 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("written_by") == f"colorlib {command}"


# --------------------------------------------------------------- manifests
class Manifest:
    """The files a command wrote into a folder, so a later run can remove exactly those.

    Kept as ``<folder>/.colorlib-manifest.json``: each file's path (relative
    to the folder), size and modification time. :meth:`remove_files` deletes
    a listed file only if it is still the one written (same size and time):
    a file the user has since edited or replaced is kept and named.
    """

    NAME = ".colorlib-manifest.json"

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder, self.command = Path(folder), command
        self.path = self.folder / self.NAME
        self.files: dict[str, list[int]] = {}

    @classmethod
    def read(cls, folder: str | os.PathLike, command: str) -> "Manifest | None":
        """The manifest in ``folder`` written by ``command``, or None if there is none."""
        m = cls(folder, command)
        try:
            data = json.loads(m.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("command") != command:
            return None
        files = data.get("files", {})
        m.files = {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 2}
        return m

    def record(self, path: str | os.PathLike) -> Path:
        """Note ``path`` (inside the folder) as written by this command; save the manifest."""
        path = Path(path)
        st = path.stat()
        self.files[path.relative_to(self.folder).as_posix()] = [st.st_size, st.st_mtime_ns]
        self.save()
        return path

    def save(self) -> None:
        from colorlib.system.atomic_files import atomic_write

        text = json.dumps({"command": self.command, "files": self.files}, indent=1)
        atomic_write(self.path, lambda f: f.write(text.encode()))

    def unchanged(self, rel: str) -> bool:
        path = self.folder / rel
        try:
            st = path.stat()
        except OSError:
            return False
        return path.is_file() and [st.st_size, st.st_mtime_ns] == self.files.get(rel)

    def remove_files(self) -> list[Path]:
        """Delete the listed files that are unchanged, then empty folders they leave; return
        the listed files that were kept because they changed since (the user's now)."""
        kept = []
        for rel in sorted(self.files):
            path = self.folder / rel
            if self.unchanged(rel):
                path.unlink()
                _remove_empty_parents(path.parent, self.folder)
            elif path.exists():
                kept.append(path)
        self.files = {}
        self.path.unlink(missing_ok=True)
        return kept


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent
