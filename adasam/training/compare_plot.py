"""The comparison as a picture: Dice per method at each labeled budget, one panel per
structure, with the zero-shot LiteMedSAM GT-box reference as a dashed line."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class _Row(Protocol):  # adasam.training.compare.Row, without the import cycle
    kind: str
    labeled: str
    method: str
    backbone: str
    dice: dict[str, tuple[float, float]]


def label(row: _Row) -> str:
    """The bar's name: the method, and the classifier when there are several."""
    return row.method if not row.backbone else f"{row.method} · {row.backbone}"


def plot_rows(rows: Sequence[_Row], path: Path) -> Path:
    """Write ``path`` (PNG): for each (kind, structure) a panel of grouped bars (mean Dice,
    the standard deviation over test slices as a whisker) per budget and method; the
    zero-shot rows (budget ``none``) as a dashed line across the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r.kind, s) for r in rows for s in r.dice))
    budgets = list(dict.fromkeys(r.labeled for r in rows if r.labeled != "none"))
    names = list(dict.fromkeys(label(r) for r in rows if r.labeled != "none"))
    fig, axes = plt.subplots(
        1, max(1, len(panels)), figsize=(4.2 * max(1, len(panels)), 4.2), squeeze=False
    )
    width = 0.8 / max(1, len(names))
    for ax, (kind, structure) in zip(axes[0], panels, strict=False):
        for j, name in enumerate(names):
            means, stds = [], []
            for budget in budgets:
                hit = [
                    r.dice[structure]
                    for r in rows
                    if (r.kind, r.labeled, label(r)) == (kind, budget, name) and structure in r.dice
                ]
                mean, std = hit[0] if hit else (math.nan, 0.0)
                means.append(0.0 if math.isnan(mean) else mean)
                stds.append(0.0 if math.isnan(std) else std)
            xs = [i + (j - (len(names) - 1) / 2) * width for i in range(len(budgets))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=name, error_kw={"lw": 0.6})
        for r in rows:
            if r.kind == kind and r.labeled == "none" and structure in r.dice:
                ax.axhline(r.dice[structure][0], ls="--", color="k", lw=1, label=r.method)
        ax.set_xticks(range(len(budgets)), [f"{b} labeled" for b in budgets])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("Dice (test slices showing it)")
        ax.set_title(f"{kind}: {structure}")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.12 + 0.04 * (len(labels) // 5), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
