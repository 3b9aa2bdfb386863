"""Support for the notebook series: settings, figures, checkpoints, source display.

Every notebook runs in three settings from the same cells, chosen by the
``RUN`` line of its settings cell (:mod:`colorlib.teaching.run_choice`):

* the **full run** (``RUN = "full"``): the tutorial's data and schedule,
  meant for a GPU on Colab or Kaggle; its figures go to ``figures/`` in the
  repository, or to the store (below) where there is one;
* the **medium run** (``RUN = "medium"``): the same photos and epochs at
  half the size, a quarter of the work; its checkpoints and figures have
  folders of their own (``checkpoints-medium``, ``figures-medium``);
* the **quick** or **tiny run** (``RUN = "quick"`` or ``COLORLIB_TINY=1``):
  the embedded tiny set at 64 px and a handful of optimisation steps, so a
  notebook executes in about a minute on a laptop CPU. The tests run every
  notebook this way; its figures and checkpoints go to a temporary folder,
  so a test never overwrites real work.

Environment variables override single settings in either mode, which is how
the committed figures can be regenerated on other data or a CPU:
``COLORLIB_DATA`` (``coco``, ``tiny`` or a folder), ``COLORLIB_SIZE``,
``COLORLIB_EPOCHS``, ``COLORLIB_MAX_STEPS``, ``COLORLIB_BATCH_SIZE``,
``COLORLIB_DEVICE``, ``COLORLIB_CHECKPOINTS`` (e.g. a Google Drive folder,
so checkpoints survive a lost Colab session) and ``COLORLIB_FIGURES``.

Work that must outlive the machine goes to the **store** (``COLORLIB_STORE``),
which :func:`persist` sets up in the cell after the setup cell: in Colab a
folder on the user's Google Drive, on Kaggle the notebook's output folder
(after copying in the checkpoints of notebooks attached as inputs). The
store holds ``checkpoints/`` (``checkpoints-medium/`` for a medium run,
``checkpoints-tiny-<size>px/`` in the tiny setting), ``figures/`` (``figures-medium/``) of
real runs, ``data/`` (the prepared COCO sample, see
:func:`colorlib.data.sources.coco_sample_paths`) and the photos of notebook 06.
"""
from __future__ import annotations

import functools
import inspect
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from colorlib.data.sources import DATA_CACHE_ENV, DataConfig
from colorlib.models.stages import STAGES, get_stage
from colorlib.system.environment_variables import (DRIVE_MOUNT_ENV, KAGGLE_INPUT_ENV, STORE_ENV,
                                                   TINY_ENV, flag)
from colorlib.training.config import RunConfig, TrainConfig

TINY_SIZE = 64
TINY_STEPS = 8  # optimisation steps per stage in the tiny setting
TINY_BATCH = 8
TINY_FILTERS = 32  # pix2pix U-Net width in the tiny setting (64 in the paper)

# Stage -> the notebook that trains it (for "run this first" messages).
STAGE_NOTEBOOK = {name: stage.notebook for name, stage in STAGES.items()}


def _truthy(text: str | None, name: str = TINY_ENV) -> bool:
    """A yes/no setting; anything but 1/0, true/false, yes/no, on/off is an error naming it."""
    return flag(name, {name: text or ""})


def repo_root() -> Path | None:
    """The repository checkout colorlib runs from, or None for a plain install (Colab)."""
    root = Path(__file__).resolve().parents[2]  # <root>/colorlib/teaching/notebook.py
    if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir():
        return root
    return None


def _work_root() -> Path:
    return repo_root() or Path.cwd()


def _anchored(text: str) -> Path:
    """A path from an environment variable; relative ones start at the repository root.

    Notebook kernels run in ``notebooks/``, the shell that set the variable
    usually in the root: anchoring makes both mean the same folder.
    """
    path = Path(text).expanduser()
    return path if path.is_absolute() else _work_root() / path


def _tiny_root() -> Path:
    return Path(tempfile.gettempdir()) / "colorlib-tiny"


