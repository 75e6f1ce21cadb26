"""RUN_DIR/report.md, report.json and the paper's figures (numpy + matplotlib, no TensorFlow).

Table 2 (per class) and Table 3 (defect-free) of Konovalenko et al. on the test split, for
(a) random crops and (b) whole frames, with the prevalence baseline and the paper's numbers beside.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from train.evaluation import ScoredSet
from train.metrics import DEFAULT_THRESHOLD_GRID, apply_thresholds, f1_curve, single_class_confusion

log = logging.getLogger(__name__)

REPORT_MD = "report.md"
REPORT_JSON = "report.json"
CURVES_PNG = "training_curves.png"
F1_PNG = "f1_vs_threshold.png"
CONFUSION_PNG = "confusion_matrix.png"

# Konovalenko et al., Tables 2 and 3 (test split of their 14830 relabelled images).
PAPER_TABLE2 = [
    {"acc": 0.976, "prc": 0.792, "rcl": 0.627, "f1": 0.700},
    {"acc": 0.945, "prc": 0.897, "rcl": 0.824, "f1": 0.859},
    {"acc": 0.993, "prc": 0.939, "rcl": 0.908, "f1": 0.923},
]
PAPER_TABLE3 = {"acc": 0.938, "prc": 0.944, "rcl": 0.973, "f1": 0.958}
PAPER_NOTE = (
    "The paper's numbers come from 14830 Severstal images re-labelled by experts into three "
    "classes; this run's data, labels and crop sampling differ, so compare them only as a "
    "reference point, not as a pass/fail target."
)
VIEW_TITLES = {
    "crops": "(a) random 256x256 crops",
    "frames": "(b) whole frames (max over tiles)",
}


def write_report(
    run_dir: Path,
    card,
    scored: dict[str, dict[str, ScoredSet]],
    history_csv: Path | None = None,
) -> dict:
    """Write report.md, report.json and the PNGs; `scored[split][view]` as from score_split."""
    run_dir = Path(run_dir)
    report = build_report(card)
    (run_dir / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n")
    figures = write_figures(run_dir, card, scored, history_csv)
    (run_dir / REPORT_MD).write_text(render_markdown(report, figures))
    log.info("wrote %s and %s", run_dir / REPORT_MD, run_dir / REPORT_JSON)
    return report


def build_report(card) -> dict:
    names = card.class_names
    return {
        "model": card.name,
        "arch": card.arch,
        "version": card.version,
        "classes": names,
        "thresholds": list(card.thresholds),
        "splits": card.data.get("split_sizes", {}),
        "test": card.metrics.get("test", {}),
        "validation": card.metrics.get("validation", {}),
        "paper": {
            "table2": {"classes": PAPER_TABLE2[: len(names)]},
            "table3": {"defect_free": PAPER_TABLE3},
            "note": PAPER_NOTE,
        },
    }


def write_figures(run_dir: Path, card, scored, history_csv) -> dict[str, str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    figures = {}
    if history_csv is not None and Path(history_csv).is_file():
        if plot_training_curves(Path(history_csv), run_dir / CURVES_PNG):
            figures["curves"] = CURVES_PNG
    if "validation" in scored:
        plot_f1_curves(
            scored["validation"]["crops"], card.class_names, card.thresholds, run_dir / F1_PNG
        )
        figures["f1"] = F1_PNG
    if "test" in scored:
        plot_confusion(
            scored["test"]["crops"], card.class_names, card.thresholds, run_dir / CONFUSION_PNG
        )
        figures["confusion"] = CONFUSION_PNG
    return figures


def read_history(path: Path) -> dict[str, np.ndarray]:
    """Columns of Keras' CSVLogger file as float arrays (missing values become NaN)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = rows[0].keys() if rows else []
    return {c: np.array([_float(r.get(c)) for r in rows]) for c in columns}


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def best_epoch(history: dict[str, np.ndarray]) -> int | None:
    """The epoch (from 1) of the lowest validation loss: the one model.keras was saved from."""
    losses = history.get("val_loss")
    if losses is None or not np.isfinite(losses).any():
        return None
    return int(history["epoch"][int(np.nanargmin(losses))])


def lr_drop_epochs(history: dict[str, np.ndarray]) -> list[int]:
    """Epochs (from 1) trained with a lower learning rate than the one before."""
    rates = history.get("learning_rate", history.get("lr"))
    if rates is None:
        return []
    return [int(history["epoch"][i]) for i in range(1, len(rates)) if rates[i] < rates[i - 1]]


