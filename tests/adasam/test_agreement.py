"""Agreement statistics: each against a worked example from its literature, the library's own
value and a case computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from adasam import agreement as ag
from adasam.agreement_output import report_text, write_csv, write_plots

NAN = math.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four observers,
# twelve units, values 1..5, missing data. He gives alpha = 0.743 (nominal), 0.815 (ordinal),
# 0.849 (interval).
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)

# Shrout & Fleiss (1979), Table 2: six targets rated by four judges. ICC(2,1) = 0.29.
SHROUT_FLEISS_1979 = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def test_alpha_ordinal_reproduces_krippendorffs_example() -> None:
    assert ag.alpha_ordinal(KRIPPENDORFF_2011) == pytest.approx(0.815, abs=5e-4)


def test_alpha_ordinal_hand_computed() -> None:
    # Two coders, A = 1 1 2 2, B = 1 2 2 2. Coincidences: o11 = 2, o12 = o21 = 1, o22 = 4;
    # n1 = 3, n2 = 5, n = 8. With only two values the ordinal metric is one constant for the one
    # disagreement, so alpha = 1 - (n - 1) * (o12 + o21) / (2 * n1 * n2) = 1 - 7 * 2 / 30 = 8/15.
    data = np.array([[1, 1, 2, 2], [1, 2, 2, 2]], dtype=float)
    assert ag.alpha_ordinal(data) == pytest.approx(8 / 15, abs=1e-12)


def test_alpha_is_none_when_undefined() -> None:
    assert ag.alpha_ordinal(np.array([[3, 3], [3, 3]], dtype=float)) is None  # no variance
    assert ag.alpha_ordinal(np.array([[1, NAN], [2, NAN]], dtype=float)) is None  # 1 item


def test_icc21_reproduces_shrout_and_fleiss() -> None:
    found = ag.icc21(SHROUT_FLEISS_1979)
    assert found is not None
    value, (low, high) = found
    assert round(value, 2) == 0.29
    assert low < value < high
    # The CI of McGraw & Wong (1996), case 2A, for these data (pingouin: [0.02, 0.76]).
    assert (low, high) == pytest.approx((0.02, 0.76), abs=0.005)


def test_icc21_hand_computed() -> None:
    # Items x raters [[1,2],[3,3],[5,4]]: grand mean 3, row means 1.5/3/4.5, column means 3/3.
    # MSR = 2 * (2.25 + 0 + 2.25) / 2 = 4.5; MSC = 0; SSE = 10 - 9 - 0 = 1, MSE = 1/2.
    # ICC(2,1) = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n) = 4 / (5 - 1/3) = 6/7.
    found = ag.icc21(np.array([[1, 2], [3, 3], [5, 4]], dtype=float))
    assert found is not None
    assert found[0] == pytest.approx(6 / 7, abs=1e-9)


def test_icc21_is_none_when_undefined() -> None:
    assert ag.icc21(np.array([[1, 2], [3, 4]], dtype=float)) is None  # two items
    assert ag.icc21(np.array([[1, NAN], [3, 3], [5, 4]], dtype=float)) is None  # missing


def test_kappa_quadratic_hand_computed_and_library() -> None:
    # a = 1 2 3, b = 1 3 3, weights (i - j)^2 / 16. Observed disagreement: (0 + 1/16 + 0) / 3
    # = 1/48. Expected: marginals p = (1/3, 1/3, 1/3), q = (1/3, 0, 2/3):
    # sum p_i q_j (i - j)^2 / 16 = (8/9 + 3/9 + 4/9) / 16 = 5/48. kappa = 1 - (1/48)/(5/48) = 0.8.
    assert ag.kappa_quadratic([1, 2, 3], [1, 3, 3]) == pytest.approx(0.8, abs=1e-12)
    from sklearn.metrics import cohen_kappa_score

    a, b = [1, 2, 3, 4, 5, 5, 2], [1, 3, 3, 4, 4, 5, 1]
    assert ag.kappa_quadratic(a, b) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))
    assert ag.kappa_quadratic([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert ag.kappa_quadratic([4], [4]) is None


def test_kappa_quadratic_matches_icc_identity() -> None:
    # Fleiss & Cohen (1973): quadratic-weighted kappa equals the ICC of the two-way model with
    # the rater mean square in the denominator; for raters with equal means and variances it
    # equals Pearson's r. A permuted copy has both, so kappa_qw = r.
    a = [1, 2, 3, 4, 5, 3, 2]
    b = [2, 1, 3, 5, 4, 2, 3]
    r = float(np.corrcoef(a, b)[0, 1])
    assert ag.kappa_quadratic(a, b) == pytest.approx(r, abs=1e-12)


def test_exact_within_one_confusion_and_verdict_kappa_hand_computed() -> None:
    a, b = [1, 2, 3, 5], [1, 3, 3, 3]
    assert ag.exact_agreement(a, b) == 0.5
    assert ag.within_one_agreement(a, b) == 0.75
    matrix = ag.confusion(a, b)
    assert matrix.shape == (5, 5) and matrix.sum() == 4
    assert matrix[0, 0] == 1 and matrix[1, 2] == 1 and matrix[2, 2] == 1 and matrix[4, 2] == 1
    # po = 3/4; pe = 1/2 * 1/4 + 1/2 * 3/4 = 1/2; kappa = (3/4 - 1/2) / (1/2) = 1/2.
    va = ["accept", "accept", "reject", "reject"]
    vb = ["accept", "reject", "reject", "reject"]
    assert ag.kappa_nominal(va, vb) == pytest.approx(0.5)


def test_spearman_hand_computed() -> None:
    # ranks of y: 1 3 2 4; d = 0 -1 1 0; rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    found = ag.spearman([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.9])
    assert found is not None and found[0] == pytest.approx(0.8)
    assert ag.spearman([1, 1, 1], [0.1, 0.2, 0.3]) is None


def _rows() -> list[ag.RatingRow]:
    scores_a = [5, 4, 3, 2, 1, 4, 5, 3]
    scores_b = [5, 3, 3, 2, 2, 4, 4, 3]
    scores_l = [4, 4, 2, 2, 1, 5, 5, 3]
    dice = [0.98, 0.9, 0.7, 0.5, 0.2, 0.92, 0.97, 0.75]
    rows = []
    for k in range(8):
        structure = "VL" if k % 2 == 0 else "VM"
        item = f"candidate:{k}"
        for rater, kind, scores in (
            ("alice", "human", scores_a),
            ("bob", "human", scores_b),
            ("llm:m", "llm", scores_l),
        ):
            verdict = "accept" if scores[k] >= 4 else "major_edits"
            rows.append(ag.RatingRow(item, rater, kind, scores[k], verdict, structure, dice[k]))
    return rows


def test_report_equals_the_libraries_per_pair_group_and_rater() -> None:
    import krippendorff
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    rows = _rows()
    report = ag.agreement_report(rows)
    pair = next(
        p
        for p in report.pairs
        if p.structure == ag.ALL and (p.rater_a, p.rater_b) == ("alice", "bob")
    )
    a = [r.score for r in rows if r.rater == "alice"]
    b = [r.score for r in rows if r.rater == "bob"]
    assert pair.n == 8 and pair.pair_kind == "human-human"
    expected_kappa = cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert pair.kappa_quadratic == pytest.approx(expected_kappa)
    assert pair.exact_agreement == pytest.approx(5 / 8)
    llm_pair = next(p for p in report.pairs if (p.rater_a, p.rater_b) == ("alice", "llm:m"))
    assert llm_pair.pair_kind == "human-llm"
    humans = next(g for g in report.groups if g.structure == ag.ALL and g.group == "humans")
    assert humans.alpha_ordinal == pytest.approx(
        krippendorff.alpha(reliability_data=[a, b], level_of_measurement="ordinal")
    )
    assert humans.icc_items == 8 and humans.icc21 is not None
    assert {g.group for g in report.groups if g.structure == "VL"} == {"humans", "humans+llm"}
    alice = next(r for r in report.raters if r.structure == ag.ALL and r.rater == "alice")
    dice = [r.dice for r in rows if r.rater == "alice"]
    assert alice.spearman_score_dice == pytest.approx(spearmanr(a, dice).statistic)
    vm = [p for p in report.pairs if p.structure == "VM"]
    assert vm and all(p.n == 4 for p in vm)


def test_report_outputs(tmp_path: Path) -> None:
    rows = _rows()
    report = ag.agreement_report(rows)
    text = report_text(report)
    assert "alice" in text and "ICC(2,1)" in text and "kappa_qw" in text
    paths = write_csv(report, rows, tmp_path / "tables")
    with (tmp_path / "tables" / "ratings.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    with (tmp_path / "tables" / "pairs.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == len(report.pairs)
    assert all(p.stat().st_size > 0 for p in paths)
    for png in write_plots(report, rows, tmp_path / "plots"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