@dataclass
class Settings:
    """What one notebook run uses. Build it with :func:`settings`, not by hand.

    ``data`` is ``"coco"`` (fastai's COCO sample, downloaded), ``"tiny"``
    (embedded, offline) or a folder of photos. ``max_steps`` caps the total
    number of optimisation steps (None: run all epochs). The defaults are
    the full run's: ``size``, ``epochs``, ``batch_size``, ``max_steps``,
    ``num_filters``, ``weights`` and ``seed`` are the run config's own, read from
    the dataclasses :meth:`run_config` fills in, so the notebooks and
    ``colorlib train`` cannot drift apart.
    """

    # The full run is the tutorial's: the COCO sample, loaded by two worker processes (a
    # Colab machine has two cores). DataConfig and `colorlib train` start on the embedded
    # tiny set in the main process instead, so `data` and `num_workers` are the notebooks' own.
    data: str = "coco"
    size: int = DataConfig.size
    epochs: int = TrainConfig.epochs
    batch_size: int = DataConfig.batch_size
    device: str = "cpu"
    max_steps: int | None = TrainConfig.max_steps
    tiny: bool = False
    run: str = "full"  # the RUN switch: "quick" (= tiny), "medium" or "full"
    num_filters: int = RunConfig.num_filters
    weights: str = RunConfig.weights
    num_workers: int = 2
    seed: int = TrainConfig.seed
    checkpoints: Path = field(default_factory=lambda: _work_root() / "runs" / "checkpoints")
    figures: Path = field(default_factory=lambda: _work_root() / "figures")
    store: Path | None = None  # the folder that outlives this machine (see persist())
    data_cache: tuple[Path, ...] = ()  # where the prepared COCO sample is kept / looked for

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, run: str | None = None,
                 tiny_size: int = TINY_SIZE, tiny_steps: int = TINY_STEPS,
                 **full_defaults) -> "Settings":
        """Full-run defaults (keyword arguments), changed by ``run``, then env.

        ``run`` is the settings cell's ``RUN`` ("quick", "medium" or "full";
        ``COLORLIB_RUN`` overrides it and ``COLORLIB_TINY=1`` makes it quick).
        ``tiny_size``/``tiny_steps`` let a notebook that needs less (e.g. 32 px)
        say so; explicit ``COLORLIB_*`` variables win over all defaults.
        """
        from colorlib.system.device import resolve_device
        from colorlib.teaching.run_choice import MEDIUM_SCALE, choose

        env = os.environ if env is None else env
        unknown = set(full_defaults) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise TypeError(f"settings(): unknown setting(s) {sorted(unknown)}")
        run = choose(run, env)
        s = replace(cls(**full_defaults), run=run)
        if run == "quick":
            s = replace(s, tiny=True, data="tiny", size=tiny_size, max_steps=tiny_steps,
                        epochs=max(s.epochs, 1000), batch_size=TINY_BATCH,
                        num_filters=TINY_FILTERS, num_workers=0,
                        figures=_tiny_root() / "figures")
        elif run == "medium":
            s = replace(s, size=s.size // MEDIUM_SCALE,
                        checkpoints=s.checkpoints.with_name("checkpoints-medium"),
                        figures=_work_root() / "runs" / "figures-medium")
        s = _apply_env(s, env)
        own = {var: bool(env.get(var, "").strip()) for var in ("COLORLIB_CHECKPOINTS",
                                                               "COLORLIB_FIGURES")}
        if s.store is not None and not own["COLORLIB_CHECKPOINTS"]:
            s.checkpoints = store_checkpoints(s.store, s.size if s.tiny else None, s.run)
        elif s.tiny and not own["COLORLIB_CHECKPOINTS"]:
            # One folder per size: a 32 px tiny run must not resume a 64 px one.
            s.checkpoints = _tiny_root() / f"checkpoints-{s.size}px"
        if s.store is not None and not s.tiny and not own["COLORLIB_FIGURES"]:
            # Figures of a real run outlive the machine too (Drive in Colab, Kaggle's output).
            s.figures = s.store / ("figures-medium" if s.run == "medium" else "figures")
        cache = [p for p in env.get(DATA_CACHE_ENV, "").split(os.pathsep) if p.strip()]
        if cache:
            s.data_cache = tuple(_anchored(p.strip()) for p in cache)
        elif s.store is not None:
            s.data_cache = (s.store / "data",)
        s.device = str(resolve_device(env.get("COLORLIB_DEVICE") or None))
        return s

    def data_config(self, **overrides) -> DataConfig:
        """The :class:`colorlib.data.sources.DataConfig` these settings describe."""
        return DataConfig(**{"source": self.data, "size": self.size,
                             "batch_size": self.batch_size, "num_workers": self.num_workers,
                             "cache": tuple(str(p) for p in self.data_cache), **overrides})

    def run_config(self, stage: str, **changes) -> RunConfig:
        """The :class:`colorlib.training.config.RunConfig` training ``stage`` with these settings.

        ``changes`` set its other fields: ``init``, ``resume``, ``weights``, ...
        """
        train = TrainConfig(stage=stage, epochs=self.epochs, max_steps=self.max_steps,
                            seed=self.seed)
        return RunConfig(train, self.data_config(), checkpoint_dir=self.checkpoints,
                         device=self.device, num_filters=self.num_filters, **changes)

    def describe(self) -> str:
        mode = "quick run = the tiny run (COLORLIB_TINY=1)" if self.tiny else f"{self.run} run"
        steps = f", at most {self.max_steps} steps" if self.max_steps is not None else ""
        text = (f"{mode}: data={self.data}, {self.size} px, batch {self.batch_size}, "
                f"{self.epochs} epochs{steps}, device {self.device}\n"
                f"checkpoints -> {self.checkpoints}\nfigures     -> {self.figures}")
        if self.data == "coco" and self.data_cache:
            text += f"\ndata cache  -> {self.data_cache[0]}"
        return text