def plot_training_curves(history_csv: Path, out: Path) -> bool:
    """Paper Fig. 2a,b: binary accuracy and focal loss per epoch, train vs validation."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    history = read_history(history_csv)
    if "epoch" not in history or not len(history["epoch"]):
        return False
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    epochs = history["epoch"]  # counted from 1 (train.callbacks.EpochCSVLogger)
    best = best_epoch(history)
    drops = lr_drop_epochs(history)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in (
        (axes[0], "binary_accuracy", "(a) binary accuracy"),
        (axes[1], "loss", "(b) focal loss"),
    ):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                ax.plot(epochs, history[key], marker="o", label=label)
        if best is not None:
            ax.axvline(best, color="tab:green", linestyle="--", alpha=0.7,
                       label=f"best epoch {best}")
        for n, epoch in enumerate(drops):
            ax.axvline(epoch, color="tab:red", linestyle=":", alpha=0.6,
                       label="learning rate halved" if n == 0 else None)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def plot_f1_curves(scored: ScoredSet, names: list[str], thresholds, out: Path) -> None:
    """Paper Fig. 2c: F1 against the threshold per class, with the chosen thresholds marked."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 4))
    for c, name in enumerate(names):
        curve = f1_curve(scored.labels[:, c], scored.scores[:, c], DEFAULT_THRESHOLD_GRID)
        chosen = f1_curve(scored.labels[:, c], scored.scores[:, c], [thresholds[c]])[0]
        label = f"{c + 1}: {name} (threshold {thresholds[c]:.2f}, F1 {chosen:.2f})"
        (line,) = ax.plot(DEFAULT_THRESHOLD_GRID, curve, label=label)
        ax.axvline(thresholds[c], color=line.get_color(), linestyle=":", alpha=0.8)
    ax.set_xlabel("threshold")
    ax.set_ylabel("F1 (validation crops)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_confusion(scored: ScoredSet, names: list[str], thresholds, out: Path) -> None:
    """Paper Fig. 3: confusion over test crops with at most one true class, row-normalised."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    matrix = single_class_confusion(scored.labels, apply_thresholds(scored.scores, thresholds))
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    true_labels = ["defect-free", *names]
    fig, ax = plt.subplots(figsize=(1.6 * len(true_labels) + 2, 1.2 * len(true_labels) + 1.5))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true row")
    for (i, j), count in np.ndenumerate(matrix):
        color = "white" if shares[i, j] > 0.5 else "black"
        ax.text(j, i, f"{count}\n{shares[i, j]:.0%}", ha="center", va="center", color=color)
    ax.set_xticks(range(matrix.shape[1]), [*true_labels, "several"], rotation=30, ha="right")
    ax.set_yticks(range(matrix.shape[0]), true_labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("test crops with at most one defect class")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def render_markdown(report: dict, figures: dict[str, str]) -> str:
    lines = [
        f"# Training report: {report['model']} ({report['arch']}, {report['version']})",
        "",
        f"Splits (images): {_splits_text(report['splits'])}. Thresholds (max F1 on validation "
        f"crops): {', '.join(f'{t:.2f}' for t in report['thresholds'])}.",
        "",
        "Metrics on the **test** split. *base* is the prevalence baseline: accuracy of always "
        "answering the majority, F1 of always answering \"present\" (2p/(1+p)). "
        + PAPER_NOTE,
        "",
    ]
    for view, title in VIEW_TITLES.items():
        table = report["test"].get(view)
        if not table:
            continue
        lines += [f"## {title}: {table['n']} samples", ""]
        lines += _table2(table, report["classes"]) + [""]
        lines += _table3(table) + [""]
    captions = {
        "curves": "Training curves (paper Fig. 2a,b)",
        "f1": "F1 against threshold per class, validation crops (paper Fig. 2c)",
        "confusion": "Confusion matrix, single-class test crops (paper Fig. 3)",
    }
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{captions[key]}]({name})\n\n*{captions[key]}*\n" for key, name in
                  figures.items()]
    return "\n".join(lines) + "\n"


def _splits_text(splits: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in splits.items()) or "n/a"


_HEADER = (
    "| {first} | n pos | acc | prc | rcl | F1 | base acc | base F1 | paper acc | paper prc "
    "| paper rcl | paper F1 |"
)
_RULE = "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"


def _row(label: str, m: dict, paper: dict | None) -> str:
    base = m["baseline"]
    ours = [m["acc"], m["prc"], m["rcl"], m["f1"], base["acc"], base["f1"]]
    theirs = [paper[k] for k in ("acc", "prc", "rcl", "f1")] if paper else [None] * 4
    cells = [f"{v:.3f}" for v in ours] + ["-" if v is None else f"{v:.3f}" for v in theirs]
    return f"| {label} | {m['support']} | " + " | ".join(cells) + " |"


def _table2(table: dict, names: list[str]) -> list[str]:
    lines = ["Table 2: defect classes", "", _HEADER.format(first="class"), _RULE]
    for c, (name, m) in enumerate(zip(names, table["classes"], strict=True)):
        paper = PAPER_TABLE2[c] if c < len(PAPER_TABLE2) else None
        lines.append(_row(f"{c + 1} {name}", m, paper))
    return lines


def _table3(table: dict) -> list[str]:
    return [
        "Table 3: defect-free",
        "",
        _HEADER.format(first="class"),
        _RULE,
        _row("defect-free", table["defect_free"], PAPER_TABLE3),
    ]


def format_summary(split_metrics: dict, names: list[str], split: str) -> str:
    """Plain-text F1 per class and defect-free, ours vs the prevalence baseline, per view."""
    lines = [f"{split} split: F1 (prevalence baseline F1)"]
    for view, table in split_metrics.items():
        cells = [
            f"{name} {m['f1']:.3f} ({m['baseline']['f1']:.3f})"
            for name, m in zip(names, table["classes"], strict=True)
        ]
        free = table["defect_free"]
        cells.append(f"defect-free {free['f1']:.3f} ({free['baseline']['f1']:.3f})")
        lines.append(f"  {view:6} n={table['n']:<6} " + " | ".join(cells))
    return "\n".join(lines)
