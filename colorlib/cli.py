"""The ``colorlib`` command line: demo, train, colorize, evaluate.

Every failure a user can cause (a wrong path, an unreadable image, a
checkpoint of another model, a full disk) ends in one line on stderr that
names the file or argument, and a non-zero exit; ``--debug`` shows the
Python traceback for bug reports.

Used in notebook 06; every command is described in the README.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import warnings
from pathlib import Path

from colorlib.models.stages import STAGE_NAMES, STAGES

EXIT_FAILED = 1  # ran, but some inputs failed
EXIT_ERROR = 2  # could not run at all


class CLIError(Exception):
    """An error whose message is the whole story for the user."""


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum`` (0 keeps a feature off: no worker
    processes, no extra saves), named with its flag by argparse when it is not."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value
    return parse


def _finite_positive(noun: str = "a number", unit: str = ""):
    """An argparse type: a finite number > 0, checked when the command line is read rather
    than by whatever uses it, hours later (``noun`` says what was expected)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a finite number{unit} > 0, got {text}")
        return value
    return parse


_positive_int, _count = _whole_number(1), _whole_number(0)
_learning_rate = _finite_positive("a learning rate such as 2e-4")
_megapixels = _finite_positive("a number of megapixels", " of megapixels")


def _size(text: str) -> int:
    from colorlib.models.model_config import check_size

    try:
        return check_size(_positive_int(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line's flags. A flag that sets a field of the run config
    (:class:`colorlib.training.config.RunConfig`, :class:`~colorlib.training.config.TrainConfig`,
    :class:`colorlib.data.sources.DataConfig`) takes its default and its choices from there,
    so the help and the notebooks' settings say the same."""
    from colorlib import __version__
    from colorlib.data.sources import DataConfig
    from colorlib.models.stages import GAN_MODES
    from colorlib.training.config import RunConfig, TrainConfig

    parser = argparse.ArgumentParser(
        prog="colorlib", description="Colorize black-and-white photos with deep learning "
        "(pix2pix baseline, pretrained ResNet18 U-Net, adversarial fine-tuning).")
    parser.add_argument("--version", action="version", version=f"colorlib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="train every stage briefly on the embedded tiny set "
                          "(offline, on a CPU) and colorize held-out photos",
                          description="The main job on the embedded default data: builds the "
                          "tiny set, trains baseline pix2pix, ResNet18 U-Net L1 pretraining and "
                          "GAN fine-tuning at a small size, colorizes held-out photos at full "
                          "resolution, and writes checkpoints/, colorized/, figures/ and report.md.")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    demo.add_argument("--size", type=_size, default=64, help="training size in px (default 64)")
    demo.add_argument("--steps", type=_positive_int, default=None,
                      help="optimisation steps per stage (default: the demo's own budget)")
    demo.add_argument("--device", default=None, help="cpu, cuda, ... (default: best available)")
    demo.add_argument("--weights", default="imagenet",
                      help="ResNet18 encoder weights: imagenet (download or torch hub cache), "
                      "a state_dict file, or none (default: imagenet, none if unavailable)")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo in --out")

    train = sub.add_parser("train", help="train one stage",
                           description="Train one stage and save <checkpoint-dir>/<stage>.pt "
                           "(weights + config in one file) at every epoch end. Several GPUs: "
                           "torchrun --nproc_per_node=N -m colorlib train ... (--batch-size is "
                           "the global batch, split over the N processes).")
    train.add_argument("--stage", required=True, choices=STAGE_NAMES,
                       help="baseline: pix2pix U-Net with GAN+L1; pretrain: ResNet18 U-Net with "
                       "L1 only; gan: GAN fine-tuning of the ResNet18 U-Net; classify: the "
                       "ResNet18 U-Net predicting a*b* colour classes (Zhang et al.)")
    train.add_argument("--data", default=DataConfig.source,
                       help="tiny (embedded, offline), coco (fastai COCO sample, downloads), "
                       "or a folder of images (default: %(default)s)")
    train.add_argument("--size", type=_size, default=DataConfig.size,
                       help="training size in px (default %(default)s)")
    train.add_argument("--epochs", type=_positive_int, default=TrainConfig.epochs,
                       help="epochs (default %(default)s)")
    train.add_argument("--batch-size", type=_positive_int, default=DataConfig.batch_size,
                       help="batch size (default %(default)s)")
    train.add_argument("--checkpoint-dir", type=Path, required=True, help="folder for <stage>.pt")
    train.add_argument("--init", type=Path, default=None,
                       help="gan stage: start the generator from this pretrain checkpoint")
    train.add_argument("--resume", action="store_true",
                       help="continue from <checkpoint-dir>/<stage>.pt if it exists")
    train.add_argument("--overwrite", action="store_true",
                       help="start again even though <checkpoint-dir>/<stage>.pt exists (only "
                       "over a colorlib checkpoint, never another file)")
    train.add_argument("--seed", type=_seed, default=TrainConfig.seed,
                       help=f"random seed, 0 to {_SEED_LIMIT - 1} (default %(default)s)")
    train.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: best available)")
    train.add_argument("--weights", default=None,
                       help="ResNet18 encoder weights: imagenet, a state_dict file, or none "
                       f"(default {RunConfig.weights}; a resume keeps the run's own and refuses "
                       "others)")
    train.add_argument("--workers", type=_count, default=DataConfig.num_workers,
                       help="DataLoader worker processes")
    train.add_argument("--max-steps", type=_positive_int, default=TrainConfig.max_steps,
                       help="stop after this many optimisation steps in total")
    train.add_argument("--save-every", type=_count, default=TrainConfig.save_every,
                       help="also save every N steps (default: at epoch ends only)")
    train.add_argument("--filters", type=_positive_int, default=RunConfig.num_filters,
                       help="pix2pix U-Net base width (default %(default)s, as in the paper)")
    train.add_argument("--gan-mode", choices=GAN_MODES, default=TrainConfig.gan_mode)
    train.add_argument("--lr-g", type=_learning_rate, default=None,
                       help=f"generator learning rate (default: the stage's own, {_stage_lrs()})")
    train.add_argument("--val-every", type=_positive_int, default=1,
                       help="save validation images (input / prediction / truth) every N epochs "
                       "into <checkpoint-dir>/val_images (default 1)")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.add_argument("--cpu-amp", action="store_true",
                       help="on CPUs with native bf16 (AMX / AVX512-BF16): bf16 mixed precision, "
                       "faster per step (measured in benchmarks/RESULTS.md); ignored elsewhere "
                       "(GPUs use mixed precision anyway)")
    train.add_argument("--no-rebalance", action="store_true",
                       help="classify stage: plain cross-entropy, without Zhang et al.'s class "
                       "rebalancing (an ablation)")

    col = sub.add_parser("colorize", help="colorize images at full resolution",
                         description="Colorize each IMAGE with a checkpoint and write "
                         "<out>/<stem>.png at the input's full resolution; a folder's photos "
                         "keep their subfolders (<out>/<subfolder>/<stem>.png). Inputs are "
                         "never replaced, nor any file colorlib did not write.")
    col.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files or folders")
    col.add_argument("--checkpoint", type=Path, required=True, help="a colorlib checkpoint (.pt)")
    col.add_argument("--out", type=Path, required=True, help="output folder")
    again = col.add_mutually_exclusive_group()
    again.add_argument("--overwrite", action="store_true",
                       help="replace outputs an earlier colorlib run wrote (never other files)")
    again.add_argument("--skip-existing", action="store_true",
                       help="leave photos whose output already exists, do the rest")
    col.add_argument("--format", choices=("png", "jpg"), default="png", help="output format")
    col.add_argument("--device", default=None)
    col.add_argument("--batch-size", type=_positive_int, default=16,
                     help="photos per network pass (default 16; fewer when they are huge)")
    _model_flags(col)
    col.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                     help="mixed precision: bf16 (fp16 on T4-class GPUs), and on CPUs with native "
                     "bf16 (AMX / AVX512-BF16), faster there, with colours slightly different "
                     "from fp32 (both measured in benchmarks/RESULTS.md). Default: on a GPU when "
                     "training used it, else off")

    ev = sub.add_parser("evaluate", help="measure a checkpoint on a folder of colour photos",
                        description="Make each photo greyscale, colorize it at full resolution, "
                        "and compare with the original: PSNR, SSIM, AuC of the ab error, "
                        "colorfulness and its gap to the photos, share of grey pixels; the "
                        "greyscale answer (ab = 0) is scored alongside as a baseline.")
    ev.add_argument("--checkpoint", type=Path, required=True, help="a colorlib checkpoint (.pt)")
    ev.add_argument("--data", required=True,
                    help="a folder of colour photos (recursive), one photo, or tiny")
    ev.add_argument("--json", type=Path, default=None,
                    help="also write the full report here (never over an input, or a file "
                    "colorlib did not write)")
    ev.add_argument("--overwrite", action="store_true",
                    help="replace a report an earlier colorlib evaluate wrote at --json")
    ev.add_argument("--size", type=_positive_int, default=None,
                    help="shrink photos so the longer side is at most N px (default: full size)")
    ev.add_argument("--device", default=None)
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _model_flags(ev)

    ex = sub.add_parser("export", help="write a checkpoint's generator alone, in half precision",
                        description="Keep or share a trained model: the generator and its "
                        "settings only, in half precision, a fraction of the resume checkpoint's "
                        "size (both sizes are printed). colorize, evaluate and the notebooks load "
                        "it; training cannot resume from it.")
    ex.add_argument("checkpoint", type=Path, help="a colorlib checkpoint (e.g. ckpt/gan.pt)")
    ex.add_argument("--out", type=Path, default=None,
                    help="the file to write (default: <stage>-generator.pt beside the checkpoint)")
    ex.add_argument("--float32", action="store_true",
                    help="keep float32 weights (twice the size; default float16)")
    ex.add_argument("--overwrite", action="store_true",
                    help="replace an earlier export at --out (never a training checkpoint that "
                    "resumes, nor a file colorlib did not write)")
    for command in sub.choices.values():  # `colorlib train ... --debug` works, too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show Python tracebacks on errors")
    return parser