_ENV_FIELDS = {"COLORLIB_DATA": ("data", str), "COLORLIB_SIZE": ("size", int),
               "COLORLIB_EPOCHS": ("epochs", int), "COLORLIB_MAX_STEPS": ("max_steps", int),
               "COLORLIB_BATCH_SIZE": ("batch_size", int),
               "COLORLIB_CHECKPOINTS": ("checkpoints", Path),
               "COLORLIB_FIGURES": ("figures", Path),
               STORE_ENV: ("store", Path)}


def _env_int(var: str, text: str) -> int:
    """A whole-number variable (>= 1; a size also a power of two), or ValueError naming it."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{var}: expected a whole number, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{var}: expected a number >= 1, got {value}")
    if var == "COLORLIB_SIZE":
        from colorlib.models.networks import check_size

        try:
            check_size(value)
        except ValueError as err:
            raise ValueError(f"{var}: {err}") from None
    return value


def _apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    changes = {}
    for var, (name, kind) in _ENV_FIELDS.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        if kind is int:
            changes[name] = _env_int(var, text)
        elif kind is Path:
            changes[name] = _anchored(text)
        else:
            changes[name] = text
    if "data" in changes and changes["data"] not in ("coco", "tiny"):
        folder = _anchored(changes["data"])
        if not folder.is_dir():
            raise FileNotFoundError(f"COLORLIB_DATA: {folder} is not a folder")
        changes["data"] = str(folder)
    if "max_steps" in changes and "epochs" not in changes:
        changes["epochs"] = max(s.epochs, 1000)  # the step budget decides when to stop
    return replace(s, **changes)


def settings(env: Mapping[str, str] | None = None, *, run: str | None = None,
             stage: str | None = None, tiny_size: int = TINY_SIZE, tiny_steps: int = TINY_STEPS,
             show: bool = True, **full_defaults) -> Settings:
    """The notebook's settings: ``settings(run=RUN, stage="baseline", epochs=100)``.

    ``run`` is the settings cell's ``RUN`` switch (:mod:`colorlib.teaching.run_choice`);
    the keyword arguments are the full run's defaults. Prints what was chosen,
    so a reader of the output knows which run it was, and, with ``stage`` (the
    stage this notebook trains), what each of the three runs would cost, with a
    warning when a medium or full run is about to train on a CPU.
    """
    from colorlib.system.device import DevicePolicy

    s = Settings.from_env(env, run=run, tiny_size=tiny_size, tiny_steps=tiny_steps,
                          **full_defaults)
    DevicePolicy.for_training(s.device).prepare_process()  # e.g. malloc settings on a CPU
    if show:
        print(s.describe())
        print(_run_table(env, run, stage, s, tiny_size=tiny_size, tiny_steps=tiny_steps,
                         **full_defaults))
    return s


def _run_table(env, run, stage, s: Settings, **defaults) -> str:
    """The three runs side by side (and the CPU warning), or a line saying why not."""
    from colorlib.teaching import run_choice

    env = dict(os.environ if env is None else env)
    for var in (TINY_ENV, run_choice.RUN_ENV):  # each row shows its own choice
        env.pop(var, None)
    try:
        choices = {name: Settings.from_env(env, run=name, **defaults) for name in run_choice.RUNS}
        text, times = run_choice.table(choices, s.run, stage)
    except Exception as err:  # noqa: BLE001 - an estimate must never stop the notebook
        return f"(the three runs could not be compared here: {type(err).__name__}: {err})"
    warning = run_choice.cpu_warning(s, stage, times)
    return text + (f"\n{warning}" if warning else "")


# ---------------------------------------------------------------- display
def show_source(obj, title: bool = True) -> None:
    """Display the highlighted source of a colorlib function or class.

    The notebooks teach the code that runs, not a copy of it: this shows the
    package's own definition, with the file and line it comes from.
    """
    from IPython.display import Code, Markdown, display

    obj = inspect.unwrap(obj)  # a decorated function (torch.no_grad) is named by its own file
    try:
        lines, start = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj))
    except (TypeError, OSError) as err:
        raise TypeError(f"show_source: no source available for {obj!r} ({err})") from None
    if title:
        package = Path(__file__).resolve().parents[1]  # colorlib/
        inside = path.resolve().is_relative_to(package)
        where = f"colorlib/{path.resolve().relative_to(package).as_posix()}" if inside else path.name
        name = getattr(obj, "__qualname__", getattr(obj, "__name__", "source"))
        display(Markdown(f"`{name}` from `{where}`, line {start}:"))
    display(Code("".join(lines), language="python"))


# ----------------------------------------------------------------- figures
def figure_dir(s: Settings) -> Path:
    """Where this run's figures go (created): ``figures/`` on a full run, a temp folder if tiny."""
    s.figures.mkdir(parents=True, exist_ok=True)
    return s.figures


