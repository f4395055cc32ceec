"""Dashboard statistics: counts, correction effort, and ratings per verdict and observer."""

from __future__ import annotations

from sqlalchemy import func, select

from storage.models import (
    OBSERVER_KINDS,
    VERDICTS,
    Annotator,
    Correction,
    ModelVersion,
    Prediction,
    Rating,
    Slice,
)
from storage.records import StorageStats
from storage.store import Store


def stats(store: Store) -> StorageStats:
    """Counts, mean Dice original->final, and SegEx ratings per verdict (all in one snapshot)."""
    with store.read() as session:

        def count(model: type) -> int:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

        mean_dice, mean_changed, mean_seconds = session.execute(
            select(
                func.avg(Correction.dice),
                func.avg(Correction.changed_pixels),
                func.avg(Correction.seconds),
            )
        ).one()
        per_annotator = dict(
            session.execute(
                select(Annotator.name, func.count(Correction.id))
                .join(Correction, Correction.annotator_id == Annotator.id)
                .group_by(Annotator.name)
                .order_by(Annotator.name)
            ).all()
        )
        by_observer: dict[str, dict[str, int]] = {
            kind: dict.fromkeys(VERDICTS, 0) for kind in OBSERVER_KINDS
        }
        for kind, verdict, number in session.execute(
            select(Rating.observer_kind, Rating.verdict, func.count()).group_by(
                Rating.observer_kind, Rating.verdict
            )
        ):
            by_observer[kind][verdict] = int(number)
        mean_scores: dict[str, float | None] = dict.fromkeys(OBSERVER_KINDS)
        for kind, mean in session.execute(
            select(Rating.observer_kind, func.avg(Rating.score)).group_by(Rating.observer_kind)
        ):
            mean_scores[kind] = None if mean is None else float(mean)
        active = session.scalar(select(ModelVersion.name).where(ModelVersion.is_active.is_(True)))
        return StorageStats(
            slices=count(Slice),
            predictions=count(Prediction),
            corrections=count(Correction),
            ratings=count(Rating),
            annotators=count(Annotator),
            model_versions=count(ModelVersion),
            active_model_version=active,
            mean_dice_original_to_final=None if mean_dice is None else float(mean_dice),
            mean_changed_pixels=None if mean_changed is None else float(mean_changed),
            mean_seconds_per_correction=None if mean_seconds is None else float(mean_seconds),
            corrections_per_annotator={k: int(v) for k, v in per_annotator.items()},
            ratings_per_verdict={
                verdict: sum(by_observer[kind][verdict] for kind in OBSERVER_KINDS)
                for verdict in VERDICTS
            },
            ratings_per_verdict_by_observer=by_observer,
            mean_score_by_observer=mean_scores,
        )
