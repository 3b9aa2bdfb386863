"""Support for the notebook series: settings, figures, checkpoints, source display.

Every notebook runs in two settings from the same cells:

* the **full run** (the default): the tutorial's data and schedule, meant for
  a GPU on Colab or Kaggle; its figures go to ``figures/`` in the repository;
* the **tiny run** (``COLORLIB_TINY=1``): the embedded tiny set at 64 px and
  a handful of optimisation steps, so a notebook executes in about a minute
  on a laptop CPU. The tests run every notebook this way; its figures and
  checkpoints go to a temporary folder, so a test never overwrites real work.

Environment variables override single settings in either mode, which is how
the committed figures can be regenerated on other data or a CPU:
``COLORLIB_DATA`` (``coco``, ``tiny`` or a folder), ``COLORLIB_SIZE``,
``COLORLIB_EPOCHS``, ``COLORLIB_MAX_STEPS``, ``COLORLIB_BATCH_SIZE``,
``COLORLIB_DEVICE``, ``COLORLIB_CHECKPOINTS`` (e.g. a Google Drive folder,
so checkpoints survive a lost Colab session) and ``COLORLIB_FIGURES``.
"""
from __future__ import annotations

import functools
import inspect
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

TINY_ENV = "COLORLIB_TINY"
TINY_SIZE = 64
TINY_STEPS = 8  # optimisation steps per stage in the tiny setting
TINY_BATCH = 8
TINY_FILTERS = 32  # pix2pix U-Net width in the tiny setting (64 in the paper)

# Stage -> the notebook that trains it (for "run this first" messages).
STAGE_NOTEBOOK = {"baseline": "03_pix2pix_baseline.ipynb",
                  "pretrain": "04_resnet_unet_pretraining.ipynb",
                  "gan": "05_adversarial_finetuning.ipynb"}


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def in_colab_or_kaggle() -> bool:
    """True inside Google Colab or a Kaggle kernel (where the GPU usually is)."""
    import sys

    return "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ


def repo_root() -> Path | None:
    """The repository checkout colorlib runs from, or None for a plain install (Colab)."""
    root = Path(__file__).resolve().parents[1]
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
    number of optimisation steps (None: run all epochs).
    """

    data: str = "coco"
    size: int = 256
    epochs: int = 20
    batch_size: int = 16
    device: str = "cpu"
    max_steps: int | None = None
    tiny: bool = False
    num_filters: int = 64
    weights: str = "imagenet"
    num_workers: int = 2
    seed: int = 0
    checkpoints: Path = field(default_factory=lambda: _work_root() / "runs" / "checkpoints")
    figures: Path = field(default_factory=lambda: _work_root() / "figures")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, tiny_size: int = TINY_SIZE,
                 tiny_steps: int = TINY_STEPS, **full_defaults) -> "Settings":
        """Full-run defaults (keyword arguments), tiny defaults if ``COLORLIB_TINY``, then env.

        ``tiny_size``/``tiny_steps`` let a notebook that needs less (e.g. 32 px)
        say so; explicit ``COLORLIB_*`` variables win over both defaults.
        """
        from .train import resolve_device

        env = os.environ if env is None else env
        unknown = set(full_defaults) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise TypeError(f"settings(): unknown setting(s) {sorted(unknown)}")
        s = cls(**full_defaults)
        if _truthy(env.get(TINY_ENV)):
            s = replace(s, tiny=True, data="tiny", size=tiny_size, max_steps=tiny_steps,
                        epochs=max(s.epochs, 1000), batch_size=TINY_BATCH,
                        num_filters=TINY_FILTERS, num_workers=0,
                        figures=_tiny_root() / "figures")
        s = _apply_env(s, env)
        if s.tiny and not env.get("COLORLIB_CHECKPOINTS", "").strip():
            # One folder per size: a 32 px tiny run must not resume a 64 px one.
            s.checkpoints = _tiny_root() / f"checkpoints-{s.size}px"
        s.device = str(resolve_device(env.get("COLORLIB_DEVICE") or None))
        return s

    def data_config(self, **overrides) -> "DataConfig":  # noqa: F821 (lazy import)
        """The :class:`colorlib.data.DataConfig` these settings describe."""
        from .data import DataConfig

        return DataConfig(**{"source": self.data, "size": self.size,
                             "batch_size": self.batch_size, "num_workers": self.num_workers,
                             **overrides})

    def train_kwargs(self) -> dict:
        """Keyword arguments for :func:`colorlib.train.train_stage` (besides stage/data/init)."""
        return {"epochs": self.epochs, "checkpoint_dir": self.checkpoints, "device": self.device,
                "max_steps": self.max_steps, "num_filters": self.num_filters, "seed": self.seed}

    def describe(self) -> str:
        mode = "tiny run (COLORLIB_TINY=1)" if self.tiny else "full run"
        steps = f", at most {self.max_steps} steps" if self.max_steps is not None else ""
        return (f"{mode}: data={self.data}, {self.size} px, batch {self.batch_size}, "
                f"{self.epochs} epochs{steps}, device {self.device}\n"
                f"checkpoints -> {self.checkpoints}\nfigures     -> {self.figures}")


_ENV_FIELDS = {"COLORLIB_DATA": ("data", str), "COLORLIB_SIZE": ("size", int),
               "COLORLIB_EPOCHS": ("epochs", int), "COLORLIB_MAX_STEPS": ("max_steps", int),
               "COLORLIB_BATCH_SIZE": ("batch_size", int),
               "COLORLIB_CHECKPOINTS": ("checkpoints", Path),
               "COLORLIB_FIGURES": ("figures", Path)}


def _apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    changes = {}
    for var, (name, kind) in _ENV_FIELDS.items():
        text = env.get(var, "").strip()
        if not text:
            continue
        if kind is int:
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"{var}: expected a whole number, got {text!r}") from None
            if value < 1:
                raise ValueError(f"{var}: expected a number >= 1, got {value}")
            if name == "size" and (value < 32 or value & (value - 1)):
                raise ValueError(f"{var}: must be a power of two >= 32, got {value}")
            changes[name] = value
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


def settings(env: Mapping[str, str] | None = None, *, tiny_size: int = TINY_SIZE,
             tiny_steps: int = TINY_STEPS, show: bool = True, **full_defaults) -> Settings:
    """The notebook's settings: ``settings(epochs=100)`` gives the full-run defaults.

    Prints what was chosen, so a reader of the output knows which run it was.
    """
    s = Settings.from_env(env, tiny_size=tiny_size, tiny_steps=tiny_steps, **full_defaults)
    if show:
        print(s.describe())
    return s


# ---------------------------------------------------------------- display
def show_source(obj, title: bool = True) -> None:
    """Display the highlighted source of a colorlib function or class.

    The notebooks teach the code that runs, not a copy of it: this shows the
    package's own definition, with the file and line it comes from.
    """
    from IPython.display import Code, Markdown, display

    try:
        lines, start = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj))
    except (TypeError, OSError) as err:
        raise TypeError(f"show_source: no source available for {obj!r} ({err})") from None
    if title:
        where = f"colorlib/{path.name}" if path.parent.name == "colorlib" else path.name
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

    Returns the path written (a :class:`pathlib.Path`).
    """
    from .figures import save_figure

    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    except ImportError:
        pass
    path = figure_dir(s) / (name if Path(name).suffix else f"{name}.png")
    return SavedFigure(save_figure(fig, path, dpi=dpi))