class SavedFigure(type(Path())):
    """The path :func:`save` wrote; shows as ``saved <path>`` as a cell's last value."""

    def _repr_pretty_(self, p, cycle) -> None:
        root = repo_root()
        try:
            shown = self.relative_to(root) if root else self
        except ValueError:
            shown = self
        p.text(f"saved {shown}")


def save(fig, name: str, s: Settings, dpi: int = 110) -> Path:
    """Show ``fig`` in the notebook, then save it as ``<figure_dir>/<name>.png`` and close it.

    Returns the path written (a :class:`pathlib.Path`). A file of that name
    that colorlib did not draw is kept, with an error naming it.
    """
    from colorlib.teaching.figures import save_figure

    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    except ImportError:
        pass
    path = figure_dir(s) / (name if Path(name).suffix else f"{name}.png")
    return SavedFigure(save_figure(fig, path, dpi=dpi, legacy_ok=_colorlib_folder(path.parent)))


def save_gif(images: list, labels: list[str], name: str, s: Settings,
             duration_ms: int = 1000) -> Path:
    """Save :func:`colorlib.teaching.figures.save_comparison_gif` as ``<figure_dir>/<name>.gif``,
    under the same rule as :func:`save` (a file of that name colorlib did not draw is kept)."""
    from colorlib.teaching.figures import save_comparison_gif

    path = figure_dir(s) / f"{name}.gif"
    return save_comparison_gif(images, labels, path, duration_ms=duration_ms,
                               legacy_ok=_colorlib_folder(path.parent))


def _colorlib_folder(folder: Path) -> bool:
    """The repository's ``figures/`` and the tiny setting's temporary folder: only colorlib
    writes there, so its figures from before the marker (:func:`colorlib.teaching.figures.save_figure`)
    are replaced like marked ones. Anywhere else, an unmarked file is the user's."""
    folder = folder.resolve()
    root = repo_root()
    owned = [_tiny_root().resolve()] + ([(root / "figures").resolve()] if root else [])
    return any(folder == o or o in folder.parents for o in owned)


# -------------------------------------------------------------- checkpoints
def checkpoint_dir(s: Settings) -> Path:
    """The folder holding ``<stage>.pt`` files (created)."""
    s.checkpoints.mkdir(parents=True, exist_ok=True)
    return s.checkpoints


