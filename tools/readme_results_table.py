"""Print the README's results table from colorlib/teaching/published_results.json, every number marked.

    python tools/readme_results_table.py   # paste the output under README's "## Results"

Models the file has not scored yet (a partial run) get a row that says so.
"""
from colorlib.teaching.published_results import (MODEL_LABELS, SCORE_COLUMNS, load_results,
                                                 scores_table)

ROWS = ("greyscale", "colorlib_baseline", "colorlib_pretrain", "colorlib_gan", "gan_best_epoch",
        "seed_pretrain", "colorlib_classify", "colorlib_classify_mean")
REQUIRED = ROWS[:-2]  # the classify stage (and its decoding ablation) is optional in the schedule


def readme_table() -> str:
    results = load_results()
    lines = scores_table(results, ["greyscale"]).splitlines()[:2]  # the head and the rule
    for key in ROWS:
        if key in results["scores"]:
            lines.append(scores_table(results, [key], marked=True).splitlines()[-1])
        elif key in REQUIRED:
            lines.append(f"| {MODEL_LABELS[key]} | not finished |" + " |" * (len(SCORE_COLUMNS) - 1))
    return "\n".join(lines)


if __name__ == "__main__":
    print(readme_table())
