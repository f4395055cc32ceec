"""Rating studies, rating revisions and effort, SegEx rows, LLM failures (both back-ends)."""

from __future__ import annotations

import pytest

import storage
from storage import HumanObserver, InvalidInputError, LlmObserver, NotFoundError
from storage.studies import rater_order
from tests.storage.conftest import Samples


def _cases(samples: Samples, n: int) -> list[int]:
    """n corrected predictions; the ids of the candidates the corrections started from."""
    ids = []
    for k in range(n):
        prediction = samples.prediction(samples.slice(), structure="VL" if k % 2 else "VM")
        correction = samples.correction(prediction)
        ids.append(correction.candidate_id)
    return ids


def _study(samples: Samples, cases: list[int], per_case: int = 2, raters=("r1", "r2", "r3")):
    store = samples.store
    storage.ensure_annotator(store, "boss", role="admin")
    for name in raters:
        storage.ensure_annotator(store, name)
    return storage.create_study(
        store,
        name="pilot",
        admin="boss",
        raters=list(raters),
        candidate_ids=cases,
        ratings_per_case=per_case,
        seed=7,
    )


def _rate(store: storage.Store, rater: str, case: storage.StudyCaseRecord, score: int = 4):
    return storage.record_study_rating(
        store,
        "pilot",
        rater=rater,
        candidate_id=case.candidate_id,
        score=score,
        verdict="minor_edits",
        seconds=12.5,
        edits=3,
    )


def test_each_case_goes_to_exactly_k_different_raters(samples: Samples) -> None:
    cases = _cases(samples, 4)
    study = _study(samples, cases)
    assert study.cases == 4 and study.raters == ("r1", "r2", "r3") and study.blinded
    store = samples.store
    given: dict[int, list[str]] = {c: [] for c in cases}
    progress = True
    while progress:  # raters take turns until nobody gets a case
        progress = False
        for rater in ("r1", "r2", "r3"):
            case = storage.next_study_case(store, "pilot", rater)
            if case is not None:
                assert rater not in given[case.candidate_id]
                given[case.candidate_id].append(rater)
                _rate(store, rater, case)
                progress = True
    assert all(len(set(r)) == 2 == len(r) for r in given.values())
    assert storage.get_study(store, "pilot").ratings_done == 8


def test_a_rater_gets_no_case_twice_and_cannot_rate_twice(samples: Samples) -> None:
    cases = _cases(samples, 2)
    _study(samples, cases, per_case=2, raters=("r1", "r2"))
    store = samples.store
    first = storage.next_study_case(store, "pilot", "r1")
    assert first is not None and first.position == 1 and first.total == 2
    again = storage.next_study_case(store, "pilot", "r1")
    assert again is not None and again.candidate_id == first.candidate_id  # a reload
    _rate(store, "r1", first)
    with pytest.raises(InvalidInputError, match="already rated"):
        _rate(store, "r1", first)
    second = storage.next_study_case(store, "pilot", "r1")
    assert second is not None and second.candidate_id != first.candidate_id
    _rate(store, "r1", second)
    assert storage.next_study_case(store, "pilot", "r1") is None


def test_leases_and_full_cases_hold_slots(samples: Samples) -> None:
    cases = _cases(samples, 1)
    _study(samples, cases, per_case=1, raters=("r1", "r2"))
    store = samples.store
    case = storage.next_study_case(store, "pilot", "r1")
    assert case is not None
    assert storage.next_study_case(store, "pilot", "r2") is None  # r1 holds the one slot
    with pytest.raises(InvalidInputError, match="already has its 1 ratings"):
        _rate(store, "r2", case)
    _rate(store, "r1", case)
    assert storage.next_study_case(store, "pilot", "r2") is None


def test_orders_are_randomised_per_rater_and_stable() -> None:
    ids = list(range(1, 21))
    assert rater_order(ids, 7, 1) == rater_order(ids, 7, 1)
    assert rater_order(ids, 7, 1) != rater_order(ids, 7, 2)
    assert sorted(rater_order(ids, 7, 2)) == ids


