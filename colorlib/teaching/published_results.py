"""The published results: one JSON file that every number quoted from a training run comes from.

``benchmarks/long_run.py report`` writes ``colorlib/teaching/published_results.json``
(package data, so a notebook in a fresh Colab VM can read it); the README,
the notebooks' narration and ``figures/README.md`` quote from it, each
quoted number followed by a marker naming its key, e.g.
``24.26<!--q:scores.colorlib_pretrain.psnr-->``, and
``tests/test_quoted_numbers.py`` fails when a quoted number and the file
disagree. Taught in notebook 07 (evaluation) and shown in notebook 05
(the fine-tuning ablation).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

RESULTS_FILE = Path(__file__).with_name("published_results.json")

# (metric key, column title, format, scale) in the order tables show them.
SCORE_COLUMNS = (("psnr", "PSNR dB", "{:.2f}", 1), ("ssim", "SSIM", "{:.3f}", 1),
                 ("auc", "AuC %", "{:.2f}", 1), ("colorfulness", "CF", "{:.1f}", 1),
                 ("delta_colorfulness", "ΔCF", "{:+.1f}", 1),
                 ("grey_fraction", "near-grey px %", "{:.1f}", 100))

MODEL_LABELS = {
    "greyscale": "greyscale (ab = 0)",
    "colorlib_baseline": "pix2pix baseline (GAN + L1, from scratch)",
    "colorlib_pretrain": "ResNet18 U-Net, L1 pretraining",
    "colorlib_gan": "ResNet18 U-Net + GAN fine-tuning",
    "gan_lowlr": "fine-tuning, generator lr / 4",
    "gan_best_epoch": "fine-tuning, best epoch on validation",
    "seed_pretrain": "seed tutorial, L1 pretraining",
    "seed_gan": "seed tutorial, + GAN fine-tuning",
    "colorlib_classify": "ResNet18 U-Net, colour classes (T = 0.38)",
    "colorlib_classify_mean": "colour classes, decoded by the plain mean (T = 1)",
}

# A quoted number: digits (maybe signed, with thousands commas and decimals),
# an optional unit, then the marker with its dotted key and optional scale.
# The key may name another results file first (``<!--q:name:training.x.steps-->``), one
# that tests/test_quoted_numbers.py lists in its SOURCES; an unknown name fails that test.
QUOTE = re.compile(r"([+-]?\d[\d,]*(?:\.\d+)?)\s*(?:%|dB|px|min|s)?\s*"
                   r"<!--q:((?:[a-z_]+:)?[A-Za-z0-9_.\-]+)(?:\*(\d+))?-->")


class ResultsError(ValueError):
    """The results file is missing, unreadable or lacks a requested key."""


def load_results(path: str | Path | None = None) -> dict[str, Any]:
    """The published results as a dict (see ``benchmarks/long_run.py`` for the layout)."""
    path = Path(path) if path is not None else RESULTS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no results file; `python benchmarks/long_run.py report` "
                           "writes it from a finished run") from None
    except (OSError, ValueError) as err:
        raise ResultsError(f"{path}: unreadable results file ({err})") from None


def lookup(results: dict, key: str) -> Any:
    """``results["a"]["b"]`` for ``key="a.b"``; list items by index (``a.0.b``)."""
    node: Any = results
    for part in key.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ResultsError(f"results have no {key!r} (stopped at {part!r})") from None
    return node


def split_source(marked_key: str) -> tuple[str | None, str]:
    """``"figures_run:a.b"`` -> ``("figures_run", "a.b")``; an unprefixed key -> ``(None, key)``."""
    source, sep, key = marked_key.partition(":")
    return (source, key) if sep else (None, marked_key)


def quoted_numbers(text: str) -> Iterator[tuple[str, str, int]]:
    """Every ``(number as written, key, scale)`` marked in ``text``."""
    for m in QUOTE.finditer(text):
        yield m.group(1), m.group(2), int(m.group(3) or 1)


def agrees(written: str, value: float, scale: int = 1) -> bool:
    """Whether ``written`` is ``value * scale`` rounded to the decimals written."""
    digits = written.replace(",", "")
    decimals = len(digits.split(".")[1]) if "." in digits else 0
    return f"{float(value) * scale:.{decimals}f}" == f"{float(digits):.{decimals}f}"


def scores_table(results: dict | None = None, keys: Iterable[str] | None = None,
                 marked: bool = False) -> str:
    """A markdown table of the scores of ``keys`` (default: every scored model with a label,
    in :data:`MODEL_LABELS` order; a kept epoch's raw copy, such as ``colorlib_gan_e1``,
    appears as the variant that names it).

    ``marked=True`` follows every number with its quote marker (for prose that
    ``tests/test_quoted_numbers.py`` checks, such as the README's results table).
    """
    results = load_results() if results is None else results
    scores = results["scores"]
    keys = [k for k in (keys or MODEL_LABELS) if k in scores]
    head = "| model | " + " | ".join(c[1] for c in SCORE_COLUMNS) + " |"
    lines = [head, "|---|" + "---|" * len(SCORE_COLUMNS)]
    for key in keys:
        cells = []
        for metric, _, fmt, scale in SCORE_COLUMNS:
            cell = fmt.format(scores[key][metric] * scale)
            if marked:
                cell += f"<!--q:scores.{key}.{metric}" + (f"*{scale}" if scale != 1 else "") + "-->"
            cells.append(cell)
        lines.append(f"| {MODEL_LABELS.get(key, key)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# How each column of SCORE_COLUMNS is won: a higher value, a value nearer 0 (the photos'
# own colourfulness), or a near-grey share nearer the photos' own.
_BETTER = {"psnr": "higher", "ssim": "higher", "auc": "higher",
           "colorfulness": "nearer the photos'", "delta_colorfulness": "nearer 0",
           "grey_fraction": "nearer the photos'"}


def _distance(score: dict, metric: str) -> float:
    """How far ``score`` is from the best value of ``metric`` (smaller is better)."""
    value = float(score[metric])
    if _BETTER[metric] == "higher":
        return -value
    if _BETTER[metric] == "nearer 0":
        return abs(value)
    return abs(value - float(score[f"{metric}_truth"]))


def winners(results: dict, a: str, b: str) -> dict[str, str | None]:
    """For each scored metric, which of the models ``a`` and ``b`` does better (None: equal
    as the tables print it).

    PSNR, SSIM and AuC are won by the higher value; colourfulness and the
    near-grey share by the value nearer the photos' own; ΔCF by the value
    nearer 0. Notebook 04 uses it to say honestly which metric L1 regression
    and the classifier each win, from the published numbers.
    """
    scores = results["scores"]
    out: dict[str, str | None] = {}
    for metric, _, fmt, scale in SCORE_COLUMNS:
        da, db = _distance(scores[a], metric), _distance(scores[b], metric)
        same = fmt.format(da * scale) == fmt.format(db * scale)
        out[metric] = None if same else (a if da < db else b)
    return out


def winners_in_words(results: dict, a: str, b: str) -> str:
    """:func:`winners` as a sentence naming each model by its :data:`MODEL_LABELS` label."""
    columns = {metric: title for metric, title, _, _ in SCORE_COLUMNS}
    won = winners(results, a, b)
    parts = []
    for key in (a, b):
        names = [columns[m] for m, w in won.items() if w == key]
        parts.append(f"{MODEL_LABELS.get(key, key)} wins {', '.join(names) if names else 'nothing'}")
    ties = [columns[m] for m, w in won.items() if w is None]
    return "; ".join(parts) + (f"; equal on {', '.join(ties)}" if ties else "") + "."

