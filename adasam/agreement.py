"""SegEx agreement statistics: how well observers (human and LLM) agree on ratings.

Pure statistics on plain rows (no database, no torch): the studio's Quality tab and
``python -m adasam segex report`` hand in :class:`RatingRow` s read from storage.

Conventions: scores are integers on the SegEx scale 1..5 (ordinal); verdicts are the storage
values (accept, minor_edits, major_edits, reject); an *item* is one rated mask (a candidate or a
final mask); a *rater* is an annotator name or ``llm:<model>``. Every figure comes from a
maintained library:

- quadratic-weighted Cohen's kappa and the confusion matrix: scikit-learn;
- Krippendorff's alpha (ordinal, missing ratings allowed): the ``krippendorff`` package;
- ICC(2,1) (two-way random effects, absolute agreement, single rater; Shrout & Fleiss 1979) with
  its 95 % confidence interval: pingouin (``ICC(A,1)`` there), on the items every rater rated;
- Spearman's rho between score and Dice(original, final): SciPy.

A statistic that is undefined for the data (fewer than two items, no variance) is ``None``
rather than a guess.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

SCALE: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The SegEx scores, worst first."""

ALL = "all"
"""The structure key of the statistics over every structure together."""


@dataclass(frozen=True)
class RatingRow:
    """One rating, as the statistics need it.

    ``item`` identifies the rated mask (e.g. ``"candidate:12"``); ``rater`` the observer
    (annotator name or ``llm:<model>``); ``kind`` is ``human`` or ``llm``; ``dice`` is the Dice
    between the rated mask and the final mask a clinician made from it (``None`` when it was not
    corrected).
    """

    item: str
    rater: str
    kind: str
    score: int
    verdict: str
    structure: str
    dice: float | None = None


@dataclass(frozen=True)
class PairStats:
    """Agreement of two raters on the items both rated."""

    structure: str
    rater_a: str
    rater_b: str
    pair_kind: str  # "human-human", "human-llm" or "llm-llm"
    n: int
    kappa_quadratic: float | None
    exact_agreement: float | None
    within_one_agreement: float | None
    verdict_agreement: float | None
    verdict_kappa: float | None
    confusion: list[list[int]] = field(default_factory=list)  # rows rater_a 1..5, cols rater_b


@dataclass(frozen=True)
class GroupStats:
    """Agreement of a group of raters (``humans`` or ``humans+llm``) on one structure."""

    structure: str
    group: str
    raters: int
    items: int
    ratings: int
    alpha_ordinal: float | None
    icc21: float | None
    icc21_ci95: tuple[float, float] | None
    icc_items: int  # items rated by every rater (ICC needs a complete table)


@dataclass(frozen=True)
class RaterStats:
    """One rater's ratings and how their score predicts correction effort."""

    structure: str
    rater: str
    kind: str
    ratings: int
    mean_score: float | None
    spearman_score_dice: float | None
    spearman_p: float | None
    dice_pairs: int


@dataclass(frozen=True)
class AgreementReport:
    """Every table of the report; ``structure == "all"`` rows pool every structure."""

    pairs: list[PairStats]
    groups: list[GroupStats]
    raters: list[RaterStats]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "pairs": [asdict(p) for p in self.pairs],
            "groups": [asdict(g) for g in self.groups],
            "raters": [asdict(r) for r in self.raters],
        }


# -- the single statistics ------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def kappa_quadratic(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Quadratic-weighted Cohen's kappa of two raters' scores (same items, same order) on the
    1..5 scale; ``None`` with fewer than two items or when chance agreement is perfect."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) != len(b):
        raise ValueError(f"two raters need the same items: {len(a)} vs {len(b)} scores")
    if len(a) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = cohen_kappa_score(a, b, labels=list(SCALE), weights="quadratic")
    return _finite(value)


def kappa_nominal(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Unweighted Cohen's kappa (verdicts); ``None`` as for :func:`kappa_quadratic`."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _finite(cohen_kappa_score(a, b))


def exact_agreement(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Share of items with the same score (0..1); ``None`` for no items."""
    if not a:
        return None
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def within_one_agreement(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Share of items whose scores differ by at most one point (0..1)."""
    if not a:
        return None
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b)) <= 1))


def confusion(a: Sequence[int], b: Sequence[int]) -> NDArray[np.int64]:
    """5×5 counts: row = rater a's score 1..5, column = rater b's."""
    from sklearn.metrics import confusion_matrix

    if not a:
        return np.zeros((len(SCALE), len(SCALE)), dtype=np.int64)
    return np.asarray(confusion_matrix(a, b, labels=list(SCALE)), dtype=np.int64)


def alpha_ordinal(matrix: NDArray[np.float64]) -> float | None:
    """Krippendorff's alpha, ordinal metric, of a raters × items matrix (NaN = not rated);
    ``None`` when fewer than two items have two ratings or all values are equal."""
    import krippendorff

    data = np.asarray(matrix, dtype=np.float64)
    pairable = np.sum(np.isfinite(data), axis=0) >= 2
    if data.ndim != 2 or data.shape[0] < 2 or int(pairable.sum()) < 2:
        return None
    values = data[np.isfinite(data)]
    if np.unique(values).size < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = krippendorff.alpha(
            reliability_data=data, level_of_measurement="ordinal", value_domain=list(SCALE)
        )
    return _finite(value)


