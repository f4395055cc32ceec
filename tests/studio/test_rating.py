from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.rating import RUBRIC_ITEMS, SCORE_LABELS, parse_rating, parse_score


def test_scores_parse_from_labels_and_numbers() -> None:
    assert [parse_score(label) for label in SCORE_LABELS.values()] == [5, 4, 3, 2, 1]
    assert parse_score(3) == 3 and parse_score(4.0) == 4


@pytest.mark.parametrize("bad", [None, "", "great", 0, 6, 2.5, True])
def test_bad_scores_are_refused_in_plain_words(bad: object) -> None:
    with pytest.raises(StudioError, match="SegEx score"):
        parse_score(bad)


def test_rating_maps_labels_to_storage_values_and_fills_the_rubric() -> None:
    r = parse_rating("4 · Good: minor edits only", "Minor edits", ["No false positives"], " ok ")
    assert (r.score, r.verdict, r.comment) == (4, "minor_edits", "ok")
    assert r.rubric == {
        "boundary_accuracy": False,
        "completeness": False,
        "false_positives": True,
        "anatomical_plausibility": False,
    }
    assert set(r.rubric) == set(RUBRIC_ITEMS.values())
    # storage values are accepted too (the API uses them)
    assert parse_rating(5, "accept", ["completeness"], None).rubric["completeness"] is True


def test_missing_verdict_unknown_rubric_and_long_comment_are_refused() -> None:
    with pytest.raises(StudioError, match="verdict"):
        parse_rating(3, None, [], "")
    with pytest.raises(StudioError, match="verdict"):
        parse_rating(3, "perfect", [], "")
    with pytest.raises(StudioError, match="rubric"):
        parse_rating(3, "accept", ["looks nice"], "")
    with pytest.raises(StudioError, match="2000"):
        parse_rating(3, "accept", [], "x" * 2001)