_SEED_LIMIT = 2**32  # numpy's seeds (the data split) are 32-bit, unsigned


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < _SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {_SEED_LIMIT - 1}, got {value}")
    return value


def _stage_lrs() -> str:
    """Each stage's generator learning rate as the stage table has it ("0.0002 for baseline")."""
    return ", ".join(f"{stage.lr_g:g} for {name}" for name, stage in STAGES.items())


def _check_encoder_weights(args) -> None:
    """A stage that starts a ResNet18 encoder checks --weights now, not after loading data."""
    from colorlib.models.networks import PretrainedWeightsUnavailable, load_resnet18
    from colorlib.models.stages import get_stage
    from colorlib.training.checkpoint import checkpoint_path

    resuming = args.resume and checkpoint_path(args.checkpoint_dir, args.stage).exists()
    if (get_stage(args.stage).arch != "resnet18_unet" or args.init is not None or resuming
            or args.weights in (None, "none")):
        return
    try:
        load_resnet18(args.weights)
    except PretrainedWeightsUnavailable as err:
        raise CLIError(f"--weights {args.weights}: {err}") from None
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(f"--weights: {err}") from None


def _check_resume_weights(args) -> None:
    """``--resume`` with ``--weights`` other than the run started with: refused, not ignored.

    The encoder's starting weights matter only at the start; a resume
    continues the checkpoint's own. Stages that start from another stage's
    generator (gan: ``init from ...``) and the pix2pix U-Net (no encoder)
    record nothing to compare.
    """
    import torch

    from colorlib.models.stages import get_stage
    from colorlib.training.checkpoint import checkpoint_path

    path = checkpoint_path(args.checkpoint_dir, args.stage)
    if not args.resume or not path.is_file() or get_stage(args.stage).arch != "resnet18_unet":
        return
    try:
        recorded = torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("weights")
    except Exception:  # noqa: BLE001 - an unreadable checkpoint is reported by the resume itself
        return
    if not isinstance(recorded, str) or recorded.startswith("init from"):
        return
    same = recorded == str(args.weights) or (
        Path(recorded).is_file() and Path(recorded).resolve() == Path(args.weights).resolve())
    if not same:
        raise CLIError(f"{path}: --resume continues the encoder the run started with; this run "
                       f"differs: --weights {args.weights} (checkpoint: {recorded}). Leave out "
                       "--weights to resume, or start afresh with another --checkpoint-dir")


