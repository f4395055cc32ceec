from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import storage.ratings
from adasam.predictor import Predictor
from storage import get_correction, get_prediction, load_correction_masks, ratings_of, stats
from studio import pipeline
from studio.catalog import ModelChoice
from studio.errors import StudioError
from studio.rating import parse_rating
from studio.services import Services
from studio.state import CaseState
from studio.submission import SubmissionLedger, submit
from tests.studio.conftest import new_case

RATING = parse_rating(4, "minor_edits", ["completeness"], "fine")


@pytest.fixture(scope="module")
def ran(studio_bundle_dir: Path) -> CaseState:
    predictor = Predictor.from_dir(studio_bundle_dir)
    choice = ModelChoice("custom", studio_bundle_dir, "tiny", "0", ("liver", "kidney"), False, None)
    state = pipeline.run_pipeline(new_case(), predictor, choice, ["liver", "kidney"])
    work = state.work
    assert work is not None
    return state.with_work(pipeline.choose_candidate(work, 1))


def _final(state: CaseState) -> np.ndarray:
    work = state.work
    assert work is not None and work.mask is not None
    final = work.mask.copy()
    final[:10, :10] = ~final[:10, :10]
    return final


def test_submission_stores_prediction_correction_and_rating(
    services: Services, ran: CaseState
) -> None:
    final = _final(ran)
    new, receipt, repeated = submit(
        services.store,
        services.ledger,
        ran,
        annotator="dr.a",
        rating=RATING,
        final_mask=final,
        now=ran.loaded_at + 42.0,
    )
    assert not repeated and new.receipt("liver") == receipt
    prediction = get_prediction(services.store, receipt.prediction_id)
    assert prediction.structure == "liver" and len(prediction.candidates) == 3
    assert prediction.cam_summary["prompt_source"] == "cam"
    correction = get_correction(services.store, receipt.correction_id)
    assert correction.annotator == "dr.a" and correction.seconds == pytest.approx(42.0)
    assert correction.candidate_id == prediction.candidates[1].id, "the chosen candidate"
    masks = load_correction_masks(services.store, receipt.correction_id)
    work = ran.work
    assert work is not None and work.original is not None
    assert np.array_equal(masks.original, work.original.mask)
    assert np.array_equal(masks.final, final)
    (rating,) = ratings_of(services.store, candidate_id=prediction.candidates[1].id)
    assert (rating.score, rating.verdict, rating.annotator) == (4, "minor_edits", "dr.a")
    assert rating.rubric["completeness"] is True and rating.comment == "fine"
    assert rating.seconds == pytest.approx(42.0) and rating.edits is None  # time on the case
    assert receipt.dice == pytest.approx(correction.dice)


def test_a_second_submit_of_the_same_work_stores_nothing(
    services: Services, ran: CaseState
) -> None:
    first, receipt, _ = submit(
        services.store, services.ledger, ran, annotator="a", rating=RATING, final_mask=_final(ran)
    )
    # the same session again (state carries the receipt) and a stale copy of the state
    for state in (first, ran):
        _, again, repeated = submit(
            services.store,
            services.ledger,
            state,
            annotator="a",
            rating=RATING,
            final_mask=_final(ran),
        )
        assert repeated and again == receipt
    counts = stats(services.store)
    assert (counts.predictions, counts.corrections, counts.ratings) == (1, 1, 1)


def test_a_submission_in_progress_refuses_a_second_one() -> None:
    ledger = SubmissionLedger()
    progress = ledger.begin(("case", "liver"))
    with pytest.raises(StudioError, match="being saved"):
        ledger.begin(("case", "liver"))
    ledger.end(progress)
    assert ledger.begin(("case", "liver")) is progress


def test_a_retry_after_a_failure_resumes_without_duplicates(
    services: Services, ran: CaseState, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = storage.ratings.record_rating

    def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise storage.StorageError("database is locked")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("studio.submission.record_rating", flaky)
    with pytest.raises(storage.StorageError):
        submit(
            services.store,
            services.ledger,
            ran,
            annotator="a",
            rating=RATING,
            final_mask=_final(ran),
        )
    _, receipt, repeated = submit(
        services.store, services.ledger, ran, annotator="a", rating=RATING, final_mask=_final(ran)
    )
    assert not repeated and receipt.rating_id > 0
    counts = stats(services.store)
    assert (counts.predictions, counts.corrections, counts.ratings) == (1, 1, 1)


def test_a_mask_of_the_wrong_shape_is_refused(services: Services, ran: CaseState) -> None:
    with pytest.raises(StudioError, match="does not match"):
        submit(
            services.store,
            services.ledger,
            ran,
            annotator="a",
            rating=RATING,
            final_mask=np.zeros((5, 5), bool),
        )
