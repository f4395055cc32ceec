"""The Quality tab's handlers and the LLM observer button, called directly."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import numpy as np
import pytest

import storage
from studio.case_handlers import CaseHandlers
from studio.quality_handlers import QualityHandlers
from studio.review_handlers import ReviewHandlers
from studio.segment_handlers import SegmentHandlers
from studio.services import Services
from tests.llm_server import Reply, fake_llm, good_answer
from tests.studio.conftest import CT_SMALL

GOOD = "4 · Good: minor edits only"
POOR = "2 · Poor: redrawing is faster than correcting"


def _seed_cases(store: storage.Store, n: int) -> None:
    storage.ensure_annotator(store, "seed")
    for k in range(n):
        pixels = np.random.default_rng(k).normal(90, 20, (32, 32)).astype(np.float32)
        display = np.repeat(np.clip(pixels, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        record = storage.record_slice(
            store,
            content_hash=storage.pixels_hash(pixels),
            pixels=pixels,
            display=display,
            modality="MR",
        )
        mask = np.zeros((32, 32), bool)
        mask[8:20, 8 : 20 + k] = True
        prediction = storage.record_prediction(
            store, slice_hash=record.content_hash, structure="VL", candidates=[mask], scores=[0.8]
        )
        final = mask.copy()
        final[8:10] = False
        storage.record_correction(
            store,
            prediction_id=prediction.id,
            chosen_rank=0,
            final_mask=final,
            annotator="seed",
            seconds=5.0,
        )


def _rate(q: QualityHandlers, rater: str, score: str, verdict: str) -> str:
    out = q.next_case("pilot", rater, gr.Request(), None)
    session = out[0]
    assert session is not None and out[1].shape[2] == 3 and "case" in out[2]
    session = q.count_edit(q.count_edit(session))
    saved = q.submit(session, score, verdict, [], "", rater, gr.Request(), None)
    return saved[2]


def test_a_blinded_two_rater_study_through_the_handlers(services: Services) -> None:
    store = services.store
    _seed_cases(store, 3)
    storage.ensure_annotator(store, "boss", role="admin")
    for name in ("ann", "bea"):
        storage.ensure_annotator(store, name)
    q = QualityHandlers(services, CaseHandlers(services))
    with pytest.raises(gr.Error, match="only an admin"):
        q.create("pilot", "ann,bea", 2, "", True, "ann", gr.Request(), None)
    made = q.create("pilot", "ann,bea", 2, "", True, "boss", gr.Request(), None)
    assert "3 cases, 2 ratings each" in made
    choices, listing = q.studies("ann", gr.Request(), None)
    assert choices["choices"] == ["pilot"] and "(blinded)" in listing
    for _ in range(3):
        assert "Saved rating" in _rate(q, "ann", GOOD, "Minor edits")
        assert "Saved rating" in _rate(q, "bea", POOR, "Major edits")
    done = q.next_case("pilot", "ann", gr.Request(), None)
    assert done[0] is None and "nothing left" in done[2]
    mine = done[-2]
    assert len(mine) == 3 and {row[2] for row in mine} == {4}  # only ann's own ratings
    ratings = storage.study_ratings(store, "pilot", viewer="boss")
    assert all(r.edits == 2 and r.seconds is not None for r in ratings)
    with pytest.raises(gr.Error, match="blinded: its report is for admins"):
        q.report("pilot", "ann", gr.Request(), None)
    text, figure, files = q.report("pilot", "boss", gr.Request(), None)
    assert "ann" in text and "bea" in text and "kappa_qw" in text and figure is not None
    assert any(f.endswith("pairs.csv") for f in files)


def test_a_rater_revises_their_rating_and_the_latest_counts(services: Services) -> None:
    store = services.store
    _seed_cases(store, 1)
    storage.ensure_annotator(store, "boss", role="admin")
    storage.ensure_annotator(store, "ann")
    q = QualityHandlers(services, CaseHandlers(services))
    q.create("pilot", "ann", 1, "", True, "boss", gr.Request(), None)
    _rate(q, "ann", POOR, "Major edits")
    first = storage.study_ratings(store, "pilot", viewer="ann")[0]
    shown = q.revise(first.id, "pilot", "ann", gr.Request(), None)
    assert shown[0].revising == first.id and shown[3] == POOR and shown[4] == "Major edits"
    out = q.submit(shown[0], GOOD, "Minor edits", [], "on reflection", "ann", gr.Request(), None)
    assert f"(rating {first.id} kept)" in out[2]
    latest = storage.study_ratings(store, "pilot", viewer="ann")
    assert [(r.score, r.revises_id) for r in latest] == [(4, first.id)]
    assert len(storage.rating_history(store, first.id)) == 2


def test_the_llm_button_answers_only_after_the_human_rated(services: Services) -> None:
    cases = CaseHandlers(services)
    segment = SegmentHandlers(services)
    review = ReviewHandlers(services, cases)
    q = QualityHandlers(services, cases)
    state = cases.load_upload(str(CT_SMALL), 2, "custom")["state"]
    state = segment.run(state, "custom", ["liver", "kidney"])["state"]
    with pytest.raises(gr.Error, match="LLM observer is off"):
        q.ask_llm(state)
    with fake_llm() as server:
        services.settings = replace(
            services.settings, llm_endpoint=server.url, llm_model="test-vlm", llm_timeout_s=5.0
        )
        with pytest.raises(gr.Error, match="Submit your own rating first"):
            q.ask_llm(state)
        assert server.bodies == []  # nothing was sent before the human rated
        screen = review.submit(
            state, "dr.q", GOOD, "Minor edits", [], "", None, {}, gr.Request(), None
        )
        server.script(Reply(good_answer(3, "major_edits")))
        answer = q.ask_llm(screen["state"])
    assert "score 3, major_edits (yours: 4, minor_edits)" in answer
    assert b"CT_small" not in server.wire()
