"""Handlers of the Quality tab (rating studies, agreement report) and of the LLM observer
button beside the human SegEx form.

Blinding: in a blinded study a rater sees only the case (the slice with the mask's outline, no
model score) and their own ratings; the agreement report is for admins (and for everyone in a
study that is not blinded). The LLM observer's rating of a case is shown only after the human
submitted theirs, so it cannot anchor them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr
import numpy as np

import storage
from adasam.agreement import agreement_report
from adasam.agreement_output import confusion_figure, report_text, write_csv
from adasam.render import mask_overlay
from adasam.segex import rate_and_store, rating_rows
from studio.case_handlers import CaseHandlers
from studio.errors import StudioError, user_errors
from studio.rating import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS, parse_rating
from studio.services import Services
from studio.shown import CANVAS_MAX_SIDE, Shown
from studio.state import CaseState

MY_RATINGS_HEADERS = ["rating", "case", "score", "verdict", "seconds", "edits", "version"]


@dataclass(frozen=True)
class StudySession:
    """The study case on a rater's screen: which one, since when, how many form edits, and the
    rating being revised (``None`` for a new rating)."""

    study: str
    candidate_id: int
    shown_at: float
    edits: int = 0
    revising: int | None = None


def _case_image(store: storage.Store, candidate_id: int) -> np.ndarray:
    slice_record, _ = storage.candidate_context(store, candidate_id)
    display = storage.load_display(store, slice_record)
    if display.ndim == 2:
        display = np.repeat(display[..., None], 3, axis=2)
    shown = Shown.of(display, CANVAS_MAX_SIDE)  # a large slice: a bounded picture
    mask = storage.load_candidate_mask(store, candidate_id)
    return mask_overlay(shown.image, shown.mask(mask), alpha=0.0)


def _form_values(rating: storage.RatingRecord | None) -> tuple[Any, Any, list[str], str]:
    if rating is None:
        return None, None, [], ""
    verdict = next(label for label, value in VERDICT_LABELS.items() if value == rating.verdict)
    ticked = [label for label, key in RUBRIC_ITEMS.items() if rating.rubric.get(key)]
    return SCORE_LABELS[rating.score], verdict, ticked, rating.comment


class QualityHandlers:
    """See the module docstring."""

    def __init__(self, services: Services, cases: CaseHandlers) -> None:
        self.services = services
        self.cases = cases

    @property
    def store(self) -> storage.Store:
        return self.services.store

    def _who(self, typed: str | None, request: gr.Request | None, profile: Any) -> str:
        name = self.cases.annotator(typed, request, profile)
        storage.ensure_annotator(self.store, name)
        return name

    def _is_admin(self, name: str) -> bool:
        people = storage.list_annotators(self.store)
        return any(a.name == name and a.role == "admin" for a in people)

    # -- studies ------------------------------------------------------------------------------
    @user_errors
    def studies(
        self, typed: str | None, request: gr.Request, profile: gr.OAuthProfile | None
    ) -> tuple[Any, str]:
        """The studies this user rates in (an admin: all), for the study chooser."""
        name = self._who(typed, request, profile)
        found = storage.list_studies(self.store, viewer=name)
        if not found:
            return gr.update(choices=[], value=None), f"No study names **{name}** as a rater."
        lines = [
            f"- **{s.name}**: {s.cases} cases × {s.ratings_per_case} ratings, "
            f"{s.ratings_done} done{' (blinded)' if s.blinded else ''}"
            for s in found
        ]
        return gr.update(choices=[s.name for s in found], value=found[0].name), "\n".join(lines)

    def _my_ratings(self, study: str, name: str) -> list[list[Any]]:
        record = storage.get_study(self.store, study)
        rows = []
        for r in storage.study_ratings(self.store, study, viewer=name):
            if record.blinded and r.annotator != name:
                continue  # an admin rating in a blinded study sees only their own here too
            version = "revised" if r.revises_id is not None else "first"
            who = "" if r.annotator == name else f" ({r.annotator})"
            rows.append(
                [r.id, f"#{r.candidate_id}{who}", r.score, r.verdict, r.seconds, r.edits, version]
            )
        return rows

    def _revision_choices(self, rows: list[list[Any]]) -> Any:
        choices = [(f"rating {r[0]}: case {r[1]}, score {r[2]}", r[0]) for r in rows]
        return gr.update(choices=choices, value=None)

    def _in_study(self, study: str | None, who: tuple[Any, Any, Any]) -> tuple[str, str]:
        """(study, user) of a request on the study chooser's value."""
        if not study:
            raise StudioError("Choose a study first (press 'My studies').")
        return study, self._who(*who)

    @user_errors
    def next_case(
        self,
        study: str | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """Hand this rater the next case of the study (form cleared)."""
        study, name = self._in_study(study, (typed, request, profile))
        case = storage.next_study_case(self.store, study, name)
        rows = self._my_ratings(study, name)
        if case is None:
            return (
                None,
                None,
                f"**{study}**: nothing left for you to rate. Thank you!",
                *_form_values(None),
                rows,
                self._revision_choices(rows),
            )
        session = StudySession(study=study, candidate_id=case.candidate_id, shown_at=time.time())
        text = (
            f"**{study}**, case {case.position} of {case.total} for you "
            f"({case.structure}): rate the outlined mask."
        )
        image = _case_image(self.store, case.candidate_id)
        return session, image, text, *_form_values(None), rows, self._revision_choices(rows)

    def count_edit(self, session: StudySession | None) -> StudySession | None:
        """One more change of the form (score, verdict or criteria)."""
        return None if session is None else replace(session, edits=session.edits + 1)

    @user_errors
    def revise(
        self,
        rating_id: int | None,
        study: str | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """Load one of this rater's ratings into the form to revise it."""
        if rating_id is None or not study:
            raise StudioError("Choose one of your ratings to revise.")
        name = self._who(typed, request, profile)
        mine = {r.id: r for r in storage.study_ratings(self.store, study, viewer=name)}
        rating = mine.get(int(rating_id))
        if rating is None or rating.annotator != name or rating.candidate_id is None:
            raise StudioError("You can only revise your own latest ratings.")
        session = StudySession(study, rating.candidate_id, time.time(), revising=rating.id)
        text = f"**{study}**: revising your rating {rating.id} of case #{rating.candidate_id}."
        image = _case_image(self.store, rating.candidate_id)
        return session, image, text, *_form_values(rating)

    @user_errors
    def submit(
        self,
        session: StudySession | None,
        score: object,
        verdict: str | None,
        rubric: list[str] | None,
        comment: str | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """Store the rating (or its revision) with the time spent and the number of edits."""
        if session is None:
            raise StudioError("Take a case first ('Next study case').")
        rating = parse_rating(score, verdict, rubric, comment)
        name = self._who(typed, request, profile)
        effort = {"seconds": max(0.0, time.time() - session.shown_at), "edits": session.edits}
        values = {"score": rating.score, "verdict": rating.verdict, "rubric": rating.rubric}
        if session.revising is not None:
            stored = storage.revise_rating(
                self.store, session.revising, annotator=name, comment=rating.comment,
                **values, **effort,
            )  # fmt: skip
            message = f"Revised: rating {stored.id} now counts (rating {session.revising} kept)."
        else:
            stored = storage.record_study_rating(
                self.store, session.study, rater=name, candidate_id=session.candidate_id,
                comment=rating.comment, **values, **effort,
            )  # fmt: skip
            message = f"Saved rating {stored.id}. Take the next case when you are ready."
        rows = self._my_ratings(session.study, name)
        return None, None, message, *_form_values(None), rows, self._revision_choices(rows)

    # -- report and administration -------------------------------------------------------------
    @user_errors
    def report(
        self,
        study: str | None,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> tuple[Any, ...]:
        """The agreement statistics of the study (CSV tables to download, confusion plot)."""
        study, name = self._in_study(study, (typed, request, profile))
        record = storage.get_study(self.store, study)
        if record.blinded and not self._is_admin(name):
            raise StudioError("This study is blinded: its report is for admins only.")
        rows = rating_rows(self.store, study=study)
        if not rows:
            return "No ratings in this study yet.", None, []
        report = agreement_report(rows)
        files = write_csv(report, rows, self.services.exports.new_folder())
        text = f"**{study}**: {len(rows)} ratings\n\n```\n{report_text(report)}\n```"
        pairs = [p for p in report.pairs if p.structure == "all"]
        return text, confusion_figure(pairs), [str(f) for f in files]

    @user_errors
    def create(
        self,
        name: str | None,
        raters: str | None,
        per_case: float | None,
        structure: str | None,
        blinded: bool,
        typed: str | None,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ) -> str:
        """Create a study from every corrected case (of one structure when given)."""
        admin = self._who(typed, request, profile)
        cases = storage.corrected_candidates(self.store, (structure or "").strip() or None)
        if not cases:
            raise StudioError("There are no corrected cases to put in a study yet.")
        created = storage.create_study(
            self.store,
            name=(name or "").strip(),
            admin=admin,
            raters=[r.strip() for r in (raters or "").split(",") if r.strip()],
            candidate_ids=cases,
            ratings_per_case=int(per_case or 0),
            blinded=bool(blinded),
        )
        return (
            f"Created **{created.name}**: {created.cases} cases, {created.ratings_per_case} "
            f"ratings each, raters {', '.join(created.raters)}."
        )

    # -- the LLM observer beside the human form -----------------------------------------------
    @user_errors
    def ask_llm(self, state: CaseState | None) -> str:
        """Rate the submitted structure's original mask with the LLM observer and show it
        beside the human's rating (only after the human submitted theirs)."""
        settings = self.services.settings
        if not settings.llm_enabled:
            raise StudioError(
                "The LLM observer is off: the administrator sets ADASAM_LLM_ENDPOINT and "
                "ADASAM_LLM_MODEL (see the README)."
            )
        work = None if state is None else state.work
        receipt = None if state is None or work is None else state.receipt(work.name)
        if state is None or work is None or receipt is None:
            raise StudioError(
                "Submit your own rating first: the LLM's rating is shown after yours, so it "
                "cannot anchor you."
            )
        correction = storage.get_correction(self.store, receipt.correction_id)
        outcome = rate_and_store(self.store, settings.llm_config(), correction.candidate_id)
        if outcome.rating is None:
            return f"**LLM observer** gave no rating (stored as a failure): {outcome.failure}"
        human = storage.ratings_of(self.store, candidate_id=correction.candidate_id)
        mine = next((r for r in human if r.id == receipt.rating_id), None)
        yours = "" if mine is None else f" (yours: {mine.score}, {mine.verdict})"
        return (
            f"**LLM observer** ({outcome.model}, {outcome.latency_ms:.0f} ms): score "
            f"{outcome.rating.score}, {outcome.rating.verdict}{yours}.\n\n"
            f"> {outcome.rating.rationale}"
        )