class StageMissing(FileNotFoundError):
    """A later notebook needs a stage's checkpoint that has not been trained yet."""


def encoder_weights(s: Settings) -> str:
    """ImageNet weights for the ResNet18 encoder when they can be had, else ``"none"`` (with a note).

    Asked once per session: an offline download attempt is slow to fail.
    """
    return _encoder_weights(str(s.weights))


@functools.lru_cache(maxsize=None)
def _encoder_weights(weights: str) -> str:
    from colorlib.models.networks import available_encoder_weights

    return str(available_encoder_weights(weights))


def ensure_stage(stage: str, s: Settings) -> Path:
    """The path of ``stage``'s checkpoint, checked to load; trained first if tiny.

    A full run never trains behind the reader's back: a missing checkpoint
    raises :class:`StageMissing` naming the notebook that trains it. Where
    only a weights-only export (``<stage>-generator.pt``, ``colorlib
    export``) is kept, that is returned: it loads wherever a generator is
    needed (colorizing, evaluating, starting the gan stage). In the
    tiny setting a short run is trained on the spot (for ``gan`` the
    ``pretrain`` stage first), so every notebook runs on its own.
    """
    import warnings

    from colorlib.training.checkpoint import CheckpointError, checkpoint_path, load_checkpoint
    from colorlib.training.runner import train_stage

    arch = get_stage(stage).arch
    path = checkpoint_path(checkpoint_dir(s), stage)
    if path.exists():
        if s.tiny:
            _only_tiny_checkpoint(path)
        try:
            ckpt = load_checkpoint(path, arch=arch, stage=stage)
        except CheckpointError:
            if not s.tiny:
                raise
            ckpt = None  # a stale tiny checkpoint: trained again below
        if ckpt is not None:
            if not s.tiny:
                _same_size(path, ckpt, s)
            print(f"{stage}: loaded {path} (epoch {ckpt['epoch']}, step {ckpt['step']})")
            if not s.tiny:
                return path
    from colorlib.inference.export import export_path

    exported = export_path(path)  # a weights-only export (colorlib export): enough to colorize
    if not s.tiny and exported.is_file():
        ckpt = load_checkpoint(exported, arch=arch, stage=stage)
        _same_size(exported, ckpt, s)
        print(f"{stage}: loaded {exported} (weights-only export of step {ckpt.get('step')}; "
              "it colorizes and evaluates, training cannot resume from it)")
        return exported
    if not s.tiny:
        raise StageMissing(
            f"{path}: no '{stage}' checkpoint yet; run {STAGE_NOTEBOOK[stage]} first "
            "(or set COLORLIB_CHECKPOINTS to the folder that holds it)")
    init = ensure_stage("pretrain", s) if stage == "gan" else None
    # a ResNet18 U-Net that starts afresh (pretrain, classify) gets the ImageNet encoder
    weights = encoder_weights(s) if init is None and arch == "resnet18_unet" else None
    run = s.run_config(stage, init=init, weights=weights, progress=False, resume=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            train_stage(run, log=lambda msg: None)
        except CheckpointError:  # a stale tiny checkpoint of other settings: start again
            train_stage(replace(run, resume=False, overwrite=True), log=lambda msg: None)
    load_checkpoint(path, arch=arch, stage=stage)
    print(f"{stage}: tiny checkpoint ready at {path}")
    return path


def _only_tiny_checkpoint(path: Path) -> None:
    """The tiny setting trains over a checkpoint only if the tiny setting made it.

    A real run's checkpoint in the folder ``COLORLIB_CHECKPOINTS`` names is
    refused in one line; so is a file colorlib did not write. A damaged file
    in the tiny setting's own temporary folder is debris of an earlier tiny
    run and is removed.
    """
    from colorlib.training.checkpoint import CheckpointError, load_checkpoint

    own_folder = _tiny_root().resolve() in path.resolve().parents
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        if own_folder:
            path.unlink()
            print(f"removed {path}: a damaged checkpoint of an earlier tiny run ({err})")
            return
        raise CheckpointError(f"{err}; the tiny setting (COLORLIB_TINY=1) never replaces a "
                              "file it did not write: unset COLORLIB_CHECKPOINTS for tiny runs "
                              "(they use a temporary folder), or point it at another "
                              "folder") from None
    data = (ckpt.get("run") or {}).get("data")
    if data != "tiny" and not own_folder:
        made = f"trained on {data}" if data else "with no record of its data"
        raise CheckpointError(
            f"{path}: a checkpoint of a real run ({made}, {ckpt['model'].get('size')} px, step "
            f"{ckpt.get('step')}); the tiny setting (COLORLIB_TINY=1) never trains over it. "
            "Unset COLORLIB_CHECKPOINTS for tiny runs (they use a temporary folder), or point "
            "it at another folder")


def _same_size(path: Path, ckpt: dict, s: Settings) -> None:
    """A full run uses a checkpoint of its own size, or says why not (a 64 px tiny checkpoint
    on Drive is no 256 px model)."""
    from colorlib.training.checkpoint import CheckpointError

    size = ckpt["model"].get("size")
    if size == s.size:
        return
    tiny = " on the tiny set" if (ckpt.get("run") or {}).get("data") == "tiny" else ""
    raise CheckpointError(
        f"{path}: a {size} px checkpoint (trained{tiny} at {size} px), but this run is "
        f"{s.size} px; set COLORLIB_SIZE={size} to use it" + (" (with COLORLIB_TINY=1)" if tiny
                                                              else "")
        + f", or point COLORLIB_CHECKPOINTS at the folder of the {s.size} px checkpoints")


# -------------------------------------------------------------- persistence
# Where Colab mounts Google Drive and Kaggle attaches inputs; the variables (DRIVE_MOUNT_ENV,
# KAGGLE_INPUT_ENV) exist for tests and unusual set-ups, the defaults are the platforms' own.
DRIVE_MOUNT = "/content/drive"
KAGGLE_INPUT = "/kaggle/input"

_SEARCH_DEPTH = 6  # how deep below /kaggle/input checkpoints are looked for


def stage_files() -> tuple[str, ...]:
    """The file names of every stage's checkpoint and of its export (what persistence copies)."""
    from colorlib.inference.export import export_path
    from colorlib.training.checkpoint import checkpoint_path

    paths = [checkpoint_path(".", stage) for stage in STAGE_NOTEBOOK]
    return tuple(name for path in paths for name in (path.name, export_path(path).name))


class PersistError(RuntimeError):
    """The store could not be set up (Drive not mounted, store not writable)."""


def store_checkpoints(store: Path, tiny_size: int | None = None, run: str = "full") -> Path:
    """The checkpoint folder inside a store: ``checkpoints/``, ``checkpoints-medium/`` (the
    medium run) or ``checkpoints-tiny-<size>px/``."""
    if tiny_size is not None:
        return store / f"checkpoints-tiny-{tiny_size}px"
    return store / ("checkpoints-medium" if run == "medium" else "checkpoints")


def runtime(env: Mapping[str, str] | None = None) -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"``: where this kernel runs."""
    env = os.environ if env is None else env
    if "google.colab" in sys.modules:
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in env:
        return "kaggle"
    return "local"


@dataclass
class Store:
    """What :func:`persist` set up: where work is kept, and what it found or copied there."""

    platform: str
    folder: Path | None  # None: nothing outlives this machine's own disk
    copied: list[tuple[Path, Path]] = field(default_factory=list)  # (from, to)
    checkpoints: list[Path] = field(default_factory=list)  # stage files in the store now
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return "\n".join(self.notes)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(f"Store({self.platform}: {self.folder})")


def _mb(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.0f} MB"


def _files_named(folder: Path, wanted, depth: int = _SEARCH_DEPTH) -> list[Path]:
    """Files below ``folder`` (at most ``depth`` levels) whose name passes ``wanted`` (sorted)."""
    found: list[Path] = []

    def walk(d: Path, level: int) -> None:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.is_file() and wanted(entry.name):
                found.append(entry)
            elif entry.is_dir() and not entry.is_symlink() and level < depth:
                walk(entry, level + 1)

    if folder.is_dir():
        walk(folder, 1)
    return found


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 22)
            if chunk != fb.read(1 << 22):
                return False
            if not chunk:
                return True