# -------------------------------------------------------------- checkpoints
def checkpoint_dir(s: Settings) -> Path:
    """The folder holding ``<stage>.pt`` files (created)."""
    s.checkpoints.mkdir(parents=True, exist_ok=True)
    return s.checkpoints


class StageMissing(FileNotFoundError):
    """A later notebook needs a stage's checkpoint that has not been trained yet."""


def encoder_weights(s: Settings) -> str:
    """ImageNet weights for the ResNet18 encoder when they can be had, else ``"none"`` (with a note).

    Asked once per session: an offline download attempt costs seconds.
    """
    return _encoder_weights(str(s.weights))


@functools.lru_cache(maxsize=None)
def _encoder_weights(weights: str) -> str:
    from .networks import available_encoder_weights

    return str(available_encoder_weights(weights))


def ensure_stage(stage: str, s: Settings) -> Path:
    """The path of ``stage``'s checkpoint, checked to load; trained first if tiny.

    A full run never trains behind the reader's back: a missing checkpoint
    raises :class:`StageMissing` naming the notebook that trains it. In the
    tiny setting a short run is trained on the spot (for ``gan`` the
    ``pretrain`` stage first), so every notebook runs on its own.
    """
    import warnings

    from .checkpoint import CheckpointError, checkpoint_path, load_checkpoint
    from .train import STAGE_ARCH, train_stage

    if stage not in STAGE_ARCH:
        raise ValueError(f"unknown stage {stage!r}; choose from {tuple(STAGE_ARCH)}")
    path = checkpoint_path(checkpoint_dir(s), stage)
    if path.exists() and not s.tiny:
        ckpt = load_checkpoint(path, arch=STAGE_ARCH[stage], stage=stage)
        print(f"{stage}: loaded {path} (epoch {ckpt['epoch']}, step {ckpt['step']})")
        return path
    if not s.tiny:
        raise StageMissing(
            f"{path}: no '{stage}' checkpoint yet; run {STAGE_NOTEBOOK[stage]} first "
            "(or set COLORLIB_CHECKPOINTS to the folder that holds it)")
    init = ensure_stage("pretrain", s) if stage == "gan" else None
    weights = encoder_weights(s) if stage == "pretrain" else None
    kwargs = dict(init=init, weights=weights, progress=False, log=lambda msg: None,
                  **s.train_kwargs())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            train_stage(stage, s.data_config(), resume=True, **kwargs)
        except CheckpointError:  # a stale tiny checkpoint of other settings: start again
            train_stage(stage, s.data_config(), overwrite=True, **kwargs)
    load_checkpoint(path, arch=STAGE_ARCH[stage], stage=stage)
    print(f"{stage}: tiny checkpoint ready at {path}")
    return path


# --------------------------------------------------------- your own photos
def save_uploads(value, folder: str | os.PathLike) -> list[Path]:
    """Write uploaded files into ``folder`` and return their paths.

    Accepts what the upload tools hand back: an ipywidgets ``FileUpload``
    value (ipywidgets 8: a tuple of dicts with ``name`` and ``content``;
    ipywidgets 7: a dict from name to ``{"content": ...}``) or the dict from
    name to bytes of Colab's ``google.colab.files.upload()``. Only the base
    name of each file is used, so an upload cannot write outside ``folder``.
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
        target = folder / base
        target.write_bytes(bytes(content))
        saved.append(target)
    return saved


def as_dict(s: Settings) -> dict:
    """Settings as plain values (for printing or logging)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()}