def _temperature(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _model_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of the commands that read photos with a trained generator (colorize, evaluate)."""
    from colorlib.models.ab_classes import ZHANG_T
    from colorlib.models.model_config import ARCHS, ModelConfig
    from colorlib.photos.image_files import MAX_PIXELS, MAX_PIXELS_ENV

    parser.add_argument("--max-megapixels", type=_megapixels, default=None,
                        help=f"refuse photos larger than this (default {MAX_PIXELS / 1e6:g}, or "
                        f"${MAX_PIXELS_ENV}): colorlib's decompression-bomb guard")
    parser.add_argument("--arch", choices=ARCHS, default=None,
                        help="only for a plain generator state_dict (weights saved without "
                        "colorlib's settings, as other tutorials do): the generator it holds")
    parser.add_argument("--model-size", type=_size, default=ModelConfig.size,
                        help="with --arch: the size it was trained at (default %(default)s)")
    parser.add_argument("--temperature", type=_temperature, default=None,
                        help="classify checkpoints: decode the colour classes at this annealed-"
                        f"mean temperature instead of the stored one ({ZHANG_T:g}): 1 is the "
                        "plain mean, 0 the most likely class")


def _max_pixels(args) -> int | None:
    return None if args.max_megapixels is None else int(args.max_megapixels * 1_000_000)


def _load_colorizer(args):
    from colorlib.inference.colorizer import Colorizer

    return Colorizer.load(args.checkpoint, device=args.device, amp=getattr(args, "amp", None),
                          temperature=args.temperature,
                          arch=args.arch, size=args.model_size)


# ----------------------------------------------------------------- commands
def cmd_train(args) -> int:
    from colorlib.data.sources import DataConfig
    from colorlib.teaching.live_feedback import ValidationImages
    from colorlib.training.config import RunConfig, TrainConfig
    from colorlib.training.runner import train_stage

    if args.init is not None and args.stage != "gan":
        raise CLIError("--init is only used by --stage gan")
    if args.no_rebalance and args.stage != "classify":
        raise CLIError("--no-rebalance is only used by --stage classify")
    if args.init is not None and not args.init.is_file():
        raise CLIError(f"--init: {args.init}: checkpoint file not found")
    if args.data not in ("tiny", "coco") and not Path(args.data).exists():
        raise CLIError(f"--data: {args.data}: no such folder (use tiny, coco or a folder)")
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite contradict each other; pick one")
    weights_given, args.weights = args.weights is not None, args.weights or RunConfig.weights
    if weights_given:
        _check_resume_weights(args)
    _ensure_writable_dir(args.checkpoint_dir, "--checkpoint-dir")
    _check_encoder_weights(args)
    run = RunConfig(
        TrainConfig(stage=args.stage, epochs=args.epochs, seed=args.seed, lr_g=args.lr_g,
                    gan_mode=args.gan_mode, cpu_amp=args.cpu_amp, max_steps=args.max_steps,
                    save_every=args.save_every, rebalance=not args.no_rebalance),
        DataConfig(source=args.data, size=args.size, batch_size=args.batch_size,
                   seed=args.seed, num_workers=args.workers),
        checkpoint_dir=args.checkpoint_dir, init=args.init, resume=args.resume,
        overwrite=args.overwrite, device=args.device, weights=args.weights,
        num_filters=args.filters, progress=not args.no_progress)
    # input / prediction / truth of the validation photos, every --val-every epochs
    val_images = ValidationImages(args.checkpoint_dir / "val_images", every=args.val_every)
    skipped: list = []  # SkippedImageWarning: each names one file or a group of one kind
    with _one_line_image_warnings(skipped):
        result = train_stage(run, callbacks=[val_images])
    t = result.trainer
    if not t.dist.is_main:  # torchrun: rank 0 alone reports
        return EXIT_FAILED if skipped else 0
    last = t.history[-1] if t.history else {}
    losses = ", ".join(f"{k}={v:.4f}" for k, v in last.items() if k.startswith("loss"))
    print(f"{args.stage}: {t.epoch} epoch(s), {t.step} steps, {t.train_seconds:.1f} s"
          f"{'; last ' + losses if losses else ''}; saved {result.checkpoint}"
          f"{f'; left out {sum(len(w.paths) for w in skipped)} unreadable image(s), listed above' if skipped else ''}")
    return EXIT_FAILED if skipped else 0


@contextlib.contextmanager
def _one_line_image_warnings(skipped: list):
    """Show each of colorlib's warnings for the user as one plain line, once.

    Training skips a broken file and goes on; the user still needs to hear
    about it, without Python's warning boilerplate. Warnings are recognised
    by their category (:class:`colorlib.photos.image_files.ColorlibWarning`), never by
    their text; those that mean something asked for was not done (``failed``,
    e.g. an unreadable photo) are collected in ``skipped``, which tells the
    caller to exit non-zero. Other warnings keep Python's usual format.
    """
    from colorlib.photos.image_files import ColorlibWarning

    show_other = warnings.showwarning
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, ColorlibWarning):
            return show_other(message, category, filename, lineno, file, line)
        text = str(message)
        if text in shown:
            return
        shown.add(text)
        if getattr(message, "failed", False):
            skipped.append(message)
        print(f"colorlib: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        warnings.simplefilter("always", ColorlibWarning)
        yield skipped


def cmd_colorize(args) -> int:
    from tqdm.auto import tqdm

    from colorlib.inference.output_rule import plan_colorize
    from colorlib.photos.image_files import ImageReadError, save_rgb

    _check_folder_path(args.out, "--out")
    plan = plan_colorize(args.images, args.out, args.format, overwrite=args.overwrite,
                         skip_existing=args.skip_existing)
    colorizer = _load_colorizer(args)
    _ensure_writable_dir(args.out, "--out")
    for note in plan.notes:
        print(f"colorlib: note: {note}", file=sys.stderr)
    problems, written = list(plan.problems), 0
    jobs = {job.source: job for job in plan.jobs}
    results = colorizer.colorize_files(list(jobs), batch_size=args.batch_size,
                                       max_pixels=_max_pixels(args))
    try:
        for source, result in tqdm(results, total=len(jobs), desc="colorizing",
                                   disable=len(jobs) < 2):
            job = jobs[source]
            if isinstance(result, ImageReadError):
                problems.append(str(result))
                continue
            try:
                save_rgb(result, job.target, note=colorizer.provenance, overwrite=job.replace)
                written += 1
            except FileExistsError:  # appeared since the plan was made
                problems.append(f"{source}: output {job.target} appeared during the run; kept it")
            except OSError as err:
                problems.append(f"{source}: cannot write {job.target} ({err.strerror or err})")
    except KeyboardInterrupt as err:
        print(f"colorlib: interrupted: {written} of {len(jobs)} image(s) were colorized into "
              f"{args.out} before the stop, each file complete (files are written whole or "
              "not at all); the others have no output yet (--skip-existing goes on from there)",
              file=sys.stderr)
        return getattr(err, "exit_code", 130)
    for line in problems:
        print(f"colorlib: error: {line}", file=sys.stderr)
    done = f"; {len(plan.skipped)} already done, skipped" if plan.skipped else ""
    print(f"colorized {written} of {plan.total} image(s) into {args.out}{done}")
    return EXIT_FAILED if problems else 0


def _check_folder_path(folder: Path, flag: str) -> None:
    """``folder`` is a folder or can become one: not a file, not a link to nowhere."""
    if folder.is_symlink() and not folder.exists():
        raise CLIError(f"{flag}: {folder} is a symbolic link to {os.readlink(folder)}, which "
                       "does not exist")
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{flag}: {folder} exists and is not a folder")
    for parent in folder.parents:
        if parent.exists() and not parent.is_dir():
            raise CLIError(f"{flag}: cannot write to {folder}: {parent} is a file, where a "
                           "folder of that name should be")


def _ensure_writable_dir(folder: Path, flag: str) -> None:
    """Create ``folder`` and prove a file can be written there, before any work."""
    _check_folder_path(folder, flag)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CLIError(f"{flag}: cannot write to {folder} ({err.strerror or err})") from None


def cmd_demo(args) -> int:
    from colorlib.demo import run_demo

    _ensure_writable_dir(args.out, "--out")
    report = run_demo(args.out, size=args.size, steps=args.steps, device=args.device,
                      weights=args.weights, overwrite=args.overwrite)
    print(f"demo finished: see {report}")
    return 0


def cmd_export(args) -> int:
    import torch

    from colorlib.inference.export import export_generator

    out = export_generator(args.checkpoint, args.out,
                           torch.float32 if args.float32 else torch.float16, args.overwrite)
    before, after = args.checkpoint.stat().st_size, out.stat().st_size
    print(f"wrote {out}: {after / 2**20:.0f} MB (the checkpoint: {before / 2**20:.0f} MB)")
    return 0


def cmd_evaluate(args) -> int:
    from colorlib.inference.evaluate import (EvalSettings, evaluate_paths, find_eval_images,
                                             format_table, write_json)
    from colorlib.inference.output_rule import check_output, is_colorlib_report

    if args.json is not None:  # found out now, not after an hour of evaluating
        _ensure_writable_file(args.json, "--json")
    if args.data != "tiny" and not Path(args.data).exists():
        raise CLIError(f"--data: {args.data}: no such file or folder")
    paths = find_eval_images(args.data)
    replace = args.json is not None and check_output(
        args.json, "--json", overwrite=args.overwrite, what="a report",
        is_ours=lambda p: is_colorlib_report(p, "evaluate"),
        inputs=[("the --checkpoint", [args.checkpoint]), ("a photo of --data", paths)])
    settings = EvalSettings(max_side=args.size, max_pixels=_max_pixels(args), arch=args.arch,
                            model_size=args.model_size, temperature=args.temperature)
    report = evaluate_paths(paths, checkpoint=args.checkpoint, device=args.device,
                            progress=not args.no_progress, settings=settings)
    for item in report["failed"]:
        print(f"colorlib: error: {item['file']}: {item['error']} (not counted)", file=sys.stderr)
    for item in report["unusable"]:
        print(f"colorlib: warning: {item['file']}: {item['error']} (not counted)",
              file=sys.stderr)
    if not report["images"]:
        grey = sum(item["kind"] == "greyscale" for item in report["unusable"])
        if grey and grey == len(paths):
            raise CLIError(f"--data: {args.data}: all {grey} photo(s) are greyscale, so there is "
                           "no colour ground truth to score against; evaluate needs colour "
                           "photos (colorize is the command for black-and-white ones)")
        raise CLIError(f"--data: {args.data}: none of {len(paths)} image(s) could be read "
                       "and scored (each is named above)")
    print(f"{args.checkpoint.name} on {args.data}:")
    print(format_table(report))
    if args.json is not None:
        print(f"report written to {write_json(report, args.json, replace=replace)}")
    return EXIT_FAILED if report["failed"] or report["unusable"] else 0


def _ensure_writable_file(path: Path, flag: str) -> None:
    """Check that ``path`` can be written (its folder writable, not a folder itself, not a
    symbolic link to nowhere)."""
    if path.is_symlink() and not path.exists():
        raise CLIError(f"{flag}: {path} is a symbolic link to {os.readlink(path)}, which does "
                       "not exist")
    if path.is_dir():
        raise CLIError(f"{flag}: {path} is a folder; give a file name, e.g. {path / 'report.json'}")
    _ensure_writable_dir(path.parent, flag)
    if path.exists() and not os.access(path, os.W_OK):
        raise CLIError(f"{flag}: cannot write to {path} (permission denied)")


COMMANDS = {"demo": cmd_demo, "train": cmd_train, "colorize": cmd_colorize,
            "evaluate": cmd_evaluate, "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # a command line never needs a window
    library: list = []  # other packages' warnings, shown once the command has succeeded
    try:
        with _sigterm_stops(), _library_warnings(library, args.debug):
            from colorlib.system.environment_variables import check_environment

            for note in check_environment():  # bad values raise, naming the variable
                print(f"colorlib: warning: {note}", file=sys.stderr)
            if args.command not in ("train", "export"):  # train_stage does it for its device
                from colorlib.system.device import DevicePolicy

                DevicePolicy.for_inference(args.device).prepare_process()
            with _one_line_image_warnings([]):
                code = COMMANDS[args.command](args)
        for line in library:
            print(f"colorlib: warning: {line}", file=sys.stderr)
        return code
    except KeyboardInterrupt as err:
        print(f"colorlib: {_interrupted(args, err)}", file=sys.stderr)
        return getattr(err, "exit_code", 130)
    except Exception as err:  # noqa: BLE001 - the one place errors become messages
        if args.debug:
            raise
        print(f"colorlib: error: {_describe(err)}", file=sys.stderr)
        return EXIT_ERROR


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, Kaggle stopping a session, ``kill PID``) outside a training step:
    handled like Ctrl-C, so locks are released and temporary files removed on the way out."""

    signal = "SIGTERM"
    exit_code = 128 + 15


@contextlib.contextmanager
def _sigterm_stops():
    """While a command runs, SIGTERM raises :class:`Terminated` instead of ending the process
    on the spot (training defers it to the end of the step, :class:`colorlib.training.run_safety.StepGuard`).
    Left alone where someone else already handles or ignores SIGTERM, and off the main thread."""
    import threading

    sigterm = getattr(signal, "SIGTERM", None)
    if (sigterm is None or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(sigterm) is not signal.SIG_DFL):
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    signal.signal(sigterm, stop)
    try:
        yield
    finally:
        signal.signal(sigterm, signal.SIG_DFL)


@contextlib.contextmanager
def _library_warnings(collected: list, debug: bool):
    """Other packages' warnings (torch, Pillow, ...) as one plain line each, after the command.

    A library's ``UserWarning`` arrives with a site-packages path and a line
    of source code; printed at once, it comes before colorlib's own
    one-line error and reads as the cause. So each is collected as ``message
    (Category from package)``, once, and shown only if the command succeeds;
    ``--debug`` keeps Python's usual display. colorlib's own warnings
    (:class:`colorlib.photos.image_files.ColorlibWarning`) are shown as they come by
    :func:`_one_line_image_warnings`.
    """
    if debug:
        yield
        return
    with warnings.catch_warnings():
        def collect(message, category, filename, lineno, file=None, line=None):
            text = f"{str(message).strip().splitlines()[0] if str(message).strip() else ''} " \
                   f"({category.__name__} from {_package_of(filename)})"
            if text not in collected:
                collected.append(text)

        warnings.showwarning = collect
        yield


def _package_of(filename: str) -> str:
    """The package a warning came from: ``.../site-packages/torch/x.py`` -> ``torch``."""
    parts = Path(str(filename)).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-1]:
            return Path(parts[parts.index(marker) + 1]).stem
    if "colorlib" in parts[:-1]:
        return "colorlib"
    return Path(str(filename)).stem or "Python"


