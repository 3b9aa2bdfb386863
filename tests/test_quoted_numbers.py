"""Every number quoted from a training run agrees with colorlib/teaching/published_results.json.

Prose marks a quoted number with the key it comes from, e.g.
``24.26<!--q:scores.colorlib_pretrain.psnr-->`` (``*100`` after the key for a
share shown in percent). A rerun that changes the scores makes this test fail
until the prose follows.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from colorlib.teaching.published_results import (MODEL_LABELS, RESULTS_FILE, ResultsError, agrees,
                                                 load_results, lookup, quoted_numbers,
                                                 scores_table, split_source)

ROOT = Path(__file__).resolve().parents[1]
# Results files other than the published one, by the prefix their markers use.
SOURCES: dict[str, Path] = {  # benchmarks/before_after.py's, quoted in benchmarks/RESULTS.md
    "before_after": ROOT / "benchmarks" / "before_after.json",
    "before_after_cpu_amp": ROOT / "benchmarks" / "before_after_cpu_amp.json",
}


def prose_files() -> dict[str, str]:
    texts = {}
    for path in [ROOT / "README.md", ROOT / "figures" / "README.md",
                 ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.exists():
            texts[str(path.relative_to(ROOT))] = path.read_text()
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        texts[str(nb.relative_to(ROOT))] = "\n".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return texts


QUOTES = [(name, *q) for name, text in prose_files().items() for q in quoted_numbers(text)]


def test_results_file_exists_and_ships_with_the_package():
    """The notebooks in a fresh Colab VM read it from the installed package: it must exist,
    be named in pyproject's package data, and hold a run's numbers."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    assert RESULTS_FILE.exists(), f"{RESULTS_FILE} is missing (python benchmarks/long_run.py report)"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert RESULTS_FILE.name in pyproject["tool"]["setuptools"]["package-data"]["colorlib.teaching"]
    results = load_results()
    assert results["schema"] == 1
    assert results["settings"]["train_photos"] > 0 and results["settings"]["val_photos"] > 0
    grey = results["scores"]["greyscale"]
    assert 0 < grey["psnr"] < 60 and grey["grey_fraction"] == 1.0
    for stage in results["stages"].values():
        assert stage["steps"] > 0 and stage["epoch_log"]


def test_every_quoted_number_matches_results():
    wrong = []
    for where, written, marked, scale in QUOTES:
        source, key = split_source(marked)
        if source is not None and source not in SOURCES:
            wrong.append(f"{where} quotes {written} from {source!r}, which is no results file")
            continue
        path = SOURCES.get(source, RESULTS_FILE)
        if not path.exists():
            wrong.append(f"{where} quotes {written} for {key} but there is no {path.name}")
            continue
        try:
            value = lookup(load_results(path), key)
        except ResultsError as err:
            wrong.append(f"{where}: {err}")
            continue
        if not agrees(written, value, scale):
            wrong.append(f"{where} quotes {written} for {key}, the results file says {value}"
                         + (f" (x{scale})" if scale != 1 else ""))
    assert not wrong, "\n".join(wrong)


def test_prose_is_scanned():
    """The scan reaches the README and every notebook's markdown (or a quote could hide)."""
    names = set(prose_files())
    assert "README.md" in names and "figures/README.md" in names
    assert sum(n.startswith("notebooks/") for n in names) >= 7


def test_markers_may_name_another_results_file():
    text = "145<!--q:figures_run:training.colorlib_baseline.steps--> and 3<!--q:a.b-->"
    assert [split_source(k) for _, k, _ in quoted_numbers(text)] == [
        ("figures_run", "training.colorlib_baseline.steps"), (None, "a.b")]


def test_marker_parsing_and_rounding():
    text = "PSNR 24.26 dB<!--q:a.b--> and 61.6%<!--q:c*100--> and 6,346<!--q:n-->"
    assert list(quoted_numbers(text)) == [("24.26", "a.b", 1), ("61.6", "c", 100),
                                          ("6,346", "n", 1)]
    assert agrees("24.26", 24.2612) and not agrees("24.26", 24.2662)
    assert agrees("61.6", 0.6158, 100) and not agrees("61.6", 0.6158)
    assert agrees("6,346", 6346) and not agrees("6,346", 6345)


def test_lookup_names_missing_key():
    with pytest.raises(ResultsError, match="'scores.nope.psnr'"):
        lookup({"scores": {}}, "scores.nope.psnr")
    assert lookup({"a": [{"b": 3}]}, "a.0.b") == 3


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ResultsError, match="long_run.py report"):
        load_results(tmp_path / "none.json")


def test_scores_table_rows_follow_the_file():
    results = {"scores": {"greyscale": {"psnr": 23.7, "ssim": 0.953, "auc": 89.99,
                                        "colorfulness": 0.0, "delta_colorfulness": -34.9,
                                        "grey_fraction": 1.0}}}
    results["scores"]["colorlib_pretrain"] = {"psnr": 24.5, "ssim": 0.95, "auc": 91.0,
                                              "colorfulness": 12.25, "delta_colorfulness": 20.0,
                                              "grey_fraction": 0.5}
    lines = scores_table(results, ["colorlib_pretrain", "greyscale", "absent"]).splitlines()
    assert len(lines) == 4  # head, rule, one row per scored key asked for, in that order
    assert lines[2] == "| ResNet18 U-Net, L1 pretraining | 24.50 | 0.950 | 91.00 | 12.2 | +20.0 | 50.0 |"
    assert lines[3] == "| greyscale (ab = 0) | 23.70 | 0.953 | 89.99 | 0.0 | -34.9 | 100.0 |"
    results["scores"]["colorlib_gan_e1"] = dict(results["scores"]["colorlib_pretrain"])
    default = scores_table(results).splitlines()  # every labelled model, greyscale first
    assert [row.split(" | ")[0] for row in default[2:]] == [
        "| greyscale (ab = 0)", "| ResNet18 U-Net, L1 pretraining"]  # no raw epoch copy


README_ROWS = ("greyscale", "colorlib_baseline", "colorlib_pretrain", "colorlib_gan",
               "seed_pretrain")


def readme_results_table() -> list[list[str]]:
    """The first markdown table under the README's "## Results" heading, as rows of cells."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows, "README's Results section has no table"
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_readme_results_table_has_the_models_and_metrics_quoted_from_the_file():
    """Issue 19: rows greyscale, baseline, L1, GAN, seed; columns PSNR, SSIM, AuC, CF, ΔCF,
    near-grey %; every number quoted from the results file with its own key."""
    head, rule, *rows = readme_results_table()
    assert head[1:] == ["PSNR dB", "SSIM", "AuC %", "CF", "ΔCF", "near-grey px %"]
    assert set(rule) <= {"---"}
    scored = load_results()["scores"]
    for key in README_ROWS:
        words = MODEL_LABELS[key]
        row = next((r for r in rows if r[0] == words), None)
        assert row is not None, f"README results table has no {words!r} row"
        if key not in scored:  # a partial run: the row says so instead of showing numbers
            assert load_results()["status"] == "partial" and "not finished" in row[1], row
            continue
        for cell, metric in zip(row[1:], ("psnr", "ssim", "auc", "colorfulness",
                                          "delta_colorfulness", "grey_fraction")):
            quotes = list(quoted_numbers(cell))
            assert len(quotes) == 1 and split_source(quotes[0][1]) == (
                None, f"scores.{key}.{metric}"), f"{words} / {metric}: {cell!r}"