def test_study_rules(samples: Samples) -> None:
    cases = _cases(samples, 2)
    store = samples.store
    storage.ensure_annotator(store, "plain")
    storage.ensure_annotator(store, "boss", role="admin")
    storage.ensure_annotator(store, "r1")
    with pytest.raises(InvalidInputError, match="only an admin"):
        storage.create_study(
            store, name="x", admin="plain", raters=["r1"], candidate_ids=cases, ratings_per_case=1
        )
    with pytest.raises(InvalidInputError, match="need at least 2 raters"):
        storage.create_study(
            store, name="x", admin="boss", raters=["r1"], candidate_ids=cases, ratings_per_case=2
        )
    with pytest.raises(NotFoundError, match="unknown candidates: 9999"):
        storage.create_study(
            store, name="x", admin="boss", raters=["r1"], candidate_ids=[9999], ratings_per_case=1
        )
    storage.create_study(
        store, name="x", admin="boss", raters=["r1"], candidate_ids=cases, ratings_per_case=1
    )
    with pytest.raises(InvalidInputError, match="not a rater"):
        storage.next_study_case(store, "x", "plain")
    assert [s.name for s in storage.list_studies(store, viewer="plain")] == []
    assert [s.name for s in storage.list_studies(store, viewer="r1")] == ["x"]


def test_blinded_ratings_show_only_ones_own(samples: Samples) -> None:
    cases = _cases(samples, 1)
    _study(samples, cases, per_case=2, raters=("r1", "r2"))
    store = samples.store
    for rater, score in (("r1", 2), ("r2", 5)):
        case = storage.next_study_case(store, "pilot", rater)
        assert case is not None
        _rate(store, rater, case, score)
    mine = storage.study_ratings(store, "pilot", viewer="r1")
    assert [(r.annotator, r.score) for r in mine] == [("r1", 2)]
    assert mine[0].seconds == 12.5 and mine[0].edits == 3
    everyone = storage.study_ratings(store, "pilot", viewer="boss")
    assert sorted(r.annotator for r in everyone) == ["r1", "r2"]


def test_revisions_keep_history_and_the_latest_counts(samples: Samples) -> None:
    cases = _cases(samples, 1)
    store = samples.store
    storage.ensure_annotator(store, "r1")
    storage.ensure_annotator(store, "r2")
    first = storage.record_rating(
        store, observer=HumanObserver("r1"), candidate_id=cases[0], score=2, verdict="reject"
    )
    with pytest.raises(InvalidInputError, match="their own"):
        storage.revise_rating(store, first.id, annotator="r2", score=3, verdict="major_edits")
    second = storage.revise_rating(
        store, first.id, annotator="r1", score=4, verdict="minor_edits", seconds=3.0, edits=1
    )
    assert second.revises_id == first.id
    with pytest.raises(InvalidInputError, match="revise the latest"):
        storage.revise_rating(store, first.id, annotator="r1", score=5, verdict="accept")
    history = storage.rating_history(store, first.id)
    assert [r.score for r in history] == [2, 4]
    rows = storage.segex_rows(store)
    assert [(r.rater, r.score, r.structure) for r in rows] == [("r1", 4, "VM")]
    assert rows[0].item == f"candidate:{cases[0]}" and rows[0].dice is not None
    with pytest.raises(InvalidInputError, match="seconds spent must be >= 0"):
        storage.record_rating(
            store,
            observer=HumanObserver("r1"),
            candidate_id=cases[0],
            score=2,
            verdict="reject",
            seconds=-1,
        )


def test_segex_rows_of_a_study_and_llm_details(samples: Samples) -> None:
    cases = _cases(samples, 2)
    _study(samples, cases, per_case=1, raters=("r1", "r2"))
    store = samples.store
    case = storage.next_study_case(store, "pilot", "r1")
    assert case is not None
    _rate(store, "r1", case, 3)
    outside = samples.correction(samples.prediction(samples.slice()))
    storage.record_rating(
        store, observer=HumanObserver("r2"), candidate_id=outside.candidate_id, score=5,
        verdict="accept",
    )  # fmt: skip
    llm = LlmObserver("vlm-x", "abc123", endpoint="http://127.0.0.1:1/v1", latency_ms=812.0)
    rated = storage.record_rating(
        store, observer=llm, candidate_id=case.candidate_id, score=4, verdict="minor_edits"
    )
    assert rated.llm_endpoint == "http://127.0.0.1:1/v1" and rated.latency_ms == 812.0
    rows = storage.segex_rows(store, study="pilot")
    found = {(r.rater, r.kind, r.score) for r in rows}
    assert found == {("r1", "human", 3), ("llm:vlm-x", "llm", 4)}
    assert len(storage.segex_rows(store)) == 3
    failure = storage.record_llm_failure(
        store,
        model="vlm-x",
        endpoint="http://127.0.0.1:1/v1",
        prompt_version="abc123",
        reason="HTTP 429: rate limited",
        candidate_id=case.candidate_id,
        latency_ms=10.0,
    )
    assert storage.llm_failures(store, candidate_id=case.candidate_id) == [failure]