def _interrupted(args, err: KeyboardInterrupt) -> str:
    """What a Ctrl-C or SIGTERM left behind, truthfully, per command (colorize says it itself)."""
    from colorlib.training.run_safety import TrainingInterrupted

    how = "interrupted" if getattr(err, "signal", "SIGINT") == "SIGINT" \
        else f"stopped by {err.signal}"
    if args.command == "demo":
        return (f"demo {how}; every file it wrote so far is listed in "
                f"{args.out / '.colorlib-manifest.json'}")
    if isinstance(err, TrainingInterrupted):
        return str(err)
    if args.command == "train":
        return f"{how}; nothing was saved after the last checkpoint written (if any)"
    return f"{how}; nothing was written"


def _describe(err: Exception) -> str:
    """One line for the user; unexpected errors keep their type as a hint."""
    from colorlib.photos.image_files import ImageReadError
    from colorlib.training.checkpoint import CheckpointError

    expected = (CLIError, CheckpointError, ImageReadError, FileNotFoundError, FileExistsError,
                NotADirectoryError, PermissionError, ValueError, OSError, RuntimeError)
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, expected) and text:
        return text
    return f"{type(err).__name__}: {text} (run with --debug for the traceback)"


if __name__ == "__main__":
    raise SystemExit(main())