def _copy_atomically(src: Path, dest: Path) -> None:
    """Copy through a temporary file: an interrupted copy never looks like a checkpoint."""
    from colorlib.system.atomic_files import atomic_write

    try:
        with open(src, "rb") as f:
            atomic_write(dest, lambda out: shutil.copyfileobj(f, out, 1 << 22))
        st = src.stat()  # keep its time ("the newest of several" stays true), not its mode
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    except OSError as err:
        raise PersistError(f"cannot copy {src} to {dest}: {err.strerror or err}; "
                           f"nothing in {dest.parent} was changed") from None


def _mount_drive(mount: str) -> Path:
    try:
        from google.colab import drive
    except ImportError as err:
        raise PersistError(f"google.colab.drive cannot be imported ({err})") from None
    try:
        drive.mount(mount)
    except Exception as err:  # the user declined, timed out, or Drive is unavailable
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PersistError(
            f"Google Drive was not mounted at {mount} ({reason}). Run this cell again and "
            "allow access, or use nb.persist(drive=False) to keep work on this machine only "
            "(lost when the session ends)") from None
    my_drive = Path(mount) / "MyDrive"
    if not my_drive.is_dir():
        raise PersistError(f"{my_drive}: not found after mounting Google Drive")
    return my_drive


def _kaggle_inputs(store: Path, inputs: Path, notes: list[str],
                   tiny_size: int | None) -> list[tuple[Path, Path]]:
    """Copy the stage checkpoints attached under ``inputs`` into ``store``; return (from, to)."""
    wanted: dict[Path, list[Path]] = {}
    for src in _files_named(inputs, stage_files().__contains__):
        # Keep the kind of folder (full vs tiny, which size); other layouts count as full.
        folder = src.parent.name if src.parent.name.startswith("checkpoints") else "checkpoints"
        wanted.setdefault(store / folder / src.name, []).append(src)
    copied = []
    for dest, sources in sorted(wanted.items()):
        intact = []
        for candidate in sources:
            damage = _damage(candidate)
            if damage is None:
                intact.append(candidate)
            else:
                notes.append(f"skipped {candidate}: damaged ({damage}); not copied")
        if not intact:
            continue
        sources = intact
        src = max(sources, key=lambda p: p.stat().st_mtime)  # the newest intact one
        others = [p for p in sources if p != src]
        if dest.exists():
            if not _same_file(src, dest):
                notes.append(f"kept {dest} ({_mb(dest)}): this notebook's own copy; "
                             f"{src} differs and was not copied")
            continue
        _copy_atomically(src, dest)
        copied.append((src, dest))
        notes.append(f"copied {src} -> {dest} ({_mb(dest)})")
        if others:
            notes.append(f"  (newest of {len(sources)}; also attached: "
                         f"{', '.join(str(p) for p in others)})")
    if not wanted:
        notes.append(f"no checkpoints attached under {inputs}: to continue from an earlier "
                     "notebook, add its output to this one (Add Input > Your Work) and run "
                     "this cell again")
    return copied


