"""Repository functions on SQLite and PostgreSQL: what they store and what they refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import storage
from storage.errors import InvalidInputError, NotFoundError
from storage.store import Store

TABLES = ("annotators", "slices", "predictions", "candidates", "corrections", "ratings")


def snapshot(store: Store) -> tuple[dict[str, int], list[str]]:
    """Row counts of every table and the list of blobs: what a refused call must not change."""
    with store.engine.connect() as connection:
        counts = {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }
    return counts, sorted(store.blobs)


def test_record_slice_stores_description_and_pixels(store: Store, samples) -> None:
    pixels = samples.pixels((40, 50))
    record = samples.slice(
        pixels=pixels,
        modality="CT",
        units="HU",
        window_level=40.0,
        window_width=400.0,
        window_name="abdomen",
        source_format="dicom",
        source_name="/uploads/scan.dcm",
        metadata={"Modality": "CT", "SliceThickness": 2.5},
    )
    assert record.shape == (40, 50)
    assert record.spacing == (0.8, 0.7)
    assert (record.window_level, record.window_width, record.window_name) == (40, 400, "abdomen")
    assert record.source_name == "scan.dcm"
    assert record.metadata == {"Modality": "CT", "SliceThickness": 2.5}
    assert record.created_at.tzinfo is not None
    np.testing.assert_array_equal(storage.load_pixels(store, record), pixels)
    assert storage.load_display(store, record).shape == (40, 50, 3)
    assert storage.get_slice(store, record.content_hash) == record


def test_same_pixels_are_stored_once(store: Store, samples) -> None:
    pixels = samples.pixels()
    first = samples.slice(pixels=pixels, source_name="a.png")
    again = samples.slice(pixels=pixels, source_name="b.png")
    assert again == first
    assert snapshot(store)[0]["slices"] == 1


def test_prediction_correction_and_ratings(store: Store, samples) -> None:
    slice_record = samples.slice()
    prediction = samples.prediction(
        slice_record,
        class_probability=0.97,
        cam_summary={"peak": [20, 30], "area": 321},
        prompt_box=[10, 8, 50, 40],
        prompt_point=[30, 24, 1],
        cam_threshold=0.4,
        timings={"classifier": 0.05, "encoder": 1.2, "decoder": 0.04},
    )
    assert [c.rank for c in prediction.candidates] == [0, 1, 2]
    assert [c.score for c in prediction.candidates] == [0.91, 0.85, 0.6]
    assert storage.get_prediction(store, prediction.id) == prediction
    chosen = storage.load_candidate_mask(store, prediction.candidates[1].id)
    assert chosen.shape == slice_record.shape

    final = chosen.copy()
    final[:, :5] = True  # brush
    final[24, 32] = False  # eraser
    storage.ensure_annotator(store, "dr.rossi")
    started = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    correction = storage.record_correction(
        store,
        prediction_id=prediction.id,
        chosen_rank=1,
        final_mask=final,
        annotator="dr.rossi",
        seconds=42.5,
        clicks=3,
        started_at=started,
    )
    assert correction.candidate_id == prediction.candidates[1].id
    assert correction.changed_pixels == int(np.logical_xor(chosen, final).sum())
    expected_dice = 2 * np.logical_and(chosen, final).sum() / (chosen.sum() + final.sum())
    assert correction.dice == pytest.approx(expected_dice)
    assert correction.started_at == started
    stored = storage.load_correction_masks(store, correction.id)
    np.testing.assert_array_equal(stored.original, chosen)
    np.testing.assert_array_equal(stored.final, final)
    assert storage.get_correction(store, correction.id) == correction

    human = storage.record_rating(
        store,
        observer=storage.HumanObserver("dr.rossi"),
        correction_id=correction.id,
        score=5,
        verdict="accept",
        rubric={"boundary": "exact", "leakage": False},
        comment="good",
    )
    llm = storage.record_rating(
        store,
        observer=storage.LlmObserver("gpt-x", "segex-v2"),
        candidate_id=prediction.candidates[0].id,
        score=2,
        verdict="major_edits",
    )
    assert (human.observer_kind, human.annotator, human.rubric["leakage"]) == (
        "human",
        "dr.rossi",
        False,
    )
    assert (llm.observer_kind, llm.llm_model, llm.llm_prompt_version) == (
        "llm",
        "gpt-x",
        "segex-v2",
    )
    assert storage.ratings_of(store, correction_id=correction.id) == [human]
    assert storage.ratings_of(store, candidate_id=prediction.candidates[0].id) == [llm]


def test_stats(store: Store, samples) -> None:
    empty = storage.stats(store)
    assert (empty.corrections, empty.mean_dice_original_to_final) == (0, None)
    s = samples.slice()
    p = samples.prediction(s)
    c1 = samples.correction(p, annotator="a")
    c2 = samples.correction(p, annotator="b", final=np.zeros(s.shape, bool))
    storage.record_rating(
        store,
        observer=storage.HumanObserver("a"),
        correction_id=c1.id,
        score=4,
        verdict="minor_edits",
    )
    storage.record_rating(
        store,
        observer=storage.LlmObserver("m", "v1"),
        correction_id=c1.id,
        score=5,
        verdict="accept",
    )
    storage.record_rating(
        store,
        observer=storage.LlmObserver("m", "v1"),
        correction_id=c2.id,
        score=1,
        verdict="reject",
    )
    result = storage.stats(store)
    assert (result.slices, result.predictions, result.corrections, result.ratings) == (1, 1, 2, 3)
    assert result.annotators == 2
    assert result.mean_dice_original_to_final == pytest.approx((c1.dice + c2.dice) / 2)
    assert c2.dice == 0.0
    assert result.corrections_per_annotator == {"a": 1, "b": 1}
    assert result.ratings_per_verdict == {
        "accept": 1,
        "minor_edits": 1,
        "major_edits": 0,
        "reject": 1,
    }
    assert result.ratings_per_verdict_by_observer["llm"]["reject"] == 1
    assert result.mean_score_by_observer == {"human": 4.0, "llm": 3.0}


def test_annotators(store: Store) -> None:
    admin = storage.ensure_annotator(store, "boss", "admin")
    assert storage.ensure_annotator(store, "boss") == admin  # a login does not demote
    assert storage.set_role(store, "boss", "reviewer").role == "reviewer"
    assert [a.name for a in storage.list_annotators(store)] == ["boss"]
    with pytest.raises(InvalidInputError, match="role"):
        storage.ensure_annotator(store, "x", "superuser")


# ------------------------------------------------------------------ refusals change nothing


@pytest.fixture
def corrected(store: Store, samples):
    s = samples.slice()
    p = samples.prediction(s)
    c = samples.correction(p, annotator="ann")
    return s, p, c


def _refused(store: Store, error: type[Exception], match: str, call) -> None:
    before = snapshot(store)
    with pytest.raises(error, match=match):
        call()
    assert snapshot(store) == before


def test_wrong_shaped_masks_are_refused(store: Store, samples, corrected) -> None:
    s, p, _ = corrected
    h, w = s.shape
    _refused(
        store,
        InvalidInputError,
        "shape",
        lambda: storage.record_correction(
            store,
            prediction_id=p.id,
            chosen_rank=0,
            final_mask=np.zeros((w, h), bool),
            annotator="ann",
            seconds=1.0,
        ),
    )
    good = np.zeros((h, w), bool)
    _refused(
        store,
        InvalidInputError,
        "shape",
        lambda: storage.record_prediction(
            store,
            slice_hash=s.content_hash,
            structure="VL",
            candidates=[good, good, np.zeros((h + 1, w), bool)],
            scores=[1, 1, 1],
        ),
    )
    _refused(
        store,
        InvalidInputError,
        "binary",
        lambda: storage.record_correction(
            store,
            prediction_id=p.id,
            chosen_rank=0,
            final_mask=np.full((h, w), 7, np.uint8),
            annotator="ann",
            seconds=1.0,
        ),
    )


def test_unknown_references_are_refused(store: Store, samples, corrected) -> None:
    s, p, _ = corrected
    mask = np.zeros(s.shape, bool)
    _refused(
        store,
        NotFoundError,
        "unknown slice",
        lambda: storage.record_prediction(
            store, slice_hash="f" * 64, structure="VL", candidates=[mask], scores=[0.5]
        ),
    )
    _refused(
        store,
        NotFoundError,
        "unknown prediction",
        lambda: storage.record_correction(
            store, prediction_id=10**6, chosen_rank=0, final_mask=mask, annotator="ann", seconds=1
        ),
    )
    _refused(
        store,
        InvalidInputError,
        "no candidate of rank 5",
        lambda: storage.record_correction(
            store, prediction_id=p.id, chosen_rank=5, final_mask=mask, annotator="ann", seconds=1
        ),
    )
    _refused(
        store,
        NotFoundError,
        "unknown annotator",
        lambda: storage.record_correction(
            store, prediction_id=p.id, chosen_rank=0, final_mask=mask, annotator="nobody", seconds=1
        ),
    )
    _refused(
        store,
        NotFoundError,
        "unknown correction",
        lambda: storage.record_rating(
            store,
            observer=storage.HumanObserver("ann"),
            correction_id=10**6,
            score=3,
            verdict="accept",
        ),
    )
    _refused(
        store,
        NotFoundError,
        "unknown model version",
        lambda: storage.record_prediction(
            store,
            slice_hash=s.content_hash,
            structure="VL",
            candidates=[mask],
            scores=[0.5],
            model_version_id=999,
        ),
    )


@pytest.mark.parametrize("score", [0, 6, -1, 3.5, True, "4"])
def test_ratings_out_of_range_are_refused(store: Store, corrected, score: object) -> None:
    _, _, c = corrected
    _refused(
        store,
        InvalidInputError,
        "SegEx score",
        lambda: storage.record_rating(
            store,
            observer=storage.HumanObserver("ann"),
            correction_id=c.id,
            score=score,
            verdict="accept",
        ),
    )


def test_bad_rating_fields_are_refused(store: Store, corrected) -> None:
    _, p, c = corrected
    human = storage.HumanObserver("ann")
    _refused(
        store,
        InvalidInputError,
        "verdict",
        lambda: storage.record_rating(
            store, observer=human, correction_id=c.id, score=3, verdict="fine"
        ),
    )
    _refused(
        store,
        InvalidInputError,
        "exactly one",
        lambda: storage.record_rating(
            store,
            observer=human,
            correction_id=c.id,
            candidate_id=p.candidates[0].id,
            score=3,
            verdict="accept",
        ),
    )
    _refused(
        store,
        InvalidInputError,
        "prompt version",
        lambda: storage.record_rating(
            store,
            observer=storage.LlmObserver("gpt", " "),
            correction_id=c.id,
            score=3,
            verdict="accept",
        ),
    )


def test_bad_slices_and_predictions_are_refused(store: Store, samples) -> None:
    pixels = samples.pixels((10, 12))
    display = np.zeros((10, 12, 3), np.uint8)
    good_hash = storage.pixels_hash(pixels)

    def slice_call(**overrides):
        values = dict(content_hash=good_hash, pixels=pixels, display=display, modality="MR")
        values.update(overrides)
        return lambda: storage.record_slice(store, **values)

    _refused(store, InvalidInputError, "does not match", slice_call(content_hash="a" * 64))
    _refused(store, InvalidInputError, "sha256", slice_call(content_hash="not-a-hash"))
    nan_pixels = pixels.copy()
    nan_pixels[0, 0] = np.nan
    _refused(store, InvalidInputError, "NaN", slice_call(pixels=nan_pixels))
    _refused(
        store, InvalidInputError, "display", slice_call(display=np.zeros((10, 11, 3), np.uint8))
    )
    _refused(store, InvalidInputError, "spacing", slice_call(spacing=(0.0, 1.0)))
    _refused(store, InvalidInputError, "modality", slice_call(modality=""))
    _refused(store, InvalidInputError, "window_width", slice_call(window_width=-5.0))

    s = samples.slice((10, 12))
    mask = np.zeros((10, 12), bool)

    def prediction_call(**overrides):
        values = dict(slice_hash=s.content_hash, structure="VL", candidates=[mask], scores=[0.5])
        values.update(overrides)
        return lambda: storage.record_prediction(store, **values)

    _refused(
        store, InvalidInputError, "1 to 3", prediction_call(candidates=[mask] * 4, scores=[1] * 4)
    )
    _refused(store, InvalidInputError, "scores", prediction_call(scores=[0.5, 0.4]))
    _refused(store, InvalidInputError, "finite", prediction_call(scores=[float("nan")]))
    _refused(store, InvalidInputError, "class_probability", prediction_call(class_probability=1.5))
    _refused(store, InvalidInputError, "outside", prediction_call(prompt_box=[0, 0, 20, 5]))
    _refused(store, InvalidInputError, "x0<=x1", prediction_call(prompt_box=[9, 0, 3, 5]))
    _refused(store, InvalidInputError, "timings", prediction_call(timings={"encoder": -1}))
    _refused(store, InvalidInputError, "JSON", prediction_call(cam_summary={"f": object()}))


def test_bad_correction_fields_are_refused(store: Store, corrected) -> None:
    s, p, _ = corrected
    mask = np.zeros(s.shape, bool)

    def call(**overrides):
        values = dict(
            prediction_id=p.id,
            chosen_rank=0,
            final_mask=mask,
            annotator="ann",
            seconds=10.0,
            clicks=1,
        )
        values.update(overrides)
        return lambda: storage.record_correction(store, **values)

    _refused(store, InvalidInputError, "seconds", call(seconds=-1.0))
    _refused(store, InvalidInputError, "clicks", call(clicks=-2))
    _refused(store, InvalidInputError, "timezone", call(started_at=datetime(2024, 1, 1)))


def test_a_failing_transaction_leaves_no_partial_prediction(
    store: Store, samples, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A crash between the prediction row and its candidates rolls both back."""
    s = samples.slice()
    before = snapshot(store)
    from storage import predictions

    def explode(row, slice_hash):
        raise RuntimeError("simulated crash after the inserts")

    monkeypatch.setattr(predictions, "prediction_record", explode)
    with pytest.raises(RuntimeError, match="simulated"):
        samples.prediction(s)
    assert snapshot(store) == before
