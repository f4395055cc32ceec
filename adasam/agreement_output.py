"""The agreement report as text, CSV tables and PNG plots (see :mod:`adasam.agreement`)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from matplotlib.figure import Figure

from adasam.agreement import ALL, SCALE, AgreementReport, PairStats, RatingRow


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def report_text(report: AgreementReport) -> str:
    """The statistics as aligned plain-text tables (what ``segex report`` prints)."""
    lines = ["Groups (Krippendorff's alpha ordinal; ICC(2,1) on items every rater rated)"]
    lines.append(
        f"  {'structure':<12} {'group':<11} {'raters':>6} {'items':>5} {'alpha':>7} "
        f"{'ICC(2,1)':>8} {'95% CI':>14} {'ICC n':>5}"
    )
    for g in report.groups:
        ci = "—" if g.icc21_ci95 is None else f"[{g.icc21_ci95[0]:.2f}, {g.icc21_ci95[1]:.2f}]"
        lines.append(
            f"  {g.structure:<12} {g.group:<11} {g.raters:>6} {g.items:>5} "
            f"{_f(g.alpha_ordinal):>7} {_f(g.icc21):>8} {ci:>14} {g.icc_items:>5}"
        )
    lines.append("")
    lines.append("Pairs (quadratic-weighted kappa; exact / ±1 score agreement; verdicts)")
    lines.append(
        f"  {'structure':<12} {'rater A':<16} {'rater B':<16} {'kind':<11} {'n':>4} "
        f"{'kappa_qw':>8} {'exact':>6} {'±1':>6} {'verdict':>7} {'v.kappa':>7}"
    )
    for p in report.pairs:
        lines.append(
            f"  {p.structure:<12} {p.rater_a:<16} {p.rater_b:<16} {p.pair_kind:<11} {p.n:>4} "
            f"{_f(p.kappa_quadratic):>8} {_f(p.exact_agreement, 2):>6} "
            f"{_f(p.within_one_agreement, 2):>6} {_f(p.verdict_agreement, 2):>7} "
            f"{_f(p.verdict_kappa):>7}"
        )
    lines.append("")
    lines.append("Raters (Spearman between score and Dice(original, final))")
    lines.append(
        f"  {'structure':<12} {'rater':<16} {'kind':<6} {'ratings':>7} {'mean':>5} "
        f"{'rho':>7} {'p':>8} {'pairs':>5}"
    )
    for r in report.raters:
        lines.append(
            f"  {r.structure:<12} {r.rater:<16} {r.kind:<6} {r.ratings:>7} "
            f"{_f(r.mean_score, 2):>5} {_f(r.spearman_score_dice):>7} {_f(r.spearman_p, 4):>8} "
            f"{r.dice_pairs:>5}"
        )
    return "\n".join(lines)


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_csv(report: AgreementReport, rows: Sequence[RatingRow], out: Path) -> list[Path]:
    """``ratings.csv`` (one row per rating, for a statistician), ``pairs.csv``, ``groups.csv``,
    ``raters.csv`` in ``out`` (created); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    pair_rows: list[dict[str, object]] = []
    for p in report.pairs:
        row = {k: v for k, v in asdict(p).items() if k != "confusion"}
        row["confusion"] = ";".join(",".join(str(c) for c in line) for line in p.confusion)
        pair_rows.append(row)
    group_rows: list[dict[str, object]] = []
    for g in report.groups:
        row = asdict(g)
        ci = row.pop("icc21_ci95")
        row["icc21_ci95_low"], row["icc21_ci95_high"] = ci if ci is not None else (None, None)
        group_rows.append(row)
    tables = {
        "ratings.csv": [asdict(r) for r in rows],
        "pairs.csv": pair_rows,
        "groups.csv": group_rows,
        "raters.csv": [asdict(r) for r in report.raters],
    }
    paths = []
    for name, table in tables.items():
        _write_csv(out / name, table)
        paths.append(out / name)
    return paths


def confusion_figure(pairs: Sequence[PairStats]) -> Figure:
    """One 5×5 confusion heat map per pair (rows rater A, columns rater B)."""
    n = max(1, len(pairs))
    fig = Figure(figsize=(3.2 * n, 3.2), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, pair in zip(axes, pairs, strict=False):
        ax.imshow(pair.confusion, cmap="Blues", origin="lower")
        for i, line in enumerate(pair.confusion):
            for j, count in enumerate(line):
                if count:
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(SCALE)), [str(s) for s in SCALE])
        ax.set_yticks(range(len(SCALE)), [str(s) for s in SCALE])
        ax.set_xlabel(pair.rater_b)
        ax.set_ylabel(pair.rater_a)
        ax.set_title(f"κw {_f(pair.kappa_quadratic, 2)} (n={pair.n})", fontsize=9)
    if not pairs:
        axes[0].text(0.5, 0.5, "no pair of raters yet", ha="center", va="center")
        axes[0].set_axis_off()
    return fig


def score_dice_figure(rows: Sequence[RatingRow]) -> Figure:
    """Score (x, jittered) against Dice(original, final) (y), one colour per rater."""
    import numpy as np

    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    raters = sorted({r.rater for r in rows if r.dice is not None})
    for rater in raters:
        mine = [r for r in rows if r.rater == rater and r.dice is not None]
        x = np.array([r.score for r in mine], float) + rng.uniform(-0.15, 0.15, len(mine))
        ax.scatter(x, [r.dice for r in mine], s=14, alpha=0.7, label=rater)
    ax.set_xticks(list(SCALE))
    ax.set_xlabel("SegEx score")
    ax.set_ylabel("Dice(original, final)")
    ax.set_ylim(0, 1.02)
    if raters:
        ax.legend(fontsize=7)
    else:
        ax.text(3, 0.5, "no rated and corrected masks yet", ha="center", va="center")
    return fig


def write_plots(report: AgreementReport, rows: Sequence[RatingRow], out: Path) -> list[Path]:
    """``confusion.png`` (pairs over all structures) and ``score_vs_dice.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pairs = [p for p in report.pairs if p.structure == ALL]
    figures = {
        "confusion.png": confusion_figure(pairs),
        "score_vs_dice.png": score_dice_figure(rows),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
    return [out / name for name in figures]