def _damage(path: Path) -> str | None:
    """Why ``path`` is not a usable colorlib checkpoint (truncated copy, ...), or None."""
    from colorlib.training.checkpoint import checkpoint_kind

    kind, reason = checkpoint_kind(path)
    return None if kind is not None else reason


def persist(env: dict | None = None, *, drive: bool = True, show: bool = True) -> Store:
    """Keep checkpoints and the prepared data where the next notebook's machine finds them.

    * **Colab** gives every notebook a fresh machine, so this mounts Google
      Drive and makes ``MyDrive/colorlib`` the store: checkpoints, the
      prepared COCO sample, the figures of a medium or full run and notebook 06's photos are
      written there.
    * **Kaggle** keeps a notebook's ``/kaggle/working`` folder as its output,
      and other notebooks' outputs can be attached, read-only, under
      ``/kaggle/input``. The store is ``/kaggle/working/runs``; every
      ``baseline.pt`` / ``pretrain.pt`` / ``gan.pt`` attached is copied into
      it (never over a different file already there) before any stage writes.
    * **Elsewhere** nothing changes, unless ``COLORLIB_STORE`` names a folder.

    Sets ``COLORLIB_STORE`` (and, on Kaggle, ``COLORLIB_DATA_CACHE`` with the
    attached data caches) in ``env`` (default: ``os.environ``), so the
    settings cell that follows uses the store. A variable the user set
    already is kept.
    """
    env = os.environ if env is None else env
    where = runtime(env)
    notes: list[str] = []
    tiny_size = None
    if _truthy(env.get(TINY_ENV)):
        size = env.get("COLORLIB_SIZE", "").strip()
        tiny_size = _env_int("COLORLIB_SIZE", size) if size else TINY_SIZE
    store: Path | None = _anchored(env[STORE_ENV]) if env.get(STORE_ENV, "").strip() else None
    copied: list[tuple[Path, Path]] = []
    if where == "colab" and drive:
        my_drive = _mount_drive(env.get(DRIVE_MOUNT_ENV) or DRIVE_MOUNT)
        store = store or my_drive / "colorlib"
        notes.append(f"Google Drive mounted: work is kept in {store}")
    elif where == "kaggle":
        store = store or Path.cwd() / "runs"
        notes.append(f"Kaggle: work is kept in {store} (saved as this notebook's output)")
    elif store is None:
        notes.append("not on Colab or Kaggle: checkpoints stay where the settings put them")
    if store is not None:
        try:
            store.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PersistError(f"{STORE_ENV}: cannot create {store} "
                               f"({err.strerror or err})") from None
        env[STORE_ENV] = str(store)
    if where == "kaggle":
        inputs = Path(env.get(KAGGLE_INPUT_ENV) or KAGGLE_INPUT)
        copied = _kaggle_inputs(store, inputs, notes, tiny_size)
        import re

        prepared = re.compile(r"coco_sample_seed\d+\.tar").fullmatch
        attached = sorted({p.parent for p in _files_named(inputs, prepared)})
        if attached and not env.get(DATA_CACHE_ENV, "").strip():
            env[DATA_CACHE_ENV] = os.pathsep.join(str(p) for p in [store / "data", *attached])
            notes.append("prepared COCO sample attached: " + ", ".join(map(str, attached)))
    found = []
    if store is not None:
        folder = store_checkpoints(store, tiny_size)
        found = [folder / name for name in stage_files() if (folder / name).is_file()]
        notes.append(f"checkpoints in {folder}: " + (
            ", ".join(f"{p.name} ({_mb(p)})" for p in found) if found else "none yet"))
    result = Store(where, store, copied, found, notes)
    if show:
        print(result.describe())
    return result


