"""Turn ``benchmarks/run.py``'s JSON into ``RESULTS.md`` and a bar chart of the ratios.

    python benchmarks/report.py results.json [--repeat other.json ...] [--md RESULTS.md] [--png results.png]

``--repeat``: further runs of the same command, whose ratios are listed
beside the main run's to show how much the numbers move between runs.

``--md`` and ``--png`` follow colorlib's output rule (``benchmarks/bench_outputs.py``):
decided before anything is drawn (one line naming the flag if unusable); never over an
input (the results JSON, a ``--repeat`` file), nor over a file colorlib did not write: a
markdown file without the marker below is the user's and is kept; a table and a plot this
script wrote earlier are replaced (``--md`` keeps its hand-written tail). Both are written
atomically, so a full disk keeps the earlier file and names it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_outputs import (CLIError, different, input_file, one_line_errors, output_file,
                           plot_output, save_plot, text_starting, write_text)

HERE = Path(__file__).resolve().parent

# The targets (colorlib / seed, same run), per measure and device type.
TARGETS = {"data_pipeline": 5.0, "pretrain_step": 1.3, "gan_step": 1.3, "inference_fullres": 2.0}

ORDER = ["data_pipeline", "data_pipeline_first_epoch", "lab_batch_conversion",
         "pretrain_step", "pretrain_step_vs_seed_malloc", "pretrain_step_cpu_amp",
         "gan_step", "gan_step_vs_seed_malloc", "gan_step_cpu_amp",
         "inference_fullres", "inference_fullres_vs_seed_malloc", "inference_fullres_amp"]
# Variants held to their measure's target: colorlib's opt-in bf16 against the same seed.
# (``*_vs_seed_malloc`` rows compare against a seed given colorlib's allocator settings:
# they explain the lead, they are not the target.)
TARGET_VARIANTS = ("", "_cpu_amp", "_amp")


# RESULTS.md's hand-written part (how it is measured, other measurements, the quality run)
# follows this line; a regenerated RESULTS.md keeps it as it is.
KEEP_MARKER = "<!-- Written by hand: benchmarks/report.py keeps everything below this line. -->"


def hand_written(md: Path | None) -> str:
    """The hand-written tail of an existing RESULTS.md (just the marker if there is none)."""
    text = md.read_text() if md is not None and md.is_file() else ""
    return text[text.index(KEEP_MARKER):].rstrip() if KEEP_MARKER in text else KEEP_MARKER


def target(name: str) -> float | None:
    for key, value in TARGETS.items():
        if any(name == key + suffix for suffix in TARGET_VARIANTS):
            return value
    return None


def measures(results: dict) -> list[tuple[str, dict]]:
    found = [(k, v) for k, v in results.items() if isinstance(v, dict) and "ratio" in v]
    return sorted(found, key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER))


def plot(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = measures(results)
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.4))
    names = [k for k, _ in rows][::-1]
    ratios = [v["ratio"] for _, v in rows][::-1]
    colours = ["#2a9d8f" if (target(n) is None or r >= target(n)) else "#e76f51"
               for n, r in zip(names, ratios)]
    ax.barh(names, ratios, color=colours)
    for i, (n, r) in enumerate(zip(names, ratios)):
        ax.text(max(r, target(n) or 0) * 1.05, i, f"{r:.2f}x", va="center", fontsize=9)
        if target(n) is not None:
            ax.plot([target(n)] * 2, [i - 0.4, i + 0.4], color="black", lw=1.5)
    ax.axvline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(min(0.5, min(ratios) * 0.8), max(ratios + [5.0]) * 1.6)
    ticks = [t for t in (0.5, 1, 2, 5, 10, 20, 50) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("colorlib / seed tutorial (throughput ratio, log scale; black tick = target)")
    meta = results["meta"]
    ax.set_title(f"{meta['device']} ({meta['machine']['cpu']}, {meta['machine']['cores']} cores), "
                 f"{meta['date'][:10]}", fontsize=9)
    fig.tight_layout()
    return save_plot(fig, path, dpi=120)


def repeats_table(results: dict, repeats: list[dict]) -> list[str]:
    rows = ["", "The same command run again (ratios colorlib / seed):", "",
            "| measure | this run | " + " | ".join(r["meta"]["date"] for r in repeats) + " |",
            "|---|---:|" + "---:|" * len(repeats)]
    for name, v in measures(results):
        others = [f"{r[name]['ratio']:.2f}x" if name in r else "" for r in repeats]
        rows.append(f"| `{name}` | {v['ratio']:.2f}x | " + " | ".join(others) + " |")
    return rows


TITLE = "# Speed: colorlib against the seed tutorial's pipeline"  # how a table of ours starts


def markdown(results: dict, png: str, repeats: list[dict] = (), tail: str = KEEP_MARKER) -> str:
    meta = results["meta"]
    m = meta["machine"]
    lines = [
        TITLE,
        "",
        f"Measured by `{meta['command']}` on {meta['date']}.",
        "",
        f"* machine: {m['cpu']}, {m['cores']} cores ({m['platform']}); device: **{meta['device']}**",
        f"* software: Python {m['python']}, PyTorch {m['torch']}, NumPy {m['numpy']}",
        f"* both peers: {meta['workers']} loader worker processes, {meta['threads']} torch "
        f"threads, batch {meta['batch']}, training at {meta['train_size_px']} px; "
        f"photos: {meta['data_images']} from {meta['images']}",
        f"* each measure alternates the peers after a warm-up; medians of {meta['rounds']} "
        f"rounds (every round is in the JSON); whole run {meta['seconds']:.0f} s",
        "",
        "| measure | seed | colorlib | unit | colorlib / seed | target | peak memory MB (seed / colorlib) |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for name, v in measures(results):
        goal = target(name)
        met = "" if goal is None else (" ✅" if v["ratio"] >= goal else " ❌")
        mem = v.get("peak_memory_mb")
        mem_txt = f"{mem['seed']:.0f} / {mem['colorlib']:.0f}" if mem else ""
        lines.append(f"| `{name}` | {v['seed']:.2f} | {v['colorlib']:.2f} | {v['unit']} | "
                     f"**{v['ratio']:.2f}x**{met} | {'' if goal is None else f'{goal:g}x'} | "
                     f"{mem_txt} |")
    if repeats:
        lines += repeats_table(results, list(repeats))
    mfu = [(k, v["mfu"]) for k, v in measures(results) if "mfu" in v]
    if mfu:
        lines += ["", "Model FLOP utilisation (FLOPs per step from `torch.utils.flop_counter`, "
                  "over the device's dense bf16 peak):", ""]
        lines += [f"* `{k}`: seed {u.get('seed', 0):.1%}, colorlib {u.get('colorlib', 0):.1%}"
                  for k, u in mfu]
    notes = [(k, v["note"]) for k, v in measures(results) if v.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + [f"* `{k}`: {n}" for k, n in notes]
    lines += ["", f"![ratios]({png})", "", tail, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", type=Path)
    p.add_argument("--md", type=Path, default=None, help="write the table here (markdown)")
    p.add_argument("--png", type=Path, default=HERE / "results.png")
    p.add_argument("--repeat", type=Path, nargs="*", default=[], help="other runs' JSON files")
    args = p.parse_args(argv)
    with one_line_errors("report.py"):
        inputs = [("the results JSON", [input_file(args.json, "json")]),
                  ("a --repeat file", [input_file(r, "--repeat") for r in args.repeat])]
        different({"--png": args.png, "--md": args.md})
        plot_output(args.png, "--png", inputs=inputs)
        if args.md is not None:
            output_file(args.md, "--md", is_ours=text_starting(TITLE, contains=KEEP_MARKER),
                        what="a results table of benchmarks/report.py", inputs=inputs)
        results = read_results(args.json, "json")
        repeats = [read_results(r, "--repeat") for r in args.repeat]
        plot(results, args.png)
        text = markdown(results, args.png.name, repeats, hand_written(args.md))
        if args.md is not None:
            write_text(args.md, text)
    print(text)
    return 0


def read_results(path: Path, flag: str) -> dict:
    """A results file of ``benchmarks/run.py`` (one line naming the flag if it is not one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CLIError(f"{flag}: {path}: not a results file of benchmarks/run.py "
                       f"({getattr(err, 'strerror', None) or err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("meta"), dict):
        raise CLIError(f"{flag}: {path}: not a results file of benchmarks/run.py (no meta)")
    return data


if __name__ == "__main__":
    raise SystemExit(main())