def icc21(matrix: NDArray[np.float64]) -> tuple[float, tuple[float, float]] | None:
    """ICC(2,1) (Shrout & Fleiss: two-way random, absolute agreement, single rater) and its
    95 % CI (pingouin, two decimals) of a complete items × raters matrix; ``None`` with fewer
    than three items, fewer than two raters, missing values or no variance."""
    import pandas as pd
    import pingouin

    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 3 or data.shape[1] < 2 or not np.isfinite(data).all():
        return None
    if np.ptp(data) == 0:
        return None
    long = pd.DataFrame(
        [(i, j, data[i, j]) for i in range(data.shape[0]) for j in range(data.shape[1])],
        columns=["item", "rater", "score"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = pingouin.intraclass_corr(long, targets="item", raters="rater", ratings="score")
    row = table.set_index("Type").loc["ICC(A,1)"]
    value = _finite(float(row["ICC"]))
    if value is None:
        return None
    low, high = (float(v) for v in row["CI95"])
    return value, (low, high)


def spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """Spearman's rho and its two-sided p-value; ``None`` with fewer than three pairs or a
    constant variable."""
    from scipy.stats import spearmanr

    if len(x) < 3 or np.ptp(np.asarray(x, float)) == 0 or np.ptp(np.asarray(y, float)) == 0:
        return None
    result = spearmanr(x, y)
    rho, p = _finite(float(result.statistic)), _finite(float(result.pvalue))
    return None if rho is None else (rho, float("nan") if p is None else p)


# -- the report -----------------------------------------------------------------------------


def _pair_kind(kinds: dict[str, str], a: str, b: str) -> str:
    first, second = sorted((kinds[a], kinds[b]))
    return f"{first}-{second}"


def _by_rater(rows: Iterable[RatingRow]) -> dict[str, dict[str, RatingRow]]:
    """rater → item → their rating (a later row for the same item replaces an earlier one)."""
    table: dict[str, dict[str, RatingRow]] = {}
    for row in rows:
        table.setdefault(row.rater, {})[row.item] = row
    return table


def pair_stats(structure: str, rows: Sequence[RatingRow], a: str, b: str) -> PairStats:
    """Agreement of raters ``a`` and ``b`` on the items of ``rows`` both rated."""
    table = _by_rater(rows)
    kinds = {r.rater: r.kind for r in rows}
    shared = sorted(set(table.get(a, {})) & set(table.get(b, {})))
    sa = [table[a][i].score for i in shared]
    sb = [table[b][i].score for i in shared]
    va = [table[a][i].verdict for i in shared]
    vb = [table[b][i].verdict for i in shared]
    return PairStats(
        structure=structure,
        rater_a=a,
        rater_b=b,
        pair_kind=_pair_kind(kinds, a, b),
        n=len(shared),
        kappa_quadratic=kappa_quadratic(sa, sb),
        exact_agreement=exact_agreement(sa, sb),
        within_one_agreement=within_one_agreement(sa, sb),
        verdict_agreement=None if not shared else float(np.mean(np.array(va) == np.array(vb))),
        verdict_kappa=kappa_nominal(va, vb),
        confusion=confusion(sa, sb).tolist(),
    )


def group_stats(structure: str, group: str, rows: Sequence[RatingRow]) -> GroupStats:
    """Krippendorff's alpha over all ratings and ICC(2,1) over the items every rater rated."""
    table = _by_rater(rows)
    raters = sorted(table)
    items = sorted({r.item for r in rows})
    matrix = np.full((len(raters), len(items)), np.nan)
    index = {item: k for k, item in enumerate(items)}
    for i, rater in enumerate(raters):
        for item, row in table[rater].items():
            matrix[i, index[item]] = row.score
    complete = matrix[:, np.isfinite(matrix).all(axis=0)].T  # items × raters
    icc = icc21(complete)
    return GroupStats(
        structure=structure,
        group=group,
        raters=len(raters),
        items=len(items),
        ratings=int(np.isfinite(matrix).sum()),
        alpha_ordinal=alpha_ordinal(matrix),
        icc21=None if icc is None else icc[0],
        icc21_ci95=None if icc is None else icc[1],
        icc_items=int(complete.shape[0]),
    )


def rater_stats(structure: str, rows: Sequence[RatingRow], rater: str) -> RaterStats:
    """One rater's count, mean score and Spearman(score, Dice original → final)."""
    mine = list(_by_rater(rows).get(rater, {}).values())
    with_dice = [r for r in mine if r.dice is not None]
    rho = spearman([r.score for r in with_dice], [float(r.dice or 0.0) for r in with_dice])
    return RaterStats(
        structure=structure,
        rater=rater,
        kind=mine[0].kind if mine else "human",
        ratings=len(mine),
        mean_score=float(np.mean([r.score for r in mine])) if mine else None,
        spearman_score_dice=None if rho is None else rho[0],
        spearman_p=None if rho is None else rho[1],
        dice_pairs=len(with_dice),
    )


def agreement_report(rows: Sequence[RatingRow]) -> AgreementReport:
    """Every pair, group and rater statistic, per structure and over all structures."""
    pairs: list[PairStats] = []
    groups: list[GroupStats] = []
    raters: list[RaterStats] = []
    structures = sorted({r.structure for r in rows})
    for structure in [ALL, *structures]:
        subset = [r for r in rows if structure == ALL or r.structure == structure]
        names = sorted({r.rater for r in subset})
        for a, b in combinations(names, 2):
            pairs.append(pair_stats(structure, subset, a, b))
        humans = [r for r in subset if r.kind == "human"]
        groups.append(group_stats(structure, "humans", humans))
        if len(humans) != len(subset):
            groups.append(group_stats(structure, "humans+llm", subset))
        raters.extend(rater_stats(structure, subset, name) for name in names)
    return AgreementReport(pairs=pairs, groups=groups, raters=raters)
