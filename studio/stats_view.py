"""The statistics tab: what storage holds, as a short text and a plot."""

from __future__ import annotations

from matplotlib.figure import Figure

from storage import StorageStats
from studio.rating import VERDICT_LABELS

VERDICT_COLOURS = {
    "accept": "#2e9d4f",
    "minor_edits": "#8cc63f",
    "major_edits": "#f2a541",
    "reject": "#d9534f",
}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def stats_markdown(
    s: StorageStats, *, per_annotator_visible: bool = True, viewer: str | None = None
) -> str:
    """Cases done, effort and agreement, in a few lines.

    Corrections per annotator are listed only when ``per_annotator_visible`` (the admin role);
    otherwise the line gives the number of annotators and the ``viewer``'s own count."""
    if per_annotator_visible:
        per_annotator = ", ".join(f"{k} {v}" for k, v in s.corrections_per_annotator.items()) or "—"
    else:
        mine = s.corrections_per_annotator.get(viewer or "", 0) if viewer else None
        per_annotator = (
            f"{len(s.corrections_per_annotator)} annotators"
            + ("" if mine is None else f"; yours: {mine}")
            + " (the list per annotator is for administrators)"
        )
    verdicts = ", ".join(
        f"{label} {s.ratings_per_verdict.get(value, 0)}" for label, value in VERDICT_LABELS.items()
    )
    human = s.mean_score_by_observer.get("human")
    return "\n".join(
        [
            f"- **Cases done** (corrections): {s.corrections} of {s.slices} stored slices",
            f"- **Ratings**: {s.ratings} ({verdicts}); mean SegEx score {_fmt(human, 2)}",
            f"- **Mean Dice original → final**: {_fmt(s.mean_dice_original_to_final)} "
            "(1 = no change needed)",
            f"- **Mean changed pixels**: {_fmt(s.mean_changed_pixels, 0)}; mean time per "
            f"correction {_fmt(s.mean_seconds_per_correction, 0)} s",
            f"- **Corrections per annotator**: {per_annotator}",
            f"- **Active model version**: {s.active_model_version or 'none (shipped model)'}",
        ]
    )


def stats_figure(s: StorageStats) -> Figure:
    """Ratings per verdict (bars) and the mean Dice between original and final masks."""
    fig = Figure(figsize=(7.5, 3.0), layout="constrained")
    ax_verdict, ax_dice = fig.subplots(1, 2, width_ratios=(3, 1))
    labels = list(VERDICT_LABELS)
    values = [s.ratings_per_verdict.get(VERDICT_LABELS[k], 0) for k in labels]
    ax_verdict.bar(labels, values, color=[VERDICT_COLOURS[VERDICT_LABELS[k]] for k in labels])
    ax_verdict.set_title("SegEx ratings per verdict")
    ax_verdict.set_ylabel("ratings")
    ax_verdict.yaxis.get_major_locator().set_params(integer=True)
    dice = s.mean_dice_original_to_final
    ax_dice.bar(["mean Dice"], [0.0 if dice is None else dice], color="#3b7dd8")
    ax_dice.set_ylim(0, 1)
    ax_dice.set_title("original → final")
    if dice is None:
        ax_dice.text(0, 0.5, "no corrections", ha="center", va="center")
    return fig
