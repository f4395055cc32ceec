"""The SegEx rubric: one definition for the human form (studio) and the LLM observer.

Scores are integers 1..5 (5 best); verdicts and rubric keys are the values storage keeps.
"""

from __future__ import annotations

SCORE_LABELS: dict[int, str] = {
    5: "5 · Excellent: clinically usable as is",
    4: "4 · Good: minor edits only",
    3: "3 · Fair: usable after major edits",
    2: "2 · Poor: redrawing is faster than correcting",
    1: "1 · Unusable: wrong structure or mostly wrong",
}
"""The SegEx scale, best first, each level with its meaning."""

VERDICT_LABELS: dict[str, str] = {
    "Accept": "accept",
    "Minor edits": "minor_edits",
    "Major edits": "major_edits",
    "Reject": "reject",
}
"""Verdict labels on the page → the values storage keeps."""

RUBRIC_ITEMS: dict[str, str] = {
    "Boundary accurate": "boundary_accuracy",
    "Complete (nothing missing)": "completeness",
    "No false positives": "false_positives",
    "Anatomically plausible": "anatomical_plausibility",
}
"""Rubric check boxes (ticked = the criterion is met) → the rubric keys storage keeps."""