# --------------------------------------------------------- your own photos
def save_uploads(value, folder: str | os.PathLike) -> list[Path]:
    """Write uploaded files into ``folder`` and return their paths.

    Accepts what the upload tools hand back: an ipywidgets ``FileUpload``
    value (ipywidgets 8: a tuple of dicts with ``name`` and ``content``;
    ipywidgets 7: a dict from name to ``{"content": ...}``) or the dict from
    name to bytes of Colab's ``google.colab.files.upload()``. Only the base
    name of each file is used, so an upload cannot write outside ``folder``.

    A photo already in ``folder`` is never replaced (``MY_PHOTOS`` is on
    Drive in Colab, and phones name every photo ``IMG_0001.jpg``): the same
    file uploaded again is the file already there, and a different one of the
    same name is saved beside it as ``IMG_0001 (2).jpg``. Each file is
    written whole or not at all.
    """
    if isinstance(value, Mapping):
        items = [(name, item) for name, item in value.items()]
    else:
        items = [(item["name"], item) for item in value]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, item in items:
        content = item["content"] if isinstance(item, Mapping) else item
        base = Path(str(name).replace("\\", "/")).name
        if not base or base in (".", ".."):
            raise ValueError(f"save_uploads: unusable file name {name!r}")
        saved.append(_save_upload(folder / base, bytes(content)))
    return saved


def _save_upload(target: Path, content: bytes) -> Path:
    """``content`` at ``target``, or at ``target (2)``, ``(3)``, ... if another file is there."""
    from colorlib.system.atomic_files import atomic_write

    for n in range(1, 10_000):
        path = target if n == 1 else target.with_name(f"{target.stem} ({n}){target.suffix}")
        if path.is_file() and path.stat().st_size == len(content) \
                and path.read_bytes() == content:
            return path  # uploaded before: the same photo once
        if os.path.lexists(path):
            continue
        try:
            return atomic_write(path, lambda f: f.write(content), replace=False)
        except FileExistsError:  # another upload took the name meanwhile: the next one
            continue
    raise FileExistsError(f"save_uploads: {target}: too many files of that name in "
                          f"{target.parent}")
