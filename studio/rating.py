"""The SegEx rating form: its scale, verdicts and rubric (defined once in
:mod:`adasam.segex_rubric`, shared with the LLM observer), and validation of what was ticked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from adasam.segex_rubric import RUBRIC_ITEMS, SCORE_LABELS, VERDICT_LABELS
from storage import SEGEX_MAX, SEGEX_MIN, VERDICTS
from studio.errors import StudioError

__all__ = [
    "RUBRIC_ITEMS",
    "SCORE_LABELS",
    "VERDICT_LABELS",
    "Rating",
    "parse_rating",
    "parse_score",
]

assert set(VERDICT_LABELS.values()) == set(VERDICTS)
assert set(SCORE_LABELS) == set(range(SEGEX_MIN, SEGEX_MAX + 1))


@dataclass(frozen=True)
class Rating:
    """A validated SegEx rating of the model's mask."""

    score: int
    verdict: str
    rubric: dict[str, bool]
    comment: str


def parse_score(value: object) -> int:
    """A score from the radio's label (``"4 · Good…"``) or a number.

    Raises:
        StudioError: nothing chosen or not on the scale.
    """
    if value is None or value == "":
        raise StudioError("Choose a SegEx score from 1 to 5 before submitting.")
    if isinstance(value, str):
        head = value.strip().split(" ", 1)[0]
        try:
            number = int(head)
        except ValueError:
            raise StudioError("Choose a SegEx score from 1 to 5 before submitting.") from None
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
    ):
        number = int(value)
    else:
        raise StudioError("Choose a SegEx score from 1 to 5 before submitting.")
    if number not in SCORE_LABELS:
        raise StudioError(f"The SegEx score runs from {SEGEX_MIN} to {SEGEX_MAX}; got {number}.")
    return number


def parse_rating(
    score: object, verdict: str | None, rubric: Sequence[str] | None, comment: str | None
) -> Rating:
    """Validate the form.

    Args:
        score: the score radio's value.
        verdict: a label of :data:`VERDICT_LABELS` or a storage value.
        rubric: the ticked rubric labels (or keys).
        comment: free text (optional, at most 2000 characters).

    Raises:
        StudioError: a missing score or verdict, an unknown rubric item, a long comment.
    """
    number = parse_score(score)
    if not verdict:
        raise StudioError("Choose a verdict (accept, minor edits, major edits or reject).")
    value = VERDICT_LABELS.get(verdict, verdict)
    if value not in VERDICTS:
        raise StudioError("Choose a verdict: accept, minor edits, major edits or reject.")
    ticked = set()
    for item in rubric or ():
        key = RUBRIC_ITEMS.get(item, item)
        if key not in RUBRIC_ITEMS.values():
            raise StudioError(f"Unknown rubric item {item!r}.")
        ticked.add(key)
    text = (comment or "").strip()
    if len(text) > 2000:
        raise StudioError("Shorten the comment to at most 2000 characters.")
    return Rating(
        score=number,
        verdict=value,
        rubric={key: key in ticked for key in RUBRIC_ITEMS.values()},
        comment=text,
    )
