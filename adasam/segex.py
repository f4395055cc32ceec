"""SegEx over storage: rating rows for the statistics, and the LLM observer on stored cases.

The command ``python -m adasam segex`` (:mod:`adasam.commands.segex`) and the studio's Quality
tab use these. This is the one place where the ML core meets storage, so ``storage`` is
imported inside the functions (``import adasam`` never loads it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from adasam.agreement import RatingRow

if TYPE_CHECKING:
    from adasam.llm_observer import LlmConfig, LlmOutcome
    from storage import Store


def public_endpoint(endpoint: str) -> str:
    """The endpoint without any user:password part (what is stored with a rating)."""
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def rating_rows(
    store: Store, *, study: str | None = None, structure: str | None = None
) -> list[RatingRow]:
    """The ratings that count, as :class:`~adasam.agreement.RatingRow` s."""
    from storage import segex_rows

    return [
        RatingRow(
            item=r.item,
            rater=r.rater,
            kind=r.kind,
            score=r.score,
            verdict=r.verdict,
            structure=r.structure,
            dice=r.dice,
        )
        for r in segex_rows(store, study=study, structure=structure)
    ]


def rate_and_store(store: Store, config: LlmConfig, candidate_id: int) -> LlmOutcome:
    """Rate one stored candidate with the LLM observer and store the rating or the failure.

    Only the de-identified display image and the candidate mask are sent (with the
    structure's name and the modality).
    """
    import storage
    from adasam.llm_observer import rate_case

    slice_record, structure = storage.candidate_context(store, candidate_id)
    display = storage.load_display(store, slice_record)
    mask = storage.load_candidate_mask(store, candidate_id)
    outcome = rate_case(config, display, mask, structure=structure, modality=slice_record.modality)
    endpoint = public_endpoint(config.endpoint)
    if outcome.rating is not None:
        storage.record_rating(
            store,
            observer=storage.LlmObserver(
                outcome.model, outcome.prompt_version, endpoint, outcome.latency_ms
            ),
            candidate_id=candidate_id,
            score=outcome.rating.score,
            verdict=outcome.rating.verdict,
            rubric=outcome.rating.rubric,
            comment=outcome.rating.rationale,
        )
    else:
        storage.record_llm_failure(
            store,
            model=outcome.model,
            endpoint=endpoint,
            prompt_version=outcome.prompt_version,
            reason=outcome.failure or "unknown failure",
            candidate_id=candidate_id,
            latency_ms=outcome.latency_ms,
        )
    return outcome
